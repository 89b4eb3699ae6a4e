//! The project's servers from one paginated listing, shared by every policy, with the
//! results of finished stop jobs folded in between listings: a job that reports its
//! servers stopped needs no 100-page listing to show it.
//!
//! It keeps each listed server's power state by id (the listing itself is capped, see
//! `src/ecs/client.rs`), so a new policy naming servers the last listing saw plans at
//! once: keeping only the named ones made every new policy wait for a listing of its
//! own, one after another at start-up. Selectors are matched as the pages arrive,
//! through a [`SelectorIndex`] (a few lookups per server, not one check per policy);
//! each policy's matches are kept as ids, so no name or tag is stored at all. A
//! policy whose ids or selector changed waits for a listing that began after the
//! change: only that one saw every server it may want.
//!
//! A new listing updates the map in place, page by page, rather than building a second
//! one beside it: at 100,000 servers that second map was the largest allocation of the
//! operator. While it runs, syncs see each server as the last listing or the current
//! one left it, and plan against the last listing's start time, so nothing that ended
//! since counts as settled.

use super::PolicyKey;
use crate::ecs::client::{EcsApi, ServerFilter};
use crate::ecs::error::EcsError;
use crate::ecs::wire::ServerDetail;
use crate::plan::ObservedPower;
use crate::selector::spec::SelectorSpec;
use crate::selector::{Selector, SelectorIndex};
use crate::server_id::{IdMap, IdSet, ServerId};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What one policy sees of the inventory.
#[derive(Debug)]
pub struct Observation {
    /// When the listing behind it started: anything that finished later may be missing.
    pub fetched_at: Instant,
    /// The asked-for servers that exist; an id absent here does not exist.
    pub servers: IdMap<ObservedPower>,
}

/// What one policy asks the inventory about.
#[derive(Debug)]
struct Interest {
    named: IdSet,
    selector: Option<SelectorSpec>,
    /// The number of the listing begun last when the ids or selector last changed:
    /// only a later one that completed has seen every server the policy may want.
    since: u64,
}

/// What a policy asks of the inventory: the ids it names, and its selector.
#[derive(Debug, Clone, Copy)]
pub struct Wants<'a> {
    pub named: &'a [String],
    pub selector: Option<(&'a SelectorSpec, &'a Selector)>,
}

#[derive(Default)]
struct State {
    /// Each listed server: its power state, and the listing that last saw it.
    servers: IdMap<(ObservedPower, u64)>,
    interests: HashMap<PolicyKey, Interest>,
    selectors: SelectorIndex<PolicyKey>,
    /// The ids each selector matched in the last completed listing, sorted.
    matched: HashMap<PolicyKey, Vec<ServerId>>,
    /// What the listing under way has matched so far.
    matching: HashMap<PolicyKey, Vec<ServerId>>,
    /// Listings begun so far: the number of the current (or last) one.
    listings_begun: u64,
    /// The number of the last listing that completed.
    listings_done: u64,
    fetched_at: Option<Instant>,
    /// Set when a stop call's answer was lost: only a new listing tells what happened.
    stale: bool,
    /// Policies that planned with the current listing: one that has not may still use
    /// it past `max_age`, so a sync round of many policies costs one listing.
    seen_by: HashSet<PolicyKey>,
    /// Results learnt from jobs, and when: those newer than a listing's start win
    /// over it, since the listing may have read the server before the job ended.
    confirmed: IdMap<(ObservedPower, Instant)>,
}

impl State {
    /// Fresh for `policy`: younger than `max_age`, or not yet seen by it and younger
    /// than `MAX_AGE_PER_ROUND` of them.
    fn is_fresh(&self, policy: &PolicyKey, max_age: Duration) -> bool {
        let limit = if self.seen_by.contains(policy) {
            max_age
        } else {
            max_age * MAX_AGE_PER_ROUND
        };
        self.is_usable() && self.fetched_at.is_some_and(|at| at.elapsed() < limit)
    }

    /// Good enough to plan with while a newer listing is under way: jobs that end in
    /// the meantime count as in flight against its start time.
    fn is_usable(&self) -> bool {
        !self.stale && self.fetched_at.is_some()
    }

