//! Leader election on a `coordination.k8s.io` Lease: only the holder reconciles.
//!
//! `kube-lease-manager` keeps the Lease renewed with server-side apply; this module
//! turns its state channel into the three moments the operator cares about, and
//! fences the holder ([`fence`]): leadership counts as lost as soon as no renewal was
//! confirmed within the renew deadline, before a follower may take over.

mod fence;

use fence::{Fence, LeaseSeen};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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
    leases: Api<Lease>,
    config: LeaseConfig,
    /// Cancelled once the fence closes.
    fenced: CancellationToken,
}

impl Leadership {
    pub async fn join(
        client: kube::Client,
        config: &LeaseConfig,
    ) -> Result<Self, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client.clone(), &config.lease_name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.duration.as_secs().max(1))
            .with_grace(config.grace.as_secs().max(1))
            .build()
            .await?;
        let (state, task) = manager.watch().await;
        Ok(Self {
            state,
            task,
            leases: Api::namespaced(client, &config.namespace),
            config: config.clone(),
            fenced: CancellationToken::new(),
        })
    }

    /// Resolves once this replica holds the Lease; from then on the fence watches
    /// its renewals.
    pub async fn acquired(&mut self) {
        // An error means the manager task ended; `lost` reports that to the caller.
        let _ = self.state.wait_for(|leading| *leading).await;
        let deadline = fence::renew_deadline(self.config.duration, self.config.grace);
        let fence = Fence::new(self.config.identity.clone(), deadline);
        // Several reads per grace period, each bounded, so a hung read cannot keep
        // the fence open.
        let poll =
            (self.config.grace / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        tokio::spawn(guard(
            self.leases.clone(),
            self.config.lease_name.clone(),
            fence,
            poll,
            self.fenced.clone(),
        ));
    }

    /// Resolves when this replica no longer holds the Lease, or cannot show it renewed
    /// it within the renew deadline.
    pub async fn lost(&mut self) {
        tokio::select! {
            _ = self.state.wait_for(|leading| !*leading) => {}
            () = self.fenced.cancelled() => {}
        }
    }

    /// Give the Lease up now, so a follower need not wait for it to expire.
    pub async fn release(self) {
        self.fenced.cancel();
        drop(self.state);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("lease released"),
            Ok(Err(error)) => tracing::warn!(%error, "lease release failed; it will expire"),
            Err(error) => tracing::warn!(%error, "lease task ended abnormally"),
        }
    }
}

/// Reads the Lease until the fence closes, then cancels `fenced`. A read that fails
/// or times out confirms nothing: the fence closes at the deadline of the last
/// renewal it saw.
async fn guard(
    leases: Api<Lease>,
    name: String,
    mut fence: Fence,
    poll: Duration,
    fenced: CancellationToken,
) {
    loop {
        match tokio::time::timeout(poll, leases.get(&name)).await {
            Ok(Ok(lease)) => {
                let spec = lease.spec.unwrap_or_default();
                fence.observe(&LeaseSeen {
                    holder: spec.holder_identity,
                    renewed_at: spec.renew_time.map(|t| t.0),
                });
            }
            Ok(Err(error)) => tracing::debug!(%error, "lease read failed"),
            Err(_) => tracing::debug!("lease read timed out"),
        }
        let now = jiff::Timestamp::now();
        let left = fence
            .open_until()
            .filter(|_| fence.is_open(now))
            .and_then(|until| Duration::try_from(until.duration_since(now)).ok());
        let Some(left) = left else {
            if !fenced.is_cancelled() {
                tracing::error!(lease = %name, "no renewal of the Lease confirmed within the renew deadline: fenced, submitting nothing more");
            }
            fenced.cancel();
            return;
        };
        tokio::select! {
            () = tokio::time::sleep(poll.min(left)) => {}
            () = fenced.cancelled() => return,
        }
    }
}
