//! When a policy wants its servers stopped: its schedule and its keep-running override,
//! read from the policy and evaluated at an explicit instant. Pure.

use super::status::Problem;
use crate::plan::Mode;
use crate::policy::conditions::Intent;
use crate::policy::{EcsPowerPolicy, ScheduleStatus, status_time};
use crate::schedule::spec::AfterWindow;
use crate::schedule::{Schedule, StartLead, Verdict, verdict};
use jiff::Timestamp;
use kube::ResourceExt;
use std::time::Duration;

/// The annotation that suspends stopping until the RFC 3339 time it holds.
pub const KEEP_RUNNING_UNTIL: &str = "ecspower.dev/keep-running-until";

/// What the policy's schedule and override say now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub verdict: Verdict,
    /// The policy has a schedule or a keep-running-until annotation: its status shows
    /// where they stand.
    reported: bool,
    /// `None` without a schedule.
    after_window: Option<AfterWindow>,
    start_lead: Option<StartLead>,
    /// The instant it was evaluated at.
    at: Timestamp,
    /// How long before the window's end starting begins (see [`Self::with_start_lead`]).
    lead: Duration,
    /// The end of the window starting began early for, as the status records it.
    starting_until: Option<Timestamp>,
}

/// The policy's timing at `now`, or the problem that a person must fix: a schedule the
/// schema could not fully check (an unknown time zone, a date that does not exist) or
/// an annotation that is not an RFC 3339 time.
pub fn timing_of(policy: &EcsPowerPolicy, now: Timestamp) -> Result<Timing, Problem> {
    let schedule = match &policy.spec.schedule {
        None => None,
        Some(spec) => Some(Schedule::compile(spec).map_err(|error| Problem {
            reason: "InvalidSchedule",
            message: error.to_string(),
        })?),
    };
    let start_lead = match policy
        .spec
        .schedule
        .as_ref()
        .and_then(|s| s.start_lead_time.as_deref())
    {
        None => None,
        Some(text) => Some(StartLead::parse(text).map_err(|error| Problem {
            reason: "InvalidSchedule",
            message: error.to_string(),
        })?),
    };
    let annotation = policy.annotations().get(KEEP_RUNNING_UNTIL);
    let keep_running_until = match annotation {
        None => None,
        Some(text) => Some(text.trim().parse::<Timestamp>().map_err(|_| Problem {
            reason: "InvalidKeepRunningUntil",
            message: format!(
                "annotation {KEEP_RUNNING_UNTIL}: `{}` is not an RFC 3339 time such as 2026-12-24T18:00:00+01:00; nothing is stopped until it is fixed or removed",
                cut(text)
            ),
        })?),
    };
    Ok(Timing {
        verdict: verdict(schedule.as_ref(), keep_running_until, now),
        reported: schedule.is_some() || annotation.is_some(),
        after_window: policy.spec.schedule.as_ref().map(|s| s.after_window),
        start_lead,
        at: now,
        lead: Duration::ZERO,
        starting_until: None,
    })
}

