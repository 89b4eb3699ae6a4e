//! `ecs-sim`: the ECS API simulator as a standalone process (see docs/ecs-sim.md).
//!
//! Prints exactly one line, `listening on http://ADDR`, on stdout once it accepts
//! connections, so scripts can wait for it; everything else goes to stderr.

use clap::Parser;
use ecs_power_operator::sim::{self, ServerErrorMode, SimConfig};
use ecs_power_operator::telemetry::{self, LogFormat};
use secrecy::SecretString;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

/// No `Debug`: the secret key must never reach a log line.
#[derive(Parser)]
#[command(version, about = "Simulator of the OTC / Huawei Cloud ECS v1 API")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8800")]
    listen: SocketAddr,
    /// The project id (32 hex digits) the simulator answers for.
    #[arg(long, env = "ECS_SIM_PROJECT_ID")]
    project_id: String,
    #[arg(long, env = "ECS_SIM_ACCESS_KEY")]
    access_key: String,
    /// Better given through the environment than on the command line.
    #[arg(long, env = "ECS_SIM_SECRET_KEY", hide_env_values = true)]
    secret_key: String,
    /// Accept `X-Auth-Token: <token>` as well as AK/SK signatures.
    #[arg(long, env = "ECS_SIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long, default_value_t = 2500)]
    servers: usize,
    /// Seed of server ids, job ids and injected faults.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Time a server takes to stop, start or reboot.
    #[arg(long, default_value_t = 3000)]
    stop_duration_ms: u64,
    /// Servers that stop/start/reboot calls may act on per budget window.
    #[arg(long, default_value_t = 1000)]
    servers_per_minute: usize,
    #[arg(long, default_value_t = 60_000)]
    budget_window_ms: u64,
    /// Signed requests per second above which the gateway answers 429.
    #[arg(long)]
    throttle_rps: Option<f64>,
    /// Fraction of started sub-jobs that fail.
    #[arg(long, default_value_t = 0.0)]
    subjob_failure_rate: f64,
    /// Fraction of requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Fraction of accepted batch actions (executed) answered 504 by the gateway.
    #[arg(long, default_value_t = 0.0)]
    accept_then_fail_rate: f64,
    /// Fraction of accepted batch actions (executed) whose connection is reset unanswered.
    #[arg(long, default_value_t = 0.0)]
    accept_then_drop_rate: f64,
    /// Time a new job stays INIT, without sub-jobs and its servers untouched.
    #[arg(long, default_value_t = 0)]
    job_init_ms: u64,
    /// Per-server problems in a batch action: a failed sub-job, or a synchronous 4xx.
    #[arg(long, value_enum, default_value_t = ServerErrorMode::SubJob)]
    server_errors: ServerErrorMode,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    telemetry::init(args.log_format);
    let config = SimConfig {
        project_id: args.project_id,
        access_key: args.access_key,
        secret_key: SecretString::from(args.secret_key),
        token: args.token.map(SecretString::from),
        servers: args.servers,
        seed: args.seed,
        stop_duration: Duration::from_millis(args.stop_duration_ms),
        servers_per_window: args.servers_per_minute,
        budget_window: Duration::from_millis(args.budget_window_ms),
        throttle_rps: args.throttle_rps,
        subjob_failure_rate: args.subjob_failure_rate,
        error_rate: args.error_rate,
        latency: Duration::from_millis(args.latency_ms),
        server_errors: args.server_errors,
        accept_then_fail_rate: args.accept_then_fail_rate,
        accept_then_drop_rate: args.accept_then_drop_rate,
        job_init: Duration::from_millis(args.job_init_ms),
    };
    let running = sim::start(config, args.listen).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", running.base_url())?;
    stdout.flush()?;
    drop(stdout);
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
