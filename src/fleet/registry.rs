//! Fleets by (endpoint, project, credentials): policies that share all three share a
//! fleet; fleets of one (endpoint, project) share its budget and its call journal,
//! which the registry owns and hands to each fleet (and the budget to its client).

use super::journal::{CallJournal, JournalStores, Retention};
use super::{FirstRound, Fleet, FleetConfig, PolicyKey, Shared};
use crate::ecs::budget::{ActionBudget, BudgetLimits, BudgetRegistry};
use crate::ecs::client::EcsApi;
use crate::ecs::error::EcsError;
use crate::metrics::Metrics;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where and as whom to call the ECS API.
#[derive(Clone)]
pub struct CloudTarget {
    pub endpoint: url::Url,
    pub project_id: String,
    pub access_key: String,
    pub secret_key: SecretString,
}

impl std::fmt::Debug for CloudTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudTarget")
            .field("endpoint", &self.endpoint.as_str())
            .field("project_id", &self.project_id)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// A changed secret key must give a new client; the key itself is never kept as a
/// map key, only a digest of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FleetKey {
    endpoint: String,
    project_id: String,
    access_key: String,
    secret_digest: [u8; 32],
}

impl FleetKey {
    fn of(target: &CloudTarget) -> Self {
        Self {
            endpoint: crate::ecs::endpoint::normalised(&target.endpoint),
            project_id: target.project_id.clone(),
            access_key: target.access_key.clone(),
            secret_digest: Sha256::digest(target.secret_key.expose_secret().as_bytes()).into(),
        }
    }
}

/// Builds the API client for a target, acting within `budget`.
pub trait Connector: Send + Sync {
    fn connect(
        &self,
        target: &CloudTarget,
        budget: Arc<ActionBudget>,
    ) -> Result<Arc<dyn EcsApi>, EcsError>;
}

/// How long a deleted policy is remembered: longer than any sync takes.
const DELETED_MEMORY: Duration = Duration::from_secs(600);

/// Uids of policies deleted recently. A sync that began before the deletion checks it
/// under its fleet's lock, after the deletion has recorded itself here and before it
/// withdraws, so it can neither queue after the withdrawal nor be missed by it.
#[derive(Debug, Default)]
pub struct Deleted {
    uids: Mutex<HashMap<String, Instant>>,
}

impl Deleted {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.uids.lock().expect("deleted policies lock poisoned")
    }

    pub fn record(&self, uid: &str) {
        let now = Instant::now();
        let mut uids = self.lock();
        uids.retain(|_, at| now.saturating_duration_since(*at) < DELETED_MEMORY);
        uids.insert(uid.to_owned(), now);
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.lock().contains_key(uid)
    }
}

pub struct FleetRegistry {
    connector: Box<dyn Connector>,
    config: FleetConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    first_round: Arc<FirstRound>,
    deleted: Arc<Deleted>,
    budgets: BudgetRegistry,
    budget_limits: BudgetLimits,
    journal_stores: Box<dyn JournalStores>,
    /// One per (endpoint origin, project), as the budget.
    journals: Mutex<HashMap<(String, String), Arc<CallJournal>>>,
    to_sync: UnboundedSender<PolicyKey>,
    to_sync_rx: Mutex<Option<UnboundedReceiver<PolicyKey>>>,
    fleets: Mutex<Fleets>,
}

#[derive(Default)]
struct Fleets {
    by_key: HashMap<FleetKey, Arc<Fleet>>,
    /// The fleet each policy last synced with.
    used_by: HashMap<PolicyKey, FleetKey>,
    /// Fleets a policy left: retired once no policy uses them and their worker is idle.
    unused: HashSet<FleetKey>,
}

impl Fleets {
    /// `policy` no longer uses the fleet at `key` (it was deleted, or its project or
    /// credentials changed): nothing is sent there in its name any more, and the fleet
    /// is a candidate for retirement ([`Self::retire_unused`] checks who still uses it).
    fn leave(&mut self, policy: &PolicyKey, key: &FleetKey) {
        if let Some(fleet) = self.by_key.get(key) {
            fleet.withdraw_all(policy);
        }
        self.unused.insert(key.clone());
    }

