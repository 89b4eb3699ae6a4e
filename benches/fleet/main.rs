//! Fleet benchmark: the operator binary against ecs-sim on a real kube-apiserver,
//! for N servers spread over P policies of one project, with a shortened budget
//! window on both sides. Prints stop calls against ceil(N/1000), listings per sync
//! round, ECS requests, 429s, time to all-stopped against the budget's bound, status
//! writes, and the operator's peak RSS and CPU seconds; plus a naive baseline (one
//! server per call, waiting for each job) against an identical simulator.
//!
//! With `--starts` it runs start cells instead (`starts.rs`): policies whose schedule
//! window ends during the cell, `afterWindow: Start`, `startLeadTime: Auto`; each
//! start call's time against the budget's plan, and when all run again.
//!
//! `hack/bench.sh [--servers 1000,10000] [--policies 1,100] [--starts] [--json FILE]`
//! (or `cargo bench --bench fleet -- ...` once `hack/cplane/cplane.sh build` has run).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs small cells, the
//! baseline on 3 servers and a small start cell (3000 servers, 1 policy, a 2 s budget
//! window), and fails if the call-count or start targets are missed, so the benchmark
//! itself is known to work and a start sent twice, for a server stopped by hand or
//! late fails the suite; figures from that run mean nothing.

#[allow(dead_code)] // the e2e helpers: the benchmark uses only part of them
#[path = "../../tests/e2e/cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "../../tests/e2e/kubectl.rs"]
mod kubectl;
#[allow(dead_code)]
#[path = "../../tests/e2e/operator.rs"]
mod operator;

#[path = "../shared/setup.rs"]
mod setup;

mod cell;
mod naive;
mod report;
mod starts;
mod targeting;

use anyhow::{Context as _, Result};
use clap::Parser;
use report::{Report, Settings};
use std::path::PathBuf;
use std::time::Duration;
use targeting::Targeting;

#[derive(Debug, Parser)]
#[command(about = "Fleet benchmark: the operator against ecs-sim on a local kube-apiserver")]
struct Args {
    /// Server counts N (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    servers: Vec<usize>,
    /// Policy counts P (comma-separated); each cell spreads N servers evenly over P policies.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    policies: Vec<usize>,
    /// How the policies name their servers (comma-separated): id lists, tag selectors
    /// that split the servers, or tag selectors that overlap (each server four times).
    #[arg(long, value_delimiter = ',', default_value = "ids")]
    targeting: Vec<Targeting>,
    /// The budget window of sim and operator (1000 servers per window; the API's is 60 s).
    #[arg(long, default_value_t = 1000)]
    window_ms: u64,
    /// How long the simulator takes to stop a server.
    #[arg(long, default_value_t = 300)]
    stop_ms: u64,
    /// Servers of the naive baseline (0: none).
    #[arg(long, default_value_t = 1000)]
    naive_servers: usize,
    /// How often the naive baseline polls its job (generous: Terraform waits seconds).
    #[arg(long, default_value_t = 100)]
    naive_poll_ms: u64,
    /// Run start cells (one per N and P) instead of the matrix: a schedule window
    /// with afterWindow Start and startLeadTime Auto, 1 % of the servers stopped by
    /// hand (`--servers 10000 --policies 1 --window-ms 2000`).
    #[arg(long)]
    starts: bool,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Set by `cargo bench`; without it (under `cargo test`) a short self-check runs.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    /// What `cargo test` runs: cells of two full calls over 4 policies (by ids, by
    /// splitting and by overlapping selectors), the baseline on 3 servers, and then
    /// [`SELF_CHECK_STARTS`].
    fn self_check() -> Self {
        Self {
            servers: vec![2000],
            policies: vec![4],
            targeting: vec![Targeting::Ids, Targeting::Split, Targeting::Overlap],
            window_ms: 1000,
            stop_ms: 300,
            naive_servers: 3,
            naive_poll_ms: 100,
            starts: false,
            json: None,
            bench: false,
        }
    }
}

/// The self-check's start cell: three start calls for two policies with the same
/// window, which must share the second, ...
const SELF_CHECK_STARTS: starts::Shape = starts::Shape {
    servers: 3000,
    policies: 2,
};
/// ... 2 s apart: a debug build's calls came up to 1.1 s after their plan, and the
/// cell allows one budget window.
const SELF_CHECK_START_WINDOW: Duration = Duration::from_secs(2);

