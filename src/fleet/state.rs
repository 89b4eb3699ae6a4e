//! Everything a fleet knows, and every decision about it, as plain data: no I/O, no
//! clock (each call takes `now`), no lock (the fleet holds one around it). The rules
//! that keep a stop from going out twice or in the name of a policy that stopped
//! asking live here and only here:
//!
//! - *in flight* is one rule ([`FleetState::in_flight`]): queued in any lane, in a
//!   call under way, in a call whose outcome is unknown until a listing that began
//!   after that became known, or in a job not finished before the listing began;
//! - a *withdrawal* ([`FleetState::withdraw_unwanted`]) removes a policy's claim from
//!   every lane and from the calls under way, so a refused call puts back only what
//!   some policy still wants;
//! - *retry state* is written by [`FleetState::fail_server`] alone.

use super::eta::{self, CallPace, Forecast, QueueStanding};
use super::jobs::{JobView, TrackedJob};
use super::journal::Inherited;
pub use super::lane::Lane;
use super::lane::{Entries, LaneState, Lingering};
use super::{FleetConfig, Gate, PolicyKey};
use crate::ecs::budget::ActionBudget;
use crate::ecs::error::{EcsError, ErrorKind};
use crate::ecs::wire::{Job, JobStatus};
use crate::plan::{
    Backoff, Mode, ObservedPower, PlanInput, PlanOutcome, RetryState, StartInput, StartPlan,
    plan_starts, plan_stops,
};
use crate::policy::JobAction;
use crate::server_id::{IdHasher, IdMap, IdSet, ServerId};
use std::collections::{BTreeSet, HashMap, HashSet};
use tokio::time::Instant;
use unknown_stops::UnknownStops;

mod unknown_stops;

/// The time of a decision, on both clocks: the monotonic one orders events inside the
/// process, the wall clock is what status and retry backoffs show.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub wall: jiff::Timestamp,
}

impl Now {
    pub fn current() -> Self {
        Self {
            at: Instant::now(),
            wall: jiff::Timestamp::now(),
        }
    }

    /// The instant of the monotonic clock that the wall clock shows as `wall`.
    pub fn instant_of(&self, wall: jiff::Timestamp) -> Instant {
        let offset = wall.duration_since(self.wall);
        let magnitude = offset.unsigned_abs();
        if offset.is_negative() {
            self.at.checked_sub(magnitude).unwrap_or(self.at)
        } else {
            self.at + magnitude
        }
    }
}

/// Names one call under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId(u64);

#[derive(Debug)]
struct Call {
    lane: Lane,
    /// Each id with the policies that still want it: a withdrawal removes its policy.
    entries: Entries,
    /// Taken from a half of a refused call: if refused for now, it goes back there.
    half: bool,
    /// When the worker took it, or when the budget covered it if the worker slept
    /// until then: its answer tells how long a call holds the worker.
    held_from: Instant,
}

/// A stop call due now: the worker sends it and hands the answer to
/// [`FleetState::record_call`].
#[derive(Debug)]
pub struct DueCall {
    pub id: CallId,
    pub lane: Lane,
    pub ids: Vec<ServerId>,
    /// Every policy that wants one of its ids.
    pub policies: Vec<PolicyKey>,
}

#[derive(Debug)]
pub enum Due {
    Call(DueCall),
    /// A batch is due, and the budget covers it from then on.
    BudgetAt(Instant),
    Nothing,
}

/// The last error of a stop call that no retry fixes by itself (bad credentials,
/// forbidden project, a request the API refuses whole). Shown on every policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitFailure {
    pub kind: ErrorKind,
    pub message: String,
    pub at: jiff::Timestamp,
}

/// Why a job was given up on: the label of `ecs_power_operator_jobs_lost_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
    /// Still unfinished `--job-deadline` after it was submitted.
    Deadline,
    /// Its poll failed with an error no retry fixes.
    PollFailed,
}

impl LostReason {
    pub const ALL: [LostReason; 2] = [LostReason::Deadline, LostReason::PollFailed];

    pub fn as_str(self) -> &'static str {
        match self {
            LostReason::Deadline => "deadline",
            LostReason::PollFailed => "poll_failed",
        }
    }
}

/// What [`FleetState::expire`] ended.
#[derive(Debug, Default)]
pub struct Expired {
    /// Why each job given up on since the last call was.
    pub lost: Vec<LostReason>,
    /// Finished jobs forgotten before every policy of theirs recorded them.
    pub forgotten: Vec<String>,
}

/// A job the fleet stopped following; its servers are re-observed by the next listing.
#[derive(Debug, Clone)]
pub struct LostJob {
    job: TrackedJob,
    pub reason: LostReason,
    pub detail: String,
    at: (jiff::Timestamp, Instant),
}

impl LostJob {
    pub fn job_id(&self) -> &str {
        &self.job.job_id
    }
}

/// The entries of a call that some policy still wants: those every policy withdrew
/// go nowhere.
fn still_wanted(entries: Entries) -> Entries {
    entries
        .into_iter()
        .filter(|e| !e.policies.is_empty())
        .collect()
}

/// What one sync is about.
#[derive(Debug, Clone, Copy)]
pub struct SyncRequest<'a> {
    pub policy: &'a PolicyKey,
    /// Server ids of the spec, in order.
    pub desired: &'a [ServerId],
    pub mode: Mode,
    pub lane: Lane,
    pub backoff: Backoff,
    /// The policy was deleted while this sync ran: nothing may be queued in its name.
    pub deleted: bool,
    /// Servers the policy stopped, to start again now that its window has ended
    /// (`afterWindow: Start`); empty otherwise. Started only in `Mode::Idle`, and only
    /// those of them it still names.
    pub start: &'a [String],
}

