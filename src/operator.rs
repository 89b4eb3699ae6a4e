//! `ecs-power-operator run`: wires the controller, the fleets, leader election, the
//! HTTP endpoints and signal handling together.

use crate::controller::{self, Context, ControllerConfig, SecretChanges};
use crate::ecs::auth::Credentials;
use crate::ecs::budget::{ActionBudget, BudgetLimits};
use crate::ecs::client::{EcsApi, HttpEcsClient};
use crate::ecs::config::EcsClientConfig;
use crate::ecs::error::EcsError;
use crate::ecs::observer::{RequestEvent, RequestObserver};
use crate::fleet::journal::ConfigMapJournals;
use crate::fleet::{CloudTarget, Connector, FleetConfig, FleetRegistry};
use crate::leader::{Leadership, LeaseConfig};
use crate::metrics::{Metrics, RequestLabels};
use crate::plan::Backoff;
use crate::probes::{self, Readiness};
use crate::telemetry::LogFormat;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "EPO_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Watch policies (and Secrets) of this namespace only; all namespaces when unset.
    #[arg(long, env = "EPO_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    #[arg(long, value_enum, env = "EPO_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Reconcile only while holding a coordination.k8s.io Lease.
    #[arg(long)]
    pub leader_election: bool,
    #[arg(long, default_value = "ecs-power-operator")]
    pub lease_name: String,
    /// Namespace of the Lease; the pod's own namespace in a cluster.
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "ecs-power-operator-system"
    )]
    pub lease_namespace: String,
    /// This replica's identity in the Lease; the pod name in a cluster.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// A follower takes over at most this long after the leader is gone.
    #[arg(long, default_value_t = 15)]
    pub lease_duration_secs: u64,
    /// Servers the operator stops per project and window (the API allows 1000 a minute).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub budget_servers: u64,
    #[arg(long, default_value_t = 60_000)]
    pub budget_window_ms: u64,
    /// Policies synced at once (at least 1); the others wait their turn in order.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Requeue interval while stops run.
    #[arg(long, default_value_t = 2_000)]
    pub active_requeue_ms: u64,
    /// Re-check for drift (servers started by hand) this often once all is stopped.
    #[arg(long, default_value_t = 60_000)]
    pub drift_interval_ms: u64,
    /// Oldest server listing a sync may use.
    #[arg(long, default_value_t = 2_000)]
    pub inventory_max_age_ms: u64,
    /// How long a partial stop batch waits for other policies' servers to join it.
    #[arg(long, default_value_t = 500)]
    pub linger_ms: u64,
    #[arg(long, default_value_t = 1_000)]
    pub job_poll_interval_ms: u64,
    /// A stop job still unfinished this long after its submission is given up on:
    /// its servers are re-observed, its policy shows JobLost.
    #[arg(long, default_value_t = 1_800_000)]
    pub job_deadline_ms: u64,
    /// How long after a stop call's outcome became unknown (its answer lost, or the
    /// process killed before it came) a listing may decide about its servers: a busy
    /// cloud leaves a new job's servers untouched for a while.
    #[arg(long, default_value_t = 10_000)]
    pub unknown_outcome_settle_ms: u64,
    /// Timeout of each ECS API request, connect to last body byte; a read with its
    /// retries gets twice this.
    #[arg(long, default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Host suffixes a policy's ECS endpoint must have (comma-separated, e.g.
    /// `otc.t-systems.com`); others get Degraded/EndpointNotAllowed. Empty: any host,
    /// so any tenant who may create a policy can make the operator send requests to
    /// any address it reaches (see the README on SSRF).
    #[arg(long, env = "EPO_ALLOWED_ENDPOINTS", value_delimiter = ',')]
    pub allowed_endpoints: Vec<String>,
    /// How Secret changes (a rotated key, a fixed Secret) are seen: `watch`, a
    /// metadata-only watch of Secrets (needs list and watch of Secrets: the
    /// cluster-wide RBAC mode), or `poll`, a metadata `get` of each Secret a policy
    /// names every `--secret-poll-interval-ms` (needs only `get`: the namespaced mode).
    #[arg(long, value_enum, env = "EPO_SECRET_CHANGES", default_value = "watch")]
    pub secret_changes: SecretChangesArg,
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub secret_poll_interval_ms: u64,
    /// First retry delay of a server whose stop failed; doubles up to 10 minutes.
    #[arg(long, default_value_t = 10_000)]
    pub retry_backoff_ms: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SecretChangesArg {
    Watch,
    Poll,
}

/// Feeds the ECS client's request events into Prometheus.
struct MetricsObserver(Arc<Metrics>);

impl std::fmt::Debug for MetricsObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsObserver")
    }
}

impl RequestObserver for MetricsObserver {
    fn observe(&self, event: &RequestEvent) {
        let code = match (event.status, event.error) {
            (Some(status), _) => status.to_string(),
            (None, Some(kind)) => kind.as_str().to_owned(),
            (None, None) => "none".to_owned(),
        };
        self.0
            .ecs_requests
            .get_or_create(&RequestLabels {
                operation: event.operation.to_owned(),
                code,
            })
            .inc();
        self.0
            .ecs_request_duration
            .observe(event.duration.as_secs_f64());
        if !event.waited.is_zero() {
            self.0.waited("ecs", event.waited);
        }
    }
}

