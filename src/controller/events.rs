//! Kubernetes Events for what a person watching `kubectl describe` wants to know:
//! each stop job submitted, finished or failed (one Event per job, naming it), every
//! turn to Degraded or Stalled, the recovery, everything stopped; and the bound on how
//! many Events one policy may cause a minute. Pure: [`super::recorder`] writes them.

use super::timing::KEEP_RUNNING_UNTIL;
use crate::fleet::PolicyKey;
use crate::policy::conditions::{self, ConditionType};
use crate::policy::{EcsPowerPolicyStatus, JobAction, JobState, Phase, ScheduleStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::events::EventType;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most Events one policy causes per [`EVENT_WINDOW`]: room for the submission and
/// result of the 10 jobs of a 10,000-server policy, and a lid on a flapping one.
pub const EVENTS_PER_WINDOW: usize = 30;
/// The window of [`EVENTS_PER_WINDOW`].
pub const EVENT_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub type_: EventType,
    pub reason: String,
    pub action: &'static str,
    pub note: String,
}

/// The Events API refuses a note over 1 KiB.
const MAX_NOTE_BYTES: usize = 1024;

fn notice(
    type_: EventType,
    reason: impl Into<String>,
    action: &'static str,
    note: String,
) -> Notice {
    Notice {
        type_,
        reason: reason.into(),
        action,
        note: fit_note(note),
    }
}

/// `note` cut at a character boundary, marked `…`, to fit the Events API.
fn fit_note(note: String) -> String {
    if note.len() <= MAX_NOTE_BYTES {
        return note;
    }
    let mut cut = MAX_NOTE_BYTES - '…'.len_utf8();
    while !note.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &note[..cut])
}

/// The transitions between two statuses, in the order they happened.
pub fn transitions(old: &EcsPowerPolicyStatus, new: &EcsPowerPolicyStatus) -> Vec<Notice> {
    let before: HashMap<&str, JobState> = old
        .jobs
        .iter()
        .map(|job| (job.job_id.as_str(), job.status))
        .collect();
    let mut notices = Vec::new();
    for job in new.jobs.iter().rev() {
        let previous = before.get(job.job_id.as_str()).copied();
        // Start jobs (afterWindow: Start) read as their own Events.
        let (verb, done, action) = match job.action {
            JobAction::Stop => ("Stop", "stopped", "Stop"),
            JobAction::Start => ("Start", "started", "Start"),
        };
        let noun = verb.to_lowercase();
        if previous.is_none() {
            notices.push(notice(
                EventType::Normal,
                format!("{verb}Submitted"),
                action,
                format!(
                    "{noun} job {} submitted for {} servers",
                    job.job_id, job.servers
                ),
            ));
        }
        if previous == Some(job.status) || job.status.in_flight() {
            continue;
        }
        notices.push(match job.status {
            JobState::Success => notice(
                EventType::Normal,
                format!("{verb}Succeeded"),
                action,
                format!(
                    "{noun} job {} finished: {} servers {done}",
                    job.job_id, job.succeeded
                ),
            ),
            _ => notice(
                EventType::Warning,
                format!("{verb}Failed"),
                action,
                format!(
                    "{noun} job {} failed for {} of {} servers; see status.failures",
                    job.job_id, job.failed, job.servers
                ),
            ),
        });
    }
    notices.extend(schedule_turns(old.schedule.as_ref(), new.schedule.as_ref()));
    notices.extend(health_turn(&old.conditions, &new.conditions));
    if new.phase == Some(Phase::Stopped) && old.phase != Some(Phase::Stopped) {
        notices.push(notice(
            EventType::Normal,
            "AllStopped",
            "Sync",
            format!("all {} servers are stopped", new.summary.stopped),
        ));
    }
    notices
}