/// What the inventory showed a sync.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub servers: &'a IdMap<ObservedPower>,
    /// When the listing behind it began.
    pub listed_at: Instant,
}

/// One consistent view of the fleet for one policy, taken with its plan.
#[derive(Debug)]
pub struct FleetView {
    pub outcome: PlanOutcome,
    /// Jobs with the policy's servers, newest first, counted over them only.
    pub jobs: Vec<JobView>,
    /// Retry state of the policy's servers that are not stopped.
    pub failing: IdMap<RetryState>,
    /// Jobs of the policy given up on recently.
    pub lost: Vec<LostJob>,
    pub submit_failure: Option<SubmitFailure>,
    /// Why the last call could not be recorded in the project's call journal (so
    /// was not sent), until one is.
    pub journal_failure: Option<String>,
    /// All it waits for is its queued stops: nothing changes for it until they go out.
    pub waiting_for_budget: bool,
    /// The sync queued new ids: the worker has something to look at.
    pub queued: bool,
    /// Its servers that its own stop jobs stopped, and that no later job of it has
    /// started again: what `afterWindow: Start` records.
    pub stopped: Vec<ServerId>,
    /// Of [`SyncRequest::start`]: queued now, or nothing left to start.
    pub starts: StartPlan,
}

/// What the worker must do after recording a call's answer.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Policies whose ids were in the call: their status has news.
    pub policies: BTreeSet<PolicyKey>,
    /// The outcome is unknown: only a new listing tells what happened.
    pub relist: bool,
    /// How long the call held the worker, from its taking it (or from when the
    /// budget covered it, if the worker slept until then) to the answer.
    pub took: std::time::Duration,
}

#[derive(Debug)]
pub struct FleetState {
    config: FleetConfig,
    lanes: HashMap<Lane, LaneState>,
    calls: HashMap<CallId, Call>,
    next_call: u64,
    /// Ids of calls whose answer was lost (or that the gateway may have accepted
    /// before failing, or that an earlier process sent and never saw answered), and
    /// when a listing may settle them: in flight until one that began later shows
    /// them. Not at once: a busy cloud leaves a new job's servers untouched for a
    /// while, and a listing then would show them as if the call had never come.
    unknown: IdMap<Instant>,
    /// Of those, the servers of stop calls, with the policies they were for.
    unknown_stops: UnknownStops,
    jobs: HashMap<String, TrackedJob>,
    lost: Vec<LostJob>,
    /// Why each job given up on since [`Self::expire`] last said so: for the metric.
    newly_lost: Vec<LostReason>,
    retry: IdMap<RetryState>,
    last_submit_failure: Option<SubmitFailure>,
    journal_failure: Option<String>,
    throttled_until: Option<Instant>,
    /// How far apart the recent calls went out, for the forecast.
    pace: CallPace,
    /// When the budget said each lane's next call would fit, as the worker last
    /// asked: it sleeps until then and wakes a little later, and that wake-up holds
    /// the call as much as its round trip does.
    budget_due: HashMap<Lane, Instant>,
    /// The window end each policy began starting early for, as this process saw it
    /// begin: a sync may read a status older than the one that recorded it, and
    /// must not take the policy for one that has not begun (it would stop again
    /// what it started).
    began_starting: HashMap<PolicyKey, jiff::Timestamp>,
    /// Finished jobs, each with the policies that have not written a status since:
    /// the call journal keeps such a job, so that a process killed before those
    /// writes leaves its successor the job (and the servers it stopped) to record.
    unrecorded: HashMap<String, BTreeSet<PolicyKey>>,
    /// Policies with `startLeadTime: Auto` with a window's servers to start: its end,
    /// and the servers they recorded before they began (see [`Self::start_lead`]).
    pending_starts: HashMap<PolicyKey, (jiff::Timestamp, usize)>,
    /// What the project's call journal handed over has been taken in.
    inherited: bool,
}

impl FleetState {
    pub fn new(config: FleetConfig) -> Self {
        Self {
            config,
            lanes: HashMap::new(),
            calls: HashMap::new(),
            next_call: 0,
            unknown: IdMap::default(),
            unknown_stops: UnknownStops::default(),
            jobs: HashMap::new(),
            lost: Vec::new(),
            newly_lost: Vec::new(),
            retry: IdMap::default(),
            last_submit_failure: None,
            journal_failure: None,
            throttled_until: None,
            pace: CallPace::default(),
            budget_due: HashMap::new(),
            pending_starts: HashMap::new(),
            unrecorded: HashMap::new(),
            began_starting: HashMap::new(),
            inherited: false,
        }
    }

