//! `status.stoppedByPolicy`: the servers a policy with `afterWindow: Start` stopped
//! and has not started again, the one durable record of what it may start when its
//! window ends (a restart after the window ended reads it back). Pure.

use super::status::Problem;
use crate::policy::{MAX_STOPPED_RECORDED, StoppedByPolicy};
use crate::server_id::ServerId;
use std::collections::BTreeSet;

/// The record after a sync: what it held, plus what the policy's stop jobs stopped
/// since (`stopped`), less what needs no start any more (`settled`: running again,
/// or gone). Ids already recorded keep their place when it is full; servers beyond
/// the cap are counted, and the count stays until the record empties.
pub fn next(
    previous: Option<&StoppedByPolicy>,
    stopped: &[ServerId],
    settled: &[ServerId],
) -> StoppedByPolicy {
    let settled: BTreeSet<&str> = settled.iter().map(ServerId::as_str).collect();
    let kept: BTreeSet<&str> = previous
        .into_iter()
        .flat_map(|record| &record.servers)
        .map(String::as_str)
        .filter(|id| !settled.contains(id))
        .collect();
    let new: BTreeSet<&str> = stopped
        .iter()
        .map(ServerId::as_str)
        .filter(|id| !settled.contains(id) && !kept.contains(id))
        .collect();
    let room = MAX_STOPPED_RECORDED.saturating_sub(kept.len());
    let overflow = new.len().saturating_sub(room);
    let mut servers: Vec<String> = kept
        .into_iter()
        .chain(new.into_iter().take(room))
        .map(str::to_owned)
        .collect();
    servers.sort_unstable();
    let not_recorded = if servers.is_empty() {
        0
    } else {
        let before = previous.map_or(0, |record| record.not_recorded);
        before.max(u32::try_from(overflow).unwrap_or(u32::MAX))
    };
    StoppedByPolicy {
        servers,
        not_recorded,
        starting_until: None,
    }
}

/// Whether `next` records a server `previous` did not: one the sync learnt it
/// stopped, which the next sync starts if the window has ended.
pub fn gained(previous: Option<&StoppedByPolicy>, next: &StoppedByPolicy) -> bool {
    let before = previous.map_or(&[][..], |record| &record.servers[..]);
    // Both are sorted (see [`next`]).
    next.servers
        .iter()
        .any(|id| before.binary_search(id).is_err())
}

/// A record that could not hold every server the policy stopped: those are left
/// stopped when the window ends, and a person should know.
pub fn problem(record: &StoppedByPolicy) -> Option<Problem> {
    (record.not_recorded > 0).then(|| Problem {
        reason: "StartRecordFull",
        message: format!(
            "this policy stopped {} servers more than status.stoppedByPolicy records (at most {MAX_STOPPED_RECORDED}): they are not started when the window ends",
            record.not_recorded
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<ServerId> {
        names.iter().map(|n| (*n).into()).collect()
    }

    fn record(names: &[&str]) -> StoppedByPolicy {
        StoppedByPolicy {
            servers: names.iter().map(|n| (*n).to_owned()).collect(),
            ..StoppedByPolicy::default()
        }
    }

    #[test]
    fn stopped_servers_are_added_and_settled_ones_removed() {
        let next = next(Some(&record(&["a", "b"])), &ids(&["c", "a"]), &ids(&["b"]));
        assert_eq!(next, record(&["a", "c"]));
    }

    #[test]
    fn a_record_gains_only_servers_it_did_not_hold() {
        let before = record(&["a", "c"]);
        assert!(gained(Some(&before), &record(&["a", "b", "c"])));
        assert!(gained(None, &record(&["a"])));
        assert!(
            !gained(Some(&before), &record(&["c"])),
            "one settled, none new"
        );
        assert!(!gained(Some(&before), &before));
    }

    #[test]
    fn servers_beyond_the_cap_are_counted_and_the_recorded_ones_stay() {
        let full: Vec<String> = (0..MAX_STOPPED_RECORDED)
            .map(|i| format!("s{i:05}"))
            .collect();
        let previous = StoppedByPolicy {
            servers: full.clone(),
            ..StoppedByPolicy::default()
        };
        let next1 = next(Some(&previous), &ids(&["a", "b"]), &[]);
        assert_eq!(next1.servers, full, "the recorded ids keep their place");
        assert_eq!(next1.not_recorded, 2);
        assert!(problem(&next1).unwrap().message.contains("2 servers"));
        // Seen again by the next sync (the jobs are still tracked): not counted twice.
        let next2 = next(Some(&next1), &ids(&["a", "b"]), &[]);
        assert_eq!(next2.not_recorded, 2);
        // After a restart the jobs are forgotten, the count stays.
        assert_eq!(next(Some(&next2), &[], &[]).not_recorded, 2);
        // Every recorded server started: the round is over.
        let done = next(
            Some(&next2),
            &[],
            &full.iter().map(ServerId::from).collect::<Vec<_>>(),
        );
        assert_eq!(done, StoppedByPolicy::default());
        assert!(problem(&done).is_none());
    }
}