/// A window that began or ended, an override that took hold or expired. Nothing on a
/// policy's first report: it is no news that a window was active when it was created.
fn schedule_turns(old: Option<&ScheduleStatus>, new: Option<&ScheduleStatus>) -> Vec<Notice> {
    let mut notices = Vec::new();
    let shown = |time: Option<&Time>| {
        time.map_or_else(|| "never within 58 weeks".to_owned(), |t| t.0.to_string())
    };
    if let (Some(old), Some(new)) = (old, new) {
        match (old.window_active, new.window_active) {
            (false, true) => notices.push(notice(
                EventType::Normal,
                "WindowStarted",
                "Schedule",
                format!(
                    "a stopped window began: its servers are kept stopped until {}",
                    shown(new.next_start.as_ref())
                ),
            )),
            (true, false) => notices.push(notice(
                EventType::Normal,
                "WindowEnded",
                "Schedule",
                format!(
                    "the stopped window ended: nothing is stopped until {}",
                    shown(new.next_stop.as_ref())
                ),
            )),
            _ => {}
        }
    }
    let held_before = old.and_then(|s| s.keep_running_until.as_ref());
    let held_now = new.and_then(|s| s.keep_running_until.as_ref());
    match (held_before, held_now) {
        (before, Some(until)) if before != Some(until) => notices.push(notice(
            EventType::Normal,
            "OverrideActive",
            "Schedule",
            format!(
                "annotation {KEEP_RUNNING_UNTIL}: nothing is stopped until {}",
                until.0
            ),
        )),
        (Some(until), None) => notices.push(notice(
            EventType::Normal,
            "OverrideExpired",
            "Schedule",
            format!(
                "annotation {KEEP_RUNNING_UNTIL} no longer holds (it ran until {}, or was removed): the schedule applies again",
                until.0
            ),
        )),
        _ => {}
    }
    notices
}

/// Per policy, the status last written, as far as [`transitions`] reads it, so that
/// the Events of a write are taken against it and not against the watch cache: a sync
/// that starts before the watch has delivered the previous write would otherwise
/// announce the same finished job twice.
#[derive(Debug, Default)]
pub struct Announced {
    written: HashMap<PolicyKey, EcsPowerPolicyStatus>,
}

impl Announced {
    /// The notices of writing `next` for `policy`, whose status the watch cache shows
    /// as `cached`; remembers `next`.
    pub fn written(
        &mut self,
        policy: &PolicyKey,
        cached: &EcsPowerPolicyStatus,
        next: &EcsPowerPolicyStatus,
    ) -> Vec<Notice> {
        let notices = transitions(self.written.get(policy).unwrap_or(cached), next);
        // Without the failures and the dry-run sample: transitions reads neither.
        let kept = EcsPowerPolicyStatus {
            failures: Vec::new(),
            dry_run: None,
            ..next.clone()
        };
        self.written.insert(policy.clone(), kept);
        notices
    }

    /// A deleted policy's last status.
    pub fn forget(&mut self, policy: &PolicyKey) {
        self.written.remove(policy);
    }
}

/// A Warning when the policy turns Degraded (or Degraded for another reason) or
/// Stalled, a Normal Event when it is Degraded no longer.
fn health_turn(old: &[Condition], new: &[Condition]) -> Option<Notice> {
    let degraded = |conditions| conditions::find_true(conditions, ConditionType::Degraded);
    let stalled = |conditions| conditions::find_true(conditions, ConditionType::Stalled);
    match (degraded(old), degraded(new)) {
        (before, Some(now)) if before.is_none_or(|b| b.reason != now.reason) => {
            let note = match stalled(new) {
                Some(_) => format!("{} (a person must act)", now.message),
                None => now.message.clone(),
            };
            return Some(notice(EventType::Warning, &now.reason, "Sync", note));
        }
        (Some(before), None) => {
            return Some(notice(
                EventType::Normal,
                "Recovered",
                "Sync",
                format!("no longer degraded ({}): {}", before.reason, before.message),
            ));
        }
        _ => {}
    }
    match (stalled(old), stalled(new)) {
        (None, Some(now)) => Some(notice(
            EventType::Warning,
            &now.reason,
            "Sync",
            now.message.clone(),
        )),
        _ => None,
    }
}