    /// The decision of one sync: withdraw what the policy no longer wants, plan
    /// against what is in flight, queue the plan, and report it all from one state.
    pub fn sync(
        &mut self,
        request: &SyncRequest<'_>,
        observed: &Observed<'_>,
        now: Now,
    ) -> FleetView {
        let policy = request.policy;
        let mode = if request.deleted {
            Mode::Suspend
        } else {
            request.mode
        };
        let desired: IdSet = request.desired.iter().cloned().collect();
        let wanted = if mode == Mode::Act {
            desired.clone()
        } else {
            IdSet::default()
        };
        // Never for a suspended, deleted or dry-run policy, nor inside a window.
        let start: Vec<ServerId> = match mode {
            Mode::Idle => request
                .start
                .iter()
                .filter_map(|id| desired.get(id.as_str()).cloned())
                .collect(),
            _ => Vec::new(),
        };
        if start.is_empty() {
            // Its queued starts go too: a window that began again withdraws them.
            self.withdraw_unwanted(policy, Some(request.lane), &wanted);
        } else {
            // Its stops go, in every lane; of its starts, what it still wants started.
            let starting = start.iter().cloned().collect();
            self.withdraw_unwanted(policy, Some(Lane::Start), &starting);
        }
        // A listing that began after an unknown outcome could show has settled it.
        self.unknown
            .retain(|_, settles_at| observed.listed_at <= *settles_at);
        self.unknown_stops
            .settle(observed.servers, observed.listed_at);
        let in_flight = self.in_flight(policy, request.lane, request.desired, observed.listed_at);
        let retries: IdMap<RetryState> = self
            .retry
            .iter()
            .filter(|(id, _)| desired.contains(*id))
            .map(|(id, retry)| (id.clone(), retry.clone()))
            .collect();
        let outcome = plan_stops(&PlanInput {
            desired: request.desired,
            observed: observed.servers,
            in_flight: &in_flight,
            retries: &retries,
            now: now.wall,
            mode,
            backoff: request.backoff,
        });
        let queued = self.enqueue(
            policy,
            request.lane,
            outcome.to_stop.iter().cloned(),
            now.at,
        );
        let starts = self.plan_starts(policy, &start, request.backoff, observed, now);
        let queued_starts =
            self.enqueue(policy, Lane::Start, starts.to_start.iter().cloned(), now.at);
        let failing = retries
            .into_iter()
            .filter(|(id, _)| observed.servers.get(id) != Some(&ObservedPower::Stopped))
            .collect();
        let jobs = self.jobs_of(policy, &desired);
        FleetView {
            stopped: self.stopped_by(policy, &desired),
            starts,
            jobs,
            lost: self
                .lost
                .iter()
                .filter(|lost| lost.job.policies.contains(policy))
                .cloned()
                .collect(),
            waiting_for_budget: self.only_queued(policy, request.lane, request.desired),
            submit_failure: self.last_submit_failure.clone(),
            journal_failure: self.journal_failure.clone(),
            failing,
            outcome,
            queued: queued || queued_starts,
        }
    }

    /// Which of `start` (servers `policy` stopped) to queue for a start now: shut
    /// off, and nothing in flight for them in any lane, so a server never has a stop
    /// and a start under way at once.
    fn plan_starts(
        &self,
        policy: &PolicyKey,
        start: &[ServerId],
        backoff: Backoff,
        observed: &Observed<'_>,
        now: Now,
    ) -> StartPlan {
        if start.is_empty() {
            return StartPlan::default();
        }
        let in_flight = self.in_flight(policy, Lane::Start, start, observed.listed_at);
        let no_ids = IdSet::default();
        let queued = self
            .lanes
            .get(&Lane::Start)
            .and_then(|state| state.queue.queued_ids(policy))
            .unwrap_or(&no_ids);
        plan_starts(&StartInput {
            stopped_by_policy: start,
            observed: observed.servers,
            queued,
            in_flight: &in_flight,
            retries: &self.retry,
            backoff,
            now: now.wall,
        })
    }

    /// The servers of `desired` whose newest job of `policy` is a stop that succeeded
    /// for them, or whose newest call of it is a stop with an unknown outcome that a
    /// listing then showed shut off. A finished stop job stays tracked for its
    /// retention: a start job sent after it hides its servers, so they are not
    /// counted as stopped again.
    fn stopped_by(&self, policy: &PolicyKey, desired: &IdSet) -> Vec<ServerId> {
        let jobs = self
            .jobs
            .values()
            .filter(|job| job.policies.contains(policy))
            .flat_map(|job| {
                job.sub_job_statuses().map(|(id, status)| {
                    let stopped = job.action == JobAction::Stop && status == JobStatus::Success;
                    (id, job.submitted_at, stopped)
                })
            });
        let presumed = self
            .unknown_stops
            .stopped_by(policy)
            .map(|(id, sent_at)| (id, sent_at, true));
        let mut newest: HashMap<&ServerId, (jiff::Timestamp, bool), IdHasher> = HashMap::default();
        for (id, at, stopped) in jobs.chain(presumed) {
            if !desired.contains(id) {
                continue;
            }
            let entry = newest.entry(id).or_insert((at, stopped));
            if at >= entry.0 {
                *entry = (at, stopped);
            }
        }
        let mut stopped: Vec<ServerId> = newest
            .into_iter()
            .filter(|(_, (_, stopped))| *stopped)
            .map(|(id, _)| id.clone())
            .collect();
        stopped.sort_unstable();
        stopped
    }

