//! The `Ready`, `Reconciling`, `Stalled` and `Degraded` conditions of a policy.
//!
//! They follow the kstatus conventions (sigs.k8s.io/cli-utils/pkg/kstatus, what Flux's
//! `wait` and `healthChecks` read), checked against the library itself by the e2e
//! scenario `gitops`:
//!
//! * `Reconciling=True` (stops queued or running, a sync to retry) reads InProgress;
//! * `Stalled=True` (a person must act, see [`needs_person`]) reads Failed;
//! * otherwise `Ready` decides: True reads Current, False reads InProgress.
//!
//! `Reconciling` and `Stalled` are never True together, so the order of the list never
//! matters. A suspended policy and a reported dry run are `Ready=True` with reasons
//! `Suspended` and `DryRun`: the operator does what their spec asks (nothing), so a
//! GitOps sync that waits for them ends. `observedGeneration` (set by the caller on
//! every path) makes kstatus read InProgress until the current spec has been synced.
//!
//! Pure functions over `Vec<Condition>`: they report whether anything changed so the
//! caller patches status only when needed, and they move `lastTransitionTime` only when
//! a condition's status flips, as the metav1.Condition contract asks.

use std::fmt;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::{Phase, Summary};

/// The condition types a policy reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionType {
    /// The policy is in the state its spec asks for: every named server stopped (or,
    /// suspended or in a dry run, nothing to do).
    Ready,
    /// The operator is working towards the spec: stops queued or running, failed stops
    /// retried, a failed sync retried.
    Reconciling,
    /// The operator cannot get further until a person acts (see [`needs_person`]).
    Stalled,
    /// Something is wrong: failures, unknown servers or a configuration error.
    Degraded,
}

impl ConditionType {
    /// Every type, in the order the operator writes them.
    pub const ALL: [ConditionType; 4] = [
        ConditionType::Ready,
        ConditionType::Reconciling,
        ConditionType::Stalled,
        ConditionType::Degraded,
    ];

    /// The `type` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Reconciling => "Reconciling",
            ConditionType::Stalled => "Stalled",
            ConditionType::Degraded => "Degraded",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition's `status` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet, for example before the first sync.
    Unknown,
}

