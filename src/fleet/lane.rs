//! The queue lanes of a fleet: one per kind of call, each with its fair queue, the
//! linger rule of its partial batches, and the halves of calls refused because of
//! some of their servers.

use super::{Gate, PolicyKey};
use crate::ecs::wire::{PowerAction, PowerActionType};
use crate::plan::{BatchEntry, StopQueue};
use crate::policy::JobAction;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// One kind of call, with its own queue; every lane spends the project's one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    SoftStop,
    HardStop,
    /// Servers a policy stopped, started again when its window ended.
    Start,
}

impl Lane {
    pub const ALL: [Lane; 3] = [Lane::SoftStop, Lane::HardStop, Lane::Start];

    pub fn stop(stop_type: PowerActionType) -> Self {
        match stop_type {
            PowerActionType::Soft => Lane::SoftStop,
            PowerActionType::Hard => Lane::HardStop,
        }
    }

    pub fn action(self) -> PowerAction {
        match self {
            Lane::SoftStop => PowerAction::Stop(PowerActionType::Soft),
            Lane::HardStop => PowerAction::Stop(PowerActionType::Hard),
            Lane::Start => PowerAction::Start,
        }
    }

    /// What a job of this lane's calls does, as status records say it.
    pub fn job_action(self) -> JobAction {
        match self {
            Lane::SoftStop | Lane::HardStop => JobAction::Stop,
            Lane::Start => JobAction::Start,
        }
    }
}

/// When a lane's oldest waiting id arrived, and when the lane last grew.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lingering {
    pub(super) since: Instant,
    pub(super) grown_at: Instant,
}

/// A partial batch waits this many lingers at most, even while the queue keeps growing.
pub(super) const MAX_LINGERS: u32 = 10;

impl Lingering {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            since: now,
            grown_at: now,
        }
    }

    /// A partial batch goes once nobody is about to add to it: not during the first
    /// round; at its end if the queue has not grown since (every policy has been
    /// planned); after that once the queue has not grown for `linger` (the syncs that
    /// were adding to it are done), or after `MAX_LINGERS` lingers in any case.
    pub(super) fn partial_batch_due(&self, now: Instant, linger: Duration, gate: Gate) -> bool {
        let Gate::Open { round_ended_at } = gate else {
            return false;
        };
        round_ended_at.is_some_and(|end| end >= self.grown_at)
            || now.duration_since(self.grown_at) >= linger
            || now.duration_since(self.since) >= linger * MAX_LINGERS
    }
}

pub(super) type Entries = Vec<BatchEntry<PolicyKey>>;

#[derive(Debug, Default)]
pub(super) struct LaneState {
    pub(super) queue: StopQueue<PolicyKey>,
    pub(super) lingering: Option<Lingering>,
    /// Halves of a call refused because of some of its servers, each sent on its own
    /// before the queue (see `FleetState::record_call`).
    pub(super) halves: VecDeque<Entries>,
}

impl LaneState {
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.halves.is_empty()
    }
}
