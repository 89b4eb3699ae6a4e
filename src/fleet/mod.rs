//! One fleet per (endpoint, project, credentials): the single owner of what every
//! policy of that project shares.
//!
//! - its state ([`state::FleetState`], plain data and pure decisions): the queue
//!   lanes, what is in flight, per-server retry state, the jobs it follows;
//! - one server inventory, refreshed by a single paginated listing however many
//!   policies ask for it within its maximum age;
//! - the project's budget, passed in by whoever shares it;
//! - a worker, the only caller of the stop and start API: thin I/O around the state's
//!   decisions ([`worker`]).
//!
//! A sync makes one call, [`Fleet::sync`]: it polls jobs and lists when due (I/O),
//! then takes its decision and its view in one locked call of the pure state.

mod eta;
#[cfg(test)]
mod fake_listings;
mod first_round;
mod inventory;
mod jobs;
pub mod journal;
mod key;
mod lane;
mod listing;
mod registry;
mod state;
mod worker;

pub use eta::QueueStanding;
use first_round::{FirstRound, Gate};
pub use jobs::JobView;
pub use key::PolicyKey;
pub use registry::{CloudTarget, Connector, FleetRegistry};
pub use state::{FleetView, Lane, LostJob, LostReason, SubmitFailure};

use crate::ecs::budget::ActionBudget;
use crate::ecs::client::EcsApi;
use crate::ecs::error::EcsError;
use crate::metrics::Metrics;
use crate::plan::{Backoff, Mode, ObservedPower};
use crate::policy::JobAction;
use crate::selector::{CappedSelector, Selection, select};
use futures::{FutureExt, StreamExt};
use inventory::Wants;
use journal::{CallJournal, JournalError};
use registry::Deleted;
use state::{FleetState, Now, Observed, SyncRequest};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Most ids in one stop call.
    pub max_per_call: usize,
    /// How long a partial batch waits for other policies' ids to join it.
    pub linger: Duration,
    /// Jobs in flight are polled at most this often.
    pub job_poll_interval: Duration,
    /// A job still unfinished this long after its submission is given up on.
    pub job_deadline: Duration,
    /// Back-off after the API throttled a stop call.
    pub throttle_backoff: Duration,
    /// How long a finished (or lost) job is still shown to policies' syncs (their
    /// status keeps it as history after that).
    pub finished_job_retention: Duration,
    /// How long after a call's outcome became unknown (its answer lost, or its
    /// process killed before it came) a listing may settle it: a busy cloud leaves a
    /// new job's servers untouched, and a listing then shows no trace of the call.
    pub unknown_outcome_settle: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            max_per_call: crate::ecs::wire::MAX_SERVERS_PER_ACTION,
            linger: Duration::from_millis(500),
            job_poll_interval: Duration::from_secs(1),
            job_deadline: Duration::from_secs(30 * 60),
            throttle_backoff: Duration::from_secs(2),
            finished_job_retention: Duration::from_secs(600),
            unknown_outcome_settle: Duration::from_secs(10),
        }
    }
}

/// Jobs are polled at most this often when a listing suggests one has finished.
const EARLY_JOB_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Job polls of one fleet in flight at once.
const JOB_POLLS_AT_ONCE: usize = 4;

/// One sync of one policy, as the controller asks for it.
#[derive(Debug)]
pub struct FleetRequest<'a> {
    pub policy: &'a PolicyKey,
    /// The policy object's uid: a deleted policy's late sync queues nothing.
    pub uid: Option<&'a str>,
    /// Server ids of the spec, in order.
    pub named: &'a [String],
    /// Ids the policy never stops.
    pub exclude: &'a [String],
    /// Its selector, evaluated against the inventory.
    pub selector: Option<&'a CappedSelector>,
    pub mode: Mode,
    pub lane: Lane,
    pub backoff: Backoff,
    /// Oldest inventory the sync may use.
    pub max_age: Duration,
    /// Longest the sync waits for its fleet's listing before it gives its sync slot
    /// back (to be synced again later); the listing goes on meanwhile.
    pub listing_wait: Duration,
    /// Jobs the policy's status lists as unfinished, to follow after a restart.
    pub adopt: Vec<(String, jiff::Timestamp, JobAction)>,
    /// Servers the policy stopped, to start again now (see [`SyncRequest::start`]).
    pub start: &'a [String],
}

