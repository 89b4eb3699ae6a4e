//! One simulated server: its power state, what acts on it, and how it looks on the wire.

use super::profile::ServerProfile;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

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

/// `id` as a UUID when it is spelled the way the API shows ids (lowercase,
/// hyphenated): another spelling of the same UUID is another, unknown, id.
pub(super) fn canonical_uuid(id: &str) -> Option<Uuid> {
    let uuid = Uuid::try_parse(id).ok()?;
    let mut canonical = [0u8; uuid::fmt::Hyphenated::LENGTH];
    (uuid.hyphenated().encode_lower(&mut canonical) == id).then_some(uuid)
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

/// A name or tags set through the admin surface, replacing the derived ones. Tag
/// strings are interned: a tag set on 10,000 servers is one allocation.
#[derive(Debug, Clone, Default)]
pub(super) struct Custom {
    pub(super) name: Option<Arc<str>>,
    pub(super) tags: Option<Arc<[Arc<str>]>>,
}

/// One server, kept small: everything the seed and its number determine (name,
/// tags, flavor, addresses, ...) is derived when shown, see [`super::profile`].
#[derive(Debug)]
pub(super) struct Server {
    pub(super) id: Uuid,
    pub(super) vm: VmState,
    pub(super) task: Option<Task>,
    pub(super) locked: bool,
    /// Unix seconds.
    pub(super) created: i64,
    pub(super) updated: i64,
    /// Boxed: rare, and it keeps idle servers small.
    pub(super) pending: Option<Box<Pending>>,
    pub(super) custom: Option<Box<Custom>>,
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

    /// Status filter with the doc's note that a value also covers related
    /// intermediate states (`ACTIVE` covers `REBOOT` and `HARD_REBOOT`).
    pub(super) fn matches_status(&self, filter: &str) -> bool {
        let status = self.status();
        status.as_str() == filter
            || (filter == "ACTIVE" && matches!(status, Status::Reboot | Status::HardReboot))
    }

    pub(super) fn custom_name(&self) -> Option<&Arc<str>> {
        self.custom.as_ref()?.name.as_ref()
    }

    pub(super) fn custom_tags(&self) -> Option<&Arc<[Arc<str>]>> {
        self.custom.as_ref()?.tags.as_ref()
    }

    /// Whether the server carries `tag` (`key=value`, as the listing shows it).
    pub(super) fn has_tag(&self, profile: &ServerProfile<'_>, tag: &str) -> bool {
        match self.custom_tags() {
            Some(tags) => tags.iter().any(|t| &**t == tag),
            None => profile.tags().contains(&tag),
        }
    }

    /// Its name into `out` (cleared first), derived unless set by hand.
    pub(super) fn write_name(&self, profile: &ServerProfile<'_>, out: &mut String) {
        out.clear();
        match self.custom_name() {
            Some(name) => out.push_str(name),
            None => {
                use std::fmt::Write;
                let _ = write!(out, "{}", profile.name());
            }
        }
    }

    /// A copy of what the wire view needs, taken under the state lock so the JSON can
    /// be rendered after it is released.
    pub(super) fn snapshot(&self, number: usize) -> ServerSnapshot {
        ServerSnapshot {
            number,
            id: self.id,
            status: self.status(),
            vm: self.vm,
            task: self.task,
            locked: self.locked,
            created: self.created,
            updated: self.updated,
            custom: self.custom.as_deref().cloned(),
        }
    }
}

/// A server as of one request, detached from the state.
#[derive(Debug, Clone)]
pub(super) struct ServerSnapshot {
    pub(super) number: usize,
    pub(super) id: Uuid,
    pub(super) status: Status,
    pub(super) vm: VmState,
    pub(super) task: Option<Task>,
    pub(super) locked: bool,
    pub(super) created: i64,
    pub(super) updated: i64,
    pub(super) custom: Option<Custom>,
}