/// Counts the Events of each policy in fixed windows of [`EVENT_WINDOW`] and keeps each
/// under [`EVENTS_PER_WINDOW`]: the last one a window allows says that the rest of it
/// is dropped. Status always has the whole story.
#[derive(Debug)]
pub struct EventBudget {
    limit: usize,
    window: Duration,
    policies: HashMap<PolicyKey, Window>,
    last_prune: Option<Instant>,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    sent: usize,
}

impl Default for EventBudget {
    fn default() -> Self {
        Self::new(EVENTS_PER_WINDOW, EVENT_WINDOW)
    }
}

impl EventBudget {
    pub fn new(limit: usize, window: Duration) -> Self {
        assert!(
            limit >= 1,
            "an Event budget must allow at least the throttle notice"
        );
        Self {
            limit,
            window,
            policies: HashMap::new(),
            last_prune: None,
        }
    }

    /// The notices of `policy` that may be published at `now`; returns them in order,
    /// the last replaced by a throttle notice when the window is full.
    pub fn admit(
        &mut self,
        policy: &PolicyKey,
        mut notices: Vec<Notice>,
        now: Instant,
    ) -> Vec<Notice> {
        self.prune(now);
        let window = self.policies.entry(policy.clone()).or_insert(Window {
            opened: now,
            sent: 0,
        });
        if now.duration_since(window.opened) >= self.window {
            *window = Window {
                opened: now,
                sent: 0,
            };
        }
        let room = self.limit - window.sent;
        if notices.len() > room {
            notices.truncate(room.saturating_sub(1));
            if room > 0 {
                notices.push(notice(
                    EventType::Warning,
                    "EventsThrottled",
                    "Report",
                    format!(
                        "more than {} Events in {} s: the next ones are dropped until the \
                         window ends; status.jobs and the conditions show everything",
                        self.limit,
                        self.window.as_secs()
                    ),
                ));
            }
        }
        window.sent += notices.len();
        notices
    }

    /// A deleted policy's window.
    pub fn forget(&mut self, policy: &PolicyKey) {
        self.policies.remove(policy);
    }

