use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;

use super::ObservedPower;
use crate::policy::{Phase, Summary};
use crate::server_id::{IdMap, IdSet, ServerId};

/// Why a server's last stop attempt failed, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryState {
    /// Failed attempts so far (at least 1).
    pub attempts: u32,
    /// When the last attempt failed.
    pub last_failure_at: Timestamp,
    /// The cloud's error code, for status.failures.
    pub code: String,
    /// The cloud's error message, for status.failures.
    pub message: String,
}

/// What the caller will do with the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Stop what needs stopping.
    Act,
    /// `spec.dryRun`: report what would be stopped, stop nothing.
    DryRun,
    /// `spec.suspend`: observe and report only.
    Suspend,
    /// Outside the schedule's windows, or held off by the keep-running override:
    /// wants nothing stopped, corrects no drift, and reports.
    Idle,
}

/// Exponential backoff between stop attempts on one server: `base * 2^(attempts-1)`,
/// capped at `max`. Deterministic; jitter, if any, is the caller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Backoff {
    /// The wait after `attempts` failed attempts.
    pub fn delay(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.base
            .checked_mul(1 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// Everything the planner looks at, borrowed from the caller's observation.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    /// Server ids the policy names, in spec order.
    pub desired: &'a [ServerId],
    /// What the project's full listing says of each server; an absent id is NotFound.
    pub observed: &'a IdMap<ObservedPower>,
    /// Ids queued for a stop call or in a stop job still INIT or RUNNING.
    pub in_flight: &'a IdSet,
    /// Servers whose last stop attempt failed.
    pub retries: &'a IdMap<RetryState>,
    /// The time of the observation.
    pub now: Timestamp,
    /// Act, dry run or suspend.
    pub mode: Mode,
    /// Wait between attempts on a failing server.
    pub backoff: Backoff,
}

/// The plan for one sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOutcome {
    /// Ids to enqueue for stopping now, distinct, in spec order; empty unless Act.
    pub to_stop: Vec<ServerId>,
    /// What Act would stop now, in every mode (for the dry-run report).
    pub would_stop: Vec<ServerId>,
    /// Running servers that are locked: ECS refuses to stop them until unlocked, so
    /// they are not sent at all (and counted as failed).
    pub locked: Vec<ServerId>,
    /// Counts by state; see [`plan_stops`] for how each server is counted.
    pub summary: Summary,
    /// Time until the soonest backoff ends, so the caller can requeue then.
    pub next_retry_in: Option<Duration>,
    /// The phase this plan suggests; see [`plan_stops`].
    pub phase: Phase,
}

