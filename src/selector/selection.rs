//! What a policy wants from its named servers and its selector's matches.

use super::SAMPLE_SIZE;
use crate::server_id::ServerId;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The servers the policy wants stopped, each once: named ones in spec order, then
    /// matched ones not named, sorted; less the excluded; none at all when the selector
    /// matched more than `maxServers`.
    pub wanted: Vec<ServerId>,
    /// Servers the selector matched, the excluded ones not counted.
    pub matched: usize,
    /// `matched` is over the cap: the policy stops nothing.
    pub exceeded: bool,
    /// A digest of the matched set (16 hex digits of SHA-256 over the sorted ids), so a
    /// change in what a selector matches shows in the status without listing it.
    pub digest: String,
    /// The first matched ids, sorted.
    pub sample: Vec<String>,
}

pub fn select<'a>(
    named: impl IntoIterator<Item = &'a ServerId>,
    matched: impl IntoIterator<Item = &'a ServerId>,
    exclude: &HashSet<&str>,
    max_servers: Option<usize>,
) -> Selection {
    let matched: BTreeSet<&ServerId> = matched
        .into_iter()
        .filter(|id| !exclude.contains(id.as_str()))
        .collect();
    let exceeded = max_servers.is_some_and(|max| matched.len() > max);
    let mut hasher = Sha256::new();
    for id in &matched {
        hasher.update(id.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hex::encode(&hasher.finalize()[..8]);
    let sample = matched
        .iter()
        .take(SAMPLE_SIZE)
        .map(|id| id.to_string())
        .collect();
    let wanted = if exceeded {
        Vec::new()
    } else {
        let mut seen = HashSet::new();
        named
            .into_iter()
            .chain(matched.iter().copied())
            .filter(|id| !exclude.contains(id.as_str()) && seen.insert(*id))
            .cloned()
            .collect()
    };
    Selection {
        wanted,
        matched: matched.len(),
        exceeded,
        digest,
        sample,
    }
}