    /// Which of `ids` must not be planned again for `policy` in `lane`, given a listing
    /// that began at `listed_at`. An id another policy queued in the same lane is
    /// planned again: the queue sends it once and attributes it to both.
    pub fn in_flight(
        &self,
        policy: &PolicyKey,
        lane: Lane,
        ids: &[ServerId],
        listed_at: Instant,
    ) -> IdSet {
        let wanted: HashSet<&str, IdHasher> = ids.iter().map(ServerId::as_str).collect();
        let mut found: IdSet = IdSet::default();
        let mut take = |id: &ServerId| {
            if wanted.contains(id.as_str()) {
                found.insert(id.clone());
            }
        };
        for (l, state) in &self.lanes {
            if *l == lane {
                state
                    .queue
                    .queued_ids(policy)
                    .into_iter()
                    .flatten()
                    .for_each(&mut take);
            } else {
                state.queue.ids().for_each(&mut take);
            }
            state.halves.iter().flatten().for_each(|e| take(&e.id));
        }
        self.calls
            .values()
            .flat_map(|call| &call.entries)
            .for_each(|e| take(&e.id));
        self.unknown
            .iter()
            .filter(|(_, settles_at)| listed_at <= **settles_at)
            .for_each(|(id, _)| take(id));
        self.jobs
            .values()
            .filter(|job| job.in_flight_for(listed_at))
            .flat_map(|job| job.held_ids())
            .for_each(&mut take);
        found
    }

    /// Whether a sync needs no new listing: every one of `ids` is in flight now, so
    /// nothing a listing shows would change its plan. (Judged as of `now`: a job that
    /// has finished, or an unknown outcome, is a reason to list.)
    pub fn all_in_flight(
        &self,
        policy: &PolicyKey,
        lane: Lane,
        ids: &[ServerId],
        now: Instant,
    ) -> bool {
        let distinct: HashSet<&ServerId, IdHasher> = ids.iter().collect();
        !ids.is_empty() && self.in_flight(policy, lane, ids, now).len() == distinct.len()
    }

    /// Whether all `policy` waits for is its queued stops: none of `ids` in a call
    /// under way, an unknown outcome or an unfinished job.
    fn only_queued(&self, policy: &PolicyKey, lane: Lane, ids: &[ServerId]) -> bool {
        let queued = self
            .lanes
            .get(&lane)
            .is_some_and(|state| state.queue.queued(policy) > 0);
        if !queued {
            return false;
        }
        let wanted: HashSet<&str, IdHasher> = ids.iter().map(ServerId::as_str).collect();
        let under_way = self
            .calls
            .values()
            .flat_map(|call| &call.entries)
            .any(|e| wanted.contains(e.id.as_str()))
            || self.lanes.values().any(|state| {
                state
                    .halves
                    .iter()
                    .flatten()
                    .any(|e| wanted.contains(e.id.as_str()))
            })
            || self.unknown.keys().any(|id| wanted.contains(id.as_str()));
        // A job of its own still running: its status has news coming. (Looking at
        // its own jobs only spares a pass over every job's 1000 ids per sync.)
        let in_job = self
            .jobs
            .values()
            .filter(|job| !job.is_finished() && job.policies.contains(policy))
            .flat_map(|job| job.held_ids())
            .any(|id| wanted.contains(id.as_str()));
        !under_way && !in_job
    }

    /// Queues `ids` for `policy`; returns whether the lane grew.
    fn enqueue(
        &mut self,
        policy: &PolicyKey,
        lane: Lane,
        ids: impl IntoIterator<Item = ServerId>,
        now: Instant,
    ) -> bool {
        let state = self.lanes.entry(lane).or_default();
        let before = state.queue.len();
        state.queue.push(policy.clone(), ids);
        let grew = state.queue.len() > before;
        if grew {
            match &mut state.lingering {
                Some(lingering) => lingering.grown_at = now,
                None => state.lingering = Some(Lingering::new(now)),
            }
        }
        if state.is_empty() {
            self.lanes.remove(&lane);
        }
        grew
    }

    /// `policy` left the fleet (deleted, or moved to other credentials or another
    /// project): everything of it is withdrawn, and its recorded starts no longer
    /// count in the other policies' leads. Whether it began starting is kept until
    /// the window's end, should it come back.
    pub fn left(&mut self, policy: &PolicyKey) {
        self.withdraw_unwanted(policy, None, &IdSet::default());
        self.pending_starts.remove(policy);
    }

    /// Drops every claim of `policy` on ids outside `wanted`: in `lane` (every lane
    /// when `None`) whatever it does not want, in other lanes everything, and its name
    /// from the calls under way and the halves waiting to be sent, so that nothing
    /// refused later goes back in its name. The one way a stop is withdrawn.
    pub fn withdraw_unwanted(&mut self, policy: &PolicyKey, lane: Option<Lane>, wanted: &IdSet) {
        let none = IdSet::default();
        let mut withdrawn = 0;
        for (l, state) in &mut self.lanes {
            let keep = if lane.is_none_or(|lane| lane == *l) {
                wanted
            } else {
                &none
            };
            withdrawn += state.queue.keep_only(policy, keep);
            for half in &mut state.halves {
                for entry in half.iter_mut().filter(|e| !keep.contains(&e.id)) {
                    entry.policies.retain(|p| p != policy);
                }
                half.retain(|e| !e.policies.is_empty());
            }
            state.halves.retain(|half| !half.is_empty());
            if state.queue.is_empty() {
                state.lingering = None;
            }
        }
        self.lanes.retain(|_, state| !state.is_empty());
        for call in self.calls.values_mut() {
            let keep = if lane.is_none_or(|lane| lane == call.lane) {
                wanted
            } else {
                &none
            };
            for entry in call.entries.iter_mut().filter(|e| !keep.contains(&e.id)) {
                entry.policies.retain(|p| p != policy);
            }
        }
        if withdrawn > 0 {
            tracing::info!(%policy, withdrawn, "queued stops withdrawn");
        }
    }