/// Decides which of the policy's servers to stop now and summarizes where they stand.
///
/// Each distinct desired server is counted once, by the first rule that matches, so the
/// counts other than `desired` add up to `desired`:
///
/// 1. `not_found`: absent from the listing (or DELETED). Never stopped.
/// 2. `stopped`: SHUTOFF. Never stopped again.
/// 3. `stopping`: powering off, or in flight. Never submitted twice.
/// 4. `failed`: the last attempt failed (a [`RetryState`] exists), the server is in
///    ERROR, or it is locked. A failed Running server is stopped again once its
///    backoff has passed; a locked one once it is unlocked.
/// 5. `pending`: Running, never failed (stopped now), or Busy (left until its task ends).
///
/// The phase, first match wins:
///
/// * `Suspended` in [`Mode::Suspend`], `Idle` in [`Mode::Idle`];
/// * `Stopped` when every desired server is stopped;
/// * `Stopping` while a stop is in flight, or (Act only) something can be stopped now or
///   a busy server waits for its task to end;
/// * `Degraded` when all that remains are failures and unknown servers: nothing moves
///   until a backoff ends (see `next_retry_in`) or a person fixes the server or the spec;
/// * `Pending` otherwise: a dry run with servers it would stop.
pub fn plan_stops(input: &PlanInput<'_>) -> PlanOutcome {
    let mut summary = Summary::default();
    let mut would_stop = Vec::new();
    let mut locked = Vec::new();
    let mut next_retry_in: Option<Duration> = None;
    let mut busy_waiting = false;
    let mut seen = HashSet::with_capacity(input.desired.len());

    for id in input.desired {
        if !seen.insert(id.as_str()) {
            continue;
        }
        summary.desired += 1;
        let power = input
            .observed
            .get(id)
            .copied()
            .unwrap_or(ObservedPower::NotFound);
        let retry = input.retries.get(id);
        match power {
            ObservedPower::NotFound => summary.not_found += 1,
            ObservedPower::Stopped => summary.stopped += 1,
            ObservedPower::Stopping => summary.stopping += 1,
            _ if input.in_flight.contains(id) => summary.stopping += 1,
            ObservedPower::Error => summary.failed += 1,
            ObservedPower::Locked => {
                summary.failed += 1;
                locked.push(id.clone());
            }
            ObservedPower::Busy => {
                if retry.is_some() {
                    summary.failed += 1;
                } else {
                    summary.pending += 1;
                    busy_waiting = true;
                }
            }
            ObservedPower::Running => match retry {
                None => {
                    summary.pending += 1;
                    would_stop.push(id.clone());
                }
                Some(retry) => {
                    summary.failed += 1;
                    match backoff_remaining(retry, input.backoff, input.now) {
                        None => would_stop.push(id.clone()),
                        Some(wait) => {
                            next_retry_in = Some(next_retry_in.map_or(wait, |w| w.min(wait)))
                        }
                    }
                }
            },
        }
    }

    let phase = if input.mode == Mode::Suspend {
        Phase::Suspended
    } else if input.mode == Mode::Idle {
        Phase::Idle
    } else if summary.stopped == summary.desired {
        Phase::Stopped
    } else if summary.stopping > 0
        || (input.mode == Mode::Act && (!would_stop.is_empty() || busy_waiting))
    {
        Phase::Stopping
    } else if summary.failed > 0 || summary.not_found > 0 {
        Phase::Degraded
    } else {
        Phase::Pending
    };

    let to_stop = if input.mode == Mode::Act {
        would_stop.clone()
    } else {
        Vec::new()
    };

    PlanOutcome {
        to_stop,
        would_stop,
        locked,
        summary,
        next_retry_in,
        phase,
    }
}

