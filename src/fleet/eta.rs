//! Where a policy stands while its stops wait in the fleet's queue: how many of its
//! servers wait, and when they should all be stopped. Pure: the queue lanes, the
//! budget's ledger and the clock are read, nothing is changed.
//!
//! The forecast replays what the worker will do if nothing joins the queue: lanes in
//! the worker's order (the halves of refused calls first in each), the policy's own
//! lane turn by turn up to the call that carries its last id (see
//! [`StopQueue::calls_until_last`]), each call as soon as the budget covers it, then
//! as long as the fleet's recent jobs took to finish. When the worker has been
//! sending calls further apart than the budget asks (each waits for its journal
//! writes and its answer, and an API server or a cloud under load makes those slow),
//! the forecast spaces the calls ahead at the shortest of their recent gaps instead:
//! load that passes (a listing of the whole fleet, a burst of status writes) slows
//! some calls, not every call ahead, while a pace that lasts slows them all.
//! Until that pace is known, each call ahead also counts the mean time recent calls
//! held the worker (the budget counts a call from its answer). (While status writes
//! were not bounded by the size of their policies, the first calls at 100,000 servers
//! took 0.25–0.9 s each, against about 15 ms later, and first estimates that added
//! the median of those came 25–92 % late; with the bound they took 50–180 ms.)
//! The end is when the policy's status says so: the job's time, then as long as
//! recent finished jobs took to reach their policies' statuses.
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
    /// How long a stop job takes, from its submission until its policy's status
    /// shows it finished (a poll, then a sync that waits for a slot and writes).
    pub job_time: Duration,
    /// When the last call went out, and the shortest gap between recent calls.
    pub pace: Option<(Instant, Duration)>,
    /// How long recent calls held the worker, on average (see [`RecentTimes`]).
    pub call_time: Duration,
}

/// Gaps of this many recent calls make the pace.
const PACE_CALLS: usize = 10;

/// Fewer gaps than this make no pace: the first calls go while the first round's
/// status writes load the API server (at 100,000 servers over 100 policies, 1 s
/// budget window, before status writes were bounded: 0.25–0.9 s each for the first
/// five, about 15 ms from then on), so even the shortest of the first gaps could
/// stretch every call after them.
const PACE_MIN_GAPS: usize = 5;

/// How long the fleet's recent work took, for its forecasts: the gaps between the
/// worker's calls (counted only while ids kept waiting from one call to the next: a
/// gap that began with an empty queue says nothing of the pace), each call's round
/// trip, each sync's way to the queue, each finished job's way to a status.
#[derive(Debug, Default)]
pub(super) struct CallPace {
    last_sent: Option<Instant>,
    /// Whether ids were still queued right after the last call.
    busy: bool,
    gaps: VecDeque<Duration>,
    /// How long recent calls held the worker, from its taking them (or from when the
    /// budget covered them, if it slept until then) to their answer: its wake-up,
    /// the journal record written before each, and the request itself.
    round_trips: VecDeque<Duration>,
    /// How long recent syncs that queued something took to get there (a listing,
    /// mostly).
    syncs: VecDeque<Duration>,
    /// How long after recent jobs finished their policies' statuses recorded them.
    records: VecDeque<Duration>,
}

impl CallPace {
    /// A call went out at `at`; `still_queued`: ids wait for later calls.
    pub(super) fn sent(&mut self, at: Instant, still_queued: bool) {
        if let (Some(last), true) = (self.last_sent, self.busy) {
            push_recent(&mut self.gaps, at.saturating_duration_since(last));
        }
        self.last_sent = Some(at);
        self.busy = still_queued;
    }

    /// A call the worker took was answered (or failed) `took` later.
    pub(super) fn answered(&mut self, took: Duration) {
        push_recent(&mut self.round_trips, took);
    }

    /// A sync queued servers `took` after it began.
    pub(super) fn queued_after(&mut self, took: Duration) {
        push_recent(&mut self.syncs, took);
    }

    /// A policy's status recorded a finished job `took` after it finished.
    pub(super) fn recorded_after(&mut self, took: Duration) {
        push_recent(&mut self.records, took);
    }