impl ConditionStatus {
    /// The `status` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(holds: bool) -> Self {
        if holds {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// The desired state of one condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// Which condition.
    pub type_: ConditionType,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase reason, for machines.
    pub reason: String,
    /// A sentence, for people.
    pub message: String,
}

impl ConditionUpdate {
    /// A condition update with the given fields.
    pub fn new(
        type_: ConditionType,
        status: impl Into<ConditionStatus>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The condition of the given type, if present.
pub fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// The condition of the given type, if present and True.
pub fn find_true(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    find(conditions, type_).filter(|c| c.status == ConditionStatus::True.as_str())
}

/// Whether the condition of the given type is present and True.
pub fn is_true(conditions: &[Condition], type_: ConditionType) -> bool {
    find_true(conditions, type_).is_some()
}

/// Drops conditions of types the operator does not write (`Progressing`, written by
/// earlier versions), so they cannot contradict the ones it does. Returns whether the
/// list changed.
pub fn retain_known(conditions: &mut Vec<Condition>) -> bool {
    let before = conditions.len();
    conditions.retain(|c| ConditionType::ALL.iter().any(|t| t.as_str() == c.type_));
    conditions.len() != before
}

/// Sets one condition, adding it if absent. Returns whether the list changed.
///
/// `lastTransitionTime` becomes `now` only when the condition is new or its status
/// changes; a new reason, message or generation alone keeps the old time.
pub fn set(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let status = update.status.as_str();
    match conditions
        .iter_mut()
        .find(|c| c.type_ == update.type_.as_str())
    {
        Some(existing) => {
            let before = existing.clone();
            if existing.status != status {
                existing.status = status.to_owned();
                existing.last_transition_time = super::status_time(now);
            }
            existing.reason = update.reason;
            existing.message = update.message;
            existing.observed_generation = observed_generation;
            *existing != before
        }
        None => {
            conditions.push(Condition {
                type_: update.type_.as_str().to_owned(),
                status: status.to_owned(),
                reason: update.reason,
                message: update.message,
                observed_generation,
                last_transition_time: super::status_time(now),
            });
            true
        }
    }
}

/// Whether the Degraded `reason` needs a person to act: `Stalled=True`, which kstatus
/// reads as Failed, so a Flux sync fails at once instead of waiting for its timeout.
///
/// The one place where reasons are classified; a new reason gets its arm here.
/// * A person must act: the Secret is missing, lacks a key or holds an invalid one, the
///   operator may not read it; the cloud rejects the credentials or the project; the
///   cloud configuration is invalid (region, endpoint, an endpoint name that does not
///   resolve or a server there that does not speak TLS); the ECS API refuses the stop
///   call itself; servers named in the spec do not exist; the endpoint answers more
///   than any ECS API sends (a body over its size limit, a listing of too many
///   servers), or one this operator is not allowed to call (`--allowed-endpoints`);
///   the selector cannot be compiled, or matches more servers than spec.maxServers
///   allows; the schedule (an unknown time zone, a date that does not exist) or the
///   keep-running-until annotation cannot be read.
/// * The operator retries by itself (`Reconciling=True`, InProgress): stops that failed
///   (retried with backoff), a stop job whose outcome was lost, an ECS API that cannot
///   be reached for now.
///
/// A reason not listed is taken as retried: InProgress until the GitOps tool's own
/// timeout, rather than a sync failed for what may pass.
pub fn needs_person(reason: &str) -> bool {
    match reason {
        "SecretNotFound"
        | "SecretKeyMissing"
        | "SecretKeyInvalid"
        | "SecretForbidden"
        | "AuthenticationFailed"
        | "Forbidden"
        | "InvalidCloudConfig"
        | "UnknownRegion"
        | "EndpointNotResolved"
        | "TlsHandshakeFailed"
        | "ResponseTooLarge"
        | "EndpointNotAllowed"
        | "StopCallRefused"
        | "ServersNotFound"
        | "StopFailedAndServersNotFound"
        | "InvalidSelector"
        | "MaxServersExceeded"
        | "InvalidSchedule"
        | "InvalidKeepRunningUntil" => true,
        "StopFailed" | "JobLost" | "EndpointUnreachable" | "SyncFailed" => false,
        _ => false,
    }
}

/// What the operator is doing with a policy, beside the planner's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Stopping servers.
    Act,
    /// spec.dryRun: reporting what would be stopped.
    DryRun,
    /// Outside spec.schedule's windows: stopping nothing, as scheduled.
    OutsideWindow,
    /// The keep-running-until annotation holds stopping off.
    KeepRunning,
}

/// The conditions that follow from a sync's phase and counts.
///
/// Configuration errors (a missing Secret, rejected credentials) are not visible here:
/// see [`from_problem`].
pub fn from_progress(phase: Phase, summary: &Summary, intent: Intent) -> [ConditionUpdate; 4] {
    let degraded = degraded_by_counts(summary);
    let stalled = degraded.status == ConditionStatus::True && needs_person(&degraded.reason);
    let dry_run_reported = intent == Intent::DryRun && phase == Phase::Pending;
    let ready = match phase {
        Phase::Stopped => ConditionUpdate::new(
            ConditionType::Ready,
            true,
            "AllStopped",
            format!("all {} servers are stopped", summary.stopped),
        ),
        Phase::Suspended => ConditionUpdate::new(
            ConditionType::Ready,
            true,
            "Suspended",
            "spec.suspend is true: the operator observes and stops nothing",
        ),
        // As scheduled right now: a GitOps sync that waits for the policy ends.
        Phase::Idle if intent == Intent::KeepRunning => ConditionUpdate::new(
            ConditionType::Ready,
            true,
            "KeepRunning",
            "the ecspower.dev/keep-running-until annotation holds stopping off until status.schedule.keepRunningUntil",
        ),
        Phase::Idle => ConditionUpdate::new(
            ConditionType::Ready,
            true,
            "OutsideWindow",
            "outside spec.schedule's windows: nothing is stopped until status.schedule.nextStop",
        ),
        Phase::Pending if dry_run_reported => ConditionUpdate::new(
            ConditionType::Ready,
            true,
            "DryRun",
            "spec.dryRun is true: status.dryRun lists what would be stopped",
        ),
        _ => ConditionUpdate::new(
            ConditionType::Ready,
            false,
            phase_reason(phase),
            format!(
                "{} of {} servers are stopped",
                summary.stopped,
                summary.desired.saturating_sub(summary.not_found)
            ),
        ),
    };

    let working = !stalled
        && intent == Intent::Act
        && (matches!(phase, Phase::Stopping | Phase::Pending) || summary.failed > 0);
    let reconciling = if working {
        ConditionUpdate::new(
            ConditionType::Reconciling,
            true,
            "StoppingServers",
            format!(
                "{} servers stopping, {} pending, {} failed and retried",
                summary.stopping, summary.pending, summary.failed
            ),
        )
    } else {
        not_reconciling(ready.reason.clone())
    };

    let stalled = stalled_as(&degraded, stalled);
    [ready, reconciling, stalled, degraded]
}

fn not_reconciling(reason: String) -> ConditionUpdate {
    ConditionUpdate::new(
        ConditionType::Reconciling,
        false,
        reason,
        "no stop is under way",
    )
}

/// `Stalled` mirrors a Degraded condition whose reason needs a person.
fn stalled_as(degraded: &ConditionUpdate, stalled: bool) -> ConditionUpdate {
    if stalled {
        ConditionUpdate::new(
            ConditionType::Stalled,
            true,
            degraded.reason.clone(),
            format!("a person must act: {}", degraded.message),
        )
    } else {
        ConditionUpdate::new(
            ConditionType::Stalled,
            false,
            "NotStalled",
            "nothing needs a person to act",
        )
    }
}

fn degraded_by_counts(summary: &Summary) -> ConditionUpdate {
    match (summary.failed, summary.not_found) {
        (0, 0) => ConditionUpdate::new(
            ConditionType::Degraded,
            false,
            "NoFailures",
            "no server failed to stop and every server exists",
        ),
        (failed, 0) => ConditionUpdate::new(
            ConditionType::Degraded,
            true,
            "StopFailed",
            format!("{failed} servers failed to stop or are in ERROR; see status.failures"),
        ),
        (0, not_found) => ConditionUpdate::new(
            ConditionType::Degraded,
            true,
            "ServersNotFound",
            format!("{not_found} servers named in spec.servers do not exist in the project"),
        ),
        (failed, not_found) => ConditionUpdate::new(
            ConditionType::Degraded,
            true,
            "StopFailedAndServersNotFound",
            format!(
                "{failed} servers failed to stop or are in ERROR (see status.failures); \
                 {not_found} servers named in spec.servers do not exist in the project"
            ),
        ),
    }
}

/// The conditions of a policy that cannot be synced until `reason` is dealt with (a
/// missing Secret, rejected credentials, a refused stop call).
pub fn from_problem(reason: &str, message: &str) -> [ConditionUpdate; 4] {
    let degraded = ConditionUpdate::new(ConditionType::Degraded, true, reason, message);
    let stalled = needs_person(reason);
    let reconciling = if stalled {
        not_reconciling(reason.to_owned())
    } else {
        ConditionUpdate::new(
            ConditionType::Reconciling,
            true,
            reason,
            format!("retrying: {message}"),
        )
    };
    [
        ConditionUpdate::new(ConditionType::Ready, false, reason, message),
        reconciling,
        stalled_as(&degraded, stalled),
        degraded,
    ]
}

/// The conditions of a spec whose sync failed with an error the operator retries
/// (the ECS API unreachable, the Kubernetes API failing): not synced yet, in progress.
/// Degraded keeps what the last sync found; Stalled is False, as Reconciling is True.
pub fn from_sync_error(message: &str) -> [ConditionUpdate; 3] {
    [
        ConditionUpdate::new(
            ConditionType::Ready,
            false,
            "SyncFailed",
            format!("the current spec is not synced yet: {message}"),
        ),
        ConditionUpdate::new(
            ConditionType::Reconciling,
            true,
            "SyncFailed",
            format!("retrying with backoff: {message}"),
        ),
        ConditionUpdate::new(
            ConditionType::Stalled,
            false,
            "SyncFailed",
            "the current spec is not synced yet",
        ),
    ]
}

fn phase_reason(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Stopping => "Stopping",
        Phase::Stopped => "AllStopped",
        Phase::Degraded => "Degraded",
        Phase::Suspended => "Suspended",
        Phase::Idle => "Idle",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn ready(status: bool, reason: &str, message: &str) -> ConditionUpdate {
        ConditionUpdate::new(ConditionType::Ready, status, reason, message)
    }

    #[test]
    fn new_condition_is_added_with_now_as_transition_time() {
        let mut conditions = Vec::new();
        assert!(set(
            &mut conditions,
            ready(false, "Stopping", "m"),
            Some(1),
            t(10)
        ));
        let c = find(&conditions, ConditionType::Ready).unwrap();
        assert_eq!(c.status, "False");
        assert_eq!(c.reason, "Stopping");
        assert_eq!(c.observed_generation, Some(1));
        assert_eq!(c.last_transition_time, Time(t(10)));
    }

    #[test]
    fn identical_update_changes_nothing() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            ready(false, "Stopping", "m"),
            Some(1),
            t(10),
        );
        let before = conditions.clone();
        assert!(!set(
            &mut conditions,
            ready(false, "Stopping", "m"),
            Some(1),
            t(20)
        ));
        assert_eq!(conditions, before);
    }

