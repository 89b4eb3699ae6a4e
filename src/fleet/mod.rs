//! One fleet per (endpoint, project, credentials): the state every policy of that
//! project shares.
//!
//! - one server inventory, refreshed by a single paginated listing however many
//!   policies ask for it within its maximum age;
//! - one stop queue that coalesces the stops of all policies into calls of up to
//!   1000 ids under the project's per-minute budget, fairly across policies;
//! - the stop jobs in flight, polled once per interval, and the per-server retry
//!   state that failed sub-jobs leave behind.
//!
//! Reconcilers observe and enqueue; only the fleet's worker calls the stop API.

#[cfg(test)]
mod fake_listings;
mod first_round;
mod inventory;
mod jobs;
mod registry;
mod worker;

use first_round::{FirstRound, Gate};
pub use jobs::{JobView, TrackedJob};
pub use registry::{CloudTarget, Connector, FleetRegistry};

use crate::ecs::budget::ActionBudget;
use crate::ecs::client::EcsApi;
use crate::ecs::error::EcsError;
use crate::ecs::wire::PowerActionType;
use crate::metrics::Metrics;
use crate::plan::{ObservedPower, RetryState, StopQueue};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// `namespace/name` of a policy.
pub type PolicyKey = String;

#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Most ids in one stop call.
    pub max_per_call: usize,
    /// How long a partial batch waits for other policies' ids to join it.
    pub linger: Duration,
    /// Jobs in flight are polled at most this often.
    pub job_poll_interval: Duration,
    /// After a stop whose answer was lost, its servers count as in flight this long,
    /// so that a fresh observation decides, not a blind re-send.
    pub outcome_unknown_grace: Duration,
    /// Back-off after the API throttled a stop call.
    pub throttle_backoff: Duration,
    /// How long a finished job is still shown to policies' syncs (their status keeps
    /// it as history after that).
    pub finished_job_retention: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            max_per_call: crate::ecs::wire::MAX_SERVERS_PER_ACTION,
            linger: Duration::from_millis(500),
            job_poll_interval: Duration::from_secs(1),
            outcome_unknown_grace: Duration::from_secs(30),
            throttle_backoff: Duration::from_secs(2),
            finished_job_retention: Duration::from_secs(600),
        }
    }
}

/// The last error the worker met on a stop call that no retry can fix by itself
/// (bad credentials, forbidden project, invalid request). Shown on every policy.
#[derive(Debug, Clone)]
pub struct SubmitFailure {
    pub kind: &'static str,
    pub message: String,
    pub at: jiff::Timestamp,
}

/// When a queue's oldest waiting id arrived, and when the queue last grew.
#[derive(Debug, Clone, Copy)]
struct Lingering {
    since: Instant,
    grown_at: Instant,
}

/// Jobs are polled at most this often when a listing suggests one has finished.
const EARLY_JOB_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A partial batch waits this many lingers at most, even while the queue keeps growing.
const MAX_LINGERS: u32 = 10;

impl Lingering {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            grown_at: now,
        }
    }

    /// A partial batch goes once nobody is about to add to it: not during the first
    /// round; at its end if the queue has not grown since (every policy has been
    /// planned); after that once the queue has not grown for `linger` (the syncs that
    /// were adding to it are done), or after `MAX_LINGERS` lingers in any case.
    fn partial_batch_due(&self, now: Instant, linger: Duration, gate: Gate) -> bool {
        let Gate::Open { round_ended_at } = gate else {
            return false;
        };
        round_ended_at.is_some_and(|end| end >= self.grown_at)
            || now.duration_since(self.grown_at) >= linger
            || now.duration_since(self.since) >= linger * MAX_LINGERS
    }
}