    /// How long after recent jobs finished a policy's status showed it, on average;
    /// zero before any did.
    pub(super) fn record_lag(&self) -> Duration {
        mean(&self.records)
    }

    /// How long recent calls held the worker, and syncs took to queue; zero before
    /// any did.
    pub(super) fn recent_times(&self) -> RecentTimes {
        RecentTimes {
            call_mean: mean(&self.round_trips),
            call_longest: self.round_trips.iter().max().copied().unwrap_or_default(),
            sync: mean(&self.syncs),
        }
    }

    /// When the last call went out and the shortest of the recent gaps, once there
    /// are [`PACE_MIN_GAPS`]: calls held up a while (a listing of the whole fleet
    /// loading the machine, slow writes) do not stretch the forecast of all those
    /// after them. (The median did: replayed on the call times of 16 kept runs at
    /// 100,000 servers, with the time from the last call to the last status, the
    /// median's forecast was up to 53 % late and within 10 % for 84–100 % of the
    /// wait; the shortest gap's for 96–100 %, −10.5 % to +7.9 %.)
    pub(super) fn pace(&self) -> Option<(Instant, Duration)> {
        if self.gaps.len() < PACE_MIN_GAPS {
            return None;
        }
        Some((self.last_sent?, self.gaps.iter().min().copied()?))
    }
}

/// How long recent calls held the worker, from its taking each to its answer, and
/// how long recent syncs took from their start to queueing what they planned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RecentTimes {
    pub call_mean: Duration,
    pub call_longest: Duration,
    pub sync: Duration,
}

/// Keeps the last [`PACE_CALLS`].
fn push_recent(recent: &mut VecDeque<Duration>, took: Duration) {
    if recent.len() == PACE_CALLS {
        recent.pop_front();
    }
    recent.push_back(took);
}

fn mean(of: &VecDeque<Duration>) -> Duration {
    let n = u32::try_from(of.len()).unwrap_or(u32::MAX);
    of.iter()
        .sum::<Duration>()
        .checked_div(n)
        .unwrap_or_default()
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
            calls.extend(full_calls(state.queue.distinct_len(), forecast.full_call));
        }
    }
    if let Some(state) = forecast.lanes.get(&lane) {
        calls.extend(state.halves.iter().map(Vec::len));
    }
    calls.extend(own);
    Some(calls)
}

/// `ids` sent in calls of `full_call` ids, the last one partial.
fn full_calls(ids: usize, full_call: usize) -> impl Iterator<Item = usize> {
    (0..ids.div_ceil(full_call)).map(move |i| (ids - i * full_call).min(full_call))
}

/// `startLeadTime: Auto`: how long before a window's end the first of a policy's
/// starts must go out for the last to be sent by the end. First go the ids that
/// make calls of their own: each of `apart` (a stop lane's queue, a half of a
/// refused call; the worker serves the stop lanes first, and counting them all before
/// ours is the safe side), then `starts`, the starts of the policies whose windows
/// end no later than ours with ours last, sharing calls. Each call goes as soon as
/// `budget` covers it from `now` on; what its window already spent counts.
///
/// Each call also holds the worker for a round trip (its wake-up for the budget, its
/// journal record and the request), and the budget counts a call from its answer, so
/// every call shifts the next by that much. What the lead needs is their sum: the
/// mean for each but one, the longest for that one, so one slow call does not make it
/// late. (The longest for all, set by one call the first listings held up for 372 ms,
/// made ten start calls begin 3.3 s early.) Before the first goes, the sync that
/// begins starting takes as long as recent syncs took to queue (a listing, mostly:
/// without it, one policy's last call went 0.15 s after the end). Last,
/// [`START_MARGIN`].
pub(super) fn start_lead(
    budget: &ActionBudget,
    full_call: usize,
    (apart, starts): (&[usize], usize),
    recent: RecentTimes,
    now: Instant,
) -> Duration {
    if starts == 0 {
        return Duration::ZERO;
    }
    let calls: Vec<usize> = apart
        .iter()
        .flat_map(|&ids| full_calls(ids, full_call))
        .chain(full_calls(starts, full_call))
        .collect();
    let by_budget = budget
        .last_fits_at(&calls, now)
        .saturating_duration_since(now);
    let others = u32::try_from(calls.len() - 1).unwrap_or(u32::MAX);
    by_budget
        + recent.call_mean.saturating_mul(others)
        + recent.call_longest
        + recent.sync
        + START_MARGIN
}

