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

mod inventory;
mod jobs;
mod registry;
mod worker;

pub use inventory::Inventory;
pub use jobs::{JobView, TrackedJob};
pub use registry::{CloudTarget, Connector, FleetRegistry};

use crate::ecs::budget::ActionBudget;
use crate::ecs::client::EcsApi;
use crate::ecs::error::EcsError;
use crate::ecs::wire::PowerActionType;
use crate::metrics::Metrics;
use crate::plan::{RetryState, StopQueue};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
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
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            max_per_call: crate::ecs::wire::MAX_SERVERS_PER_ACTION,
            linger: Duration::from_millis(500),
            job_poll_interval: Duration::from_secs(1),
            outcome_unknown_grace: Duration::from_secs(30),
            throttle_backoff: Duration::from_secs(2),
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

#[derive(Default)]
struct FleetState {
    queues: HashMap<PowerActionType, StopQueue<PolicyKey>>,
    /// When the oldest id of each queue was enqueued, for the linger rule.
    queued_since: HashMap<PowerActionType, Instant>,
    jobs: HashMap<String, TrackedJob>,
    retry: HashMap<String, RetryState>,
    /// Ids whose stop call got no answer, and until when they count as in flight.
    outcome_unknown: HashMap<String, Instant>,
    last_submit_failure: Option<SubmitFailure>,
    throttled_until: Option<Instant>,
}

pub struct Fleet {
    api: Arc<dyn EcsApi>,
    budget: Arc<ActionBudget>,
    config: FleetConfig,
    metrics: Arc<Metrics>,
    state: Mutex<FleetState>,
    inventory: inventory::InventoryCache,
    job_poll: tokio::sync::Mutex<Option<Instant>>,
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
            wake: Notify::new(),
            shutdown,
        });
        tokio::spawn(worker::run(Arc::clone(&fleet)));
        fleet
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FleetState> {
        self.state.lock().expect("fleet state lock poisoned")
    }

    /// The project's servers, from a listing no older than `max_age` and never older
    /// than the last job that finished (so a finished stop is never seen as running).
    pub async fn inventory(&self, max_age: Duration) -> Result<Arc<Inventory>, EcsError> {
        self.inventory.get(self.api.as_ref(), max_age).await
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
    /// reconciles ask. Finished jobs update retry state and invalidate the inventory.
    pub async fn refresh_jobs(&self) -> Result<(), EcsError> {
        let mut last_poll = self.job_poll.lock().await;
        if last_poll.is_some_and(|at| at.elapsed() < self.config.job_poll_interval) {
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
            let finished = {
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
                outcome.finished
            };
            if finished {
                self.inventory.invalidate();
            }
        }
        self.metrics.jobs_in_flight.set(
            self.lock()
                .jobs
                .values()
                .filter(|j| !j.is_finished())
                .count() as i64,
        );
        *last_poll = Some(Instant::now());
        Ok(())
    }

    /// Ids that must not be planned again now: queued, in an unfinished job, in a job
    /// that finished after `observed_at` (the inventory does not show its result yet),
    /// or whose stop call got no answer recently.
    pub fn in_flight_ids(&self, observed_at: Instant) -> HashSet<String> {
        let state = self.lock();
        let now = Instant::now();
        let mut ids: HashSet<String> = state
            .queues
            .values()
            .flat_map(|queue| queue.ids().map(str::to_owned))
            .collect();
        for job in state.jobs.values() {
            if job.in_flight_for(observed_at) {
                ids.extend(job.server_ids().cloned());
            }
        }
        ids.extend(
            state
                .outcome_unknown
                .iter()
                .filter(|(_, until)| **until > now)
                .map(|(id, _)| id.clone()),
        );
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
        {
            let mut state = self.lock();
            state
                .queued_since
                .entry(stop_type)
                .or_insert_with(Instant::now);
            state
                .queues
                .entry(stop_type)
                .or_default()
                .push(policy.to_owned(), ids);
        }
        self.wake.notify_one();
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

    pub fn last_submit_failure(&self) -> Option<SubmitFailure> {
        self.lock().last_submit_failure.clone()
    }
}
