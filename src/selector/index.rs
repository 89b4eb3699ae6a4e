//! Which selectors a listed server can match, found by its tags.
//!
//! Each selector is filed under one tag it requires (a server it matches must carry
//! that tag), or among the untagged ones if it selects by name only. A server's
//! candidates are then the selectors filed under its few tags plus the untagged ones:
//! a listing costs a handful of lookups per server, not one check per policy.

use super::Selector;
use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug)]
pub struct SelectorIndex<K> {
    selectors: HashMap<K, Selector>,
    by_tag: HashMap<String, Vec<K>>,
    untagged: Vec<K>,
}

impl<K> Default for SelectorIndex<K> {
    fn default() -> Self {
        Self {
            selectors: HashMap::new(),
            by_tag: HashMap::new(),
            untagged: Vec::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> SelectorIndex<K> {
    /// Files `selector` under `key`, replacing what `key` had.
    pub fn insert(&mut self, key: K, selector: Selector) {
        self.remove(&key);
        match selector.required_tags().first() {
            Some(tag) => self
                .by_tag
                .entry(tag.clone())
                .or_default()
                .push(key.clone()),
            None => self.untagged.push(key.clone()),
        }
        self.selectors.insert(key, selector);
    }

    pub fn remove(&mut self, key: &K) {
        let Some(old) = self.selectors.remove(key) else {
            return;
        };
        let filed = match old.required_tags().first() {
            Some(tag) => self.by_tag.get_mut(tag),
            None => Some(&mut self.untagged),
        };
        if let Some(keys) = filed {
            keys.retain(|k| k != key);
        }
        if let Some(tag) = old.required_tags().first()
            && self.by_tag.get(tag).is_some_and(Vec::is_empty)
        {
            self.by_tag.remove(tag);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.selectors.is_empty()
    }

    /// The selectors that select a server of this name and tags (`key=value`).
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        tags: &'a [&'a str],
    ) -> impl Iterator<Item = &'a K> + 'a {
        tags.iter()
            .filter_map(|tag| self.by_tag.get(*tag))
            .flatten()
            .chain(&self.untagged)
            .filter(move |key| self.selectors[*key].matches(name, tags.iter().copied()))
    }
}