    /// Stops the workers of unused fleets that have nothing queued or under way and no
    /// job unfinished (the worker follows those to the end), and drops them with their inventory (a Secret rotation must not leave a copy of
    /// the project's listing behind each time). Nobody polls an unused fleet's jobs
    /// anyway: those recorded in a policy's status are adopted by its next fleet, and
    /// the next listing shows what the others did.
    fn retire_unused(&mut self) {
        let Self {
            by_key,
            used_by,
            unused,
        } = self;
        unused.retain(|key| {
            if used_by.values().any(|used| used == key) {
                return false;
            }
            let Some(fleet) = by_key.get(key) else {
                return false;
            };
            if !fleet.is_idle() {
                return true;
            }
            fleet.shutdown.cancel();
            by_key.remove(key);
            tracing::info!(
                endpoint = %key.endpoint,
                project_id = %key.project_id,
                "fleet retired: no policy uses it any more"
            );
            false
        });
    }
}

impl FleetRegistry {
    pub fn new(
        connector: Box<dyn Connector>,
        journal_stores: Box<dyn JournalStores>,
        config: FleetConfig,
        budget_limits: BudgetLimits,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let (to_sync, to_sync_rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            connector,
            config,
            metrics,
            shutdown,
            first_round: Arc::default(),
            deleted: Arc::default(),
            budgets: BudgetRegistry::default(),
            budget_limits,
            journal_stores,
            journals: Mutex::default(),
            to_sync,
            to_sync_rx: Mutex::new(Some(to_sync_rx)),
            fleets: Mutex::default(),
        }
    }

