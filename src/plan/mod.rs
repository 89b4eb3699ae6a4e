//! Pure planning: what to stop (and, after a window, start) now, and how to batch stops shared by several policies.
//!
//! No I/O, no async, no clock: the caller observes, passes `now`, and acts on the result.

mod observed;
mod planner;
mod queue;
mod starts;

#[cfg(test)]
mod proptests;

pub use observed::ObservedPower;
pub use planner::{Backoff, Mode, PlanInput, PlanOutcome, RetryState, plan_stops};
pub use queue::{Batch, BatchEntry, IDS_PER_TURN, StopQueue};
pub use starts::{StartInput, StartPlan, plan_starts};
