//! `ecs-sim`: a faithful simulator of the ECS v1 API surface the operator uses.
//!
//! It verifies SDK-HMAC-SHA256 signatures with the same verifier the official SDK's
//! vectors pin down, runs batch stop/start/reboot as jobs with one sub-job per server,
//! lists and shows servers, and enforces the documented limits (1000 ids per call,
//! the per-project budget, request-rate throttling). Faults can be injected and changed
//! at run time. Where the docs are silent the choice is written in `docs/ecs-sim.md`.
//!
//! Tests start it in-process with [`start`] on port 0; the `ecs-sim` binary wraps it.

mod admin;
mod api;
mod clock;
mod connection;
mod failure;
mod job;
mod limits;
mod listing;
mod profile;
mod render;
mod server;
mod shown;
mod state;
mod stats;
mod tags;

pub use job::JobRecord;
pub use server::Status;
pub use stats::SimStats;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use state::State;
use stats::Counters;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a per-server problem (unknown, locked, busy, wrong status) does to a batch
/// action. The docs allow both: "HTTP status codes may not be accurate".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ServerErrorMode {
    /// The job is accepted; that server's sub-job fails with the code.
    #[default]
    SubJob,
    /// The whole request is refused synchronously with the first problem's code
    /// (404 `Ecs.0114`, 400 `Ecs.0100`/`Ecs.0605`, 501 `Ecs.0603`); no job is created.
    Reject,
}

/// The behaviour that can be changed while the simulator runs (`POST /_sim/faults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Signed requests per second above which the gateway answers 429 `APIGW.0308`.
    pub throttle_rps: Option<f64>,
    /// Fraction of started sub-jobs that end FAIL (`Ecs.0002`), the server unchanged.
    pub subjob_failure_rate: f64,
    /// Fraction of admitted requests answered 500 `Common.0001` without acting.
    pub error_rate: f64,
    /// Delay before each API answer.
    pub latency_ms: u64,
    /// Fraction of accepted batch actions (executed, job created) answered 504
    /// `APIG.0201` by the gateway, so the client cannot tell they were done.
    pub accept_then_fail_rate: f64,
    /// Fraction of accepted batch actions (executed, job created) whose connection is
    /// reset before any byte of the answer.
    pub accept_then_drop_rate: f64,
    /// How long a new job stays INIT, without sub-jobs and without touching its
    /// servers, before it runs.
    pub job_init_ms: u64,
    /// Delay between accepting a batch action (job created) and answering it: a slow
    /// way back, during which the client knows nothing of the job.
    pub answer_delay_ms: u64,
}

/// A partial update of [`Faults`]; absent fields stay. `throttle_rps: 0` turns throttling off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsPatch {
    pub throttle_rps: Option<f64>,
    pub subjob_failure_rate: Option<f64>,
    pub error_rate: Option<f64>,
    pub latency_ms: Option<u64>,
    pub accept_then_fail_rate: Option<f64>,
    pub accept_then_drop_rate: Option<f64>,
    pub job_init_ms: Option<u64>,
    pub answer_delay_ms: Option<u64>,
}

impl Faults {
    fn apply(&mut self, patch: FaultsPatch) {
        if let Some(rps) = patch.throttle_rps {
            self.throttle_rps = (rps > 0.0).then_some(rps);
        }
        if let Some(rate) = patch.subjob_failure_rate {
            self.subjob_failure_rate = rate;
        }
        if let Some(rate) = patch.error_rate {
            self.error_rate = rate;
        }
        if let Some(ms) = patch.latency_ms {
            self.latency_ms = ms;
        }
        if let Some(rate) = patch.accept_then_fail_rate {
            self.accept_then_fail_rate = rate;
        }
        if let Some(rate) = patch.accept_then_drop_rate {
            self.accept_then_drop_rate = rate;
        }
        if let Some(ms) = patch.job_init_ms {
            self.job_init_ms = ms;
        }
        if let Some(ms) = patch.answer_delay_ms {
            self.answer_delay_ms = ms;
        }
    }
}

