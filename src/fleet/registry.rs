//! Fleets by (endpoint, project, credentials): policies that share all three share a fleet.

use super::{FirstRound, Fleet, FleetConfig, PolicyKey};
use crate::ecs::budget::ActionBudget;
use crate::ecs::client::EcsApi;
use crate::ecs::error::EcsError;
use crate::metrics::Metrics;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
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
            endpoint: target.endpoint.as_str().trim_end_matches('/').to_owned(),
            project_id: target.project_id.clone(),
            access_key: target.access_key.clone(),
            secret_digest: Sha256::digest(target.secret_key.expose_secret().as_bytes()).into(),
        }
    }
}

/// Builds the API client and finds the shared budget for a target.
pub trait Connector: Send + Sync {
    fn connect(
        &self,
        target: &CloudTarget,
    ) -> Result<(Arc<dyn EcsApi>, Arc<ActionBudget>), EcsError>;
}

pub struct FleetRegistry {
    connector: Box<dyn Connector>,
    config: FleetConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    first_round: Arc<FirstRound>,
    submitted: UnboundedSender<PolicyKey>,
    batches_sent: Mutex<Option<UnboundedReceiver<PolicyKey>>>,
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
    fn leave(&mut self, policy: &str, key: &FleetKey) {
        if let Some(fleet) = self.by_key.get(key) {
            fleet.withdraw(policy, &HashSet::new());
        }
        self.unused.insert(key.clone());
    }

    /// Stops the workers of unused fleets that have nothing queued or under way, and
    /// drops them with their inventory (a Secret rotation must not leave a copy of
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
        config: FleetConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let (submitted, batches_sent) = tokio::sync::mpsc::unbounded_channel();
        Self {
            connector,
            config,
            metrics,
            shutdown,
            first_round: Arc::default(),
            submitted,
            batches_sent: Mutex::new(Some(batches_sent)),
            fleets: Mutex::default(),
        }
    }

    /// The policies whose ids every fleet's worker sends in a stop call, as it sends
    /// them; for the one controller (later calls get `None`).
    pub fn take_submitted(&self) -> Option<UnboundedReceiver<PolicyKey>> {
        self.batches_sent
            .lock()
            .expect("fleet registry lock poisoned")
            .take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Fleets> {
        self.fleets.lock().expect("fleet registry lock poisoned")
    }

    /// Every id `policy` has queued is withdrawn; it keeps its fleet.
    pub fn withdraw_policy(&self, policy: &str) {
        let fleets = self.lock();
        if let Some(fleet) = fleets
            .used_by
            .get(policy)
            .and_then(|key| fleets.by_key.get(key))
        {
            fleet.withdraw(policy, &HashSet::new());
        }
    }

    /// A deleted policy's (or one that cannot be synced) queued stops are withdrawn,
    /// and its fleet is retired if no other policy uses it.
    pub fn forget_policy(&self, policy: &str) {
        let mut fleets = self.lock();
        if let Some(key) = fleets.used_by.remove(policy) {
            fleets.leave(policy, &key);
        }
        fleets.retire_unused();
    }

    /// The controller starts its first round: partial batches wait for it to end.
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

    /// The fleet `policy` syncs with now; the one it used before, if another, gets
    /// none of its stops any more.
    pub fn fleet_for(&self, policy: &str, target: &CloudTarget) -> Result<Arc<Fleet>, EcsError> {
        let key = FleetKey::of(target);
        let mut fleets = self.lock();
        let fleet = match fleets.by_key.get(&key) {
            Some(fleet) => Arc::clone(fleet),
            None => {
                let (api, budget) = self.connector.connect(target)?;
                let fleet = Fleet::start(
                    api,
                    budget,
                    self.config.clone(),
                    Arc::clone(&self.metrics),
                    Arc::clone(&self.first_round),
                    self.submitted.clone(),
                    self.shutdown.child_token(),
                );
                fleets.by_key.insert(key.clone(), Arc::clone(&fleet));
                fleet
            }
        };
        if fleets.used_by.get(policy) != Some(&key)
            && let Some(previous) = fleets.used_by.insert(policy.to_owned(), key)
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
    use crate::ecs::wire::PowerActionType;
    use crate::ecs::{BudgetLimits, Credentials, EcsClientConfig, HttpEcsClient};

    /// Real clients of an endpoint nobody listens on: these tests never call it.
    struct Unreachable;

    impl Connector for Unreachable {
        fn connect(
            &self,
            target: &CloudTarget,
        ) -> Result<(Arc<dyn EcsApi>, Arc<ActionBudget>), EcsError> {
            let budget = Arc::new(ActionBudget::new(BudgetLimits::default()));
            let mut config = EcsClientConfig::new(
                target.endpoint.clone(),
                target.project_id.clone(),
                Credentials::aksk(target.access_key.clone(), target.secret_key.clone()),
            );
            config.budget = Arc::clone(&budget);
            Ok((Arc::new(HttpEcsClient::new(config)?), budget))
        }
    }

    fn registry() -> FleetRegistry {
        FleetRegistry::new(
            Box::new(Unreachable),
            FleetConfig {
                // Nothing queued here may go out while a test looks at it.
                linger: std::time::Duration::from_secs(3600),
                ..FleetConfig::default()
            },
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

    fn queued(fleet: &Fleet) -> usize {
        fleet.lock().queues.values().map(|queue| queue.len()).sum()
    }

    #[tokio::test]
    async fn policies_with_the_same_target_share_a_fleet() {
        let registry = registry();
        let a = registry.fleet_for("ns/a", &target("sk")).unwrap();
        let b = registry.fleet_for("ns/b", &target("sk")).unwrap();
        let other = registry.fleet_for("ns/c", &target("rotated")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other));
    }

    #[tokio::test]
    async fn a_policy_that_moves_leaves_nothing_queued_behind_and_the_old_fleet_retires() {
        let registry = registry();
        let old = registry.fleet_for("ns/a", &target("sk")).unwrap();
        old.enqueue("ns/a", vec!["s1".to_owned()], PowerActionType::Soft);
        let shared = registry.fleet_for("ns/b", &target("sk")).unwrap();
        shared.enqueue("ns/b", vec!["s2".to_owned()], PowerActionType::Soft);

        // The Secret of ns/a was rotated: its stops go with the new credentials only.
        let new = registry.fleet_for("ns/a", &target("rotated")).unwrap();
        assert!(!Arc::ptr_eq(&old, &new));
        assert_eq!(queued(&old), 1, "ns/b's stop stays queued");
        assert!(
            !old.shutdown.is_cancelled(),
            "ns/b still uses the old fleet"
        );

        // ns/b moves too, with a stop still queued: withdrawn, and the fleet retires.
        registry.fleet_for("ns/b", &target("rotated")).unwrap();
        assert_eq!(queued(&old), 0);
        assert!(old.shutdown.is_cancelled());
        assert_eq!(registry.lock().by_key.len(), 1);
    }

    #[tokio::test]
    async fn a_fleet_with_a_stop_call_under_way_retires_once_it_is_done() {
        let registry = registry();
        let fleet = registry.fleet_for("ns/a", &target("sk")).unwrap();
        fleet.lock().submitting.insert("s1".to_owned());
        registry.forget_policy("ns/a");
        assert!(!fleet.shutdown.is_cancelled(), "a call is under way");
        fleet.lock().submitting.clear();
        registry.fleet_for("ns/b", &target("other")).unwrap();
        assert!(fleet.shutdown.is_cancelled());
        assert_eq!(registry.lock().by_key.len(), 1);
    }
}
