//! Builders for the `Ready`, `Progressing` and `Degraded` conditions of a policy.
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
    /// Every named server that exists is stopped and nothing is failing.
    Ready,
    /// Stops are under way.
    Progressing,
    /// Something needs a person: failures, unknown servers or a configuration error.
    Degraded,
}

impl ConditionType {
    /// The `type` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Progressing => "Progressing",
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

/// The three conditions that follow from a sync's phase and counts.
///
/// Configuration errors (a missing Secret, rejected credentials) are not visible here;
/// the reconciler sets `Degraded` for those with [`set`] and its own reason.
pub fn from_progress(phase: Phase, summary: &Summary) -> [ConditionUpdate; 3] {
    let ready = match phase {
        Phase::Stopped => ConditionUpdate::new(
            ConditionType::Ready,
            true,
            "AllStopped",
            format!("all {} servers are stopped", summary.stopped),
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

    let progressing = match phase {
        Phase::Stopping => ConditionUpdate::new(
            ConditionType::Progressing,
            true,
            "StoppingServers",
            format!(
                "{} servers stopping, {} pending",
                summary.stopping, summary.pending
            ),
        ),
        Phase::Suspended => ConditionUpdate::new(
            ConditionType::Progressing,
            false,
            "Suspended",
            "spec.suspend is true: nothing is stopped",
        ),
        _ => ConditionUpdate::new(
            ConditionType::Progressing,
            false,
            "Idle",
            "no stop is under way",
        ),
    };

    let degraded = match (summary.failed, summary.not_found) {
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
    };

    [ready, progressing, degraded]
}

fn phase_reason(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Stopping => "Stopping",
        Phase::Stopped => "AllStopped",
        Phase::Degraded => "Degraded",
        Phase::Suspended => "Suspended",
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
        for update in from_progress(Phase::Stopping, &Summary::default()) {
            set(&mut conditions, update, None, t(10));
        }
        assert_eq!(conditions.len(), 3);
        set(&mut conditions, ready(true, "AllStopped", "m"), None, t(20));
        assert_eq!(conditions.len(), 3);
        let progressing = find(&conditions, ConditionType::Progressing).unwrap();
        assert_eq!(progressing.last_transition_time, Time(t(10)));
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

    #[test]
    fn progress_table() {
        // (phase, summary, ready, progressing, degraded, degraded reason)
        let cases = [
            (
                Phase::Stopped,
                summary(3, 3, 0, 0),
                "True",
                "False",
                "False",
                "NoFailures",
            ),
            (
                Phase::Stopping,
                summary(3, 1, 0, 0),
                "False",
                "True",
                "False",
                "NoFailures",
            ),
            (
                Phase::Stopping,
                summary(3, 1, 1, 0),
                "False",
                "True",
                "True",
                "StopFailed",
            ),
            (
                Phase::Degraded,
                summary(3, 2, 0, 1),
                "False",
                "False",
                "True",
                "ServersNotFound",
            ),
            (
                Phase::Degraded,
                summary(4, 2, 1, 1),
                "False",
                "False",
                "True",
                "StopFailedAndServersNotFound",
            ),
            (
                Phase::Suspended,
                summary(3, 0, 0, 0),
                "False",
                "False",
                "False",
                "NoFailures",
            ),
            (
                Phase::Pending,
                summary(3, 0, 0, 0),
                "False",
                "False",
                "False",
                "NoFailures",
            ),
        ];
        for (phase, summary, ready, progressing, degraded, reason) in cases {
            let [r, p, d] = from_progress(phase, &summary);
            assert_eq!(r.status.as_str(), ready, "{phase:?} Ready");
            assert_eq!(p.status.as_str(), progressing, "{phase:?} Progressing");
            assert_eq!(d.status.as_str(), degraded, "{phase:?} Degraded");
            assert_eq!(d.reason, reason, "{phase:?} Degraded reason");
        }
    }

    #[test]
    fn ready_message_counts_existing_servers() {
        let [r, _, _] = from_progress(Phase::Degraded, &summary(4, 2, 0, 1));
        assert_eq!(r.message, "2 of 3 servers are stopped");
        assert_eq!(r.reason, "Degraded");
    }
}