    /// The next call of `lane` that is due: a half of a refused call first, then a
    /// batch from the queue when it is full or has lingered long enough, and only
    /// once `budget` covers all of it (the budget counts servers, not calls, so
    /// waiting for a full one beats splitting a call).
    ///
    /// Nothing goes while the first round runs (`gate` closed): the budget and jobs
    /// carried over in the statuses of policies not planned yet must be known first.
    pub fn take_due(&mut self, lane: Lane, gate: Gate, budget: &ActionBudget, now: Instant) -> Due {
        // Only the worker's last answer for the lane counts: any other it had since
        // (nothing due, a call) ends that wait.
        let held_from = self
            .budget_due
            .remove(&lane)
            .map_or(now, |due| due.min(now));
        let due = self.due_call(lane, gate, budget, (held_from, now));
        if let Due::BudgetAt(at) = due {
            self.budget_due.insert(lane, at);
        }
        due
    }

    /// What [`Self::take_due`] decides; a call taken counts as holding the worker
    /// from `held_from` (when the budget covered it, if the worker waited for that).
    fn due_call(
        &mut self,
        lane: Lane,
        gate: Gate,
        budget: &ActionBudget,
        (held_from, now): (Instant, Instant),
    ) -> Due {
        if self.throttled_until.is_some_and(|until| until > now) || gate == Gate::Closed {
            return Due::Nothing;
        }
        let Some(state) = self.lanes.get_mut(&lane) else {
            return Due::Nothing;
        };
        if let Some(half) = state.halves.front() {
            let fits_at = budget.fits_at(half.len(), now);
            if fits_at > now {
                return Due::BudgetAt(fits_at);
            }
            let entries = state.halves.pop_front().expect("a front half");
            return Due::Call(self.start_call(lane, entries, true, (held_from, now)));
        }
        let queued = state.queue.distinct_len();
        if queued == 0 {
            return Due::Nothing;
        }
        // A budget smaller than a full call (`--budget-servers` below 1000) makes
        // smaller full calls: a batch the budget can never cover would wait forever.
        let full = self
            .config
            .max_per_call
            .min(budget.limits().servers_per_window);
        let wanted = queued.min(full);
        let lingered = state
            .lingering
            .is_some_and(|l| l.partial_batch_due(now, self.config.linger, gate));
        if wanted < full && !lingered {
            return Due::Nothing;
        }
        let fits_at = budget.fits_at(wanted, now);
        if fits_at > now {
            return Due::BudgetAt(fits_at);
        }
        let batch = state.queue.take_batch(wanted);
        state.lingering = (!state.queue.is_empty()).then(|| Lingering::new(now));
        if state.is_empty() {
            self.lanes.remove(&lane);
        }
        Due::Call(self.start_call(lane, batch.entries, false, (held_from, now)))
    }

    fn start_call(
        &mut self,
        lane: Lane,
        entries: Entries,
        half: bool,
        (held_from, now): (Instant, Instant),
    ) -> DueCall {
        let still_queued = self.lanes.values().any(|lane| !lane.is_empty());
        self.pace.sent(now, still_queued);
        let id = CallId(self.next_call);
        self.next_call += 1;
        let ids = entries.iter().map(|e| e.id.clone()).collect();
        let policies: BTreeSet<PolicyKey> = entries
            .iter()
            .flat_map(|e| e.policies.iter().cloned())
            .collect();
        self.calls.insert(
            id,
            Call {
                lane,
                entries,
                half,
                held_from,
            },
        );
        DueCall {
            id,
            lane,
            ids,
            policies: policies.into_iter().collect(),
        }
    }

    /// A sync queued what it planned `took` after it began: the `Auto` lead counts
    /// on the sync that begins starting taking as long.
    pub fn queued_after(&mut self, took: std::time::Duration) {
        self.pace.queued_after(took);
    }

    /// Whether the last call's journal record was written: `Err` says why not, for
    /// every policy's status until a record is.
    pub fn journal_written(&mut self, written: Result<(), String>) {
        self.journal_failure = written.err();
    }

    /// A call that could not be sent (its journal record was not written): what is
    /// still wanted goes back first in line, after the back-off.
    pub fn not_sent(&mut self, id: CallId, now: Instant) {
        if let Some(call) = self.calls.remove(&id) {
            self.put_back(call, now);
        }
    }

    /// Puts what is still wanted of a call that did not go out back in front of its
    /// lane, and holds the fleet's calls for the back-off.
    fn put_back(&mut self, call: Call, now: Instant) {
        self.throttled_until = Some(now + self.config.throttle_backoff);
        let wanted = still_wanted(call.entries);
        let state = self.lanes.entry(call.lane).or_default();
        if call.half {
            if !wanted.is_empty() {
                state.halves.push_front(wanted);
            }
        } else {
            let mut by_policy: Vec<(PolicyKey, Vec<ServerId>)> = Vec::new();
            for entry in wanted {
                for policy in entry.policies {
                    match by_policy.iter_mut().find(|(p, _)| *p == policy) {
                        Some((_, ids)) => ids.push(entry.id.clone()),
                        None => by_policy.push((policy, vec![entry.id.clone()])),
                    }
                }
            }
            // Put back in reverse turn order: each goes to the front.
            for (policy, ids) in by_policy.into_iter().rev() {
                state.queue.put_back(policy, ids);
            }
            if state.lingering.is_none() && !state.queue.is_empty() {
                state.lingering = Some(Lingering::new(now));
            }
        }
        if state.is_empty() {
            self.lanes.remove(&call.lane);
        }
    }

