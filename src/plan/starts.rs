//! Which of the servers a policy stopped are started now, when its window has ended
//! with `afterWindow: Start`. Pure, like the stop planner: the caller observes.

use super::planner::backoff_remaining;
use super::{Backoff, ObservedPower, RetryState};
use crate::server_id::{IdMap, IdSet, ServerId};
use jiff::Timestamp;

/// Everything the start planner looks at.
#[derive(Clone, Copy, Debug)]
pub struct StartInput<'a> {
    /// The servers the policy stopped and has not started again, and that it still
    /// names: nothing else is ever started.
    pub stopped_by_policy: &'a [ServerId],
    pub observed: &'a IdMap<ObservedPower>,
    /// The policy's starts already queued: they go when the budget has room (the
    /// call that carries them syncs the policy).
    pub queued: &'a IdSet,
    /// Ids queued in any lane (`queued` among them), in a call or a job, or of
    /// unknown outcome.
    pub in_flight: &'a IdSet,
    pub retries: &'a IdMap<RetryState>,
    pub backoff: Backoff,
    pub now: Timestamp,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct StartPlan {
    /// Shut off, nothing in flight for them, no backoff running: to queue now.
    pub to_start: Vec<ServerId>,
    /// Running again (started by this policy's job or by someone) or gone from the
    /// project: nothing left to start, so out of the policy's record.
    pub settled: Vec<ServerId>,
    /// Still to start, held back for a moment: in flight, powering off, busy, or
    /// waiting out a failed start's backoff. Nothing tells the policy when that
    /// passes, so its next sync must come soon. (A server in ERROR waits for a
    /// person, and is not among them.)
    pub waiting: Vec<ServerId>,
}

/// Starts what is shut off and not in flight; leaves busy, powering-off and ERROR
/// servers for a later sync (they are still the policy's to start).
pub fn plan_starts(input: &StartInput<'_>) -> StartPlan {
    let mut plan = StartPlan::default();
    for id in input.stopped_by_policy {
        if input.queued.contains(id) {
            continue;
        }
        if input.in_flight.contains(id) {
            plan.waiting.push(id.clone());
            continue;
        }
        let power = input
            .observed
            .get(id)
            .copied()
            .unwrap_or(ObservedPower::NotFound);
        match power {
            ObservedPower::Stopped => {
                let waiting = input
                    .retries
                    .get(id)
                    .and_then(|retry| backoff_remaining(retry, input.backoff, input.now));
                match waiting {
                    None => plan.to_start.push(id.clone()),
                    Some(_) => plan.waiting.push(id.clone()),
                }
            }
            ObservedPower::Running | ObservedPower::Locked | ObservedPower::NotFound => {
                plan.settled.push(id.clone())
            }
            ObservedPower::Stopping | ObservedPower::Busy => plan.waiting.push(id.clone()),
            ObservedPower::Error => {}
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ids(names: &[&str]) -> Vec<ServerId> {
        names.iter().map(|n| (*n).into()).collect()
    }

    fn plan(
        record: &[&str],
        observed: &[(&str, ObservedPower)],
        (queued, in_flight): (&[&str], &[&str]),
        retries: &[(&str, i64)],
    ) -> StartPlan {
        let now = Timestamp::from_second(1000).unwrap();
        let observed = observed.iter().map(|(id, p)| ((*id).into(), *p)).collect();
        let retries = retries
            .iter()
            .map(|(id, at)| {
                let retry = RetryState {
                    attempts: 1,
                    last_failure_at: Timestamp::from_second(*at).unwrap(),
                    code: "Ecs.0001".into(),
                    message: "refused".into(),
                };
                ((*id).into(), retry)
            })
            .collect();
        plan_starts(&StartInput {
            stopped_by_policy: &ids(record),
            observed: &observed,
            queued: &ids(queued).into_iter().collect(),
            in_flight: &ids(in_flight).into_iter().collect(),
            retries: &retries,
            backoff: Backoff {
                base: Duration::from_secs(10),
                max: Duration::from_secs(60),
            },
            now,
        })
    }

    #[test]
    fn only_recorded_shut_off_servers_with_nothing_in_flight_are_started() {
        use ObservedPower::*;
        let out = plan(
            &["a", "b", "c", "d", "e", "f", "g", "h"],
            &[
                ("a", Stopped),
                ("b", Stopped),
                ("c", Running),
                ("d", Busy),
                ("e", Stopped),
                ("g", Error),
                ("h", Stopped),
                ("x", Stopped),
            ],
            (&["h"], &["b"]),
            &[("e", 995)],
        );
        assert_eq!(out.to_start, ids(&["a"]), "x is not the policy's to start");
        assert_eq!(out.settled, ids(&["c", "f"]), "running, and gone");
        // In flight, busy, in backoff: soon. Not the queued one (the call going out
        // syncs the policy) nor the one in ERROR (a person must see to it).
        assert_eq!(out.waiting, ids(&["b", "d", "e"]));
    }

    #[test]
    fn a_failed_start_is_retried_after_its_backoff() {
        let out = plan(
            &["e"],
            &[("e", ObservedPower::Stopped)],
            (&[], &[]),
            &[("e", 990)],
        );
        assert_eq!(out.to_start, ids(&["e"]));
    }
}
