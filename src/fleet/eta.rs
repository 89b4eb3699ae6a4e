//! Where a policy stands while its stops wait in the fleet's queue: how many of its
//! servers wait, and when they should all be stopped. Pure: the queue lanes, the
//! budget's ledger and the clock are read, nothing is changed.
//!
//! The forecast replays what the worker will do if nothing joins the queue: lanes in
//! the worker's order (the halves of refused calls first in each), the policy's own
//! lane turn by turn up to the call that carries its last id (see
//! [`StopQueue::calls_until_last`]), each call as soon as the budget covers it,
//! then as long as the fleet's recent jobs took to finish. When the worker has been
//! sending calls further apart than the budget asks (each waits for its policies'
//! status records, and an API server under load makes those slow), the forecast
//! spaces the calls ahead at that recent pace instead.
//!
//! [`StopQueue::calls_until_last`]: crate::plan::StopQueue::calls_until_last

use super::PolicyKey;
use super::lane::{Lane, LaneState};
use super::state::Now;
use crate::ecs::budget::ActionBudget;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// What the policy's status shows of its place in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStanding {
    /// The policy's servers queued, not yet in a call.
    pub waiting: usize,
    /// When the last of them should be stopped.
    pub estimated_completion: jiff::Timestamp,
}

/// What the forecast reads.
pub(super) struct Forecast<'a> {
    pub lanes: &'a HashMap<Lane, LaneState>,
    /// Most ids in one call: `max_per_call`, or the budget's window if smaller.
    pub full_call: usize,
    pub budget: &'a ActionBudget,
    /// No call goes out before this (the API throttled the last one).
    pub not_before: Option<Instant>,
    /// How long a stop job takes, from its submission until a poll sees it finished.
    pub job_time: Duration,
    /// When the last call went out, and the mean gap between recent calls.
    pub pace: Option<(Instant, Duration)>,
}

/// Gaps of this many recent calls make the pace.
const PACE_CALLS: usize = 10;

/// The gaps between the worker's recent calls, counted only while ids kept waiting
/// from one call to the next (a gap that began with an empty queue says nothing of
/// the pace).
#[derive(Debug, Default)]
pub(super) struct CallPace {
    last_sent: Option<Instant>,
    /// Whether ids were still queued right after the last call.
    busy: bool,
    gaps: VecDeque<Duration>,
}

impl CallPace {
    /// A call went out at `at`; `still_queued`: ids wait for later calls.
    pub(super) fn sent(&mut self, at: Instant, still_queued: bool) {
        if let (Some(last), true) = (self.last_sent, self.busy) {
            if self.gaps.len() == PACE_CALLS {
                self.gaps.pop_front();
            }
            self.gaps.push_back(at.saturating_duration_since(last));
        }
        self.last_sent = Some(at);
        self.busy = still_queued;
    }

    /// When the last call went out and the mean of the recent gaps, once there is one.
    pub(super) fn pace(&self) -> Option<(Instant, Duration)> {
        let n = u32::try_from(self.gaps.len()).ok().filter(|&n| n > 0)?;
        let mean = self.gaps.iter().sum::<Duration>() / n;
        Some((self.last_sent?, mean))
    }
}

/// The sizes of the calls that go out before and with the policy's last queued id in
/// `lane`: every earlier lane whole (the worker serves them first), then its own.
fn calls_ahead(forecast: &Forecast<'_>, policy: &PolicyKey, lane: Lane) -> Option<Vec<usize>> {
    let own = forecast
        .lanes
        .get(&lane)?
        .queue
        .calls_until_last(policy, forecast.full_call)?;
    let mut calls = Vec::new();
    for earlier in Lane::ALL.iter().take_while(|l| **l != lane) {
        if let Some(state) = forecast.lanes.get(earlier) {
            calls.extend(state.halves.iter().map(Vec::len));
            let queued = state.queue.len();
            calls.extend(
                (0..queued.div_ceil(forecast.full_call))
                    .map(|i| (queued - i * forecast.full_call).min(forecast.full_call)),
            );
        }
    }
    if let Some(state) = forecast.lanes.get(&lane) {
        calls.extend(state.halves.iter().map(Vec::len));
    }
    calls.extend(own);
    Some(calls)
}

/// The policy's standing in `lane`, or `None` when none of its servers is queued.
pub(super) fn standing(
    forecast: &Forecast<'_>,
    policy: &PolicyKey,
    lane: Lane,
    now: Now,
) -> Option<QueueStanding> {
    let calls = calls_ahead(forecast, policy, lane)?;
    let waiting = forecast.lanes.get(&lane)?.queue.queued(policy);
    let start = forecast.not_before.map_or(now.at, |at| at.max(now.at));
    let by_budget = forecast.budget.last_fits_at(&calls, start);
    let last_call = match forecast.pace {
        Some((last_sent, gap)) => {
            let ahead = u32::try_from(calls.len()).unwrap_or(u32::MAX);
            by_budget.max(last_sent + gap.saturating_mul(ahead))
        }
        None => by_budget,
    };
    let done_in = last_call.saturating_duration_since(now.at) + forecast.job_time;
    Some(QueueStanding {
        waiting,
        estimated_completion: now.wall + done_in,
    })
}

/// How long the fleet's jobs take: the mean of those finished (`took`), or, before
/// any did, `poll_interval` (a job is seen finished at the earliest one poll later).
pub(super) fn job_time(took: impl Iterator<Item = Duration>, poll_interval: Duration) -> Duration {
    let (sum, n) = took.fold((Duration::ZERO, 0u32), |(sum, n), t| (sum + t, n + 1));
    sum.checked_div(n).unwrap_or(poll_interval)
}