/// Why a sync planned nothing.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Ecs(#[from] EcsError),
    /// The project's call journal cannot be read: what earlier processes sent is
    /// unknown, so nothing may be planned.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// What a sync gets back: the fleet's view, and what the inventory showed.
#[derive(Debug)]
pub struct Synced {
    pub view: FleetView,
    /// Any of the policy's servers powering off.
    pub powering_off: bool,
    /// What its selector matched, if it has one.
    pub selection: Option<Selection>,
    /// Its servers still queued, and when they should be done; taken with the view.
    pub queue: Option<QueueStanding>,
}

pub struct Fleet {
    api: Arc<dyn EcsApi>,
    budget: Arc<ActionBudget>,
    /// The project's, shared with its other fleets like the budget.
    journal: Arc<CallJournal>,
    config: FleetConfig,
    metrics: Arc<Metrics>,
    state: Mutex<FleetState>,
    inventory: Arc<inventory::InventoryCache>,
    listing: listing::Listing,
    job_poll: tokio::sync::Mutex<Option<Instant>>,
    /// Shared by every fleet: partial batches wait for the controller's first round.
    first_round: Arc<FirstRound>,
    /// Policies deleted recently, shared by every fleet.
    deleted: Arc<Deleted>,
    /// Policies for the controller to sync: their ids just went out in a call, or
    /// their start lead may have grown.
    to_sync: UnboundedSender<PolicyKey>,
    wake: Notify,
    shutdown: CancellationToken,
}

/// What a fleet is started with besides its API client and budget.
pub(crate) struct Shared {
    pub config: FleetConfig,
    pub metrics: Arc<Metrics>,
    pub first_round: Arc<FirstRound>,
    pub deleted: Arc<Deleted>,
    pub to_sync: UnboundedSender<PolicyKey>,
}