    /// Whether `policy` may plan with the current listing while a newer one runs.
    fn serves_meanwhile(&self, policy: &PolicyKey) -> bool {
        self.is_usable() && self.covers(policy)
    }

    /// Whether a completed listing has seen every server `policy` may want.
    fn covers(&self, policy: &PolicyKey) -> bool {
        self.interests
            .get(policy)
            .is_none_or(|interest| self.listings_done > interest.since)
    }

    /// The id the inventory holds for `id`, shared; a new one for a server it does
    /// not hold.
    fn intern(&self, id: &str) -> ServerId {
        self.servers
            .get_key_value(id)
            .map_or_else(|| id.into(), |(known, _)| known.clone())
    }

    /// Keeps a listed server, filing it with the selectors that match it.
    fn take_listed(&mut self, detail: ServerDetail, power: ObservedPower, listing: u64) {
        let id = self.intern(&detail.id);
        let name = detail.name.as_deref().unwrap_or_default();
        let tags: Vec<&str> = detail.tags.iter().flatten().map(String::as_str).collect();
        for policy in self.selectors.matching(name, &tags) {
            self.matching
                .entry(policy.clone())
                .or_default()
                .push(id.clone());
        }
        // A known server keeps its key: only the value is replaced.
        self.servers.insert(id, (power, listing));
    }

    fn forget(&mut self, policy: &PolicyKey) {
        if self.interests.remove(policy).is_none() {
            return;
        }
        self.selectors.remove(policy);
        self.matched.remove(policy);
        self.matching.remove(policy);
    }
}

/// However slow a sync round, a policy never plans with a listing older than this many
/// `max_age`s.
const MAX_AGE_PER_ROUND: u32 = 10;