/// How much before the window's end the lead aims the last start call. Timers are
/// not exact: the requeue of the sync that begins starting, a sync waiting for its
/// slot, the worker woken for the budget. With all of the above counted, one
/// policy's 10 calls at a 2 s window still went 25–50 ms later than planned on two
/// loaded cores, so its last call went out just after the end.
pub(super) const START_MARGIN: Duration = Duration::from_millis(250);

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
    let ahead = u32::try_from(calls.len()).unwrap_or(u32::MAX);
    let by_budget = forecast.budget.last_fits_at(&calls, start);
    let last_call = match forecast.pace {
        Some((last_sent, gap)) => by_budget.max(last_sent + gap.saturating_mul(ahead)),
        // The budget counts a call from its answer: each call ahead shifts the ones
        // after it by its round trip, as in the start lead.
        None => by_budget + forecast.call_time.saturating_mul(ahead),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::budget::BudgetLimits;

    const MINUTE: Duration = Duration::from_secs(60);

    fn budget() -> ActionBudget {
        ActionBudget::new(BudgetLimits {
            servers_per_window: 1000,
            window: MINUTE,
        })
    }

    /// The lead with calls that answer at once, without the margin.
    fn lead(
        budget: &ActionBudget,
        full_call: usize,
        queue: (&[usize], usize),
        now: Instant,
    ) -> Duration {
        start_lead(budget, full_call, queue, RecentTimes::default(), now)
            .saturating_sub(START_MARGIN)
    }

    #[test]
    fn ten_thousand_starts_at_1000_a_minute_begin_nine_windows_before_the_end() {
        let now = Instant::now();
        assert_eq!(lead(&budget(), 1000, (&[], 10_000), now), 9 * MINUTE);
        assert_eq!(lead(&budget(), 1000, (&[], 1000), now), Duration::ZERO);
        assert_eq!(lead(&budget(), 1000, (&[], 0), now), Duration::ZERO);
        // 1001 servers: two calls, the second a window later.
        assert_eq!(lead(&budget(), 1000, (&[], 1001), now), MINUTE);
    }

    #[test]
    fn the_last_call_is_aimed_a_margin_before_the_end_and_nothing_to_start_needs_no_lead() {
        let now = Instant::now();
        let one_call = start_lead(&budget(), 1000, (&[], 1000), RecentTimes::default(), now);
        assert_eq!(one_call, START_MARGIN);
        let none = start_lead(&budget(), 1000, (&[5000], 0), RecentTimes::default(), now);
        assert_eq!(none, Duration::ZERO);
    }

    #[test]
    fn starts_share_calls_and_what_goes_apart_takes_calls_of_its_own() {
        let now = Instant::now();
        // Two policies' 1485 starts each: 1000, 1000 and 970, not 1000, 485, 1000, 485.
        assert_eq!(lead(&budget(), 1000, (&[], 2970), now), 2 * MINUTE);
        // Stops queued in each stop lane go in calls of their own: 500 and 500 in the
        // first window, then 1000 and 500 starts.
        assert_eq!(lead(&budget(), 1000, (&[500, 500], 1500), now), 2 * MINUTE);
        // 500 stops, then 700 (or a half of 700) that no longer fit the first window.
        assert_eq!(lead(&budget(), 1000, (&[500, 700], 1500), now), 3 * MINUTE);
        // Nothing of ours to start: no lead, whatever is queued.
        assert_eq!(lead(&budget(), 1000, (&[5000], 0), now), Duration::ZERO);
    }

    #[test]
    fn each_call_adds_the_time_a_call_holds_the_worker() {
        let now = Instant::now();
        let trips = RecentTimes {
            call_mean: Duration::from_millis(50),
            call_longest: Duration::from_millis(400),
            sync: Duration::from_millis(200),
        };
        // Ten calls: each answer shifts the next, one of them may take the longest,
        // and the sync that queues them comes first.
        assert_eq!(
            start_lead(&budget(), 1000, (&[], 10_000), trips, now),
            9 * MINUTE + 9 * trips.call_mean + trips.call_longest + trips.sync + START_MARGIN
        );
        assert_eq!(
            start_lead(&budget(), 1000, (&[], 0), trips, now),
            Duration::ZERO
        );
    }

    #[test]
    fn recent_times_are_the_mean_and_the_longest_of_the_recent_answers_and_the_mean_sync() {
        let mut pace = CallPace::default();
        assert_eq!(
            pace.recent_times(),
            RecentTimes::default(),
            "none answered yet"
        );
        for ms in [100, 300, 200] {
            pace.answered(Duration::from_millis(ms));
        }
        pace.queued_after(Duration::from_millis(120));
        let trips = pace.recent_times();
        assert_eq!(trips.call_mean, Duration::from_millis(200));
        assert_eq!(trips.call_longest, Duration::from_millis(300));
        assert_eq!(trips.sync, Duration::from_millis(120));
        // Only the last PACE_CALLS count.
        for _ in 0..PACE_CALLS {
            pace.answered(Duration::from_millis(50));
        }
        assert_eq!(pace.recent_times().call_longest, Duration::from_millis(50));
    }

    #[test]
    fn one_slow_call_does_not_set_the_pace() {
        let mut pace = CallPace::default();
        assert_eq!(pace.pace(), None, "no call yet");
        let t0 = Instant::now();
        let sent_at = [0, 1000, 2000, 7000, 8000];
        for ms in sent_at {
            pace.sent(t0 + Duration::from_millis(ms), true);
        }
        assert_eq!(pace.pace(), None, "four gaps are not a pace yet");
        pace.sent(t0 + Duration::from_millis(9000), true);
        let last = t0 + Duration::from_millis(9000);
        assert_eq!(pace.pace(), Some((last, Duration::from_secs(1))));
        // A gap that began with nothing queued says nothing of the pace.
        pace.sent(last + Duration::from_secs(1), false);
        pace.sent(last + Duration::from_secs(60), true);
        assert_eq!(
            pace.pace(),
            Some((last + Duration::from_secs(60), Duration::from_secs(1)))
        );
    }

    #[test]
    fn calls_held_up_a_while_do_not_set_the_pace() {
        let mut pace = CallPace::default();
        let t0 = Instant::now();
        // Gaps of 1.3, 1.2, 1.4, 1.1 and 1.25 s (a loaded API server), then of 1 s.
        let mut at = t0;
        pace.sent(at, true);
        for ms in [1300, 1200, 1400, 1100, 1250] {
            at += Duration::from_millis(ms);
            pace.sent(at, true);
        }
        assert_eq!(pace.pace(), Some((at, Duration::from_millis(1100))));
        for _ in 0..3 {
            at += Duration::from_secs(1);
            pace.sent(at, true);
        }
        assert_eq!(pace.pace(), Some((at, Duration::from_secs(1))));
    }

    #[test]
    fn what_else_is_queued_and_what_the_window_spent_make_it_earlier() {
        let now = Instant::now();
        // 3000 stops queued ahead: three more windows.
        assert_eq!(lead(&budget(), 1000, (&[3000], 10_000), now), 12 * MINUTE);
        // The window spent 1000 half a minute ago: the first call waits 30 s more.
        let spent = budget();
        assert!(spent.try_take_at(1000, now));
        let later = now + MINUTE / 2;
        assert_eq!(
            lead(&spent, 1000, (&[], 10_000), later),
            MINUTE / 2 + 9 * MINUTE
        );
        // A budget smaller than a call makes smaller calls.
        let small = ActionBudget::new(BudgetLimits {
            servers_per_window: 100,
            window: MINUTE,
        });
        assert_eq!(lead(&small, 100, (&[], 1000), now), 9 * MINUTE);
    }
}