pub const DEFAULT_PROJECT_ID: &str = "0123456789abcdef0123456789abcdef";
/// The fixed test credentials of the signing vectors; never real ones.
pub const DEFAULT_ACCESS_KEY: &str = "AKTESTEXAMPLE0000001";
pub const DEFAULT_SECRET_KEY: &str = "SKtestExampleSecretKey0123456789abcdefXYZ";
/// `X-Sdk-Date` tolerance. Undocumented; 15 minutes as common for HMAC gateways.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub project_id: String,
    pub access_key: String,
    pub secret_key: SecretString,
    /// When set, `X-Auth-Token: <token>` is accepted instead of a signature.
    pub token: Option<SecretString>,
    pub servers: usize,
    pub seed: u64,
    /// Time a server takes to stop, start or reboot.
    pub stop_duration: Duration,
    /// Servers that stop/start/reboot calls may act on per `budget_window` (documented: 1000/min).
    pub servers_per_window: usize,
    pub budget_window: Duration,
    pub throttle_rps: Option<f64>,
    pub subjob_failure_rate: f64,
    pub error_rate: f64,
    pub latency: Duration,
    pub server_errors: ServerErrorMode,
    pub accept_then_fail_rate: f64,
    pub accept_then_drop_rate: f64,
    /// Time a new job stays INIT before its sub-jobs start.
    pub job_init: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            project_id: DEFAULT_PROJECT_ID.to_owned(),
            access_key: DEFAULT_ACCESS_KEY.to_owned(),
            secret_key: SecretString::from(DEFAULT_SECRET_KEY),
            token: None,
            servers: 100,
            seed: 0,
            stop_duration: Duration::from_secs(3),
            servers_per_window: 1000,
            budget_window: Duration::from_secs(60),
            throttle_rps: None,
            subjob_failure_rate: 0.0,
            error_rate: 0.0,
            latency: Duration::ZERO,
            server_errors: ServerErrorMode::default(),
            accept_then_fail_rate: 0.0,
            accept_then_drop_rate: 0.0,
            job_init: Duration::ZERO,
        }
    }
}

impl SimConfig {
    fn faults(&self) -> Faults {
        Faults {
            throttle_rps: self.throttle_rps.filter(|rps| *rps > 0.0),
            subjob_failure_rate: self.subjob_failure_rate,
            error_rate: self.error_rate,
            latency_ms: self.latency.as_millis() as u64,
            accept_then_fail_rate: self.accept_then_fail_rate,
            accept_then_drop_rate: self.accept_then_drop_rate,
            job_init_ms: self.job_init.as_millis() as u64,
            answer_delay_ms: 0,
        }
    }

