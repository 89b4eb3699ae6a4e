//! Fleets by (endpoint, project, credentials): policies that share all three share a fleet.

use super::{FirstRound, Fleet, FleetConfig};
use crate::ecs::budget::ActionBudget;
use crate::ecs::client::EcsApi;
use crate::ecs::error::EcsError;
use crate::metrics::Metrics;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    fleets: Mutex<HashMap<FleetKey, Arc<Fleet>>>,
}

impl FleetRegistry {
    pub fn new(
        connector: Box<dyn Connector>,
        config: FleetConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            connector,
            config,
            metrics,
            shutdown,
            first_round: Arc::default(),
            fleets: Mutex::default(),
        }
    }

    /// A deleted policy's queued stops are withdrawn from whichever fleet holds them,
    /// and the first round no longer waits for it.
    pub fn forget_policy(&self, policy: &str) {
        self.first_sync_done(policy);
        let fleets = self.fleets.lock().expect("fleet registry lock poisoned");
        for fleet in fleets.values() {
            fleet.withdraw(policy, &std::collections::HashSet::new());
        }
    }

    /// The controller starts: partial batches wait for its first sync round (see
    /// [`FirstRound`]).
    pub fn begin_first_round(&self) {
        self.first_round.begin(Instant::now());
    }

    /// The controller has read the policy list: the first round waits for these.
    pub fn expect_first_syncs(&self, policies: impl IntoIterator<Item = String>) {
        if self.first_round.expect(policies, Instant::now()) {
            self.first_round_ended();
        }
    }

    /// `policy`'s sync ended (well or not).
    pub fn first_sync_done(&self, policy: &str) {
        if self.first_round.synced(policy, Instant::now()) {
            self.first_round_ended();
        }
    }

    /// Partial batches held back by the round may go now: wake every worker.
    fn first_round_ended(&self) {
        tracing::info!("first sync round done: every policy synced once");
        let fleets = self.fleets.lock().expect("fleet registry lock poisoned");
        for fleet in fleets.values() {
            fleet.wake.notify_one();
        }
    }

    pub fn fleet_for(&self, target: &CloudTarget) -> Result<Arc<Fleet>, EcsError> {
        let key = FleetKey::of(target);
        let mut fleets = self.fleets.lock().expect("fleet registry lock poisoned");
        if let Some(fleet) = fleets.get(&key) {
            return Ok(Arc::clone(fleet));
        }
        let (api, budget) = self.connector.connect(target)?;
        let fleet = Fleet::start(
            api,
            budget,
            self.config.clone(),
            Arc::clone(&self.metrics),
            Arc::clone(&self.first_round),
            self.shutdown.child_token(),
        );
        fleets.insert(key, Arc::clone(&fleet));
        Ok(fleet)
    }
}