    /// The policies every fleet asks the controller to sync (see `Fleet::to_sync`);
    /// for the one controller (later calls get `None`).
    pub fn take_to_sync(&self) -> Option<UnboundedReceiver<PolicyKey>> {
        self.to_sync_rx
            .lock()
            .expect("fleet registry lock poisoned")
            .take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Fleets> {
        self.fleets.lock().expect("fleet registry lock poisoned")
    }

    /// A deleted policy: none of its stops goes out (also not from a sync of it
    /// still under way), and its fleet is retired if no other policy uses it.
    pub fn policy_deleted(&self, policy: &PolicyKey, uid: Option<&str>) {
        if let Some(uid) = uid {
            self.deleted.record(uid);
        }
        self.leave(policy);
    }

    /// A policy that cannot be synced (a missing Secret, rejected credentials): its
    /// queued stops are withdrawn, and its fleet is retired if no other policy uses it.
    pub fn leave(&self, policy: &PolicyKey) {
        let mut fleets = self.lock();
        if let Some(key) = fleets.used_by.remove(policy) {
            fleets.leave(policy, &key);
        }
        fleets.retire_unused();
    }

    /// The call journal of this project, shared by its fleets.
    fn journal(
        &self,
        origin: &str,
        project_id: &str,
        budget: &Arc<ActionBudget>,
    ) -> Arc<CallJournal> {
        let retention = Retention {
            window: budget.limits().window,
            unknown_settle: self.config.unknown_outcome_settle,
            job_deadline: self.config.job_deadline,
        };
        let mut journals = self.journals.lock().expect("journals lock poisoned");
        let journal = journals
            .entry((origin.to_owned(), project_id.to_owned()))
            .or_insert_with(|| {
                Arc::new(CallJournal::new(
                    self.journal_stores.open(origin, project_id),
                    Arc::clone(budget),
                    retention,
                ))
            });
        Arc::clone(journal)
    }

    /// The controller starts its first round: partial batches and syncs wait for it.
    pub fn begin_first_round(&self) {
        self.first_round.begin();
    }

    /// Every listed policy has been planned: partial batches held back go now.
    pub fn end_first_round(&self) {
        self.first_round.end(Instant::now());
        for fleet in self.lock().by_key.values() {
            fleet.wake.notify_one();
        }
    }

    /// The controller stops before its first round ended: syncs under way may
    /// finish; batches held back stay held.
    pub fn abandon_first_round(&self) {
        self.first_round.abandon();
    }

    /// Returns once no first round is running (at once outside one).
    pub async fn first_round_done(&self) {
        self.first_round.done().await;
    }

    /// The fleet `policy` syncs with now; the one it used before, if another, gets
    /// none of its stops any more.
    pub fn fleet_for(
        &self,
        policy: &PolicyKey,
        target: &CloudTarget,
    ) -> Result<Arc<Fleet>, EcsError> {
        let key = FleetKey::of(target);
        let mut fleets = self.lock();
        let fleet = match fleets.by_key.get(&key) {
            Some(fleet) => Arc::clone(fleet),
            None => {
                let origin = crate::ecs::endpoint::origin(&target.endpoint);
                let budget = self
                    .budgets
                    .budget(&origin, &target.project_id, self.budget_limits);
                let journal = self.journal(&origin, &target.project_id, &budget);
                let api = self.connector.connect(target, Arc::clone(&budget))?;
                let fleet = Fleet::start(
                    api,
                    budget,
                    journal,
                    Shared {
                        config: self.config.clone(),
                        metrics: Arc::clone(&self.metrics),
                        first_round: Arc::clone(&self.first_round),
                        deleted: Arc::clone(&self.deleted),
                        to_sync: self.to_sync.clone(),
                    },
                    self.shutdown.child_token(),
                );
                fleets.by_key.insert(key.clone(), Arc::clone(&fleet));
                fleet
            }
        };
        if fleets.used_by.get(policy) != Some(&key)
            && let Some(previous) = fleets.used_by.insert(policy.clone(), key)
        {
            fleets.leave(policy, &previous);
        }
        if !fleets.unused.is_empty() {
            fleets.retire_unused();
        }
        Ok(fleet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::{Credentials, EcsClientConfig, HttpEcsClient};
    use crate::fleet::journal::MemoryJournals;
    use crate::plan::{Backoff, Mode};
    use crate::server_id::ServerId;

    /// Real clients of an endpoint nobody listens on: these tests never call it.
    struct Unreachable;

    impl Connector for Unreachable {
        fn connect(
            &self,
            target: &CloudTarget,
            budget: Arc<ActionBudget>,
        ) -> Result<Arc<dyn EcsApi>, EcsError> {
            let mut config = EcsClientConfig::new(
                target.endpoint.clone(),
                target.project_id.clone(),
                Credentials::aksk(target.access_key.clone(), target.secret_key.clone()),
            );
            config.budget = budget;
            Ok(Arc::new(HttpEcsClient::new(config)?))
        }
    }

    fn registry() -> FleetRegistry {
        FleetRegistry::new(
            Box::new(Unreachable),
            Box::new(MemoryJournals::default()),
            FleetConfig {
                // Nothing queued here may go out while a test looks at it.
                linger: std::time::Duration::from_secs(3600),
                ..FleetConfig::default()
            },
            BudgetLimits::default(),
            Arc::default(),
            CancellationToken::new(),
        )
    }

    fn target(secret_key: &str) -> CloudTarget {
        CloudTarget {
            endpoint: "http://127.0.0.1:9".parse().unwrap(),
            project_id: "project".to_owned(),
            access_key: "AK".to_owned(),
            secret_key: SecretString::from(secret_key),
        }
    }

    fn key(name: &str) -> PolicyKey {
        PolicyKey::new("ns", name)
    }

    /// Queues `id` for `policy` the way a sync does, without a listing.
    fn queue(fleet: &Fleet, policy: &PolicyKey, id: &str) {
        let desired = [ServerId::from(id)];
        let servers: crate::server_id::IdMap<_> =
            [(desired[0].clone(), crate::plan::ObservedPower::Running)]
                .into_iter()
                .collect();
        let now = super::super::state::Now::current();
        fleet.lock().sync(
            &super::super::state::SyncRequest {
                policy,
                desired: &desired,
                mode: Mode::Act,
                lane: super::super::Lane::SoftStop,
                backoff: Backoff {
                    base: std::time::Duration::from_secs(1),
                    max: std::time::Duration::from_secs(1),
                },
                deleted: false,
                start: &[],
            },
            &super::super::state::Observed {
                servers: &servers,
                listed_at: now.at,
            },
            now,
        );
    }

    fn idle(fleet: &Fleet) -> bool {
        fleet.is_idle()
    }

    #[tokio::test]
    async fn policies_with_the_same_target_share_a_fleet_and_projects_a_budget() {
        let registry = registry();
        let a = registry.fleet_for(&key("a"), &target("sk")).unwrap();
        let b = registry.fleet_for(&key("b"), &target("sk")).unwrap();
        let other = registry.fleet_for(&key("c"), &target("rotated")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other));
        assert!(
            Arc::ptr_eq(&a.budget, &other.budget),
            "one project, one budget"
        );
        assert!(
            Arc::ptr_eq(&a.journal, &other.journal),
            "one project, one call journal"
        );
    }

    #[tokio::test]
    async fn spellings_of_one_endpoint_share_a_fleet_and_a_budget() {
        let registry = registry();
        let a = registry.fleet_for(&key("a"), &target("sk")).unwrap();
        let mut other_spelling = target("sk");
        other_spelling.endpoint = "http://127.0.0.1:00009/".parse().unwrap();
        let b = registry.fleet_for(&key("b"), &other_spelling).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let mut prefixed = target("sk");
        prefixed.endpoint = "http://127.0.0.1:9/ecs/".parse().unwrap();
        let p = registry.fleet_for(&key("p"), &prefixed).unwrap();
        assert!(!Arc::ptr_eq(&a, &p), "another path, another client");
        assert!(Arc::ptr_eq(&a.budget, &p.budget), "one origin, one budget");
        let mut other_port = target("sk");
        other_port.endpoint = "http://127.0.0.1:10".parse().unwrap();
        let c = registry.fleet_for(&key("c"), &other_port).unwrap();
        assert!(
            !Arc::ptr_eq(&a.budget, &c.budget),
            "another origin, another budget"
        );
    }

    #[tokio::test]
    async fn a_policy_that_moves_leaves_nothing_queued_behind_and_the_old_fleet_retires() {
        let registry = registry();
        let old = registry.fleet_for(&key("a"), &target("sk")).unwrap();
        queue(&old, &key("a"), "s1");
        let shared = registry.fleet_for(&key("b"), &target("sk")).unwrap();
        queue(&shared, &key("b"), "s2");

        // The Secret of ns/a was rotated: its stops go with the new credentials only.
        let new = registry.fleet_for(&key("a"), &target("rotated")).unwrap();
        assert!(!Arc::ptr_eq(&old, &new));
        assert!(!idle(&old), "ns/b's stop stays queued");
        assert!(
            !old.shutdown.is_cancelled(),
            "ns/b still uses the old fleet"
        );

        // ns/b moves too, with a stop still queued: withdrawn, and the fleet retires.
        registry.fleet_for(&key("b"), &target("rotated")).unwrap();
        assert!(idle(&old));
        assert!(old.shutdown.is_cancelled());
        assert_eq!(registry.lock().by_key.len(), 1);
    }

    #[tokio::test]
    async fn a_deleted_policy_leaves_its_fleet_and_is_remembered() {
        let registry = registry();
        let fleet = registry.fleet_for(&key("a"), &target("sk")).unwrap();
        queue(&fleet, &key("a"), "s1");
        registry.policy_deleted(&key("a"), Some("uid-a"));
        assert!(idle(&fleet));
        assert!(fleet.shutdown.is_cancelled());
        assert!(registry.deleted.contains("uid-a"));
    }
}