/// An annotation's value as shown in a message: a person wrote it, but it may be long.
fn cut(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

impl Timing {
    /// `spec.schedule.startLeadTime`, with afterWindow Start only.
    pub fn start_lead(&self) -> Option<StartLead> {
        self.start_lead.filter(|_| self.records_stops())
    }

    /// Starting begins `lead` before the window's end: from then on the policy
    /// stops nothing and starts what it stopped, as after the window. Once begun for
    /// a window (`starting_until`, its end, from the status) it goes on until that
    /// end even if the lead shrinks (an `Auto` lead does as servers start), so no
    /// server it started is stopped again in the same window.
    pub fn with_start_lead(self, lead: Duration, starting_until: Option<Timestamp>) -> Self {
        Self {
            lead,
            starting_until,
            ..self
        }
    }

    /// The same, with a lead of at least `lead`: an `Auto` lead worked out again for
    /// a record that grew during the sync.
    pub fn with_lead_at_least(self, lead: Duration) -> Self {
        Self {
            lead: self.lead.max(lead),
            ..self
        }
    }

    /// Inside the window, within the lead time of its end or starting early for it.
    fn starting_early(&self) -> bool {
        let Some(end) = self.verdict.next_start else {
            return false;
        };
        let begun = self
            .starting_until
            .is_some_and(|until| until.as_second() == end.as_second());
        self.records_stops()
            && self.verdict.stop
            && self.verdict.window_active
            && (begun || (!self.lead.is_zero() && self.at + self.lead >= end))
    }

    /// The end of the window whose servers the policy will start, while it is inside
    /// it and has not begun: other policies' `Auto` leads count those starts.
    pub fn starts_pending_until(&self) -> Option<Timestamp> {
        let pending = self.records_stops()
            && self.verdict.stop
            && self.verdict.window_active
            && !self.starting_early();
        pending.then_some(self.verdict.next_start).flatten()
    }

    /// The window end the status records while starting early, for the next sync.
    pub fn starting_until(&self) -> Option<Timestamp> {
        self.starting_early()
            .then_some(self.verdict.next_start)
            .flatten()
    }

    /// What the fleet is asked for: a suspended policy stays suspended; one the
    /// schedule or the override holds off wants nothing stopped, nor one starting
    /// early before its window's end (a dry run reports on, as in the window).
    pub fn mode(&self, suspend: bool, dry_run: bool) -> Mode {
        if suspend {
            Mode::Suspend
        } else if !self.verdict.stop || (self.starting_early() && !dry_run) {
            Mode::Idle
        } else if dry_run {
            Mode::DryRun
        } else {
            Mode::Act
        }
    }

    /// Whether the policy records the servers it stops, to start them after a window:
    /// with `afterWindow: Start` only (without a schedule, or with Leave, nothing is
    /// ever started, so nothing is recorded).
    pub fn records_stops(&self) -> bool {
        self.after_window == Some(AfterWindow::Start)
    }

    /// Whether the servers the policy stopped are started now: its window has ended
    /// (an override inside a window leaves them as they are), and it is neither
    /// suspended nor a dry run.
    pub fn starts_now(&self, suspend: bool, dry_run: bool) -> bool {
        self.records_stops()
            && !suspend
            && !dry_run
            && ((!self.verdict.stop && !self.verdict.window_active) || self.starting_early())
    }

    /// How the conditions read `mode`.
    pub fn intent(&self, mode: Mode) -> Intent {
        match mode {
            Mode::DryRun => Intent::DryRun,
            Mode::Idle if self.verdict.override_until.is_some() => Intent::KeepRunning,
            Mode::Idle => Intent::OutsideWindow,
            Mode::Act | Mode::Suspend => Intent::Act,
        }
    }

    pub fn status(&self) -> Option<ScheduleStatus> {
        self.reported.then(|| ScheduleStatus {
            window_active: self.verdict.window_active,
            next_stop: self.verdict.next_stop.map(status_time),
            next_start: self.verdict.next_start.map(status_time),
            keep_running_until: self.verdict.override_until.map(status_time),
        })
    }

    /// Time from `now` until what the policy wants changes: the sync is due then, not
    /// at the next drift check. A few milliseconds late rather than early, so that the
    /// sync sees the new state.
    pub fn next_change_in(&self, now: Timestamp) -> Option<Duration> {
        const PAST_THE_EDGE: Duration = Duration::from_millis(5);
        let next = if self.starting_early() {
            // Starting already: the next change is the window's end itself.
            self.verdict.next_start
        } else if self.verdict.stop {
            let end = self.verdict.next_start?;
            Some(if self.records_stops() {
                end - self.lead
            } else {
                end
            })
        } else {
            self.verdict.next_stop
        }?;
        let wait = Duration::try_from(next.duration_since(now)).unwrap_or_default();
        Some(wait + PAST_THE_EDGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{CloudSpec, EcsPowerPolicySpec, SecretRef, ServerRef, StopType};
    use crate::schedule::spec::{AfterWindow, Day, ScheduleSpec, WindowSpec};

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn policy(schedule: Option<ScheduleSpec>, annotation: Option<&str>) -> EcsPowerPolicy {
        let mut policy = EcsPowerPolicy::new(
            "p",
            EcsPowerPolicySpec {
                cloud: CloudSpec {
                    project_id: "0".repeat(32),
                    region: "eu-de".into(),
                    endpoint: None,
                    credentials_secret_ref: SecretRef { name: "s".into() },
                },
                servers: vec![ServerRef { id: "a".into() }],
                selector: None,
                exclude: vec![],
                max_servers: None,
                stop_type: StopType::Soft,
                suspend: false,
                dry_run: false,
                schedule,
            },
        );
        if let Some(value) = annotation {
            policy
                .annotations_mut()
                .insert(KEEP_RUNNING_UNTIL.into(), value.into());
        }
        policy
    }

    /// Fridays 10:00:30 to 10:01:00 UTC (2026-12-11 is a Friday).
    fn friday(zone: &str) -> ScheduleSpec {
        ScheduleSpec {
            time_zone: zone.into(),
            windows: vec![WindowSpec {
                days: vec![Day::Fri],
                from: Some("10:00:30".into()),
                to: Some("10:01".into()),
            }],
            exceptions: vec![],
            after_window: AfterWindow::Leave,
            start_lead_time: None,
        }
    }

    #[test]
    fn without_schedule_or_annotation_it_always_stops_and_reports_nothing() {
        let timing = timing_of(&policy(None, None), ts("2026-12-11T10:00:00Z")).unwrap();
        assert_eq!(timing.mode(false, false), Mode::Act);
        assert_eq!(timing.status(), None);
        assert_eq!(timing.next_change_in(ts("2026-12-11T10:00:00Z")), None);
    }

    #[test]
    fn before_a_window_nothing_is_stopped_and_the_sync_is_due_at_its_start() {
        let now = ts("2026-12-11T10:00:00Z");
        let timing = timing_of(&policy(Some(friday("UTC")), None), now).unwrap();
        let mode = timing.mode(false, false);
        assert_eq!(mode, Mode::Idle);
        assert_eq!(timing.intent(mode), Intent::OutsideWindow);
        // Even a dry run reports nothing to stop outside its window.
        assert_eq!(timing.mode(false, true), Mode::Idle);
        assert_eq!(timing.mode(true, false), Mode::Suspend);
        assert_eq!(
            timing.next_change_in(now),
            Some(Duration::from_millis(30_005))
        );
        let status = timing.status().unwrap();
        assert!(!status.window_active);
        assert_eq!(
            status.next_stop,
            Some(status_time(ts("2026-12-11T10:00:30Z")))
        );
        assert_eq!(
            status.next_start,
            Some(status_time(ts("2026-12-11T10:01:00Z")))
        );
        assert_eq!(status.keep_running_until, None);
    }

    #[test]
    fn inside_a_window_it_stops_until_the_window_ends() {
        let now = ts("2026-12-11T10:00:40Z");
        let timing = timing_of(&policy(Some(friday("UTC")), None), now).unwrap();
        assert_eq!(timing.mode(false, false), Mode::Act);
        assert_eq!(timing.mode(false, true), Mode::DryRun);
        assert_eq!(
            timing.next_change_in(now),
            Some(Duration::from_millis(20_005))
        );
        assert!(timing.status().unwrap().window_active);
    }

    #[test]
    fn the_override_holds_stopping_off_and_expires_by_itself() {
        let annotation = Some("2026-12-11T11:00:00+01:00");
        let p = policy(None, annotation);
        let held = timing_of(&p, ts("2026-12-11T09:59:00Z")).unwrap();
        let mode = held.mode(false, false);
        assert_eq!((mode, held.intent(mode)), (Mode::Idle, Intent::KeepRunning));
        let status = held.status().unwrap();
        assert_eq!(
            status.keep_running_until,
            Some(status_time(ts("2026-12-11T10:00:00Z")))
        );
        assert_eq!(status.next_stop, status.keep_running_until);
        assert_eq!(
            held.next_change_in(ts("2026-12-11T09:59:00Z")),
            Some(Duration::from_millis(60_005))
        );
        let expired = timing_of(&p, ts("2026-12-11T10:00:00Z")).unwrap();
        assert_eq!(expired.mode(false, false), Mode::Act);
        assert_eq!(expired.status().unwrap().keep_running_until, None);
    }

    #[test]
    fn only_after_a_window_with_after_window_start_are_servers_started() {
        let start = ScheduleSpec {
            after_window: AfterWindow::Start,
            ..friday("UTC")
        };
        let after = ts("2026-12-11T10:01:10Z");
        let timing = timing_of(&policy(Some(start.clone()), None), after).unwrap();
        assert!(timing.records_stops());
        assert!(timing.starts_now(false, false));
        assert!(!timing.starts_now(true, false), "suspended");
        assert!(!timing.starts_now(false, true), "dry run");
        let inside = timing_of(
            &policy(Some(start.clone()), None),
            ts("2026-12-11T10:00:40Z"),
        );
        assert!(
            !inside.unwrap().starts_now(false, false),
            "inside the window"
        );
        // An override inside the window keeps the servers as they are.
        let held = policy(Some(start), Some("2026-12-11T10:00:50Z"));
        let held = timing_of(&held, ts("2026-12-11T10:00:40Z")).unwrap();
        assert_eq!(held.mode(false, false), Mode::Idle);
        assert!(!held.starts_now(false, false));
        // Leave, or no schedule at all: nothing recorded, nothing started.
        for leave in [Some(friday("UTC")), None] {
            let timing = timing_of(&policy(leave, None), after).unwrap();
            assert!(!timing.records_stops());
            assert!(!timing.starts_now(false, false));
        }
    }

    #[test]
    fn a_lead_worked_out_again_for_a_grown_record_only_brings_the_requeue_earlier() {
        let spec = ScheduleSpec {
            after_window: AfterWindow::Start,
            start_lead_time: Some("Auto".into()),
            ..friday("UTC")
        };
        let p = policy(Some(spec), None);
        let at = ts("2026-12-11T10:00:30Z");
        // Read with fewer servers recorded: 5 s before the end.
        let read = timing_of(&p, at)
            .unwrap()
            .with_start_lead(Duration::from_secs(5), None);
        assert_eq!(read.next_change_in(at), Some(Duration::from_millis(25_005)));
        // The sync recorded more: 20 s before the end, so due in 10 s.
        let grown = read.with_lead_at_least(Duration::from_secs(20));
        assert_eq!(
            grown.next_change_in(at),
            Some(Duration::from_millis(10_005))
        );
        // A smaller lead leaves it as it was.
        let kept = grown.with_lead_at_least(Duration::from_secs(1));
        assert_eq!(kept.next_change_in(at), Some(Duration::from_millis(10_005)));
    }

    #[test]
    fn with_a_lead_time_starting_begins_that_long_before_the_window_ends() {
        let spec = ScheduleSpec {
            after_window: AfterWindow::Start,
            start_lead_time: Some("10s".into()),
            ..friday("UTC")
        };
        let p = policy(Some(spec.clone()), None);
        let lead = |at: &str| {
            let timing = timing_of(&p, ts(at)).unwrap();
            assert_eq!(
                timing.start_lead(),
                Some(StartLead::Fixed(Duration::from_secs(10)))
            );
            timing.with_start_lead(Duration::from_secs(10), None)
        };
        // 15 s before the end: still stopping, due again when starting begins.
        let before = lead("2026-12-11T10:00:45Z");
        assert_eq!(before.mode(false, false), Mode::Act);
        assert!(!before.starts_now(false, false));
        assert_eq!(
            before.next_change_in(ts("2026-12-11T10:00:45Z")),
            Some(Duration::from_millis(5_005))
        );
        // 8 s before the end: stopping nothing, starting, due again at the end.
        let early = lead("2026-12-11T10:00:52Z");
        assert_eq!(early.mode(false, false), Mode::Idle);
        assert!(early.starts_now(false, false));
        assert_eq!(
            early.next_change_in(ts("2026-12-11T10:00:52Z")),
            Some(Duration::from_millis(8_005))
        );
        assert!(early.status().unwrap().window_active, "the window still is");
        assert_eq!(early.mode(true, false), Mode::Suspend);
        assert!(!early.starts_now(true, false), "suspended");
        assert_eq!(early.mode(false, true), Mode::DryRun);
        assert!(!early.starts_now(false, true), "dry run");
        let end = ts("2026-12-11T10:01:00Z");
        assert_eq!(early.starting_until(), Some(end));
        // Begun: a lead that shrank (an Auto lead as servers start) keeps it going.
        let timing = timing_of(&p, ts("2026-12-11T10:00:52Z")).unwrap();
        let shrunk = timing.with_start_lead(Duration::from_secs(1), Some(end));
        assert_eq!(shrunk.mode(false, false), Mode::Idle);
        assert!(shrunk.starts_now(false, false));
        // ... for that window only: one of another day stops as usual.
        let other = timing.with_start_lead(
            Duration::from_secs(1),
            Some(end - Duration::from_secs(604_800)),
        );
        assert_eq!(other.mode(false, false), Mode::Act);
        assert_eq!(other.starting_until(), None);
        // Without afterWindow Start a lead time means nothing.
        let leave = ScheduleSpec {
            after_window: AfterWindow::Leave,
            ..spec
        };
        let timing = timing_of(&policy(Some(leave), None), ts("2026-12-11T10:00:52Z")).unwrap();
        assert_eq!(timing.start_lead(), None);
        let timing = timing.with_start_lead(Duration::from_secs(10), None);
        assert_eq!(timing.mode(false, false), Mode::Act);
        assert_eq!(
            timing.next_change_in(ts("2026-12-11T10:00:52Z")),
            Some(Duration::from_millis(8_005))
        );
    }

    #[test]
    fn a_bad_start_lead_time_is_an_invalid_schedule() {
        let spec = ScheduleSpec {
            after_window: AfterWindow::Start,
            start_lead_time: Some("soon".into()),
            ..friday("UTC")
        };
        let problem = timing_of(&policy(Some(spec), None), ts("2026-12-11T10:00:52Z")).unwrap_err();
        assert_eq!(problem.reason, "InvalidSchedule");
        assert!(
            problem
                .message
                .starts_with("spec.schedule.startLeadTime: `soon`"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn an_unknown_zone_and_a_bad_annotation_are_problems_naming_the_field() {
        let now = ts("2026-12-11T10:00:00Z");
        let zone = timing_of(&policy(Some(friday("Europe/Atlantis")), None), now).unwrap_err();
        assert_eq!(zone.reason, "InvalidSchedule");
        assert!(
            zone.message
                .starts_with("spec.schedule.timeZone: unknown time zone `Europe/Atlantis`"),
            "{}",
            zone.message
        );
        let bad = timing_of(&policy(None, Some("tomorrow")), now).unwrap_err();
        assert_eq!(bad.reason, "InvalidKeepRunningUntil");
        assert!(bad.message.contains(KEEP_RUNNING_UNTIL), "{}", bad.message);
        assert!(bad.message.contains("`tomorrow`"), "{}", bad.message);
        let long = "9".repeat(1000);
        let cut = timing_of(&policy(None, Some(&long)), now).unwrap_err();
        assert!(cut.message.len() < 400, "{}", cut.message.len());
    }
}