#[derive(Default)]
struct FleetState {
    queues: HashMap<PowerActionType, StopQueue<PolicyKey>>,
    /// For the linger rule of each queue that holds ids.
    lingering: HashMap<PowerActionType, Lingering>,
    jobs: HashMap<String, TrackedJob>,
    retry: HashMap<String, RetryState>,
    /// Ids whose stop call got no answer, and until when they count as in flight.
    outcome_unknown: HashMap<String, Instant>,
    /// Ids taken from the queue for a stop call whose answer has not come yet: neither
    /// queued nor in a tracked job, but in flight all the same.
    submitting: HashSet<String>,
    last_submit_failure: Option<SubmitFailure>,
    throttled_until: Option<Instant>,
}

/// What a sync needs to plan one policy.
#[derive(Debug)]
pub struct PolicyObservation {
    /// The policy's servers that exist, and their power state.
    pub servers: HashMap<String, ObservedPower>,
    /// The policy's servers that must not be planned again now: queued by it, in a stop
    /// call under way, in an unfinished job, in a job that finished after the listing
    /// began, or whose stop call got no answer recently.
    pub in_flight: HashSet<String>,
}

pub struct Fleet {
    api: Arc<dyn EcsApi>,
    budget: Arc<ActionBudget>,
    config: FleetConfig,
    metrics: Arc<Metrics>,
    state: Mutex<FleetState>,
    inventory: inventory::InventoryCache,
    job_poll: tokio::sync::Mutex<Option<Instant>>,
    /// Shared by every fleet: partial batches wait for the controller's first round.
    first_round: Arc<FirstRound>,
    /// Policies whose ids just went out in a stop call, for the controller to sync.
    submitted: UnboundedSender<PolicyKey>,
    wake: Notify,
    shutdown: CancellationToken,
}