/// Single-flight cache: concurrent callers wait for the one listing under way.
#[derive(Default)]
pub struct InventoryCache {
    listing: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

impl InventoryCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("inventory lock poisoned")
    }

    /// Whether there is a listing syncs may plan with.
    pub fn is_usable(&self) -> bool {
        self.lock().is_usable()
    }

    /// The next caller lists again, whatever the listing's age.
    pub fn invalidate(&self) {
        self.lock().stale = true;
    }

    /// Records what `policy` asks about. Ids or a selector the inventory may not have
    /// kept make it wait for a listing that begins from now on.
    pub fn register(&self, policy: &PolicyKey, wants: Wants<'_>) {
        let mut state = self.lock();
        let named: IdSet = wants.named.iter().map(|id| state.intern(id)).collect();
        let selector = wants.selector.map(|(spec, _)| spec.clone());
        let old = state.interests.remove(policy);
        let (old_named, old_selector, old_since) = match old {
            Some(old) => (old.named, old.selector, Some(old.since)),
            None => (IdSet::default(), None, None),
        };
        // Ids it gave up need no listing; new ones the inventory does not hold do.
        let unseen = named
            .difference(&old_named)
            .any(|id| !state.servers.contains_key(id));
        let selector_changed = selector != old_selector;
        // A policy that asks only about servers a listing already saw is covered by it:
        // a new one too, or at start-up every policy would wait for a listing of its own.
        let since = match old_since {
            _ if unseen || selector_changed => state.listings_begun,
            Some(since) => since,
            None => 0,
        };
        if selector_changed {
            state.matched.remove(policy);
            state.matching.remove(policy);
            match wants.selector {
                Some((_, compiled)) => state.selectors.insert(policy.clone(), compiled.clone()),
                None => state.selectors.remove(policy),
            }
        }
        state.interests.insert(
            policy.clone(),
            Interest {
                named,
                selector,
                since,
            },
        );
    }

    /// `policy` no longer uses this inventory: its selector and matches go with it.
    pub fn forget(&self, policy: &PolicyKey) {
        self.lock().forget(policy);
    }

    /// Whether the inventory keeps anything for `policy`.
    #[cfg(test)]
    pub fn is_interested(&self, policy: &PolicyKey) -> bool {
        self.lock().interests.contains_key(policy)
    }

    /// The ids `policy`'s selector matched in the last completed listing, sorted.
    pub fn matched(&self, policy: &PolicyKey) -> Vec<ServerId> {
        self.lock().matched.get(policy).cloned().unwrap_or_default()
    }

    /// What a finished job reported for its servers, effective at once.
    pub fn confirm<'a>(&self, ids: impl IntoIterator<Item = &'a ServerId>, power: ObservedPower) {
        let now = Instant::now();
        let mut state = self.lock();
        for id in ids {
            state.confirmed.insert(id.clone(), (power, now));
            if let Some((current, _)) = state.servers.get_mut(id) {
                *current = power;
            }
        }
    }

    /// Lists the project again unless the current listing is fresh for `policy` and
    /// covers what it asks about ([`Self::register`] first). While another caller
    /// lists, the current listing serves (a 100-page listing must not stall every
    /// sync); only a caller with no usable listing, or one it does not cover, waits.
    pub async fn refresh(
        &self,
        api: &dyn EcsApi,
        policy: &PolicyKey,
        max_age: Duration,
    ) -> Result<(), EcsError> {
        let ready = |state: &State| state.is_fresh(policy, max_age) && state.covers(policy);
        if ready(&self.lock()) {
            return Ok(());
        }
        let _single_flight = match self.listing.try_lock() {
            Ok(guard) => guard,
            Err(_) if self.lock().serves_meanwhile(policy) => return Ok(()),
            Err(_) => self.listing.lock().await,
        };
        if ready(&self.lock()) {
            return Ok(());
        }
        let fetched_at = Instant::now();
        let listing = {
            let mut state = self.lock();
            state.listings_begun += 1;
            state.matching.clear();
            state.listings_begun
        };
        api.for_each_server_page(&ServerFilter::default(), &mut |page| {
            let mut state = self.lock();
            for detail in page {
                let listed = ObservedPower::from_ecs(
                    detail.status.as_deref().unwrap_or("UNKNOWN"),
                    detail.task_state.as_deref(),
                    detail.locked.unwrap_or(false),
                );
                // A job result newer than this listing's start wins: the page may
                // have been read before the job ended.
                let power = match state.confirmed.get(detail.id.as_str()) {
                    Some((power, at)) if *at > fetched_at => *power,
                    _ => listed,
                };
                state.take_listed(detail, power, listing);
            }
        })
        .await?;
        let mut state = self.lock();
        // Servers this listing did not see no longer exist.
        state.servers.retain(|_, (_, seen_in)| *seen_in == listing);
        let mut matched = std::mem::take(&mut state.matching);
        for ids in matched.values_mut() {
            ids.sort_unstable();
            ids.dedup();
        }
        state.matched = matched;
        state.listings_done = listing;
        state.confirmed.retain(|_, (_, at)| *at > fetched_at);
        state.fetched_at = Some(fetched_at);
        state.stale = false;
        state.seen_by.clear();
        Ok(())
    }

    /// Whether every one of `ids` (at least one) is listed as stopped.
    pub fn all_stopped<'a>(&self, mut ids: impl Iterator<Item = &'a ServerId>) -> bool {
        let state = self.lock();
        let mut any = false;
        let all = ids.all(|id| {
            any = true;
            state
                .servers
                .get(id)
                .is_some_and(|(power, _)| *power == ObservedPower::Stopped)
        });
        any && all
    }

    /// The inventory's shared id for each of `ids`: a server named by several
    /// policies, queues and jobs is held once.
    pub fn intern(&self, ids: &[String]) -> Vec<ServerId> {
        let state = self.lock();
        ids.iter().map(|id| state.intern(id)).collect()
    }

    /// The asked-for servers as last listed (or confirmed by a job since). Call
    /// [`Self::refresh`] first.
    pub fn observe(&self, policy: &PolicyKey, ids: &[ServerId]) -> Observation {
        let mut state = self.lock();
        if !state.seen_by.contains(policy) {
            state.seen_by.insert(policy.clone());
        }
        Observation {
            fetched_at: state.fetched_at.unwrap_or_else(Instant::now),
            servers: ids
                .iter()
                .filter_map(|id| state.servers.get(id).map(|(power, _)| (id.clone(), *power)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::fake_listings::Listings;
    use std::sync::Arc;

    fn ids(names: &[&str]) -> Vec<ServerId> {
        names.iter().map(|n| (*n).into()).collect()
    }

    fn key(name: &str) -> PolicyKey {
        PolicyKey::new("ns", name)
    }

    /// Registers `policy` as naming `names`, as a sync does before it refreshes.
    fn naming(cache: &InventoryCache, policy: &str, names: &[&str]) {
        cache.register(
            &key(policy),
            Wants {
                named: &names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
                selector: None,
            },
        );
    }

    fn selecting(cache: &InventoryCache, policy: &str, tags: &[(&str, &str)]) {
        let spec = SelectorSpec {
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            name_pattern: None,
        };
        let compiled = Selector::compile(&spec).expect("a valid selector");
        cache.register(
            &key(policy),
            Wants {
                named: &[],
                selector: Some((&spec, &compiled)),
            },
        );
    }

    fn seen(
        cache: &InventoryCache,
        policy: &str,
        names: &[&str],
    ) -> Vec<(ServerId, ObservedPower)> {
        let mut servers: Vec<_> = cache
            .observe(&key(policy), &ids(names))
            .servers
            .into_iter()
            .collect();
        servers.sort_by(|a, b| a.0.cmp(&b.0));
        servers
    }

    #[tokio::test]
    async fn a_new_listing_updates_servers_and_drops_those_gone() {
        let cache = Arc::new(InventoryCache::default());
        let api = Listings::new(
            vec![
                vec![
                    vec![("a", "ACTIVE"), ("b", "ACTIVE")],
                    vec![("c", "ACTIVE")],
                ],
                vec![vec![("a", "SHUTOFF")], vec![("d", "ACTIVE")]],
            ],
            Box::new(|| {}),
        );
        naming(&cache, "p", &["a", "b", "c", "d"]);
        cache
            .refresh(&api, &key("p"), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(seen(&cache, "p", &["a", "b", "c"]).len(), 3);
        cache
            .refresh(&api, &key("p"), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            seen(&cache, "p", &["a", "b", "c", "d"]),
            [
                ("a".into(), ObservedPower::Stopped),
                ("d".into(), ObservedPower::Running)
            ]
        );
    }

    #[tokio::test]
    async fn a_job_result_newer_than_the_listing_wins_over_its_pages() {
        let cache = Arc::new(InventoryCache::default());
        let during = Arc::clone(&cache);
        let api = Listings::new(
            vec![vec![
                vec![("a", "ACTIVE")],
                // Read before the job's end was learnt: still ACTIVE on this page.
                vec![("b", "ACTIVE")],
            ]],
            Box::new(move || {
                during.confirm(&ids(&["b"]), ObservedPower::Stopped);
            }),
        );
        naming(&cache, "p", &["a", "b"]);
        cache
            .refresh(&api, &key("p"), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            seen(&cache, "p", &["a", "b"]),
            [
                ("a".into(), ObservedPower::Running),
                ("b".into(), ObservedPower::Stopped)
            ]
        );
        assert!(cache.all_stopped(ids(&["b"]).iter()));
        assert!(!cache.all_stopped(ids(&["a", "b"]).iter()));
    }

    #[tokio::test]
    async fn while_a_listing_runs_syncs_see_the_last_one() {
        let cache = Arc::new(InventoryCache::default());
        let during = Arc::clone(&cache);
        let api = Listings::new(
            vec![
                vec![vec![("a", "ACTIVE"), ("b", "ACTIVE")]],
                vec![vec![("a", "SHUTOFF")], vec![("b", "SHUTOFF")]],
            ],
            Box::new(move || {
                // Half-way: "a" from the new listing, "b" still from the last one, and
                // the time to plan against is the last listing's start.
                let observed = during.observe(&key("q"), &ids(&["a", "b"]));
                assert_eq!(observed.servers["a"], ObservedPower::Stopped);
                assert_eq!(observed.servers["b"], ObservedPower::Running);
            }),
        );
        naming(&cache, "p", &["a", "b"]);
        cache
            .refresh(&api, &key("p"), Duration::ZERO)
            .await
            .unwrap();
        let first = cache.observe(&key("p"), &[]).fetched_at;
        cache
            .refresh(&api, &key("p"), Duration::ZERO)
            .await
            .unwrap();
        assert!(cache.observe(&key("p"), &[]).fetched_at > first);
    }

    #[tokio::test]
    async fn every_listed_server_is_kept_and_a_leaving_selector_matches_nothing() {
        let cache = InventoryCache::default();
        let api = Listings::new(
            vec![vec![vec![
                ("a", "ACTIVE"),
                ("b+env=dev", "ACTIVE"),
                ("c+env=prod", "ACTIVE"),
            ]]],
            Box::new(|| {}),
        );
        naming(&cache, "p", &["a"]);
        selecting(&cache, "q", &[("env", "dev")]);
        cache
            .refresh(&api, &key("p"), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(cache.lock().servers.len(), 3);
        assert_eq!(cache.matched(&key("q")), ["b"]);
        // A policy that leaves takes its matches with it.
        cache.forget(&key("q"));
        assert!(cache.matched(&key("q")).is_empty());
    }

    #[tokio::test]
    async fn a_newly_tagged_server_matches_at_the_next_listing_and_an_untagged_one_no_longer() {
        let cache = InventoryCache::default();
        let api = Listings::new(
            vec![
                vec![vec![("a+env=dev", "ACTIVE"), ("b", "ACTIVE")]],
                vec![vec![("a", "ACTIVE"), ("b+env=dev+team=x", "ACTIVE")]],
            ],
            Box::new(|| {}),
        );
        selecting(&cache, "q", &[("env", "dev")]);
        cache
            .refresh(&api, &key("q"), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(cache.matched(&key("q")), ["a"]);
        cache
            .refresh(&api, &key("q"), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(cache.matched(&key("q")), ["b"]);
        assert_eq!(api.served(), 2);
    }

    #[tokio::test]
    async fn selectors_registered_before_a_listing_begins_share_it() {
        // As the controller's first round does: every policy registers, then each
        // plans against the one listing.
        let cache = InventoryCache::default();
        let api = Listings::new(
            vec![vec![vec![
                ("a+env=dev", "ACTIVE"),
                ("b+env=test", "ACTIVE"),
            ]]],
            Box::new(|| {}),
        );
        selecting(&cache, "q", &[("env", "dev")]);
        selecting(&cache, "r", &[("env", "test")]);
        let long = Duration::from_secs(3600);
        cache.refresh(&api, &key("q"), long).await.unwrap();
        cache.refresh(&api, &key("r"), long).await.unwrap();
        assert_eq!(api.served(), 1, "one listing for both");
        assert_eq!(cache.matched(&key("r")), ids(&["b"]));
    }

    #[tokio::test]
    async fn a_new_selector_or_new_ids_wait_for_a_listing_that_saw_them() {
        let cache = InventoryCache::default();
        let api = Listings::new(
            vec![vec![vec![("a", "ACTIVE"), ("b+env=dev", "ACTIVE")]]],
            Box::new(|| {}),
        );
        naming(&cache, "p", &["a"]);
        let long = Duration::from_secs(3600);
        cache.refresh(&api, &key("p"), long).await.unwrap();
        cache.refresh(&api, &key("p"), long).await.unwrap();
        assert_eq!(api.served(), 1, "fresh and unchanged: no listing");
        // The listing matched "b" for no one: a new selector needs a new listing,
        // however fresh the last.
        selecting(&cache, "q", &[("env", "dev")]);
        cache.refresh(&api, &key("q"), long).await.unwrap();
        assert_eq!((api.served(), cache.matched(&key("q"))), (2, ids(&["b"])));
        // Naming a server the inventory holds needs none; dropping one neither.
        naming(&cache, "p", &["b"]);
        cache.refresh(&api, &key("p"), long).await.unwrap();
        assert_eq!(api.served(), 2);
        // A server nobody named before does.
        naming(&cache, "p", &["b", "z"]);
        cache.refresh(&api, &key("p"), long).await.unwrap();
        assert_eq!(api.served(), 3);
    }
}