    fn validate(&self) -> Result<(), SimError> {
        let hex32 = self.project_id.len() == 32
            && self
                .project_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex32 {
            return Err(SimError::InvalidConfig(
                "project id must be 32 lowercase hex digits".into(),
            ));
        }
        if self.access_key.is_empty() {
            return Err(SimError::InvalidConfig(
                "access key must not be empty".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulator configuration: {0}")]
    InvalidConfig(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no server with id `{0}`")]
    UnknownServer(String),
    #[error("{} is transient; set ACTIVE, SHUTOFF or ERROR", .0.as_str())]
    TransientStatus(Status),
    #[error("invalid server name: {0}")]
    InvalidName(String),
    #[error("invalid tags: {0}")]
    InvalidTags(String),
}

/// Shared by the HTTP handlers and [`SimControl`].
struct Sim {
    project_id: String,
    access_key: String,
    secret_key: SecretString,
    token: Option<SecretString>,
    /// Immutable; the wire view reads it without the state lock.
    profile: Arc<profile::ProjectProfile>,
    state: Mutex<State>,
    counters: Mutex<Counters>,
}

impl Sim {
    /// The state with every transition due by now applied: each request sees the
    /// world as of its arrival.
    fn state(&self) -> (MutexGuard<'_, State>, Instant) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.advance(now);
        (state, now)
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stats(&self) -> SimStats {
        let (by_status, jobs) = {
            let (state, _) = self.state();
            (state.servers_by_status(), state.job_count())
        };
        self.counters().snapshot(by_status, jobs as u64)
    }
}

/// Start the simulator on `listen` (port 0 picks a free one).
pub async fn start(config: SimConfig, listen: SocketAddr) -> Result<RunningSim, SimError> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: listen,
        source,
    })?;
    let state = State::new(&config, Instant::now());
    let sim = Arc::new(Sim {
        profile: state.profile(),
        state: Mutex::new(state),
        project_id: config.project_id,
        access_key: config.access_key,
        secret_key: config.secret_key,
        token: config.token,
        counters: Mutex::new(Counters::default()),
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app =
        api::router(sim.clone()).into_make_service_with_connect_info::<connection::Connection>();
    let listener = connection::ResettableListener(listener);
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stop_rx.await;
        });
        if let Err(error) = serve.await {
            tracing::error!(%error, "ecs-sim server stopped");
        }
    });
    tracing::info!(%addr, "ecs-sim listening");
    Ok(RunningSim {
        addr,
        sim,
        stop_tx,
        task,
    })
}

pub struct RunningSim {
    addr: SocketAddr,
    sim: Arc<Sim>,
    stop_tx: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSim {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every server id in creation order; the first `servers` depend on the seed alone.
    pub fn server_ids(&self) -> Vec<String> {
        self.sim.state().0.server_ids()
    }

    pub async fn stats(&self) -> SimStats {
        self.sim.stats()
    }

    pub fn control(&self) -> SimControl {
        SimControl {
            sim: self.sim.clone(),
        }
    }

    /// Stops accepting connections and waits (at most 5 s) for open ones to finish.
    pub async fn shutdown(self) {
        let _ = self.stop_tx.send(());
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

/// In-process equivalents of the `/_sim/` admin endpoints.
#[derive(Clone)]
pub struct SimControl {
    sim: Arc<Sim>,
}

impl SimControl {
    /// Adds `n` ACTIVE servers; returns their ids.
    pub fn add_servers(&self, n: usize) -> Vec<String> {
        let (mut state, now) = self.sim.state();
        state.add_servers(n, now)
    }

    /// Puts a server into ACTIVE, SHUTOFF or ERROR at once, as if changed by hand
    /// outside the operator (drift).
    pub fn set_status(&self, id: &str, status: Status) -> Result<(), SimError> {
        let (mut state, now) = self.sim.state();
        state.set_status(id, status, now)
    }

    /// A server's status as a `show` would give it.
    pub fn status(&self, id: &str) -> Result<Status, SimError> {
        let (state, _) = self.sim.state();
        state
            .server(id)
            .map(|server| server.status)
            .ok_or_else(|| SimError::UnknownServer(id.to_owned()))
    }

    /// Every job the project has run, in submission order.
    pub fn jobs(&self) -> Vec<JobRecord> {
        self.sim.state().0.job_records()
    }

    pub fn set_locked(&self, id: &str, locked: bool) -> Result<(), SimError> {
        self.sim.state().0.set_locked(id, locked)
    }

    /// Renames a server; its derived name (`<env>-<team>-NNNNN`) is gone for good.
    pub fn set_name(&self, id: &str, name: &str) -> Result<(), SimError> {
        self.sim.state().0.set_name(id, name)
    }

    /// Replaces a server's tags (`key=value` or `key`), as a user tagging it would.
    pub fn set_tags(&self, id: &str, tags: &[String]) -> Result<(), SimError> {
        self.sim.state().0.set_tags(id, tags)
    }

    pub fn faults(&self) -> Faults {
        self.sim.state().0.faults.clone()
    }

    /// Applies `patch` and returns the faults now in force.
    pub fn set_faults(&self, patch: FaultsPatch) -> Faults {
        let (mut state, _) = self.sim.state();
        state.faults.apply(patch);
        state.faults.clone()
    }
}