impl Fleet {
    /// Starts the fleet's stop worker; it runs until `shutdown` is cancelled.
    pub fn start(
        api: Arc<dyn EcsApi>,
        budget: Arc<ActionBudget>,
        config: FleetConfig,
        metrics: Arc<Metrics>,
        first_round: Arc<FirstRound>,
        submitted: UnboundedSender<PolicyKey>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let fleet = Arc::new(Self {
            api,
            budget,
            config,
            metrics,
            state: Mutex::default(),
            inventory: inventory::InventoryCache::default(),
            job_poll: tokio::sync::Mutex::new(None),
            first_round,
            submitted,
            wake: Notify::new(),
            shutdown,
        });
        tokio::spawn(worker::run(Arc::clone(&fleet)));
        fleet
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FleetState> {
        self.state.lock().expect("fleet state lock poisoned")
    }

    /// The policy's servers as the cloud reports them, from a listing no older than
    /// `max_age` (or, if this policy has not planned with it yet, one from the same
    /// sync round; or any, if all of them are queued or under way) with every job
    /// result seen since folded in; jobs are polled first.
    pub async fn observe(
        &self,
        policy: &str,
        desired: &[String],
        max_age: Duration,
    ) -> Result<PolicyObservation, EcsError> {
        self.refresh_jobs(self.config.job_poll_interval).await?;
        // Everything the policy wants is queued or under way (waiting for budget, at
        // 100,000 servers for 100 minutes): a new listing changes nothing it would
        // plan, and its jobs' results reach the inventory without one. Listing for
        // such syncs kept a 100-page listing going every few seconds for as long as
        // the budget made everyone wait.
        // (Judged as of now: a job that has finished is no reason to skip a listing.)
        if self.inventory.is_usable() && !desired.is_empty() {
            let waiting = self.in_flight_among(policy, desired, Instant::now());
            if waiting.len() == desired.len() {
                let observation = self.inventory.observe(policy, desired);
                return Ok(PolicyObservation {
                    servers: observation.servers,
                    in_flight: waiting,
                });
            }
        }
        self.inventory
            .refresh(self.api.as_ref(), policy, max_age)
            .await?;
        // A listing newer than the last poll may already show a job's servers stopped:
        // poll now, or the status would say Stopped beside a job still RUNNING.
        if self.unfinished_job_looks_done() {
            self.refresh_jobs(EARLY_JOB_POLL_INTERVAL).await?;
        }
        let observation = self.inventory.observe(policy, desired);
        Ok(PolicyObservation {
            in_flight: self.in_flight_among(policy, desired, observation.fetched_at),
            servers: observation.servers,
        })
    }

    /// Track jobs that a policy's status lists as in flight (after an operator
    /// restart), so they are polled and their servers are not stopped twice.
    pub fn adopt_jobs(
        &self,
        policy: &str,
        jobs: impl IntoIterator<Item = (String, jiff::Timestamp)>,
    ) {
        let mut state = self.lock();
        for (job_id, submitted_at) in jobs {
            state
                .jobs
                .entry(job_id.clone())
                .or_insert_with(|| TrackedJob::adopted(job_id, submitted_at))
                .policies
                .insert(policy.to_owned());
        }
    }

    /// Poll every unfinished job, at most once per `job_poll_interval` however many
    /// reconciles ask. Finished jobs update retry state and the inventory, and are
    /// forgotten `finished_job_retention` later.
    async fn refresh_jobs(&self, interval: Duration) -> Result<(), EcsError> {
        let mut last_poll = self.job_poll.lock().await;
        if last_poll.is_some_and(|at| at.elapsed() < interval) {
            return Ok(());
        }
        let pending: Vec<String> = self
            .lock()
            .jobs
            .values()
            .filter(|job| !job.is_finished())
            .map(|job| job.job_id.clone())
            .collect();
        for job_id in pending {
            let job = self.api.get_job(&job_id).await?;
            let succeeded = {
                let mut state = self.lock();
                let now = jiff::Timestamp::now();
                let state = &mut *state;
                let tracked = state.jobs.get_mut(&job_id).expect("pending job is tracked");
                let outcome = tracked.update(job, now);
                for server in &outcome.succeeded {
                    state.retry.remove(server);
                }
                for (server, code, message) in &outcome.failed {
                    let previous = state.retry.get(server).map_or(0, |r| r.attempts);
                    state.retry.insert(
                        server.clone(),
                        RetryState {
                            attempts: previous + 1,
                            last_failure_at: now,
                            code: code.clone(),
                            message: message.clone(),
                        },
                    );
                }
                self.metrics
                    .servers_stopped
                    .inc_by(outcome.succeeded.len() as u64);
                outcome.succeeded
            };
            self.inventory.confirm(&succeeded, ObservedPower::Stopped);
        }
        let retention = self.config.finished_job_retention;
        let unfinished = {
            let mut state = self.lock();
            state.jobs.retain(|_, job| !job.finished_before(retention));
            state.jobs.values().filter(|j| !j.is_finished()).count()
        };
        self.metrics.jobs_in_flight.set(unfinished as i64);
        *last_poll = Some(Instant::now());
        Ok(())
    }

    /// Whether the inventory shows every server of some unfinished job stopped.
    fn unfinished_job_looks_done(&self) -> bool {
        let state = self.lock();
        state
            .jobs
            .values()
            .filter(|job| !job.is_finished())
            .any(|job| self.inventory.all_stopped(job.server_ids()))
    }

    /// Which of `desired` must not be planned again now (see [`PolicyObservation`]).
    /// An id queued by another policy only is planned again: the queue sends it once
    /// and attributes it to both.
    fn in_flight_among(
        &self,
        policy: &str,
        desired: &[String],
        observed_at: Instant,
    ) -> HashSet<String> {
        let state = self.lock();
        let now = Instant::now();
        let policy = policy.to_owned();
        let queued: Vec<&HashSet<String>> = state
            .queues
            .values()
            .filter_map(|queue| queue.queued_ids(&policy))
            .collect();
        let wanted: HashSet<&str> = desired.iter().map(String::as_str).collect();
        let mut ids: HashSet<String> = desired
            .iter()
            .filter(|id| {
                queued.iter().any(|set| set.contains(*id))
                    || state.submitting.contains(*id)
                    || state
                        .outcome_unknown
                        .get(*id)
                        .is_some_and(|until| *until > now)
            })
            .cloned()
            .collect();
        for job in state
            .jobs
            .values()
            .filter(|job| job.in_flight_for(observed_at))
        {
            ids.extend(
                job.server_ids()
                    .filter(|id| wanted.contains(id.as_str()))
                    .cloned(),
            );
        }
        ids
    }

    pub fn retry_states(&self, ids: &HashSet<String>) -> HashMap<String, RetryState> {
        self.lock()
            .retry
            .iter()
            .filter(|(id, _)| ids.contains(*id))
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect()
    }

    pub fn enqueue(&self, policy: &str, ids: Vec<String>, stop_type: PowerActionType) {
        if ids.is_empty() {
            return;
        }
        let now = Instant::now();
        let grew = {
            let mut state = self.lock();
            let queue = state.queues.entry(stop_type).or_default();
            let before = queue.len();
            queue.push(policy.to_owned(), ids);
            let grew = queue.len() > before;
            if grew {
                state
                    .lingering
                    .entry(stop_type)
                    .and_modify(|l| l.grown_at = now)
                    .or_insert_with(|| Lingering::new(now));
            }
            grew
        };
        if grew {
            self.wake.notify_one();
        }
    }

    /// Drops the ids `policy` queued but no longer wants (deleted, suspended, a server
    /// left its list): nothing is stopped on behalf of a policy that no longer asks.
    pub fn withdraw(&self, policy: &str, wanted: &HashSet<String>) {
        let policy = policy.to_owned();
        let mut state = self.lock();
        let mut withdrawn = 0;
        for queue in state.queues.values_mut() {
            withdrawn += queue.withdraw(&policy, wanted);
        }
        let FleetState {
            queues, lingering, ..
        } = &mut *state;
        queues.retain(|_, queue| !queue.is_empty());
        lingering.retain(|stop_type, _| queues.contains_key(stop_type));
        if withdrawn > 0 {
            tracing::info!(%policy, withdrawn, "queued stops withdrawn");
        }
    }

    /// The jobs that touch `desired`, newest first, counted over `desired` only.
    pub fn jobs_of(&self, policy: &str, desired: &HashSet<String>) -> Vec<JobView> {
        let state = self.lock();
        let mut views: Vec<JobView> = state
            .jobs
            .values()
            .filter(|job| job.policies.contains(policy))
            .filter_map(|job| job.view(desired))
            .collect();
        views.sort_by_key(|view| std::cmp::Reverse(view.submitted_at));
        views
    }

    /// Whether all `policy` waits for is its queued stops: none of `desired` in a call
    /// under way, an unfinished job or a lost answer. Nothing changes for it until its
    /// batch goes out, and the worker says when (see [`FleetRegistry::take_submitted`]).
    pub fn only_queued(&self, policy: &str, desired: &HashSet<String>) -> bool {
        let state = self.lock();
        let key = policy.to_owned();
        state.queues.values().any(|queue| queue.queued(&key) > 0)
            && !desired
                .iter()
                .any(|id| state.submitting.contains(id) || state.outcome_unknown.contains_key(id))
            && !state
                .jobs
                .values()
                .any(|job| !job.is_finished() && job.policies.contains(policy))
    }

    /// Nothing queued and no stop call under way: the worker has nothing to finish.
    fn is_idle(&self) -> bool {
        let state = self.lock();
        state.queues.values().all(|queue| queue.is_empty()) && state.submitting.is_empty()
    }

    pub fn last_submit_failure(&self) -> Option<SubmitFailure> {
        self.lock().last_submit_failure.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::budget::BudgetLimits;
    use fake_listings::Listings;

    fn fleet(api: Arc<Listings>) -> Arc<Fleet> {
        Fleet::start(
            api,
            Arc::new(ActionBudget::new(BudgetLimits::default())),
            FleetConfig {
                // Nothing queued here may go out while a test looks at it.
                linger: Duration::from_secs(3600),
                ..FleetConfig::default()
            },
            Arc::default(),
            Arc::default(),
            tokio::sync::mpsc::unbounded_channel().0,
            CancellationToken::new(),
        )
    }

    #[tokio::test]
    async fn a_policy_waiting_for_its_queued_stops_does_not_list_again() {
        let api = Arc::new(Listings::new(
            vec![vec![vec![("a", "ACTIVE"), ("b", "ACTIVE")]]],
            Box::new(|| {}),
        ));
        let fleet = fleet(Arc::clone(&api));
        let desired = vec!["a".to_owned(), "b".to_owned()];
        let first = fleet.observe("p", &desired, Duration::ZERO).await.unwrap();
        assert!(first.in_flight.is_empty());
        assert_eq!(api.served(), 1);

        fleet.enqueue("p", desired.clone(), PowerActionType::Soft);
        let waiting = fleet.observe("p", &desired, Duration::ZERO).await.unwrap();
        assert_eq!(waiting.in_flight.len(), 2);
        assert_eq!(api.served(), 1, "all of it queued: no listing");

        // One server no longer queued (withdrawn): the policy plans again, afresh.
        fleet.withdraw("p", &HashSet::from(["a".to_owned()]));
        fleet.observe("p", &desired, Duration::ZERO).await.unwrap();
        assert_eq!(api.served(), 2);
    }

    #[tokio::test]
    async fn a_policy_only_waits_while_nothing_of_it_is_under_way() {
        let api = Arc::new(Listings::new(vec![vec![]], Box::new(|| {})));
        let fleet = fleet(api);
        let desired = HashSet::from(["a".to_owned(), "b".to_owned()]);
        assert!(!fleet.only_queued("p", &desired), "nothing queued");
        fleet.enqueue("p", vec!["a".to_owned()], PowerActionType::Soft);
        assert!(fleet.only_queued("p", &desired));
        assert!(
            !fleet.only_queued("q", &desired),
            "another policy queued it"
        );
        // "b" in a stop call whose answer has not come: there is news to wait for.
        fleet.lock().submitting.insert("b".to_owned());
        assert!(!fleet.only_queued("p", &desired));
    }

    #[test]
    fn a_partial_batch_waits_while_the_queue_grows_but_not_forever() {
        let linger = Duration::from_millis(500);
        let open = Gate::Open {
            round_ended_at: None,
        };
        let t0 = Instant::now();
        let mut lingering = Lingering::new(t0);
        assert!(!lingering.partial_batch_due(t0 + Duration::from_millis(400), linger, open));
        lingering.grown_at = t0 + Duration::from_millis(400);
        assert!(!lingering.partial_batch_due(t0 + Duration::from_millis(600), linger, open));
        assert!(lingering.partial_batch_due(t0 + Duration::from_millis(900), linger, open));
        // Growing every 100 ms: due after MAX_LINGERS lingers all the same.
        lingering.grown_at = t0 + linger * MAX_LINGERS - Duration::from_millis(100);
        let almost = t0 + linger * MAX_LINGERS - Duration::from_millis(1);
        assert!(!lingering.partial_batch_due(almost, linger, open));
        assert!(lingering.partial_batch_due(t0 + linger * MAX_LINGERS, linger, open));
    }

    #[test]
    fn during_the_first_round_a_partial_batch_waits_and_at_its_end_goes() {
        let linger = Duration::from_millis(500);
        let t0 = Instant::now();
        let lingering = Lingering::new(t0);
        // However quiet the queue, the first round holds it.
        let late = t0 + linger * (MAX_LINGERS + 1);
        assert!(!lingering.partial_batch_due(late, linger, Gate::Closed));
        // The round ended after the queue last grew: no need to wait for a quiet spell.
        let ended = Gate::Open {
            round_ended_at: Some(t0 + Duration::from_millis(10)),
        };
        assert!(lingering.partial_batch_due(t0 + Duration::from_millis(20), linger, ended));
        // Ids that arrived after the round ended linger as usual.
        let grown_later = Lingering::new(t0 + Duration::from_millis(50));
        assert!(!grown_later.partial_batch_due(t0 + Duration::from_millis(60), linger, ended));
    }
}
