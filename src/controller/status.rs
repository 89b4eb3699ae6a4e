//! The policy's next status, built from one sync's observations: pure, so that what
//! users read in `kubectl describe` is covered by plain unit tests.

use crate::ecs::wire::JobStatus;
use crate::fleet::{JobView, QueueStanding};
use crate::plan::{PlanOutcome, RetryState};
use crate::policy::conditions::{self, ConditionUpdate, Intent};
use crate::policy::{
    DRY_RUN_SAMPLE_SIZE, DryRunReport, EcsPowerPolicyStatus, JobRecord, JobState,
    MAX_FAILURES_IN_STATUS, MAX_JOBS_IN_STATUS, Phase, QueueStatus, ScheduleStatus, SelectorStatus,
    ServerFailure, StoppedByPolicy, status_time,
};
use crate::selector::Selection;
use crate::server_id::{IdMap, ServerId};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Something that stops the policy from being synced at all (a missing Secret,
/// rejected credentials): shown as Degraded with this reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

pub struct SyncReport<'a> {
    pub generation: Option<i64>,
    pub outcome: &'a PlanOutcome,
    pub jobs: &'a [JobView],
    /// Retry state of the policy's servers that are not stopped.
    pub failing: &'a IdMap<RetryState>,
    /// How the conditions read the sync's mode (act, dry run, held off by the schedule).
    pub intent: Intent,
    /// Where the schedule and the override stand, if the policy has either.
    pub schedule: Option<ScheduleStatus>,
    /// What the policy's selector matched, if it has one.
    pub selection: Option<&'a Selection>,
    /// A stop-call failure no retry fixes by itself, shown on every policy of the project.
    pub problem: Option<Problem>,
    /// Its servers still queued, and when they should be done.
    pub queue: Option<QueueStanding>,
    /// What it stopped and starts after its window, with `afterWindow: Start`.
    pub stopped_by_policy: Option<StoppedByPolicy>,
    pub now: jiff::Timestamp,
}