    /// Takes in a stop call's answer: a job to follow, or what its error means for
    /// its servers.
    pub fn record_call(
        &mut self,
        id: CallId,
        answer: Result<&str, &EcsError>,
        now: Now,
    ) -> Recorded {
        let Some(call) = self.calls.remove(&id) else {
            return Recorded::default();
        };
        let took = now.at.saturating_duration_since(call.held_from);
        self.pace.answered(took);
        let policies: BTreeSet<PolicyKey> = call
            .entries
            .iter()
            .flat_map(|e| e.policies.iter().cloned())
            .collect();
        let mut recorded = Recorded {
            policies: policies.clone(),
            relist: false,
            took,
        };
        let error = match answer {
            Ok(job_id) => {
                self.last_submit_failure = None;
                let ids = call.entries.into_iter().map(|e| e.id).collect();
                self.jobs.insert(
                    job_id.to_owned(),
                    TrackedJob::submitted(
                        job_id.to_owned(),
                        ids,
                        policies,
                        call.lane.job_action(),
                        now.wall,
                    ),
                );
                return recorded;
            }
            Err(error) => error,
        };
        // Ids every policy withdrew meanwhile go nowhere but unknown outcomes.
        let wanted_count = call
            .entries
            .iter()
            .filter(|e| !e.policies.is_empty())
            .count();
        match error.kind() {
            // Not accepted: what is still wanted goes back, first in line.
            ErrorKind::Throttled | ErrorKind::Transient => self.put_back(call, now.at),
            // Maybe accepted: never re-sent blindly; a later listing decides.
            ErrorKind::OutcomeUnknown => {
                let settles_at = now.at + self.config.unknown_outcome_settle;
                let action = call.lane.job_action();
                for entry in call.entries {
                    let stop = (entry.policies, now.wall);
                    self.hold_unknown(entry.id, action, stop, settles_at);
                }
                recorded.relist = true;
            }
            // Refused because of some of its servers (locked, in the wrong state,
            // gone), without saying which: each half goes on its own, down to the
            // single servers at fault, as AWS Instance Scheduler does.
            ErrorKind::Invalid | ErrorKind::NotFound if wanted_count > 1 => {
                let mut first = still_wanted(call.entries);
                let second = first.split_off(first.len() / 2);
                let state = self.lanes.entry(call.lane).or_default();
                state.halves.push_front(second);
                state.halves.push_front(first);
            }
            ErrorKind::Invalid | ErrorKind::NotFound => {
                for entry in &call.entries {
                    self.fail_server(&entry.id, error, now.wall);
                }
            }
            ErrorKind::Auth | ErrorKind::Config | ErrorKind::Refused => {
                for entry in &call.entries {
                    self.fail_server(&entry.id, error, now.wall);
                }
                self.last_submit_failure = Some(SubmitFailure {
                    kind: error.kind(),
                    message: error.to_string(),
                    at: now.wall,
                });
            }
        }
        recorded
    }

    /// The one writer of retry state for a failed attempt.
    fn fail_server(&mut self, id: &str, error: &EcsError, at: jiff::Timestamp) {
        let code = error
            .failure()
            .and_then(|f| f.code.clone())
            .unwrap_or_else(|| error.kind().as_str().to_owned());
        self.fail_server_with(id, code, error.to_string(), at);
    }

    fn fail_server_with(&mut self, id: &str, code: String, message: String, at: jiff::Timestamp) {
        let attempts = self.retry.get(id).map_or(0, |r| r.attempts) + 1;
        self.retry.insert(
            id.into(),
            RetryState {
                attempts,
                last_failure_at: at,
                code,
                message,
            },
        );
    }

    /// Follow jobs a policy's status lists as unfinished (after a restart), so their
    /// servers are not stopped twice; jobs given up on are not followed again. Until
    /// a job's sub-jobs name its servers, it holds every one of `desired` (the
    /// policy's servers: any could be in it).
    pub fn adopt(
        &mut self,
        policy: &PolicyKey,
        jobs: impl IntoIterator<Item = (String, jiff::Timestamp, JobAction)>,
        desired: &[ServerId],
    ) {
        for (job_id, submitted_at, action) in jobs {
            if self.lost.iter().any(|lost| lost.job.job_id == job_id) {
                continue;
            }
            let job = self
                .jobs
                .entry(job_id.clone())
                .or_insert_with(|| TrackedJob::adopted(job_id, submitted_at, action));
            if job.policies.insert(policy.clone()) {
                job.may_hold(desired);
            }
        }
    }

    /// Whether what the project's call journal handed over is taken in.
    pub fn has_inherited(&self) -> bool {
        self.inherited
    }

    /// Takes in what the processes before this one left in the project's call
    /// journal, once: their jobs still running, followed with exactly the servers they
    /// carried, and the calls whose outcome nobody knows, held until a listing may
    /// show them.
    pub fn inherit(&mut self, inherited: &Inherited, now: Now) {
        if std::mem::replace(&mut self.inherited, true) {
            return;
        }
        for job in &inherited.jobs {
            self.jobs
                .entry(job.job_id.clone())
                .or_insert_with(|| TrackedJob::inherited(job));
        }
        let settles_at = now.at + self.config.unknown_outcome_settle;
        for call in &inherited.unknown {
            for id in &call.ids {
                let stop = (call.policies.clone(), call.sent_at);
                self.hold_unknown(id.into(), call.action, stop, settles_at);
            }
        }
    }

