//! Chaos suite: the operator binary against ecs-sim on a real kube-apiserver while
//! processes are SIGKILLed, leaders killed, a leader cut off from the API server, and
//! the operator killed around a schedule window's edges. Per cell it prints the seed
//! and each kill, when every server was stopped and every policy Ready, stop ids sent,
//! accepted and redundant (and, apart, those re-sent after an accepted call's answer
//! was lost), 429s, status writes and the longest time with no leader acting; for the
//! window cell also the start figures. It fails when a target is missed: a server
//! stopped or started twice, a 429, a black-holed leader that kept sending, a server
//! started that the policies did not stop.
//!
//! `hack/chaos.sh [--cells a,b,c,d] [--seed N] [--json FILE]` (or `cargo bench --bench
//! chaos -- ...` once `hack/cplane/cplane.sh build` has run).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs small seeded
//! cells (a) and (d) as a self-check of the suite and its targets.

#[allow(dead_code)] // the e2e helpers: the suite uses only part of them
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

mod cells;
mod proxy;
mod report;
mod watch;

use anyhow::{Context as _, Result, bail};
use cells::Settings;
use clap::Parser;
use report::Figures;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(about = "Chaos suite: kills, leader changes and a black-holed leader")]
struct Args {
    /// Cells to run: a (20 SIGKILLs with faults), b (leader SIGKILLed 10 times),
    /// c (the leader black-holed from the API server), d (8 SIGKILLs around a
    /// schedule window's start and end, afterWindow Start, with faults).
    #[arg(long, value_delimiter = ',', default_value = "a,b,c,d")]
    cells: Vec<String>,
    /// Seed of the kill times and of the simulator (printed; the same seed, the same
    /// kill schedule).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 10_000)]
    servers: usize,
    #[arg(long, default_value_t = 10)]
    policies: usize,
    /// SIGKILLs of cell (a).
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// SIGKILLs of the leader in cell (b).
    #[arg(long, default_value_t = 10)]
    leader_kills: usize,
    /// SIGKILLs of cell (d), half around the window's start, half around its end.
    #[arg(long, default_value_t = 8)]
    window_kills: usize,
    /// Budget window of sim and operator in cells (a) and (b) (1000 servers per window).
    #[arg(long, default_value_t = 3000)]
    window_ms: u64,
    /// Budget window of cell (c), long enough that 500 ids wait through the hand-over.
    #[arg(long, default_value_t = 15_000)]
    blackhole_window_ms: u64,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Set by `cargo bench`; without it (under `cargo test`) the self-check runs.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn settings(&self, seed: u64, cell: &str) -> Settings {
        let a = cell == "a";
        // Cell (d) kills as (a) does, and has its faults.
        let faults = a || cell == "d";
        Settings {
            seed,
            servers: self.servers,
            policies: self.policies,
            window: Duration::from_millis(if cell == "c" {
                self.blackhole_window_ms
            } else {
                self.window_ms
            }),
            stop: Duration::from_secs(2),
            kills: match cell {
                "a" => self.kills,
                "d" => self.window_kills,
                _ => self.leader_kills,
            },
            kill_after: if faults {
                (Duration::from_millis(200), Duration::from_millis(2500))
            } else {
                (Duration::from_millis(500), Duration::from_secs(3))
            },
            faults,
            job_init: Duration::from_secs(1),
            limit: Duration::from_secs(600),
        }
    }
}

/// What `cargo test` runs, with a fixed seed: cell (a) small (2000 servers over 4
/// policies, 3 kills, a 2 s budget window, every fault on, job INIT 1 s), then cell
/// (d) on the same fleet with 8 kills around its window's edges.
fn self_check() -> Vec<(String, Settings)> {
    let a = Settings {
        seed: 13,
        servers: 2000,
        policies: 4,
        window: Duration::from_secs(2),
        stop: Duration::from_secs(1),
        kills: 3,
        kill_after: (Duration::from_millis(300), Duration::from_millis(2000)),
        faults: true,
        job_init: Duration::from_secs(1),
        limit: Duration::from_secs(90),
    };
    let d = Settings {
        kills: 8,
        ..a.clone()
    };
    vec![("a".to_owned(), a), ("d".to_owned(), d)]
}

fn main() {
    let args = Args::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
        .and_then(|rt| rt.block_on(run(&args)));
    operator::kill_all_live();
    cluster::teardown();
    if let Some(dir) = cluster::started_dir() {
        if std::env::var_os("CHAOS_KEEP").is_some() || result.is_err() {
            eprintln!("chaos: operator logs kept in {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let cells = match result {
        Ok(cells) => cells,
        Err(error) => {
            eprintln!("chaos: FAILED: {error:#}");
            std::process::exit(1);
        }
    };
    let missed: Vec<String> = cells.iter().flat_map(Figures::missed).collect();
    if !missed.is_empty() {
        eprintln!("chaos: targets missed:\n  {}", missed.join("\n  "));
        std::process::exit(1);
    }
    eprintln!(
        "chaos: targets met: every server stopped and policy Ready, none stopped twice, no 429, no stop from a fenced leader; after a window every server the policies stopped started once, none they did not stop"
    );
}

async fn run(args: &Args) -> Result<Vec<Figures>> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let cluster = tokio::task::spawn_blocking(cluster::get).await??;
    let client = setup::admin_client(&cluster.kubectl.kubeconfig).await?;
    let runs: Vec<(String, Settings)> = if args.bench {
        let seed = args.seed.unwrap_or_else(rand::random);
        eprintln!("chaos: seed {seed} (--seed {seed} repeats the kill schedule)");
        args.cells
            .iter()
            .map(|cell| (cell.clone(), args.settings(seed, cell)))
            .collect()
    } else {
        self_check()
    };
    let mut cells = Vec::new();
    for (cell, settings) in runs {
        let figures = match cell.as_str() {
            "a" => cells::kills(&cluster, &client, &settings).await,
            "b" => cells::leader_kills(&cluster, &client, &settings).await,
            "c" => cells::blackhole(&cluster, &client, &settings).await,
            "d" => cells::window_kills(&cluster, &client, &settings).await,
            other => bail!("no cell {other:?}: the cells are a, b, c and d"),
        }
        .with_context(|| format!("cell ({cell}), seed {}", settings.seed))?;
        eprint!(
            "chaos ({cell}) seed {}:\n{}",
            figures.seed,
            figures.kill_lines()
        );
        for note in &figures.notes {
            eprintln!("  {note}");
        }
        cells.push(figures);
    }
    println!("{}{}", report::table(&cells), report::window_table(&cells));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&cells)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(cells)
}
