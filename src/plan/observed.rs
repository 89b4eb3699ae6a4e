/// A server's power state as far as stopping it is concerned, derived from the ECS
/// `status` and `OS-EXT-STS:task_state` fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObservedPower {
    /// ACTIVE with no task: a stop is needed.
    Running,
    /// ACTIVE and powering off: a stop is under way.
    Stopping,
    /// SHUTOFF with no task, or shelved (powered off too).
    Stopped,
    /// In a transition a stop must not interrupt: building, rebooting, resizing,
    /// migrating, being started (SHUTOFF + powering-on) or deleted. ECS refuses a stop
    /// during a task, so such a server is left alone and looked at again at the next
    /// sync; a server being started is stopped again then, once it is ACTIVE.
    Busy,
    /// ERROR: a stop cannot succeed until someone repairs the server.
    Error,
    /// ACTIVE with no task but locked: ECS refuses to stop it (`Ecs.0605`) until
    /// someone unlocks it.
    Locked,
    /// Absent from the project's full listing, or DELETED.
    NotFound,
}

impl ObservedPower {
    /// Classifies a server from its ECS `status`, `task_state` and `locked`. The API
    /// sends no task as `null` or as an empty string; both mean none.
    pub fn from_ecs(status: &str, task_state: Option<&str>, locked: bool) -> Self {
        let task = task_state.filter(|t| !t.is_empty());
        let status = status.to_ascii_uppercase();
        match (status.as_str(), task) {
            ("ACTIVE", None) if locked => ObservedPower::Locked,
            ("ACTIVE", None) => ObservedPower::Running,
            ("ACTIVE", Some(t)) if t.eq_ignore_ascii_case("powering-off") => {
                ObservedPower::Stopping
            }
            ("SHUTOFF" | "SHELVED" | "SHELVED_OFFLOADED", None) => ObservedPower::Stopped,
            ("ERROR", None) => ObservedPower::Error,
            ("DELETED" | "SOFT_DELETED", _) => ObservedPower::NotFound,
            _ => ObservedPower::Busy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ObservedPower::{self, *};

    #[test]
    fn ecs_status_table() {
        let cases: &[(&str, Option<&str>, ObservedPower)] = &[
            ("ACTIVE", None, Running),
            ("ACTIVE", Some(""), Running),
            ("active", None, Running),
            ("ACTIVE", Some("powering-off"), Stopping),
            ("ACTIVE", Some("deleting"), Busy),
            ("ACTIVE", Some("powering-on"), Busy),
            ("SHUTOFF", None, Stopped),
            ("SHUTOFF", Some(""), Stopped),
            ("SHUTOFF", Some("powering-on"), Busy),
            ("SHELVED", None, Stopped),
            ("SHELVED_OFFLOADED", None, Stopped),
            ("REBOOT", Some("rebooting"), Busy),
            ("HARD_REBOOT", Some("rebooting_hard"), Busy),
            ("BUILD", Some("spawning"), Busy),
            ("RESIZE", Some("resize_prep"), Busy),
            ("VERIFY_RESIZE", None, Busy),
            ("MIGRATING", Some("migrating"), Busy),
            ("REBUILD", Some("rebuilding"), Busy),
            ("UNKNOWN", None, Busy),
            ("ERROR", None, Error),
            ("ERROR", Some("deleting"), Busy),
            ("DELETED", None, NotFound),
            ("SOFT_DELETED", None, NotFound),
        ];
        for &(status, task, want) in cases {
            assert_eq!(
                ObservedPower::from_ecs(status, task, false),
                want,
                "{status} {task:?}"
            );
        }
    }

    #[test]
    fn only_a_server_that_would_be_stopped_counts_as_locked() {
        assert_eq!(ObservedPower::from_ecs("ACTIVE", None, true), Locked);
        assert_eq!(ObservedPower::from_ecs("SHUTOFF", None, true), Stopped);
        let stopping = ObservedPower::from_ecs("ACTIVE", Some("powering-off"), true);
        assert_eq!(stopping, Stopping);
    }
}