fn job_state(view: &JobView) -> JobState {
    if view.lost {
        return JobState::Lost;
    }
    match view.status {
        JobStatus::Init => JobState::Init,
        JobStatus::Running | JobStatus::PendingPayment => JobState::Running,
        JobStatus::Success => JobState::Success,
        JobStatus::Fail => JobState::Fail,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Fleet views replace the records of the same jobs; older finished records stay as
/// history. At most `MAX_JOBS_IN_STATUS` (the CRD refuses more, and a refused patch
/// would freeze the status): unfinished jobs first, newest first, then the newest
/// finished ones in the room left.
fn merge_jobs(previous: &[JobRecord], views: &[JobView]) -> Vec<JobRecord> {
    let mut records: Vec<JobRecord> = views
        .iter()
        .map(|view| JobRecord {
            job_id: view.job_id.clone(),
            action: view.action,
            servers: count(view.servers),
            status: job_state(view),
            succeeded: count(view.succeeded),
            failed: count(view.failed),
            submitted_at: status_time(view.submitted_at),
            completed_at: view.completed_at.map(status_time),
        })
        .collect();
    let known: HashSet<String> = records.iter().map(|r| r.job_id.clone()).collect();
    records.extend(
        previous
            .iter()
            .filter(|r| !known.contains(&r.job_id))
            .cloned(),
    );
    records.sort_by(|a, b| {
        b.submitted_at
            .0
            .cmp(&a.submitted_at.0)
            .then_with(|| a.job_id.cmp(&b.job_id))
    });
    let (mut kept, finished): (Vec<JobRecord>, Vec<JobRecord>) =
        records.into_iter().partition(|r| r.status.in_flight());
    kept.truncate(MAX_JOBS_IN_STATUS);
    let room = MAX_JOBS_IN_STATUS - kept.len();
    kept.extend(finished.into_iter().take(room));
    kept.sort_by(|a, b| {
        b.submitted_at
            .0
            .cmp(&a.submitted_at.0)
            .then_with(|| a.job_id.cmp(&b.job_id))
    });
    kept
}

/// An estimate that moved by less than this is not rewritten: every sync of a waiting
/// policy computes a new one, a few milliseconds off the last, and at 1000 policies a
/// write for each would load the API server for nothing.
const ESTIMATE_MOVES_AT_LEAST: Duration = Duration::from_secs(3);
/// ... nor by less than this share of the time still to wait: a minute off an ETA two
/// hours away is no news either.
const ESTIMATE_MOVES_AT_LEAST_PER_MILLE: u32 = 20;

/// A waiting policy's estimate is worked out again at least this often...
const ESTIMATE_REFRESH_AT_MOST: u32 = 10;
/// ... but never sooner than this.
const ESTIMATE_REFRESH_MIN: Duration = Duration::from_secs(10);

/// When a policy whose servers wait for budget should sync again to rework its
/// estimate: a tenth of the time it still waits, at least 10 s. Without it the
/// estimate is reworked only when a call carries its servers, and at 100,000 servers
/// one worked out from the first calls' pace (40 % late) stood for a minute.
pub fn estimate_refresh_in(standing: &QueueStanding, now: jiff::Timestamp) -> Duration {
    let still_to_wait =
        Duration::try_from(standing.estimated_completion.duration_since(now)).unwrap_or_default();
    (still_to_wait / ESTIMATE_REFRESH_AT_MOST).max(ESTIMATE_REFRESH_MIN)
}

fn queue_status(
    previous: Option<&QueueStatus>,
    standing: Option<&QueueStanding>,
    now: jiff::Timestamp,
) -> Option<QueueStatus> {
    let standing = standing?;
    // Whole seconds (what a metav1.Time keeps), rounded rather than cut.
    let estimate = status_time(standing.estimated_completion + Duration::from_millis(500));
    let still_to_wait = Duration::try_from(estimate.0.duration_since(now)).unwrap_or_default();
    let tolerance =
        ESTIMATE_MOVES_AT_LEAST.max(still_to_wait * ESTIMATE_MOVES_AT_LEAST_PER_MILLE / 1000);
    let estimated_completion_time = match previous {
        Some(previous)
            if Duration::try_from(
                estimate
                    .0
                    .duration_since(previous.estimated_completion_time.0)
                    .abs(),
            )
            .is_ok_and(|moved| moved < tolerance) =>
        {
            previous.estimated_completion_time.clone()
        }
        _ => estimate,
    };
    Some(QueueStatus {
        waiting: count(standing.waiting),
        estimated_completion_time,
    })
}

/// The code of a server the listing shows locked: no stop is sent for it.
pub const LOCKED: &str = "Locked";

/// Servers whose last attempt failed, and locked servers (never attempted: shown
/// since the sync that first saw them locked).
fn failures(
    previous: &[ServerFailure],
    failing: &IdMap<RetryState>,
    locked: &[ServerId],
    now: jiff::Timestamp,
) -> Vec<ServerFailure> {
    let locked_since: HashMap<&str, &ServerFailure> = previous
        .iter()
        .filter(|f| f.code == LOCKED)
        .map(|f| (f.server_id.as_str(), f))
        .collect();
    let mut list: Vec<ServerFailure> = failing
        .iter()
        .map(|(id, retry)| ServerFailure {
            server_id: id.to_string(),
            code: retry.code.clone(),
            message: retry.message.clone(),
            attempts: retry.attempts,
            last_attempt_at: status_time(retry.last_failure_at),
        })
        .collect();
    list.extend(
        locked
            .iter()
            .filter(|id| !failing.contains_key(*id))
            .map(|id| ServerFailure {
                server_id: id.to_string(),
                code: LOCKED.to_owned(),
                message: "the server is locked: ECS refuses to stop it (Ecs.0605) until it is unlocked, so no stop is sent".to_owned(),
                attempts: 0,
                last_attempt_at: locked_since
                    .get(id.as_str())
                    .map_or_else(|| status_time(now), |f| f.last_attempt_at.clone()),
            }),
    );
    list.sort_by(|a, b| {
        b.last_attempt_at
            .0
            .cmp(&a.last_attempt_at.0)
            .then_with(|| a.server_id.cmp(&b.server_id))
    });
    list.truncate(MAX_FAILURES_IN_STATUS);
    list
}

/// Sets the conditions, with `generation` as their observedGeneration, and drops the
/// types the operator no longer writes.
fn apply_conditions(
    status: &mut EcsPowerPolicyStatus,
    updates: impl IntoIterator<Item = ConditionUpdate>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    conditions::retain_known(&mut status.conditions);
    for update in updates {
        conditions::set(&mut status.conditions, update, generation, now);
    }
}

fn degraded_by(problem: &Problem) -> [ConditionUpdate; 4] {
    conditions::from_problem(problem.reason, &problem.message)
}

pub fn from_sync(previous: &EcsPowerPolicyStatus, report: &SyncReport<'_>) -> EcsPowerPolicyStatus {
    let mut status = previous.clone();
    status.observed_generation = report.generation;
    status.summary = report.outcome.summary;
    status.jobs = merge_jobs(&previous.jobs, report.jobs);
    status.failures = failures(
        &previous.failures,
        report.failing,
        &report.outcome.locked,
        report.now,
    );
    status.queue = queue_status(previous.queue.as_ref(), report.queue.as_ref(), report.now);
    status.schedule = report.schedule.clone();
    status.stopped_by_policy = report.stopped_by_policy.clone();
    status.dry_run = (report.intent == Intent::DryRun).then(|| DryRunReport {
        would_stop: count(report.outcome.would_stop.len()),
        sample: report
            .outcome
            .would_stop
            .iter()
            .take(DRY_RUN_SAMPLE_SIZE)
            .map(ServerId::to_string)
            .collect(),
    });
    status.selector = report.selection.map(|selection| SelectorStatus {
        matched: count(selection.matched),
        digest: selection.digest.clone(),
        sample: selection.sample.clone(),
    });
    match &report.problem {
        Some(problem) => {
            status.phase = Some(Phase::Degraded);
            apply_conditions(
                &mut status,
                degraded_by(problem),
                report.generation,
                report.now,
            );
        }
        None => {
            status.phase = Some(report.outcome.phase);
            let updates = conditions::from_progress(
                report.outcome.phase,
                &report.outcome.summary,
                report.intent,
            );
            apply_conditions(&mut status, updates, report.generation, report.now);
        }
    }
    stamp_if_changed(previous, status, report.now)
}

/// For a sync that could not observe anything: the last counts stay, the phase and
/// conditions say why nothing moves.
/// `schedule`: where the schedule stands, if it could be read.
pub fn from_problem(
    previous: &EcsPowerPolicyStatus,
    generation: Option<i64>,
    problem: &Problem,
    schedule: Option<ScheduleStatus>,
    now: jiff::Timestamp,
) -> EcsPowerPolicyStatus {
    let mut status = previous.clone();
    status.observed_generation = generation;
    status.schedule = schedule;
    status.phase = Some(Phase::Degraded);
    // Nothing is queued in its name while it cannot be synced.
    status.queue = None;
    apply_conditions(&mut status, degraded_by(problem), generation, now);
    stamp_if_changed(previous, status, now)
}

/// For a sync that failed with an error the operator retries: the spec is marked
/// observed but not synced (Reconciling), so kstatus reads InProgress, not the verdict
/// on an older spec. A spec already observed keeps its status: a passing outage of the
/// ECS API does not flip a Stopped policy back and forth.
pub fn from_sync_error(
    previous: &EcsPowerPolicyStatus,
    generation: Option<i64>,
    message: &str,
    now: jiff::Timestamp,
) -> EcsPowerPolicyStatus {
    if previous.observed_generation == generation {
        return previous.clone();
    }
    let mut status = previous.clone();
    status.observed_generation = generation;
    apply_conditions(
        &mut status,
        conditions::from_sync_error(message),
        generation,
        now,
    );
    stamp_if_changed(previous, status, now)
}

/// `lastSyncTime` moves only with a real change, so an idle policy causes no writes
/// (and no diff noise in GitOps tools).
fn stamp_if_changed(
    previous: &EcsPowerPolicyStatus,
    mut status: EcsPowerPolicyStatus,
    now: jiff::Timestamp,
) -> EcsPowerPolicyStatus {
    status.last_sync_time = previous.last_sync_time.clone();
    if status != *previous {
        status.last_sync_time = Some(status_time(now));
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::conditions::ConditionType;
    use crate::policy::{JobAction, Summary};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(secs).unwrap()
    }

    fn record(id: &str, at: i64, status: JobState) -> JobRecord {
        JobRecord {
            job_id: id.into(),
            action: JobAction::Stop,
            servers: 1,
            status,
            succeeded: 0,
            failed: 0,
            submitted_at: Time(ts(at)),
            completed_at: None,
        }
    }

    /// Job "j" of `servers` servers, all succeeded, submitted at 1 and done at 9.
    fn finished_view(status: JobStatus, servers: usize) -> JobView {
        JobView {
            job_id: "j".into(),
            action: JobAction::Stop,
            servers,
            status,
            lost: false,
            succeeded: servers,
            failed: 0,
            submitted_at: ts(1),
            completed_at: Some(ts(9)),
        }
    }

    fn outcome(phase: Phase, summary: Summary) -> PlanOutcome {
        PlanOutcome {
            to_stop: vec![],
            would_stop: vec![],
            locked: vec![],
            summary,
            next_retry_in: None,
            phase,
        }
    }

    #[test]
    fn job_history_keeps_unfinished_jobs_and_the_newest_finished_ones() {
        let mut previous: Vec<JobRecord> = (0..30)
            .map(|i| record(&format!("done-{i}"), i, JobState::Success))
            .collect();
        previous.push(record("running-old", -5, JobState::Running));
        let merged = merge_jobs(&previous, &[]);
        assert_eq!(merged.len(), MAX_JOBS_IN_STATUS);
        assert!(merged.iter().any(|r| r.job_id == "running-old"));
        assert_eq!(merged[0].job_id, "done-29");
    }

    #[test]
    fn thirty_unfinished_jobs_fit_the_schema_newest_first() {
        let mut previous: Vec<JobRecord> = (0..30)
            .map(|i| record(&format!("running-{i:02}"), i, JobState::Running))
            .collect();
        previous.push(record("done", 100, JobState::Success));
        let merged = merge_jobs(&previous, &[]);
        assert_eq!(merged.len(), MAX_JOBS_IN_STATUS);
        assert!(merged.iter().all(|r| r.status.in_flight()));
        assert_eq!(merged[0].job_id, "running-29");
        assert_eq!(merged[MAX_JOBS_IN_STATUS - 1].job_id, "running-10");
    }

    #[test]
    fn a_lost_job_is_recorded_as_lost_and_no_longer_in_flight() {
        let previous = vec![record("j", 1, JobState::Running)];
        let view = JobView {
            lost: true,
            ..finished_view(JobStatus::Running, 0)
        };
        let merged = merge_jobs(&previous, &[view]);
        assert_eq!(merged[0].status, JobState::Lost);
        assert!(!merged[0].status.in_flight());
    }

    #[test]
    fn a_locked_server_is_a_failure_dated_from_when_it_was_first_seen() {
        let first = failures(&[], &IdMap::default(), &["l".into()], ts(10));
        assert_eq!((first[0].code.as_str(), first[0].attempts), (LOCKED, 0));
        let later = failures(&first, &IdMap::default(), &["l".into()], ts(20));
        assert_eq!(later, first, "unchanged: no status write per sync");
    }

    #[test]
    fn fleet_view_replaces_the_record_of_the_same_job() {
        let previous = vec![record("j", 1, JobState::Running)];
        let merged = merge_jobs(&previous, &[finished_view(JobStatus::Success, 3)]);
        assert_eq!(merged.len(), 1);
        assert_eq!(
            (merged[0].status, merged[0].succeeded),
            (JobState::Success, 3)
        );
    }

    /// A sync of generation 1 that found `plan`, no jobs, no problem, nothing queued.
    fn report_of<'a>(
        plan: &'a PlanOutcome,
        failing: &'a IdMap<RetryState>,
        now: jiff::Timestamp,
    ) -> SyncReport<'a> {
        SyncReport {
            generation: Some(1),
            outcome: plan,
            jobs: &[],
            failing,
            intent: Intent::Act,
            schedule: None,
            selection: None,
            problem: None,
            queue: None,
            stopped_by_policy: None,
            now,
        }
    }

    #[test]
    fn an_unchanged_sync_leaves_last_sync_time_alone() {
        let summary = Summary {
            desired: 2,
            stopped: 2,
            ..Summary::default()
        };
        let plan = outcome(Phase::Stopped, summary);
        let no_failures = IdMap::default();
        let report = report_of(&plan, &no_failures, ts(100));
        let first = from_sync(&EcsPowerPolicyStatus::default(), &report);
        assert_eq!(first.last_sync_time, Some(Time(ts(100))));
        let later = SyncReport {
            now: ts(200),
            ..report
        };
        assert_eq!(from_sync(&first, &later), first);
    }

    fn standing(waiting: usize, at_ms: i64) -> QueueStanding {
        QueueStanding {
            waiting,
            estimated_completion: jiff::Timestamp::from_millisecond(at_ms).unwrap(),
        }
    }

    #[test]
    fn a_waiting_policy_reworks_its_estimate_a_tenth_of_its_wait_later() {
        let now = ts(1000);
        // 100 minutes to wait: again in 10 minutes.
        assert_eq!(
            estimate_refresh_in(&standing(9, 7_000_000), now),
            Duration::from_secs(600)
        );
        // Close to the end, or past the estimate: 10 s.
        assert_eq!(
            estimate_refresh_in(&standing(9, 1_050_000), now),
            Duration::from_secs(10)
        );
        assert_eq!(
            estimate_refresh_in(&standing(9, 900_000), now),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn an_estimate_that_moved_a_little_is_not_rewritten() {
        let now = ts(1000);
        let first = queue_status(None, Some(&standing(300, 1_060_400)), now).unwrap();
        assert_eq!(first.waiting, 300);
        // Whole seconds, rounded.
        assert_eq!(first.estimated_completion_time, Time(ts(1060)));
        let nearly = queue_status(Some(&first), Some(&standing(200, 1_062_000)), now).unwrap();
        assert_eq!(
            nearly.estimated_completion_time,
            first.estimated_completion_time
        );
        assert_eq!(nearly.waiting, 200, "the count is always the current one");
        let earlier = queue_status(Some(&first), Some(&standing(200, 1_054_000)), now).unwrap();
        assert_eq!(earlier.estimated_completion_time, Time(ts(1054)));
        // Two hours ahead, two minutes is within 2 %: no news.
        let far = queue_status(None, Some(&standing(9, 8_200_000)), now).unwrap();
        let moved = queue_status(Some(&far), Some(&standing(9, 8_320_000)), now).unwrap();
        assert_eq!(moved, far);
        let more = queue_status(Some(&far), Some(&standing(9, 8_400_000)), now).unwrap();
        assert_eq!(more.estimated_completion_time, Time(ts(8400)));
        assert_eq!(queue_status(Some(&first), None, now), None, "nothing waits");
    }

    #[test]
    fn the_queue_shows_while_stops_wait_and_goes_with_them() {
        let summary = Summary {
            desired: 2,
            pending: 2,
            ..Summary::default()
        };
        let plan = outcome(Phase::Stopping, summary);
        let no_failures = IdMap::default();
        let waiting = SyncReport {
            queue: Some(standing(2, 160_000)),
            ..report_of(&plan, &no_failures, ts(100))
        };
        let status = from_sync(&EcsPowerPolicyStatus::default(), &waiting);
        let queue = status.queue.clone().expect("a queue status");
        assert_eq!(
            (queue.waiting, queue.estimated_completion_time),
            (2, Time(ts(160)))
        );
        let value = serde_json::to_value(&status).unwrap();
        assert_eq!(
            value["queue"]["estimatedCompletionTime"],
            "1970-01-01T00:02:40Z"
        );
        // A tiny move is no new status at all: no write.
        let later = SyncReport {
            queue: Some(standing(2, 161_000)),
            now: ts(101),
            ..waiting
        };
        assert_eq!(from_sync(&status, &later), status);
        let gone = SyncReport {
            queue: None,
            ..later
        };
        assert_eq!(from_sync(&status, &gone).queue, None);
        let problem = Problem {
            reason: "SecretNotFound",
            message: "m".into(),
        };
        assert_eq!(
            from_problem(&status, Some(1), &problem, None, ts(102)).queue,
            None
        );
    }

    #[test]
    fn a_problem_shows_the_schedule_only_when_it_could_be_read() {
        let problem = Problem {
            reason: "InvalidSchedule",
            message: "spec.schedule.timeZone: unknown time zone".into(),
        };
        let schedule = ScheduleStatus {
            window_active: true,
            next_stop: None,
            next_start: Some(Time(ts(50))),
            keep_running_until: None,
        };
        let previous = EcsPowerPolicyStatus {
            schedule: Some(schedule.clone()),
            ..Default::default()
        };
        // Unreadable: no times the operator cannot vouch for.
        assert_eq!(
            from_problem(&previous, Some(2), &problem, None, ts(5)).schedule,
            None
        );
        // Readable (a missing Secret, say): the schedule still stands.
        let kept = from_problem(&previous, Some(2), &problem, Some(schedule.clone()), ts(5));
        assert_eq!(kept.schedule, Some(schedule));
    }

    #[test]
    fn a_problem_makes_the_policy_degraded_with_its_reason() {
        let problem = Problem {
            reason: "SecretNotFound",
            message: "Secret ns/x does not exist".into(),
        };
        let status = from_problem(
            &EcsPowerPolicyStatus::default(),
            Some(3),
            &problem,
            None,
            ts(5),
        );
        assert_eq!(status.phase, Some(Phase::Degraded));
        let degraded = conditions::find(&status.conditions, ConditionType::Degraded).unwrap();
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "SecretNotFound")
        );
        let ready = conditions::find(&status.conditions, ConditionType::Ready).unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(status.observed_generation, Some(3));
    }

    #[test]
    fn a_failed_sync_of_a_new_spec_is_observed_and_reconciling() {
        let problem = Problem {
            reason: "SecretNotFound",
            message: "m".into(),
        };
        let synced = from_problem(
            &EcsPowerPolicyStatus::default(),
            Some(1),
            &problem,
            None,
            ts(5),
        );
        let failed = from_sync_error(&synced, Some(2), "ECS API unreachable", ts(6));
        assert_eq!(failed.observed_generation, Some(2));
        let holds = |t| conditions::is_true(&failed.conditions, t);
        assert!(holds(ConditionType::Reconciling));
        assert!(!holds(ConditionType::Stalled));
        assert!(!holds(ConditionType::Ready));
        // Degraded still describes what the sync of generation 1 found, and says so.
        for condition in &failed.conditions {
            let expected = if condition.type_ == "Degraded" { 1 } else { 2 };
            assert_eq!(
                condition.observed_generation,
                Some(expected),
                "{}",
                condition.type_
            );
        }
        assert_eq!(from_sync_error(&failed, Some(2), "again", ts(7)), failed);
    }

    #[test]
    fn failures_are_newest_first_and_bounded() {
        let failing: IdMap<RetryState> = (0..60)
            .map(|i| {
                (
                    format!("s{i:02}").into(),
                    RetryState {
                        attempts: 1,
                        last_failure_at: ts(i),
                        code: "Ecs.0100".into(),
                        message: "m".into(),
                    },
                )
            })
            .collect();
        let list = failures(&[], &failing, &[], ts(0));
        assert_eq!(list.len(), MAX_FAILURES_IN_STATUS);
        assert_eq!(list[0].server_id, "s59");
    }
}
