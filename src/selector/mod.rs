//! Selectors: servers chosen by the cloud's tags and names, evaluated against the
//! fleet's shared inventory (one listing for every policy of a project).
//!
//! - [`Selector::compile`] checks a selector (tag keys and values as ECS allows them, the
//!   pattern) with an error that names the field;
//! - [`SelectorIndex`] finds the selectors a listed server can match with a few lookups
//!   by its tags, so a listing of 100,000 servers is not checked against every policy;
//! - [`select`] applies `exclude` and the `maxServers` cap, and digests what matched.
//!
//! All pure: no I/O, no clock.

mod index;
mod selection;
pub mod spec;
#[cfg(test)]
mod tests;

pub use index::SelectorIndex;
pub use selection::{Selection, select};

use spec::SelectorSpec;

/// How many matched ids `status.selector.sample` shows.
pub const SAMPLE_SIZE: usize = 10;

/// ECS tag keys: 1 to 36 letters, digits, `_` or `-`; values: up to 43 of the same.
const MAX_TAG_KEY: usize = 36;
const MAX_TAG_VALUE: usize = 43;

/// Why a selector cannot be used; the message names the field as the policy writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.selector{field}: {problem}")]
pub struct SelectorError {
    /// The path below `spec.selector`, with its leading dot (empty: the whole selector).
    pub field: String,
    pub problem: String,
}

/// A policy's checked selector with its `maxServers` cap, as the fleet evaluates it.
#[derive(Debug, Clone)]
pub struct CappedSelector {
    pub spec: SelectorSpec,
    pub selector: Selector,
    pub max_servers: usize,
}

impl CappedSelector {
    /// Checks `spec.selector` and `spec.maxServers` (the CRD requires both together;
    /// this is for a policy stored before that rule, or written past it).
    pub fn compile(spec: &SelectorSpec, max_servers: Option<u32>) -> Result<Self, SelectorError> {
        let selector = Selector::compile(spec)?;
        let max_servers = max_servers.ok_or_else(|| SelectorError {
            field: String::new(),
            problem: "spec.maxServers is required with a selector".into(),
        })?;
        Ok(Self {
            spec: spec.clone(),
            selector,
            max_servers: max_servers as usize,
        })
    }
}

/// A checked selector.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Sorted by key, each `key=value` as the listing shows tags.
    tags: Vec<String>,
    name: Option<regex::Regex>,
}

fn tag_text_ok(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

impl Selector {
    pub fn compile(spec: &SelectorSpec) -> Result<Self, SelectorError> {
        let invalid = |field: String, problem: String| SelectorError { field, problem };
        if spec.tags.is_empty() && spec.name_pattern.is_none() {
            return Err(invalid(
                String::new(),
                "a selector needs tags or a namePattern".into(),
            ));
        }
        let mut tags = Vec::with_capacity(spec.tags.len());
        for (key, value) in &spec.tags {
            let field = format!(".tags.{key}");
            let key_len = key.chars().count();
            if key_len == 0 || key_len > MAX_TAG_KEY || !tag_text_ok(key) {
                return Err(invalid(
                    field,
                    format!("tag key `{key}`: 1 to {MAX_TAG_KEY} letters, digits, `_` or `-`"),
                ));
            }
            if value.chars().count() > MAX_TAG_VALUE || !tag_text_ok(value) {
                return Err(invalid(
                    field,
                    format!(
                        "tag value `{value}`: at most {MAX_TAG_VALUE} letters, digits, `_` or `-`"
                    ),
                ));
            }
            tags.push(format!("{key}={value}"));
        }
        let name = match &spec.name_pattern {
            None => None,
            Some(pattern) => Some(regex::Regex::new(pattern).map_err(|error| {
                invalid(
                    ".namePattern".into(),
                    format!("`{pattern}` is not a regular expression: {error}"),
                )
            })?),
        };
        Ok(Self { tags, name })
    }

    /// Whether a server with this name and these tags (`key=value` strings, as ECS lists
    /// them) is selected.
    pub fn matches<'a>(&self, name: &str, tags: impl IntoIterator<Item = &'a str> + Clone) -> bool {
        self.tags
            .iter()
            .all(|wanted| tags.clone().into_iter().any(|tag| tag == wanted))
            && self
                .name
                .as_ref()
                .is_none_or(|pattern| pattern.is_match(name))
    }

    /// The tags it requires, `key=value`.
    pub(crate) fn required_tags(&self) -> &[String] {
        &self.tags
    }
}
