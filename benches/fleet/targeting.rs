//! How a cell's policies name their servers: by id lists, or by tag selectors that
//! split the servers between them or overlap. Every server of a selector cell carries
//! five tags: `group` (one value per policy, contiguous ranges) for the splitting
//! cells, and `o1`..`o4` (each spread over P/4 values by a hash of the server's
//! number) for the overlapping ones, so each server is matched by four of their
//! policies.

use crate::setup::{Target, share_of_ids};
use clap::ValueEnum;
use ecs_power_operator::policy::MAX_SELECTED_PER_POLICY;
use ecs_power_operator::selector::spec::SelectorSpec;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Targeting {
    /// Each policy lists its share of the servers by id.
    Ids,
    /// Each policy selects its share by a `group` tag.
    Split,
    /// Each policy selects one value of one of four tags; every server is matched by
    /// four policies.
    Overlap,
}

impl Targeting {
    /// As on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Targeting::Ids => "ids",
            Targeting::Split => "split",
            Targeting::Overlap => "overlap",
        }
    }
}

/// Keys of the overlapping tags.
const OVERLAP_KEYS: usize = 4;

/// Values each overlapping key takes with `policies` policies.
fn overlap_values(policies: usize) -> usize {
    policies.div_ceil(OVERLAP_KEYS).max(1)
}

/// The `group` value of server `n` of `servers` spread over `policies`.
fn group(n: usize, servers: usize, policies: usize) -> usize {
    n * policies / servers
}

/// The value of overlapping key `key` (0-based) of server `n`: a multiplicative hash,
/// so that the keys are independent of each other and of the server's position.
fn overlap_value(n: usize, key: usize, values: usize) -> usize {
    let hash = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((hash >> (16 * key)) % values as u64) as usize
}

/// The five tags of server `n` in a selector cell (none for an id cell).
pub fn server_tags(targeting: Targeting, n: usize, servers: usize, policies: usize) -> Vec<String> {
    if targeting == Targeting::Ids {
        return Vec::new();
    }
    let values = overlap_values(policies);
    std::iter::once(format!("group=g{:04}", group(n, servers, policies)))
        .chain(
            (0..OVERLAP_KEYS)
                .map(|key| format!("o{}=v{:02}", key + 1, overlap_value(n, key, values))),
        )
        .collect()
}

/// What policy `i` of `policies` names, the servers being `ids` (in the simulator's
/// order, which `server_tags` numbered).
pub fn policy_target(targeting: Targeting, i: usize, ids: &[String], policies: usize) -> Target {
    let tag = |key: String, value: String| {
        Some(SelectorSpec {
            tags: BTreeMap::from([(key, value)]),
            name_pattern: None,
        })
    };
    match targeting {
        Targeting::Ids => share_of_ids(i, ids, policies),
        Targeting::Split => Target {
            servers: Vec::new(),
            selector: tag("group".to_owned(), format!("g{i:04}")),
            max_servers: Some(ids.len().div_ceil(policies) as u32),
            schedule: None,
        },
        Targeting::Overlap => Target {
            servers: Vec::new(),
            selector: tag(
                format!("o{}", i % OVERLAP_KEYS + 1),
                format!("v{:02}", i / OVERLAP_KEYS),
            ),
            max_servers: Some(MAX_SELECTED_PER_POLICY),
            schedule: None,
        },
    }
}