    /// Holds `id`, of an `action` call whose outcome nobody knows, in flight until
    /// `settles_at`; of a stop call, also remembered for the policies it was sent
    /// for, at the time it was sent (`stop`), in case it stopped the server.
    fn hold_unknown(
        &mut self,
        id: ServerId,
        action: JobAction,
        (policies, sent_at): (Vec<PolicyKey>, jiff::Timestamp),
        settles_at: Instant,
    ) {
        if action == JobAction::Stop {
            self.unknown_stops
                .add(id.clone(), policies, sent_at, settles_at);
        }
        self.unknown.insert(id, settles_at);
    }

    /// Unfinished jobs, to poll.
    pub fn unfinished_jobs(&self) -> impl Iterator<Item = &TrackedJob> {
        self.jobs.values().filter(|job| !job.is_finished())
    }

    /// Whether job `job_id` is followed and not finished.
    pub fn is_unfinished(&self, job_id: &str) -> bool {
        self.jobs.get(job_id).is_some_and(|job| !job.is_finished())
    }

    /// Takes in a job poll's answer; returns what a finished job did, and to which
    /// servers it did it.
    /// A poll that failed for good gives the job up (see [`Self::lose`]); one that
    /// may work next time leaves it for the next poll (or the deadline).
    pub fn record_poll(
        &mut self,
        job_id: &str,
        answer: Result<Job, EcsError>,
        now: Now,
    ) -> Option<(JobAction, Vec<ServerId>)> {
        let job = match answer {
            Ok(job) => job,
            Err(error) if error.is_retryable() || error.kind() == ErrorKind::OutcomeUnknown => {
                return None;
            }
            Err(error) => {
                self.lose(job_id, LostReason::PollFailed, error.to_string(), now);
                return None;
            }
        };
        let tracked = self.jobs.get_mut(job_id)?;
        let action = tracked.action;
        let outcome = tracked.update(job, now)?;
        if !tracked.policies.is_empty() {
            self.unrecorded
                .insert(job_id.to_owned(), tracked.policies.clone());
        }
        for server in &outcome.succeeded {
            self.retry.remove(server);
        }
        for (server, code, message) in outcome.failed {
            self.fail_server_with(&server, code, message, now.wall);
        }
        Some((action, outcome.succeeded))
    }

    /// Gives up on a job: its servers count as an unknown outcome from now, so only a
    /// listing that begins later decides about them, and its policies are told.
    fn lose(&mut self, job_id: &str, reason: LostReason, detail: String, now: Now) {
        let Some(job) = self.jobs.remove(job_id) else {
            return;
        };
        tracing::warn!(%job_id, reason = reason.as_str(), %detail, "stop job given up on");
        for id in job.held_ids() {
            self.unknown.insert(id.clone(), now.at);
        }
        self.newly_lost.push(reason);
        self.lost.push(LostJob {
            job,
            reason,
            detail,
            at: (now.wall, now.at),
        });
    }

    /// `policy` began starting early for the window that ends at `until`.
    /// Returns, the first time for that end, the other policies with `Auto` starts
    /// pending for a window that ends no earlier and that have not begun: a lead one
    /// of them worked out before this policy's starts counted is short, and synced
    /// now it counts them (and, sharing the end, begins too, its starts filling the
    /// same calls).
    pub fn began_starting(&mut self, policy: &PolicyKey, until: jiff::Timestamp) -> Vec<PolicyKey> {
        if self.began_starting.insert(policy.clone(), until) == Some(until) {
            return Vec::new();
        }
        self.pending_starts
            .iter()
            .filter(|(other, (end, _))| {
                *other != policy && *end >= until && self.began_starting.get(*other) != Some(end)
            })
            .map(|(other, _)| other.clone())
            .collect()
    }

    /// The window end `policy` began starting early for, while that end is ahead.
    pub fn starting_until(
        &mut self,
        policy: &PolicyKey,
        now: jiff::Timestamp,
    ) -> Option<jiff::Timestamp> {
        self.began_starting.retain(|_, until| *until > now);
        self.began_starting.get(policy).copied()
    }

    /// Whether finished job `job_id` waits for a policy's status to record it.
    pub fn awaits_record(&self, job_id: &str) -> bool {
        self.unrecorded.contains_key(job_id)
    }

    /// `policy` wrote a status showing `jobs` at `now`: the finished ones are
    /// recorded for it. Returns the jobs every policy of theirs has now recorded.
    pub fn recorded(&mut self, policy: &PolicyKey, jobs: &[JobView], now: Instant) -> Vec<String> {
        let mut done = Vec::new();
        for job in jobs.iter().filter(|job| job.status.is_terminal()) {
            let Some(waiting) = self.unrecorded.get_mut(&job.job_id) else {
                continue;
            };
            let first_record = waiting.remove(policy);
            let finished_at = self.jobs.get(&job.job_id).and_then(TrackedJob::finished_at);
            if let Some(finished_at) = finished_at.filter(|_| first_record) {
                self.pace
                    .recorded_after(now.saturating_duration_since(finished_at));
            }
            if waiting.is_empty() {
                self.unrecorded.remove(&job.job_id);
                done.push(job.job_id.clone());
            }
        }
        done
    }