impl Fleet {
    /// Starts the fleet's stop worker; it runs until `shutdown` is cancelled.
    pub(crate) fn start(
        api: Arc<dyn EcsApi>,
        budget: Arc<ActionBudget>,
        journal: Arc<CallJournal>,
        shared: Shared,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let fleet = Arc::new(Self {
            api,
            budget,
            journal,
            state: Mutex::new(FleetState::new(shared.config.clone())),
            config: shared.config,
            metrics: shared.metrics,
            inventory: Arc::default(),
            listing: listing::Listing::default(),
            job_poll: tokio::sync::Mutex::new(None),
            first_round: shared.first_round,
            deleted: shared.deleted,
            to_sync: shared.to_sync,
            wake: Notify::new(),
            shutdown,
        });
        tokio::spawn(worker::run(Arc::clone(&fleet)));
        tokio::spawn(worker::follow_jobs(Arc::clone(&fleet)));
        fleet
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FleetState> {
        self.state.lock().expect("fleet state lock poisoned")
    }

    /// One sync: follow the jobs the policy's status lists, list the project when
    /// due, then plan, queue and report from one view of the state. `None`: the
    /// fleet's listing is still under way after [`FleetRequest::listing_wait`];
    /// nothing was planned, sync again soon.
    pub async fn sync(&self, request: FleetRequest<'_>) -> Result<Option<Synced>, SyncError> {
        let began = Instant::now();
        // Nothing is planned before what earlier processes left is known: their jobs
        // and unknown outcomes hold servers.
        self.inherit().await?;
        // Jobs are polled by `worker::follow_jobs`, not here: a sync (one of the slots
        // every tenant shares) never waits on another endpoint round trip for them.
        self.register(&request);
        // Everything the policy wants is queued or under way (waiting for budget, at
        // 100,000 servers for 100 minutes): a new listing changes nothing it would
        // plan, and its jobs' results reach the inventory without one. A selector
        // always looks at a listing within its maximum age: a newly tagged server is
        // stopped at the next sync.
        //
        // Without a selector, what the policy wants does not depend on a listing:
        // taken once, here, outside the state lock.
        let named_only = request.selector.is_none().then(|| self.wanted(&request));
        let settled = self.inventory.is_usable()
            && named_only.as_ref().is_some_and(|selection| {
                self.lock().all_in_flight(
                    request.policy,
                    request.lane,
                    &selection.wanted,
                    Instant::now(),
                )
            });
        if !settled {
            let listed = self
                .listing
                .join(request.listing_wait, || {
                    let inventory = Arc::clone(&self.inventory);
                    let api = Arc::clone(&self.api);
                    let (policy, max_age) = (request.policy.clone(), request.max_age);
                    async move { inventory.refresh(api.as_ref(), &policy, max_age).await }.boxed()
                })
                .await;
            let Some(listed) = listed else {
                return Ok(None);
            };
            listed?;
            // A listing newer than the last poll may already show a job's servers
            // stopped: poll now, or the status would say Stopped beside a job still
            // RUNNING.
            if self.unfinished_job_looks_done() {
                self.poll_jobs(EARLY_JOB_POLL_INTERVAL).await;
            }
        }
        let selection = named_only.unwrap_or_else(|| self.wanted(&request));
        let desired = &selection.wanted;
        let observation = self.inventory.observe(request.policy, desired);
        let powering_off = observation
            .servers
            .values()
            .any(|power| *power == ObservedPower::Stopping);
        let (view, queue, deleted) = {
            let mut state = self.lock();
            // Jobs an earlier process left are taken in before anything is planned, with
            // everything the policy wants now (a selector's matches need a listing): an
            // adopted job that does not yet name its servers holds all of them.
            if !request.adopt.is_empty() {
                state.adopt(request.policy, request.adopt.iter().cloned(), desired);
            }
            let now = Now::current();
            // Under the state lock: a deletion records itself before it withdraws.
            let deleted = request.uid.is_some_and(|uid| self.deleted.contains(uid));
            let view = state.sync(
                &SyncRequest {
                    policy: request.policy,
                    desired,
                    mode: request.mode,
                    lane: request.lane,
                    backoff: request.backoff,
                    deleted,
                    start: request.start,
                },
                &Observed {
                    servers: &observation.servers,
                    listed_at: observation.fetched_at,
                },
                now,
            );
            if view.queued {
                state.queued_after(now.at.saturating_duration_since(began));
            }
            let queue = state.queue_standing(request.policy, request.lane, &self.budget, now);
            (view, queue, deleted)
        };
        if deleted {
            // The deletion may have forgotten the policy before this sync registered
            // it above: its servers must not stay in the inventory until the fleet
            // retires.
            self.inventory.forget(request.policy);
        }
        if view.queued {
            self.wake.notify_one();
        }
        Ok(Some(Synced {
            view,
            powering_off,
            selection: request.selector.is_some().then_some(selection),
            queue,
        }))
    }

    /// Tells the inventory what the policy asks about: a listing that begins later
    /// covers it.
    pub fn register(&self, request: &FleetRequest<'_>) {
        self.inventory.register(
            request.policy,
            Wants {
                named: request.named,
                selector: request.selector.map(|s| (&s.spec, &s.selector)),
            },
        );
    }

    /// Takes in what the project's call journal holds from earlier processes, once.
    async fn inherit(&self) -> Result<(), JournalError> {
        if self.lock().has_inherited() {
            return Ok(());
        }
        match self.journal.inherited().await {
            Ok(inherited) => {
                self.lock().inherit(inherited, Now::current());
                Ok(())
            }
            Err(error) => {
                self.metrics.error("journal");
                Err(error)
            }
        }
    }

    /// The window end `policy` began starting early for in this process (see
    /// [`FleetState::began_starting`]), while it is ahead.
    pub fn starting_until(&self, policy: &PolicyKey) -> Option<jiff::Timestamp> {
        self.lock().starting_until(policy, jiff::Timestamp::now())
    }

    /// `policy` began starting early for the window that ends at `until`: the
    /// policies whose lead may have counted without its starts are synced again.
    pub fn began_starting(&self, policy: &PolicyKey, until: jiff::Timestamp) {
        let behind = self.lock().began_starting(policy, until);
        for other in behind {
            let _ = self.to_sync.send(other);
        }
    }

    /// `policy` wrote a status showing `jobs` (or found it unchanged): the finished
    /// ones it shows leave the call journal once all their policies have.
    pub fn recorded(&self, policy: &PolicyKey, jobs: &[JobView]) {
        let done = self.lock().recorded(policy, jobs, Instant::now());
        for job_id in &done {
            self.journal.job_over(job_id);
        }
    }

    /// How long before its window's end `policy` must begin starting `servers`
    /// (`startLeadTime: Auto`), from this project's budget and queue now and the
    /// starts other policies will queue for windows that end no later than `until`
    /// (its window's end, while it has not begun starting).
    pub fn start_lead(
        &self,
        policy: &PolicyKey,
        servers: usize,
        until: Option<jiff::Timestamp>,
    ) -> Duration {
        self.lock()
            .start_lead(policy, (servers, until), &self.budget, Now::current())
    }

    /// What the policy wants: its named servers and its selector's matches in the last
    /// listing, less the excluded, within its cap.
    fn wanted(&self, request: &FleetRequest<'_>) -> Selection {
        let matched = match request.selector {
            Some(_) => self.inventory.matched(request.policy),
            None => Vec::new(),
        };
        let exclude = request.exclude.iter().map(String::as_str).collect();
        select(
            &self.inventory.intern(request.named),
            &matched,
            &exclude,
            request.selector.map(|s| s.max_servers),
        )
    }

    /// Poll every unfinished job, at most once per `interval` however many ask. A
    /// poll that fails leaves the decision to the state: it gives the job up if it
    /// failed for good; jobs past the deadline are given up on too.
    async fn poll_jobs(&self, interval: Duration) {
        let mut last_poll = self.job_poll.lock().await;
        if last_poll.is_some_and(|at| at.elapsed() < interval) {
            return;
        }
        let pending: Vec<String> = self
            .lock()
            .unfinished_jobs()
            .map(|job| job.job_id.clone())
            .collect();
        // A few at once: at 100 jobs in flight, one after the other would take a
        // hundred round trips per interval.
        let mut answers = futures::stream::iter(pending)
            .map(|job_id| async move {
                let answer = self.api.get_job(&job_id).await;
                (job_id, answer)
            })
            .buffer_unordered(JOB_POLLS_AT_ONCE);
        while let Some((job_id, answer)) = answers.next().await {
            if let Err(error) = &answer {
                tracing::debug!(%job_id, %error, "job poll failed");
            }
            // A finished job stays in the journal, without its ids, until its policies
            // have recorded it (see [`Self::recorded`]).
            let (finished, ended, over) = {
                let mut state = self.lock();
                let finished = state.record_poll(&job_id, answer, Now::current());
                let ended = !state.is_unfinished(&job_id);
                (finished, ended, ended && !state.awaits_record(&job_id))
            };
            if over {
                self.journal.job_over(&job_id);
            } else if ended {
                self.journal.job_finished(&job_id);
            }
            match finished {
                Some((JobAction::Stop, stopped)) => {
                    self.metrics.servers_stopped.inc_by(stopped.len() as u64);
                    self.inventory.confirm(&stopped, ObservedPower::Stopped);
                }
                Some((JobAction::Start, started)) => {
                    self.inventory.confirm(&started, ObservedPower::Running);
                }
                None => {}
            }
        }
        let (expired, unfinished) = {
            let mut state = self.lock();
            (state.expire(Now::current()), state.unfinished_count())
        };
        for job_id in &expired.forgotten {
            self.journal.job_over(job_id);
        }
        for reason in expired.lost {
            self.metrics.job_lost(reason);
        }
        self.metrics.jobs_in_flight.set(unfinished as i64);
        *last_poll = Some(Instant::now());
    }

    /// Whether the inventory shows every server of some unfinished job stopped.
    fn unfinished_job_looks_done(&self) -> bool {
        let state = self.lock();
        state
            .unfinished_jobs()
            .any(|job| self.inventory.all_stopped(job.server_ids()))
    }

    /// `policy` no longer uses this fleet (deleted, moved to other credentials,
    /// cannot be synced): none of its stops goes out here any more.
    fn withdraw_all(&self, policy: &PolicyKey) {
        self.lock().left(policy);
        self.inventory.forget(policy);
    }

    /// Nothing queued, no stop call under way, no job unfinished.
    fn is_idle(&self) -> bool {
        self.lock().is_idle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::budget::BudgetLimits;
    use fake_listings::Listings;
    use journal::{JournalStores, MemoryJournals, Retention};

    fn fleet(api: Arc<Listings>) -> Arc<Fleet> {
        let budget = Arc::new(ActionBudget::new(BudgetLimits::default()));
        let journal = Arc::new(CallJournal::new(
            MemoryJournals::default().open("endpoint", "project"),
            Arc::clone(&budget),
            Retention {
                window: budget.limits().window,
                unknown_settle: Duration::from_secs(10),
                job_deadline: Duration::from_secs(1800),
            },
        ));
        Fleet::start(
            api,
            budget,
            journal,
            Shared {
                config: FleetConfig {
                    // Nothing queued here may go out while a test looks at it.
                    linger: Duration::from_secs(3600),
                    ..FleetConfig::default()
                },
                metrics: Arc::default(),
                first_round: Arc::default(),
                deleted: Arc::default(),
                to_sync: tokio::sync::mpsc::unbounded_channel().0,
            },
            CancellationToken::new(),
        )
    }

    fn request<'a>(policy: &'a PolicyKey, desired: &'a [String], mode: Mode) -> FleetRequest<'a> {
        FleetRequest {
            policy,
            uid: Some("uid-p"),
            named: desired,
            exclude: &[],
            selector: None,
            mode,
            lane: Lane::SoftStop,
            backoff: Backoff {
                base: Duration::from_secs(10),
                max: Duration::from_secs(60),
            },
            max_age: Duration::ZERO,
            listing_wait: Duration::from_secs(10),
            adopt: Vec::new(),
            start: &[],
        }
    }

    #[tokio::test]
    async fn a_policy_waiting_for_its_queued_stops_does_not_list_again() {
        let api = Arc::new(Listings::new(
            vec![vec![vec![("a", "ACTIVE"), ("b", "ACTIVE")]]],
            Box::new(|| {}),
        ));
        let fleet = fleet(Arc::clone(&api));
        let p = PolicyKey::new("ns", "p");
        let desired = vec!["a".to_owned(), "b".to_owned()];
        let first = fleet
            .sync(request(&p, &desired, Mode::Act))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.view.outcome.to_stop, desired);
        assert_eq!(api.served(), 1);

        let waiting = fleet
            .sync(request(&p, &desired, Mode::Act))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(waiting.view.outcome.summary.stopping, 2);
        assert!(waiting.view.waiting_for_budget);
        assert_eq!(api.served(), 1, "all of it queued: no listing");

        // One server left its list: "a" is withdrawn, and the policy plans afresh.
        let fewer = vec!["b".to_owned()];
        fleet
            .sync(request(&p, &fewer, Mode::Act))
            .await
            .unwrap()
            .unwrap();
        fleet
            .sync(request(&p, &desired, Mode::Act))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(api.served(), 2);
    }

    #[tokio::test]
    async fn a_sync_still_under_way_at_the_deletion_queues_nothing() {
        let api = Arc::new(Listings::new(
            vec![vec![vec![("a", "ACTIVE")]]],
            Box::new(|| {}),
        ));
        let fleet = fleet(api);
        let p = PolicyKey::new("ns", "p");
        let desired = vec!["a".to_owned()];
        fleet.deleted.record("uid-p");
        let synced = fleet
            .sync(request(&p, &desired, Mode::Act))
            .await
            .unwrap()
            .unwrap();
        assert!(synced.view.outcome.to_stop.is_empty());
        assert!(fleet.is_idle());
        assert!(
            !fleet.inventory.is_interested(&p),
            "a deleted policy's late sync leaves nothing in the inventory"
        );
    }
}