/// How long the server must still wait, or None when it may be retried now. A failure
/// time in the future (clock skew) counts as just now, so the full delay is waited.
pub(super) fn backoff_remaining(
    retry: &RetryState,
    backoff: Backoff,
    now: Timestamp,
) -> Option<Duration> {
    let elapsed =
        Duration::try_from(now.duration_since(retry.last_failure_at)).unwrap_or(Duration::ZERO);
    backoff
        .delay(retry.attempts)
        .checked_sub(elapsed)
        .filter(|wait| !wait.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ObservedPower::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    /// A scenario: (id, observed) pairs with `None` meaning absent from the listing.
    struct Case {
        servers: Vec<(&'static str, Option<ObservedPower>)>,
        in_flight: Vec<&'static str>,
        retries: Vec<(&'static str, u32, i64)>,
        now: i64,
        mode: Mode,
    }

    impl Case {
        fn new(servers: &[(&'static str, Option<ObservedPower>)]) -> Self {
            Case {
                servers: servers.to_vec(),
                in_flight: vec![],
                retries: vec![],
                now: 1000,
                mode: Mode::Act,
            }
        }

        fn plan(&self) -> PlanOutcome {
            let desired: Vec<ServerId> = self.servers.iter().map(|(id, _)| (*id).into()).collect();
            let observed = self
                .servers
                .iter()
                .filter_map(|(id, p)| p.map(|p| ((*id).into(), p)))
                .collect();
            let in_flight = self.in_flight.iter().map(|s| (*s).into()).collect();
            let retries = self
                .retries
                .iter()
                .map(|&(id, attempts, at)| {
                    let state = RetryState {
                        attempts,
                        last_failure_at: ts(at),
                        code: "Ecs.0100".into(),
                        message: "boom".into(),
                    };
                    (id.into(), state)
                })
                .collect();
            plan_stops(&PlanInput {
                desired: &desired,
                observed: &observed,
                in_flight: &in_flight,
                retries: &retries,
                now: ts(self.now),
                mode: self.mode,
                backoff: Backoff {
                    base: Duration::from_secs(10),
                    max: Duration::from_secs(100),
                },
            })
        }
    }

    fn summary(s: [u32; 6]) -> Summary {
        let [desired, stopped, stopping, pending, failed, not_found] = s;
        Summary {
            desired,
            stopped,
            stopping,
            pending,
            failed,
            not_found,
        }
    }

    #[test]
    fn running_servers_are_stopped_in_spec_order() {
        let out = Case::new(&[("b", Some(Running)), ("a", Some(Running))]).plan();
        assert_eq!(out.to_stop, ["b", "a"]);
        assert_eq!(out.would_stop, out.to_stop);
        assert_eq!(out.summary, summary([2, 0, 0, 2, 0, 0]));
        assert_eq!(out.phase, Phase::Stopping);
        assert_eq!(out.next_retry_in, None);
    }

    #[test]
    fn duplicates_in_spec_are_planned_and_counted_once() {
        let out = Case::new(&[("a", Some(Running)), ("a", Some(Running))]).plan();
        assert_eq!(out.to_stop, ["a"]);
        assert_eq!(out.summary.desired, 1);
    }

    #[test]
    fn stopped_stopping_and_in_flight_are_left_alone() {
        let mut case = Case::new(&[
            ("off", Some(Stopped)),
            ("going", Some(Stopping)),
            ("queued", Some(Running)),
            ("run", Some(Running)),
        ]);
        case.in_flight = vec!["queued"];
        let out = case.plan();
        assert_eq!(out.to_stop, ["run"]);
        assert_eq!(out.summary, summary([4, 1, 2, 1, 0, 0]));
    }

    #[test]
    fn stopped_wins_over_in_flight() {
        let mut case = Case::new(&[("a", Some(Stopped))]);
        case.in_flight = vec!["a"];
        let out = case.plan();
        assert_eq!(out.summary, summary([1, 1, 0, 0, 0, 0]));
        assert_eq!(out.phase, Phase::Stopped);
    }

    #[test]
    fn unknown_servers_are_never_planned() {
        let out = Case::new(&[
            ("gone", None),
            ("deleted", Some(NotFound)),
            ("a", Some(Stopped)),
        ])
        .plan();
        assert!(out.to_stop.is_empty());
        assert_eq!(out.summary, summary([3, 1, 0, 0, 0, 2]));
        assert_eq!(out.phase, Phase::Degraded);
    }

    #[test]
    fn busy_servers_wait_and_keep_the_policy_stopping() {
        let out = Case::new(&[("r", Some(Busy)), ("a", Some(Stopped))]).plan();
        assert!(out.to_stop.is_empty());
        assert_eq!(out.summary, summary([2, 1, 0, 1, 0, 0]));
        assert_eq!(out.phase, Phase::Stopping);
    }

    #[test]
    fn error_servers_count_as_failed_and_are_not_planned() {
        let out = Case::new(&[("e", Some(Error)), ("a", Some(Stopped))]).plan();
        assert!(out.to_stop.is_empty());
        assert_eq!(out.summary, summary([2, 1, 0, 0, 1, 0]));
        assert_eq!(out.phase, Phase::Degraded);
    }

    #[test]
    fn failed_server_waits_for_its_backoff() {
        // attempts 2 => 20 s; failed at 990, now 1000 => 10 s left.
        let mut case = Case::new(&[("f", Some(Running)), ("a", Some(Stopped))]);
        case.retries = vec![("f", 2, 990)];
        let out = case.plan();
        assert!(out.to_stop.is_empty());
        assert_eq!(out.summary, summary([2, 1, 0, 0, 1, 0]));
        assert_eq!(out.next_retry_in, Some(Duration::from_secs(10)));
        assert_eq!(out.phase, Phase::Degraded);
    }

    #[test]
    fn failed_server_is_retried_when_backoff_ends() {
        let mut case = Case::new(&[("f", Some(Running))]);
        case.retries = vec![("f", 2, 980)];
        let out = case.plan();
        assert_eq!(out.to_stop, ["f"]);
        assert_eq!(out.summary, summary([1, 0, 0, 0, 1, 0]));
        assert_eq!(out.next_retry_in, None);
        assert_eq!(out.phase, Phase::Stopping);
    }

    #[test]
    fn soonest_backoff_is_reported() {
        let mut case = Case::new(&[("f", Some(Running)), ("g", Some(Running))]);
        case.retries = vec![("f", 4, 1000), ("g", 1, 995)];
        assert_eq!(case.plan().next_retry_in, Some(Duration::from_secs(5)));
    }

    #[test]
    fn failure_in_the_future_waits_the_full_delay() {
        let mut case = Case::new(&[("f", Some(Running))]);
        case.retries = vec![("f", 1, 2000)];
        assert_eq!(case.plan().next_retry_in, Some(Duration::from_secs(10)));
    }

    #[test]
    fn stopped_server_with_old_failure_is_stopped() {
        let mut case = Case::new(&[("f", Some(Stopped))]);
        case.retries = vec![("f", 3, 999)];
        let out = case.plan();
        assert_eq!(out.summary, summary([1, 1, 0, 0, 0, 0]));
        assert_eq!(out.phase, Phase::Stopped);
    }

    #[test]
    fn dry_run_reports_and_stops_nothing() {
        let mut case = Case::new(&[("a", Some(Running)), ("b", Some(Stopped))]);
        case.mode = Mode::DryRun;
        let out = case.plan();
        assert!(out.to_stop.is_empty());
        assert_eq!(out.would_stop, ["a"]);
        assert_eq!(out.phase, Phase::Pending);
    }

    #[test]
    fn dry_run_of_stopped_policy_is_stopped() {
        let mut case = Case::new(&[("b", Some(Stopped))]);
        case.mode = Mode::DryRun;
        assert_eq!(case.plan().phase, Phase::Stopped);
    }

    #[test]
    fn suspend_stops_nothing() {
        let mut case = Case::new(&[("a", Some(Running)), ("b", Some(Stopped))]);
        case.mode = Mode::Suspend;
        let out = case.plan();
        assert!(out.to_stop.is_empty());
        assert_eq!(out.would_stop, ["a"]);
        assert_eq!(out.phase, Phase::Suspended);
    }

    #[test]
    fn all_stopped_is_stopped() {
        let out = Case::new(&[("a", Some(Stopped)), ("b", Some(Stopped))]).plan();
        assert!(out.to_stop.is_empty());
        assert_eq!(out.phase, Phase::Stopped);
    }

    #[test]
    fn locked_servers_are_failed_and_never_planned() {
        let out = Case::new(&[("l", Some(Locked)), ("a", Some(Running))]).plan();
        assert_eq!(out.to_stop, ["a"]);
        assert_eq!(out.locked, ["l"]);
        assert_eq!(out.summary, summary([2, 0, 0, 1, 1, 0]));
    }

    #[test]
    fn in_flight_with_failures_is_still_stopping() {
        let mut case = Case::new(&[("e", Some(Error)), ("q", Some(Running))]);
        case.in_flight = vec!["q"];
        assert_eq!(case.plan().phase, Phase::Stopping);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(100),
        };
        let delays: Vec<u64> = (0..=6).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, [10, 10, 20, 40, 80, 100, 100]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(100));
    }
}