struct HttpConnector {
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Connector for HttpConnector {
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
        config.request_timeout = self.timeout;
        config.request_deadline = self.timeout * 2;
        config.budget = budget;
        config.observer = Arc::new(MetricsObserver(Arc::clone(&self.metrics)));
        Ok(Arc::new(HttpEcsClient::new(config)?))
    }
}

impl RunArgs {
    fn controller_config(&self) -> ControllerConfig {
        ControllerConfig {
            namespace: self.watch_namespace.clone(),
            concurrency: self.concurrency,
            active_requeue: millis(self.active_requeue_ms),
            drift_interval: millis(self.drift_interval_ms),
            inventory_max_age: millis(self.inventory_max_age_ms),
            retry_backoff: Backoff {
                base: millis(self.retry_backoff_ms),
                max: Duration::from_secs(600).max(millis(self.retry_backoff_ms)),
            },
            allowed_endpoints: self.allowed_endpoints.clone(),
            secret_changes: match self.secret_changes {
                SecretChangesArg::Watch => SecretChanges::Watch,
                SecretChangesArg::Poll => SecretChanges::Poll(millis(self.secret_poll_interval_ms)),
            },
            ..ControllerConfig::default()
        }
    }

    fn fleet_config(&self) -> FleetConfig {
        FleetConfig {
            linger: millis(self.linger_ms),
            job_poll_interval: millis(self.job_poll_interval_ms),
            job_deadline: millis(self.job_deadline_ms),
            unknown_outcome_settle: millis(self.unknown_outcome_settle_ms),
            ..FleetConfig::default()
        }
    }
}

async fn terminate_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let readiness = Arc::new(Readiness::default());
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            terminate_signal().await;
            tracing::info!("termination signal received; shutting down");
            shutdown.cancel();
        });
    }
    let server = probes::serve(
        args.http_addr,
        probes::router(Arc::clone(&metrics), Arc::clone(&readiness)),
        shutdown.clone().cancelled_owned(),
    )
    .await?;
    tracing::info!(addr = %args.http_addr, "serving /metrics, /healthz and /readyz");

    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("ecs-power-operator-{}", std::process::id()));
    let connector = HttpConnector {
        timeout: millis(args.request_timeout_ms),
        metrics: Arc::clone(&metrics),
    };
    // The fleets' workers, the only senders of stop calls: stopped at once when
    // leadership is lost, before the controller's syncs under way have finished.
    let submitting = shutdown.child_token();
    // The call journals live beside the Lease, in the operator's own namespace.
    let journals = ConfigMapJournals {
        client: client.clone(),
        namespace: args.lease_namespace.clone(),
        prefix: args.lease_name.clone(),
        watched: args.watch_namespace.clone(),
    };
    let fleets = FleetRegistry::new(
        Box::new(connector),
        Box::new(journals),
        args.fleet_config(),
        BudgetLimits {
            servers_per_window: usize::try_from(args.budget_servers).unwrap_or(usize::MAX),
            window: millis(args.budget_window_ms),
        },
        Arc::clone(&metrics),
        submitting.clone(),
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::clone(&metrics),
        fleets,
        args.controller_config(),
        Some(identity.clone()),
    ));
    readiness.set(true);

    let mut exit_error = None;
    if args.leader_election {
        let lease = LeaseConfig {
            lease_name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity: identity.clone(),
            duration: Duration::from_secs(args.lease_duration_secs),
            // Renewed halfway: the fence (renew deadline duration - grace / 2) then
            // leaves a renewal a quarter of the lease to succeed.
            grace: Duration::from_secs((args.lease_duration_secs / 2).max(1)),
        };
        let mut leadership = Leadership::join(client, &lease).await?;
        tracing::info!(identity, lease = %lease.lease_name, "waiting for leadership");
        tokio::select! {
            _ = leadership.acquired() => {}
            _ = shutdown.cancelled() => {
                leadership.release().await;
                return finish(server, readiness).await;
            }
        }
        tracing::info!(identity, "leading: reconciling");
        let stop = shutdown.clone();
        let lost = CancellationToken::new();
        let controller_stop = {
            let (stop, lost) = (stop.clone(), lost.clone());
            async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = lost.cancelled() => {}
                }
            }
        };
        let run = controller::run(ctx, controller_stop);
        tokio::pin!(run);
        tokio::select! {
            _ = &mut run => {}
            _ = leadership.lost() => {
                tracing::error!("leadership lost; stopping reconciles and exiting so a new term starts clean");
                submitting.cancel();
                lost.cancel();
                run.await;
                exit_error = Some(anyhow::anyhow!("leadership lost"));
            }
        }
        shutdown.cancel();
        leadership.release().await;
    } else {
        controller::run(ctx, shutdown.clone().cancelled_owned()).await;
        shutdown.cancel();
    }
    finish(server, readiness).await?;
    exit_error.map_or(Ok(()), Err)
}

async fn finish(
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    readiness: Arc<Readiness>,
) -> anyhow::Result<()> {
    readiness.set(false);
    server.await??;
    tracing::info!("stopped");
    Ok(())
}