    #[test]
    fn new_message_keeps_transition_time() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            ready(false, "Stopping", "1 of 3"),
            Some(1),
            t(10),
        );
        assert!(set(
            &mut conditions,
            ready(false, "Degraded", "2 of 3"),
            Some(2),
            t(20)
        ));
        let c = find(&conditions, ConditionType::Ready).unwrap();
        assert_eq!(
            (c.reason.as_str(), c.message.as_str()),
            ("Degraded", "2 of 3")
        );
        assert_eq!(c.observed_generation, Some(2));
        assert_eq!(c.last_transition_time, Time(t(10)));
    }

    #[test]
    fn status_flip_moves_transition_time() {
        let mut conditions = Vec::new();
        set(&mut conditions, ready(false, "Stopping", "m"), None, t(10));
        assert!(set(
            &mut conditions,
            ready(true, "AllStopped", "m"),
            None,
            t(20)
        ));
        let c = find(&conditions, ConditionType::Ready).unwrap();
        assert_eq!(c.status, "True");
        assert_eq!(c.last_transition_time, Time(t(20)));
    }

    #[test]
    fn types_are_kept_apart() {
        let mut conditions = Vec::new();
        for update in from_progress(Phase::Stopping, &Summary::default(), Intent::Act) {
            set(&mut conditions, update, None, t(10));
        }
        assert_eq!(conditions.len(), 4);
        set(&mut conditions, ready(true, "AllStopped", "m"), None, t(20));
        assert_eq!(conditions.len(), 4);
        let reconciling = find(&conditions, ConditionType::Reconciling).unwrap();
        assert_eq!(reconciling.last_transition_time, Time(t(10)));
    }

    fn summary(desired: u32, stopped: u32, failed: u32, not_found: u32) -> Summary {
        Summary {
            desired,
            stopped,
            stopping: 0,
            pending: desired - stopped - failed - not_found,
            failed,
            not_found,
        }
    }

    /// What kstatus reads from a set of updates, by its rules (generation observed):
    /// Reconciling=True InProgress, Stalled=True Failed, else Ready decides.
    fn kstatus_reading(updates: &[ConditionUpdate]) -> &'static str {
        let holds = |t| {
            updates
                .iter()
                .any(|u| u.type_ == t && u.status == ConditionStatus::True)
        };
        match (
            holds(ConditionType::Reconciling),
            holds(ConditionType::Stalled),
            holds(ConditionType::Ready),
        ) {
            (true, true, _) => "ambiguous",
            (true, false, _) => "InProgress",
            (false, true, _) => "Failed",
            (false, false, true) => "Current",
            (false, false, false) => "InProgress",
        }
    }

    #[test]
    fn progress_table() {
        use Intent::{Act, DryRun, KeepRunning, OutsideWindow};
        // Expected: Ready, Reconciling, Stalled, Degraded (T/F), Degraded's reason, kstatus.
        #[rustfmt::skip]
        let cases = [
            (Phase::Stopped, Act, summary(3, 3, 0, 0), "T F F F NoFailures Current"),
            (Phase::Stopping, Act, summary(3, 1, 0, 0), "F T F F NoFailures InProgress"),
            (Phase::Stopping, Act, summary(3, 1, 1, 0), "F T F T StopFailed InProgress"),
            (Phase::Degraded, Act, summary(3, 2, 1, 0), "F T F T StopFailed InProgress"),
            (Phase::Degraded, Act, summary(3, 2, 0, 1), "F F T T ServersNotFound Failed"),
            (Phase::Stopping, Act, summary(3, 1, 0, 1), "F F T T ServersNotFound Failed"),
            (Phase::Degraded, Act, summary(4, 2, 1, 1), "F F T T StopFailedAndServersNotFound Failed"),
            (Phase::Suspended, Act, summary(3, 0, 0, 0), "T F F F NoFailures Current"),
            (Phase::Pending, Act, summary(3, 0, 0, 0), "F T F F NoFailures InProgress"),
            (Phase::Pending, DryRun, summary(3, 0, 0, 0), "T F F F NoFailures Current"),
            (Phase::Stopped, DryRun, summary(3, 3, 0, 0), "T F F F NoFailures Current"),
            (Phase::Idle, OutsideWindow, summary(3, 1, 0, 0), "T F F F NoFailures Current"),
            (Phase::Idle, KeepRunning, summary(3, 0, 0, 0), "T F F F NoFailures Current"),
            (Phase::Idle, OutsideWindow, summary(3, 2, 1, 0), "T F F T StopFailed Current"),
            (Phase::Idle, OutsideWindow, summary(3, 2, 0, 1), "T F T T ServersNotFound Failed"),
        ];
        for (phase, intent, summary, expected) in cases {
            let updates = from_progress(phase, &summary, intent);
            let flag = |u: &ConditionUpdate| {
                if u.status == ConditionStatus::True {
                    "T"
                } else {
                    "F"
                }
            };
            let got = format!(
                "{} {} {} {} {} {}",
                flag(&updates[0]),
                flag(&updates[1]),
                flag(&updates[2]),
                flag(&updates[3]),
                updates[3].reason,
                kstatus_reading(&updates)
            );
            let types: Vec<ConditionType> = updates.iter().map(|u| u.type_).collect();
            assert_eq!(types, ConditionType::ALL);
            assert_eq!(got, expected, "{phase:?} {intent:?} {summary:?}");
        }
    }

    #[test]
    fn problems_a_person_must_fix_stall_and_the_others_reconcile() {
        for reason in [
            "SecretNotFound",
            "AuthenticationFailed",
            "Forbidden",
            "StopCallRefused",
        ] {
            let updates = from_problem(reason, "m");
            assert_eq!(kstatus_reading(&updates), "Failed", "{reason}");
            let [_, _, stalled, degraded] = &updates;
            assert_eq!(
                (stalled.reason.as_str(), degraded.reason.as_str()),
                (reason, reason)
            );
        }
        for reason in ["JobLost", "EndpointUnreachable", "SomeReasonAddedLater"] {
            assert_eq!(
                kstatus_reading(&from_problem(reason, "m")),
                "InProgress",
                "{reason}"
            );
        }
    }

    #[test]
    fn a_failed_sync_reads_in_progress() {
        assert_eq!(kstatus_reading(&from_sync_error("timeout")), "InProgress");
    }

    #[test]
    fn conditions_of_earlier_versions_are_dropped() {
        let mut conditions = Vec::new();
        set(&mut conditions, ready(true, "AllStopped", "m"), None, t(1));
        conditions.push(Condition {
            type_: "Progressing".into(),
            ..conditions[0].clone()
        });
        assert!(retain_known(&mut conditions));
        assert_eq!(conditions.len(), 1);
        assert!(!retain_known(&mut conditions));
    }

    #[test]
    fn ready_message_counts_existing_servers() {
        let [r, _, _, _] = from_progress(Phase::Degraded, &summary(4, 2, 0, 1), Intent::Act);
        assert_eq!(r.message, "2 of 3 servers are stopped");
        assert_eq!(r.reason, "Degraded");
    }
}
