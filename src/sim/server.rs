//! One simulated server: its power state, what acts on it, and how it looks on the wire.

use crate::ecs::wire::ServerDetail;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Server status as the API spells it, derived from vm_state and task_state
/// (appendix "ECS Statuses").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Active,
    Shutoff,
    Reboot,
    HardReboot,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::Shutoff => "SHUTOFF",
            Status::Reboot => "REBOOT",
            Status::HardReboot => "HARD_REBOOT",
            Status::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VmState {
    Active,
    Stopped,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Task {
    PoweringOff,
    PoweringOn,
    Rebooting,
    RebootingHard,
}

impl Task {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Task::PoweringOff => "powering-off",
            Task::PoweringOn => "powering-on",
            Task::Rebooting => "rebooting",
            Task::RebootingHard => "rebooting_hard",
        }
    }
}

/// An action in flight on one server: which sub-job it answers and how it ends.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) seq: u64,
    pub(super) job: usize,
    pub(super) sub: usize,
    pub(super) target: VmState,
    /// Decided at submission from the seeded RNG, so runs are reproducible.
    pub(super) fails: bool,
}

#[derive(Debug)]
pub(super) struct Server {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) vm: VmState,
    pub(super) task: Option<Task>,
    pub(super) locked: bool,
    pub(super) created: String,
    pub(super) updated: String,
    pub(super) az: &'static str,
    pub(super) pending: Option<Pending>,
}

impl Server {
    pub(super) fn status(&self) -> Status {
        match (self.vm, self.task) {
            (VmState::Active, Some(Task::Rebooting)) => Status::Reboot,
            (VmState::Active, Some(Task::RebootingHard)) => Status::HardReboot,
            (VmState::Active, _) => Status::Active,
            (VmState::Stopped, _) => Status::Shutoff,
            (VmState::Error, _) => Status::Error,
        }
    }

    pub(super) fn detail(&self, project_id: &str) -> ServerDetail {
        let (vm_state, power_state) = match self.vm {
            VmState::Active => ("active", 1),
            VmState::Stopped => ("stopped", 4),
            VmState::Error => ("error", 0),
        };
        ServerDetail {
            id: self.id.clone(),
            name: Some(self.name.clone()),
            status: Some(self.status().as_str().to_owned()),
            vm_state: Some(vm_state.to_owned()),
            task_state: self.task.map(|t| t.as_str().to_owned()),
            power_state: Some(power_state),
            locked: Some(self.locked),
            fault: None,
            metadata: Some(BTreeMap::new()),
            tags: Some(Vec::new()),
            updated: Some(self.updated.clone()),
            created: Some(self.created.clone()),
            tenant_id: Some(project_id.to_owned()),
            availability_zone: Some(self.az.to_owned()),
        }
    }

    /// Status filter with the doc's note that a value also covers related
    /// intermediate states (`ACTIVE` covers `REBOOT` and `HARD_REBOOT`).
    pub(super) fn matches_status(&self, filter: &str) -> bool {
        let status = self.status();
        status.as_str() == filter
            || (filter == "ACTIVE" && matches!(status, Status::Reboot | Status::HardReboot))
    }
}

pub(super) const AVAILABILITY_ZONES: [&str; 3] = ["eu-de-01", "eu-de-02", "eu-de-03"];
