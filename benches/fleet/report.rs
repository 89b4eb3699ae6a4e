//! The figures of one benchmark run, their targets, and how they are printed.

use crate::starts::{self, StartFigures};
use crate::targeting::Targeting;
use serde::Serialize;
use std::time::Duration;

/// The operator's default `--inventory-max-age-ms`, in seconds.
const INVENTORY_MAX_AGE_S: f64 = 2.0;

/// Most servers one stop call may carry.
pub use ecs_power_operator::ecs::wire::MAX_SERVERS_PER_ACTION as MAX_PER_CALL;

#[derive(Debug, Clone)]
pub struct Settings {
    pub window: Duration,
    pub stop: Duration,
    pub naive_poll: Duration,
}

impl Settings {
    /// The fastest any client can stop `servers` under the budget: one full call per
    /// window, then the last job's own duration.
    pub fn bound(&self, servers: usize) -> Duration {
        let calls = servers.div_ceil(MAX_PER_CALL) as u32;
        self.window * calls.saturating_sub(1) + self.stop
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CellFigures {
    pub servers: usize,
    pub policies: usize,
    pub targeting: Targeting,
    pub stop_calls: u64,
    /// ceil(N/1000).
    pub stop_calls_bound: u64,
    pub largest_stop_call: u64,
    /// Ids over all stop calls: N unless a server was stopped twice.
    pub stop_ids_sent: u64,
    /// Full listings (all pages) the simulator served.
    pub listings: f64,
    pub list_pages: u64,
    pub reconciles: u64,
    /// reconciles / P: how many times every policy was synced.
    pub sync_rounds: f64,
    pub listings_per_sync_round: f64,
    /// Every request the simulator answered.
    pub ecs_requests: u64,
    pub responses_429: u64,
    /// From the operator's start until the simulator reports every server SHUTOFF.
    pub all_stopped_s: f64,
    /// From the operator's start until every policy's status says Stopped.
    pub all_policies_stopped_s: f64,
    /// `Settings::bound`.
    pub bound_s: f64,
    /// all_stopped_s over bound_s, in percent above it.
    pub over_bound_pct: f64,
    pub status_writes: u64,
    pub peak_rss_mib: f64,
    pub cpu_s: f64,
    /// CPU seconds kube-apiserver and etcd used while the cell ran.
    pub control_plane_cpu_s: f64,
    /// The estimate (`status.queue`) of the policy that became Stopped last.
    pub last_policy_eta: Option<EtaFigures>,
}

/// One policy's estimates against its real completion, in seconds from the
/// operator's start: the first, and how long those shown after it were right.
#[derive(Debug, Clone, Serialize)]
pub struct EtaFigures {
    pub policy: String,
    /// When its status first showed an estimate.
    pub estimated_at_s: f64,
    /// That first estimate.
    pub estimate_s: f64,
    /// When its status said Stopped.
    pub stopped_s: f64,
    /// How far the estimate was off, in percent of the wait it forecast
    /// (stopped_s - estimated_at_s); negative: it came early.
    pub off_pct: f64,
    /// Of the time its status showed an estimate, the share (percent) during which
    /// the one shown was within 10 % of that whole wait of the real completion: what
    /// someone glancing at `kubectl get` at any moment of the wait would see.
    pub shown_within_10pct: f64,
    /// Every status the watch saw until Stopped: seconds from the start, and the
    /// estimate it showed.
    pub shown: Vec<(f64, Option<f64>)>,
}

impl EtaFigures {
    /// `shown`: each status the watch saw, in order: when, and the estimate it
    /// showed (none once nothing of the policy's waited). `None` if none showed one.
    pub fn new(policy: String, shown: &[(f64, Option<f64>)], stopped_s: f64) -> Option<Self> {
        let first = shown.iter().position(|(_, estimate)| estimate.is_some())?;
        let (estimated_at_s, estimate_s) = (shown[first].0, shown[first].1?);
        let waited = (stopped_s - estimated_at_s).max(f64::EPSILON);
        let (mut showing, mut right) = (0.0, 0.0);
        let until = shown[first + 1..]
            .iter()
            .map(|(at, _)| *at)
            .chain([stopped_s]);
        for (&(at, estimate), until) in shown[first..].iter().zip(until) {
            let Some(estimate) = estimate else { continue };
            let lasted = (until.min(stopped_s) - at).max(0.0);
            showing += lasted;
            if (estimate - stopped_s).abs() <= 0.1 * waited {
                right += lasted;
            }
        }
        Some(Self {
            off_pct: (estimate_s - stopped_s) / waited * 100.0,
            shown_within_10pct: right / showing.max(f64::EPSILON) * 100.0,
            shown: shown.to_vec(),
            policy,
            estimated_at_s,
            estimate_s,
            stopped_s,
        })
    }

    fn cell(&self) -> String {
        format!(
            "{:.1} at {:.1} ({:.1}, {:+.1}%); within 10% {:.0}% of the time",
            self.estimate_s,
            self.estimated_at_s,
            self.stopped_s,
            self.off_pct,
            self.shown_within_10pct
        )
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Cell {
    Measured(Box<CellFigures>),
    NotApplicable {
        servers: usize,
        policies: usize,
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct NaiveFigures {
    pub servers: usize,
    pub stop_calls: u64,
    pub ecs_requests: u64,
    pub responses_429: u64,
    pub all_stopped_s: f64,
    pub bound_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub window_ms: u64,
    pub stop_ms: u64,
    pub naive_poll_ms: u64,
    pub cells: Vec<Cell>,
    pub naive: Option<NaiveFigures>,
    /// The start cells (`--starts`).
    pub starts: Vec<StartFigures>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Report {
    pub fn new(settings: &Settings) -> Self {
        Self {
            window_ms: settings.window.as_millis() as u64,
            stop_ms: settings.stop.as_millis() as u64,
            naive_poll_ms: settings.naive_poll.as_millis() as u64,
            cells: Vec::new(),
            naive: None,
            starts: Vec::new(),
        }
    }

    /// The targets that do not depend on speed: ceil(N/1000) full calls, no server
    /// sent twice, listings bounded by time (not by policies), no 429.
    pub fn missed_count_targets(&self) -> Vec<String> {
        let mut missed = Vec::new();
        for cell in &self.cells {
            let Cell::Measured(f) = cell else { continue };
            let at = format!("N={} P={} by {}", f.servers, f.policies, f.targeting.name());
            if f.stop_calls != f.stop_calls_bound {
                missed.push(format!(
                    "{at}: {} stop calls, bound {}",
                    f.stop_calls, f.stop_calls_bound
                ));
            }
            if f.stop_ids_sent != f.servers as u64 {
                missed.push(format!(
                    "{at}: {} ids sent in stop calls for {} servers",
                    f.stop_ids_sent, f.servers
                ));
            }
            if f.largest_stop_call > MAX_PER_CALL as u64 {
                missed.push(format!("{at}: a stop call of {} ids", f.largest_stop_call));
            }
            // Syncs are not in lock-step, so the guarantee is in time: at most one
            // listing per inventory max age while the cell ran, whatever P is.
            let allowed = (f.all_policies_stopped_s / INVENTORY_MAX_AGE_S).floor() + 2.0;
            if f.listings > allowed {
                missed.push(format!(
                    "{at}: {:.0} listings in {:.1} s (at most {allowed:.0})",
                    f.listings, f.all_policies_stopped_s
                ));
            }
            if f.responses_429 > 0 {
                missed.push(format!("{at}: {} responses 429", f.responses_429));
            }
        }
        missed
    }

    /// A Markdown table of every cell and the baseline, then one of the start cells
    /// with each start call.
    pub fn table(&self) -> String {
        let mut out = format!(
            "\nbudget: {} servers per {} ms window; the simulator stops a server in {} ms\n\n",
            MAX_PER_CALL, self.window_ms, self.stop_ms
        );
        if !self.cells.is_empty() {
            out += &self.stop_table();
        }
        if !self.starts.is_empty() {
            out += "\n";
            out += starts::TABLE_HEAD;
            for cell in &self.starts {
                out += &cell.row();
            }
            for cell in &self.starts {
                out += &format!(
                    "\nN={} P={}:\n{}",
                    cell.servers,
                    cell.policies,
                    cell.call_lines()
                );
            }
        }
        out
    }

    fn stop_table(&self) -> String {
        let mut out = String::from(
            "| N | P | by | stop calls (bound) | ids sent | listings / sync round | ECS requests | 429 | all stopped s (bound) | over bound | policies Stopped s | status writes | peak RSS MiB | CPU s | API server + etcd CPU s | last policy's first ETA s, estimated at s (Stopped s, off); share of its wait the ETA shown was within 10% |\n",
        );
        out += "|---:|---:|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|\n";
        for cell in &self.cells {
            out += &cell.row();
        }
        if let Some(naive) = &self.naive {
            out += &format!("\n{}\n", naive.line());
        }
        out
    }
}

impl Cell {
    /// One row of the Markdown table.
    pub fn row(&self) -> String {
        match self {
            Cell::Measured(f) => format!(
                "| {} | {} | {} | {} ({}) | {} | {:.2} ({:.0} / {:.0}) | {} | {} | {:.1} ({:.1}) | {:+.0}% | {:.1} | {} | {:.1} | {:.1} | {:.1} | {} |\n",
                f.servers,
                f.policies,
                f.targeting.name(),
                f.stop_calls,
                f.stop_calls_bound,
                f.stop_ids_sent,
                f.listings_per_sync_round,
                f.listings,
                f.sync_rounds,
                f.ecs_requests,
                f.responses_429,
                f.all_stopped_s,
                f.bound_s,
                f.over_bound_pct,
                f.all_policies_stopped_s,
                f.status_writes,
                f.peak_rss_mib,
                f.cpu_s,
                f.control_plane_cpu_s,
                f.last_policy_eta
                    .as_ref()
                    .map_or_else(|| "none shown".to_owned(), EtaFigures::cell),
            ),
            Cell::NotApplicable {
                servers,
                policies,
                reason,
            } => format!("| {servers} | {policies} | ids | n/a: {reason} ||||||||||||||\n"),
        }
    }
}

impl NaiveFigures {
    pub fn line(&self) -> String {
        format!(
            "naive baseline (one server per call, waits for each job): N={} → {} stop calls, {} ECS requests, {} 429, all stopped in {:.1} s (bound {:.1} s)",
            self.servers,
            self.stop_calls,
            self.ecs_requests,
            self.responses_429,
            self.all_stopped_s,
            self.bound_s
        )
    }
}

pub fn percent_over(took: Duration, bound: Duration) -> f64 {
    (secs(took) / secs(bound) - 1.0) * 100.0
}