fn main() {
    let parsed = Args::parse();
    let args = if parsed.bench {
        parsed
    } else {
        Args::self_check()
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
        .and_then(|rt| rt.block_on(run(&args)));
    cluster::teardown();
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            eprintln!("bench: FAILED: {error:#}");
            std::process::exit(1);
        }
    };
    // Operator logs and final /metrics of each cell are kept with BENCH_KEEP=1.
    if let Some(dir) = cluster::started_dir() {
        if std::env::var_os("BENCH_KEEP").is_some() {
            eprintln!("bench: logs and metrics kept in {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    // The start targets are checked in every run, the count targets by the
    // self-check only (the matrix reports what it missed in its table).
    let mut missed: Vec<String> = report
        .starts
        .iter()
        .flat_map(starts::StartFigures::missed)
        .collect();
    if !args.bench {
        missed.extend(report.missed_count_targets());
    }
    if !missed.is_empty() {
        eprintln!("bench: targets missed:\n  {}", missed.join("\n  "));
        std::process::exit(1);
    }
    if !args.bench {
        eprintln!("bench self-check: call, duplicate, listing, 429 and start targets met");
    }
}

async fn run(args: &Args) -> Result<Report> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let settings = Settings {
        window: Duration::from_millis(args.window_ms),
        stop: Duration::from_millis(args.stop_ms),
        naive_poll: Duration::from_millis(args.naive_poll_ms),
    };
    let cluster = tokio::task::spawn_blocking(cluster::get).await??;
    let client = setup::admin_client(&cluster.kubectl.kubeconfig).await?;
    let mut report = Report::new(&settings);
    if args.starts {
        let shapes: Vec<starts::Shape> = args
            .servers
            .iter()
            .flat_map(|&servers| {
                args.policies
                    .iter()
                    .map(move |&policies| starts::Shape { servers, policies })
            })
            .collect();
        run_starts(&shapes, &cluster, &client, &settings, &mut report).await?;
        return finish(args, report);
    }
    // The baseline waits on every job, so it is slow by design: it runs beside the
    // cells, on its own simulator with the same settings, and costs them no CPU to
    // speak of (one request per poll interval).
    let naive = (args.naive_servers > 0).then(|| {
        let settings = settings.clone();
        let servers = args.naive_servers;
        tokio::spawn(async move { naive::run(servers, &settings).await })
    });
    for &targeting in &args.targeting {
        for &servers in &args.servers {
            for &policies in &args.policies {
                let shape = cell::Shape {
                    servers,
                    policies,
                    targeting,
                };
                let cell = cell::run(&cluster, &client, shape, &settings)
                    .await
                    .with_context(|| format!("cell {shape}"))?;
                eprint!("bench: {}", cell.row());
                report.cells.push(cell);
            }
        }
    }
    if let Some(naive) = naive {
        eprintln!("bench: waiting for the naive baseline");
        let figures = naive.await??;
        eprintln!("bench: {}", figures.line());
        report.naive = Some(figures);
    }
    if !args.bench {
        let settings = Settings {
            window: SELF_CHECK_START_WINDOW,
            ..settings
        };
        run_starts(
            &[SELF_CHECK_STARTS],
            &cluster,
            &client,
            &settings,
            &mut report,
        )
        .await?;
    }
    finish(args, report)
}

/// One start cell for each shape.
async fn run_starts(
    shapes: &[starts::Shape],
    cluster: &cluster::Cluster,
    client: &kube::Client,
    settings: &Settings,
    report: &mut Report,
) -> Result<()> {
    for &shape in shapes {
        let (servers, policies) = (shape.servers, shape.policies);
        let cell = starts::run(cluster, client, shape, settings)
            .await
            .with_context(|| format!("start cell N={servers} P={policies}"))?;
        eprint!("bench: {}{}", cell.row(), cell.call_lines());
        report.starts.push(cell);
    }
    Ok(())
}

/// Prints the tables and writes the JSON if asked.
fn finish(args: &Args, report: Report) -> Result<Report> {
    println!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: figures written to {}", path.display());
    }
    Ok(report)
}