    /// Gives up on jobs past the deadline and forgets finished and lost jobs past
    /// their retention (a finished one that some policy never recorded, deleted
    /// meanwhile say, among them).
    pub fn expire(&mut self, now: Now) -> Expired {
        let overdue: Vec<String> = self
            .jobs
            .values()
            .filter(|job| job.past_deadline(self.config.job_deadline, now.wall))
            .map(|job| job.job_id.clone())
            .collect();
        let deadline = self.config.job_deadline;
        for job_id in &overdue {
            let detail = format!(
                "still unfinished {}s after it was submitted",
                deadline.as_secs()
            );
            self.lose(job_id, LostReason::Deadline, detail, now);
        }
        let retention = self.config.finished_job_retention;
        self.jobs
            .retain(|_, job| !job.finished_before(retention, now.at));
        let forgotten: Vec<String> = self
            .unrecorded
            .keys()
            .filter(|job_id| !self.jobs.contains_key(*job_id))
            .cloned()
            .collect();
        for job_id in &forgotten {
            self.unrecorded.remove(job_id);
        }
        self.unknown_stops.expire(retention, now.at);
        self.lost
            .retain(|lost| now.at.saturating_duration_since(lost.at.1) < retention);
        Expired {
            lost: std::mem::take(&mut self.newly_lost),
            forgotten,
        }
    }

    /// The jobs that touch `desired`, newest first, counted over `desired` only; jobs
    /// given up on included, marked so.
    fn jobs_of(&self, policy: &PolicyKey, desired: &IdSet) -> Vec<JobView> {
        let followed = self
            .jobs
            .values()
            .filter(|job| job.policies.contains(policy))
            .filter_map(|job| job.view(desired));
        let lost = self
            .lost
            .iter()
            .filter(|lost| lost.job.policies.contains(policy))
            .filter_map(|lost| {
                lost.job.view(desired).map(|view| JobView {
                    lost: true,
                    completed_at: Some(lost.at.0),
                    ..view
                })
            });
        let mut views: Vec<JobView> = followed.chain(lost).collect();
        views.sort_by_key(|view| std::cmp::Reverse(view.submitted_at));
        views
    }

    /// Where `policy` stands in `lane`'s queue, and when its stops should be done,
    /// given `budget` (see [`eta`]); `None` when none of its servers is queued.
    pub fn queue_standing(
        &self,
        policy: &PolicyKey,
        lane: Lane,
        budget: &ActionBudget,
        now: Now,
    ) -> Option<QueueStanding> {
        let forecast = Forecast {
            lanes: &self.lanes,
            full_call: self
                .config
                .max_per_call
                .min(budget.limits().servers_per_window),
            budget,
            not_before: self.throttled_until,
            job_time: eta::job_time(
                self.jobs.values().filter_map(TrackedJob::took),
                self.config.job_poll_interval,
            ) + self.pace.record_lag(),
            pace: self.pace.pace(),
            call_time: self.pace.recent_times().call_mean,
        };
        eta::standing(&forecast, policy, lane, now)
    }

    /// How long before a window's end `policy` must begin starting `servers` for the
    /// last start call to go out by then, given `budget`, everything else queued in
    /// the project (its own queued starts are among `servers`) and, while `until`
    /// (its window's end) is ahead and it has not begun, the starts of the other
    /// policies of the project whose windows end no later, until their windows end:
    /// policies sharing a window end plan for all of them, so once one begins the
    /// others do too and their calls share the turns (the starts one already sent
    /// still count, the safe side).
    pub fn start_lead(
        &mut self,
        policy: &PolicyKey,
        (servers, until): (usize, Option<jiff::Timestamp>),
        budget: &ActionBudget,
        now: Now,
    ) -> std::time::Duration {
        self.pending_starts.retain(|_, (end, _)| *end > now.wall);
        if let Some(end) = until {
            self.pending_starts.insert(policy.clone(), (end, servers));
        }
        let queued_starts = |p: &PolicyKey| {
            self.lanes
                .get(&Lane::Start)
                .map_or(0, |state| state.queue.queued(p))
        };
        let own = queued_starts(policy);
        let others: usize = match until {
            None => 0,
            Some(until) => self
                .pending_starts
                .iter()
                .filter(|(other, (end, _))| *other != policy && *end <= until)
                .map(|(other, (_, n))| n.saturating_sub(queued_starts(other)))
                .sum(),
        };
        let mut apart = Vec::new();
        let mut starts = others + servers;
        for (lane, state) in &self.lanes {
            apart.extend(state.halves.iter().map(Vec::len));
            match lane {
                Lane::Start => starts += state.queue.distinct_len().saturating_sub(own),
                Lane::SoftStop | Lane::HardStop => apart.push(state.queue.distinct_len()),
            }
        }
        let full_call = self
            .config
            .max_per_call
            .min(budget.limits().servers_per_window);
        eta::start_lead(
            budget,
            full_call,
            (&apart, starts),
            self.pace.recent_times(),
            now.at,
        )
    }

    /// Nothing queued, no stop call under way and no job unfinished: nothing to
    /// finish, so the fleet may be retired.
    pub fn is_idle(&self) -> bool {
        self.lanes.is_empty() && self.calls.is_empty() && self.unfinished_count() == 0
    }

    pub fn unfinished_count(&self) -> usize {
        self.unfinished_jobs().count()
    }
}

#[cfg(test)]
mod tests;