    /// Drops the windows that ended, once per window length, so that the map holds
    /// only the policies that caused Events lately.
    fn prune(&mut self, now: Instant) {
        if self
            .last_prune
            .is_some_and(|at| now.duration_since(at) < self.window)
        {
            return;
        }
        let window = self.window;
        self.policies
            .retain(|_, w| now.duration_since(w.opened) < window);
        self.last_prune = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::JobRecord;

    fn scheduled(window_active: bool, keep_running_until: Option<i64>) -> EcsPowerPolicyStatus {
        let at = |secs| Time(jiff::Timestamp::from_second(secs).unwrap());
        EcsPowerPolicyStatus {
            schedule: Some(ScheduleStatus {
                window_active,
                next_stop: Some(at(100)),
                next_start: Some(at(200)),
                keep_running_until: keep_running_until.map(at),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_note_over_the_events_api_limit_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_NOTE_BYTES);
        let cut = fit_note(long);
        assert!(cut.len() <= MAX_NOTE_BYTES, "{} bytes", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(fit_note("short".into()), "short");
    }

    #[test]
    fn window_edges_and_overrides_are_announced_once() {
        let reasons = |old: &EcsPowerPolicyStatus, new: &EcsPowerPolicyStatus| {
            transitions(old, new)
                .into_iter()
                .map(|n| n.reason)
                .collect::<Vec<_>>()
        };
        let (outside, inside) = (scheduled(false, None), scheduled(true, None));
        let none = Vec::<String>::new();
        assert_eq!(reasons(&EcsPowerPolicyStatus::default(), &inside), none);
        assert_eq!(reasons(&outside, &inside), ["WindowStarted"]);
        assert_eq!(reasons(&inside, &inside), none);
        assert_eq!(reasons(&inside, &outside), ["WindowEnded"]);
        let held = scheduled(true, Some(50));
        assert_eq!(reasons(&inside, &held), ["OverrideActive"]);
        assert_eq!(reasons(&held, &held), none);
        assert_eq!(
            reasons(&held, &scheduled(true, Some(60))),
            ["OverrideActive"]
        );
        assert_eq!(reasons(&held, &inside), ["OverrideExpired"]);
        // An override without a schedule: status.schedule goes with it.
        assert_eq!(
            reasons(&held, &EcsPowerPolicyStatus::default()),
            ["OverrideExpired"]
        );
    }

    fn job(id: &str, status: JobState) -> JobRecord {
        JobRecord {
            job_id: id.into(),
            action: JobAction::Stop,
            servers: 10,
            status,
            succeeded: if status == JobState::Success { 10 } else { 0 },
            failed: if status == JobState::Fail { 2 } else { 0 },
            submitted_at: Time(jiff::Timestamp::UNIX_EPOCH),
            completed_at: None,
        }
    }

    fn with_jobs(jobs: Vec<JobRecord>) -> EcsPowerPolicyStatus {
        EcsPowerPolicyStatus {
            jobs,
            ..Default::default()
        }
    }

    #[test]
    fn a_new_job_and_its_end_are_announced_once() {
        let empty = EcsPowerPolicyStatus::default();
        let running = with_jobs(vec![job("j1", JobState::Running)]);
        let done = with_jobs(vec![job("j1", JobState::Success)]);
        let reasons = |n: Vec<Notice>| n.into_iter().map(|n| n.reason).collect::<Vec<_>>();
        assert_eq!(reasons(transitions(&empty, &running)), ["StopSubmitted"]);
        assert_eq!(
            reasons(transitions(&running, &running)),
            Vec::<String>::new()
        );
        assert_eq!(reasons(transitions(&running, &done)), ["StopSucceeded"]);
        assert_eq!(reasons(transitions(&done, &done)), Vec::<String>::new());
    }

    #[test]
    fn a_start_job_is_announced_as_one() {
        let start = |status| JobRecord {
            action: JobAction::Start,
            ..job("j2", status)
        };
        let running = with_jobs(vec![start(JobState::Running)]);
        let done = with_jobs(vec![start(JobState::Success)]);
        let submitted = transitions(&EcsPowerPolicyStatus::default(), &running);
        assert_eq!(submitted[0].reason, "StartSubmitted");
        assert_eq!(submitted[0].note, "start job j2 submitted for 10 servers");
        let finished = transitions(&running, &done);
        assert_eq!(finished[0].reason, "StartSucceeded");
        assert_eq!(
            finished[0].note,
            "start job j2 finished: 10 servers started"
        );
    }

    #[test]
    fn a_stale_cache_does_not_announce_a_job_twice() {
        let running = with_jobs(vec![job("j1", JobState::Running)]);
        let done = with_jobs(vec![job("j1", JobState::Success)]);
        let mut announced = Announced::default();
        assert_eq!(
            announced
                .written(&PolicyKey::new("ns", "p"), &running, &done)
                .len(),
            1
        );
        // The next sync still sees RUNNING in the watch cache.
        assert!(
            announced
                .written(&PolicyKey::new("ns", "p"), &running, &done)
                .is_empty()
        );
        announced.forget(&PolicyKey::new("ns", "p"));
        assert_eq!(
            announced
                .written(&PolicyKey::new("ns", "p"), &running, &done)
                .len(),
            1
        );
    }

    #[test]
    fn a_failed_job_is_a_warning() {
        let running = with_jobs(vec![job("j1", JobState::Running)]);
        let failed = with_jobs(vec![job("j1", JobState::Fail)]);
        let notices = transitions(&running, &failed);
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].type_, EventType::Warning);
        assert!(notices[0].note.contains("2 of 10"));
    }

    #[test]
    fn every_job_gets_its_own_event_naming_it() {
        let empty = EcsPowerPolicyStatus::default();
        let three = with_jobs(vec![
            job("j3", JobState::Running),
            job("j2", JobState::Running),
            job("j1", JobState::Running),
        ]);
        let notices = transitions(&empty, &three);
        let notes: Vec<&str> = notices.iter().map(|n| n.note.as_str()).collect();
        assert_eq!(
            notes,
            [
                "stop job j1 submitted for 10 servers",
                "stop job j2 submitted for 10 servers",
                "stop job j3 submitted for 10 servers"
            ]
        );
    }

    fn with_conditions(updates: [conditions::ConditionUpdate; 4]) -> EcsPowerPolicyStatus {
        let mut status = EcsPowerPolicyStatus::default();
        for update in updates {
            conditions::set(
                &mut status.conditions,
                update,
                Some(1),
                jiff::Timestamp::UNIX_EPOCH,
            );
        }
        status
    }

    #[test]
    fn turning_degraded_or_stalled_is_a_warning_and_recovery_is_announced() {
        use crate::policy::Summary;
        use crate::policy::conditions::Intent;
        let stopped = Summary {
            desired: 1,
            stopped: 1,
            ..Summary::default()
        };
        let healthy = with_conditions(conditions::from_progress(
            Phase::Stopped,
            &stopped,
            Intent::Act,
        ));
        let missing = with_conditions(conditions::from_problem("SecretNotFound", "no Secret"));
        let denied = with_conditions(conditions::from_problem("Forbidden", "403"));

        let turned = transitions(&healthy, &missing);
        assert_eq!(turned.len(), 1);
        assert_eq!(
            (
                turned[0].type_,
                turned[0].reason.as_str(),
                turned[0].note.as_str()
            ),
            (
                EventType::Warning,
                "SecretNotFound",
                "no Secret (a person must act)"
            )
        );
        assert!(transitions(&missing, &missing).is_empty());
        assert_eq!(transitions(&missing, &denied)[0].reason, "Forbidden");
        let recovered = transitions(&missing, &healthy);
        assert_eq!(
            (recovered[0].type_, recovered[0].reason.as_str()),
            (EventType::Normal, "Recovered")
        );

        // Stalled again with the same Degraded reason (after a failed sync of a new
        // spec cleared it): a Warning too.
        let mut retried = missing.clone();
        for update in conditions::from_sync_error("timeout") {
            conditions::set(
                &mut retried.conditions,
                update,
                Some(2),
                jiff::Timestamp::UNIX_EPOCH,
            );
        }
        let again = transitions(&retried, &missing);
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].type_, again[0].reason.as_str()),
            (EventType::Warning, "SecretNotFound")
        );
    }

    fn submitted(n: usize) -> Vec<Notice> {
        (0..n)
            .map(|i| {
                notice(
                    EventType::Normal,
                    "StopSubmitted",
                    "Stop",
                    format!("job {i}"),
                )
            })
            .collect()
    }

    #[test]
    fn the_budget_bounds_events_per_policy_and_window() {
        let t0 = Instant::now();
        let mut budget = EventBudget::new(5, Duration::from_secs(60));
        assert_eq!(
            budget
                .admit(&PolicyKey::new("ns", "a"), submitted(3), t0)
                .len(),
            3
        );
        let rest = budget.admit(
            &PolicyKey::new("ns", "a"),
            submitted(4),
            t0 + Duration::from_secs(1),
        );
        let reasons: Vec<&str> = rest.iter().map(|n| n.reason.as_str()).collect();
        assert_eq!(reasons, ["StopSubmitted", "EventsThrottled"]);
        assert!(
            budget
                .admit(
                    &PolicyKey::new("ns", "a"),
                    submitted(1),
                    t0 + Duration::from_secs(59)
                )
                .is_empty()
        );
        // Another policy has its own budget; a new window a fresh one.
        assert_eq!(
            budget
                .admit(&PolicyKey::new("ns", "b"), submitted(5), t0)
                .len(),
            5
        );
        assert_eq!(
            budget
                .admit(
                    &PolicyKey::new("ns", "a"),
                    submitted(5),
                    t0 + Duration::from_secs(60)
                )
                .len(),
            5
        );
    }

    #[test]
    fn ended_windows_are_pruned() {
        let t0 = Instant::now();
        let mut budget = EventBudget::new(5, Duration::from_secs(60));
        budget.admit(&PolicyKey::new("ns", "a"), submitted(1), t0);
        budget.admit(
            &PolicyKey::new("ns", "b"),
            submitted(1),
            t0 + Duration::from_secs(61),
        );
        assert_eq!(budget.policies.len(), 1);
        budget.forget(&PolicyKey::new("ns", "b"));
        assert!(budget.policies.is_empty());
    }
}
