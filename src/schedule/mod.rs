//! Schedules: when a policy keeps its servers stopped.
//!
//! - [`spec`]: the schedule as written in a policy (strings in a time zone);
//! - [`Schedule::compile`]: checked against the bundled tz database and the calendar;
//! - [`Schedule::evaluate`] and [`verdict`]: pure functions of an explicit instant.
//!
//! Semantics users rely on (README, "Schedules"):
//! - a window begins on each of its `days` at `from` and ends at `to`, on the next day
//!   when `to` is at or before `from`; `days` name the day a window begins on;
//! - an exception decides a whole local date (the first one naming it), windows or not;
//! - a local time the clock skips (spring forward) begins at the instant the clock jumps
//!   to; in a repeated hour (fall back) a time means its first occurrence, so no window
//!   runs twice;
//! - a keep-running override suspends stopping until it expires, by itself.

mod compile;
mod eval;
mod lead;
pub mod spec;
#[cfg(test)]
mod tests;

pub use compile::{Schedule, ScheduleError};
pub use eval::Evaluation;
pub use lead::StartLead;

use jiff::Timestamp;

/// What a policy wants at an instant, given its schedule (none: always stopped) and its
/// keep-running override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Its servers are to be kept stopped now.
    pub stop: bool,
    /// The schedule's window is active now (always, without a schedule), whether or not
    /// an override holds it off.
    pub window_active: bool,
    /// The override, while it holds: stopping is suspended until then.
    pub override_until: Option<Timestamp>,
    /// The next instant at which `stop` becomes true.
    pub next_stop: Option<Timestamp>,
    /// The next instant at which `stop` becomes false.
    pub next_start: Option<Timestamp>,
}

/// The policy's verdict at `at`.
pub fn verdict(
    schedule: Option<&Schedule>,
    keep_running_until: Option<Timestamp>,
    at: Timestamp,
) -> Verdict {
    let override_until = keep_running_until.filter(|until| *until > at);
    let Some(schedule) = schedule else {
        return Verdict {
            stop: override_until.is_none(),
            window_active: true,
            override_until,
            next_stop: override_until,
            next_start: None,
        };
    };
    let stop_at =
        |t: Timestamp| schedule.stopped_at(t) && override_until.is_none_or(|until| t >= until);
    let next_change = |t: Timestamp| -> Option<Timestamp> {
        match override_until {
            Some(until) if t < until => {
                if schedule.stopped_at(until) {
                    Some(until)
                } else {
                    schedule.next_transition(until)
                }
            }
            _ => schedule.next_transition(t),
        }
    };
    let stop = stop_at(at);
    let first = next_change(at);
    let second = first.and_then(next_change);
    let (next_stop, next_start) = if stop {
        (second, first)
    } else {
        (first, second)
    };
    Verdict {
        stop,
        window_active: schedule.stopped_at(at),
        override_until,
        next_stop,
        next_start,
    }
}
