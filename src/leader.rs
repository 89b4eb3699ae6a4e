//! Leader election on a `coordination.k8s.io` Lease: only the holder reconciles.
//!
//! `kube-lease-manager` keeps the Lease renewed with server-side apply; this module only
//! turns its state channel into the three moments the operator cares about.

use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub lease_name: String,
    pub namespace: String,
    /// Unique per replica: the pod name in a cluster.
    pub identity: String,
    /// A follower takes over at most this long after the leader stops renewing.
    pub duration: Duration,
    /// How long before expiry the holder renews.
    pub grace: Duration,
}

pub struct Leadership {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    pub async fn join(
        client: kube::Client,
        config: &LeaseConfig,
    ) -> Result<Self, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, &config.lease_name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.duration.as_secs().max(1))
            .with_grace(config.grace.as_secs().max(1))
            .build()
            .await?;
        let (state, task) = manager.watch().await;
        Ok(Self { state, task })
    }

    /// Resolves once this replica holds the Lease.
    pub async fn acquired(&mut self) {
        // An error means the manager task ended; `lost` reports that to the caller.
        let _ = self.state.wait_for(|leading| *leading).await;
    }

    /// Resolves when this replica no longer holds the Lease (or cannot renew it).
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|leading| !*leading).await;
    }

    /// Give the Lease up now, so a follower need not wait for it to expire.
    pub async fn release(self) {
        drop(self.state);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("lease released"),
            Ok(Err(error)) => tracing::warn!(%error, "lease release failed; it will expire"),
            Err(error) => tracing::warn!(%error, "lease task ended abnormally"),
        }
    }
}
