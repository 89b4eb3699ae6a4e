//! The start cell (`--starts`, issue 18): N servers in one project over P policies
//! whose schedule window begins a few seconds after the operator starts, with
//! `afterWindow: Start` and `startLeadTime: Auto`; 1 % of the servers stopped by hand
//! before it (never the policies' to start). Measured from the simulator's side:
//! when all were stopped, each start call's time (its job's acceptance) against the
//! time the budget plans for it, when all ran again, 429s, and the servers started
//! that the policies did not stop.

use crate::cluster::Cluster;
use crate::operator::Operator;
use crate::report::{MAX_PER_CALL, Settings};
use crate::setup::{
    create_policies, create_secret, share_of_ids, start_again_window, started_of, stop_by_hand,
    wait_servers_in,
};
use anyhow::{Context as _, Result};
use ecs_power_operator::sim::{self, Status};
use jiff::Timestamp;
use serde::Serialize;
use std::time::{Duration, Instant};

/// One server in this many is stopped by hand before the window.
const STOPPED_BY_HAND_EVERY: usize = 100;
/// From the operator's start to the window's: its first round (listing included)
/// must be over by then, so that the window's edge, not start-up, begins the stops.
const LEAD_IN: Duration = Duration::from_secs(6);
/// After all run again: how long the cell still watches for a late or second start.
const WATCH_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub servers: usize,
    pub policies: usize,
}

/// One start call: seconds from the window's end (negative: before it).
#[derive(Debug, Clone, Serialize)]
pub struct StartCall {
    pub servers: usize,
    /// The budget's plan: window end − lead + k × budget window, the lead being what
    /// `startLeadTime: Auto` works out with nothing else queued and the budget's
    /// window unspent: (calls − 1) × budget window.
    pub planned_s: f64,
    /// When the simulator accepted it (its job's begin time).
    pub actual_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StartFigures {
    pub servers: usize,
    pub policies: usize,
    pub stopped_by_hand: usize,
    /// Seconds from the operator's start.
    pub window_from_s: f64,
    pub window_to_s: f64,
    /// From the operator's start until every server was SHUTOFF.
    pub all_stopped_s: f64,
    pub stop_calls: u64,
    pub start_calls: Vec<StartCall>,
    /// From the operator's start until every server the policies stopped was ACTIVE.
    pub all_running_s: f64,
    /// The target for that: the window's end plus one stop duration.
    pub running_target_s: f64,
    pub start_ids_sent: u64,
    pub start_ids_redundant: u64,
    pub responses_429: u64,
    /// Servers stopped by hand that were started: must be 0.
    pub started_not_stopped_by_policy: usize,
    /// Seconds from the window's end to the last start call (negative: before it).
    pub last_call_after_end_s: f64,
    pub window_s: f64,
}

impl StartFigures {
    /// What the cell must not miss: a 429, a server started that a policy did not
    /// stop (or one started twice, or more ids than it stopped), more start calls
    /// than full ones would take, or the last start call more than one budget window
    /// after the window's end.
    pub fn missed(&self) -> Vec<String> {
        let at = format!("starts N={} P={}", self.servers, self.policies);
        let mut missed = Vec::new();
        if self.responses_429 > 0 {
            missed.push(format!("{at}: {} responses 429", self.responses_429));
        }
        if self.started_not_stopped_by_policy > 0 {
            missed.push(format!(
                "{at}: {} servers stopped by hand were started",
                self.started_not_stopped_by_policy
            ));
        }
        let stopped = (self.servers - self.stopped_by_hand) as u64;
        if self.start_ids_redundant > 0 || self.start_ids_sent != stopped {
            missed.push(format!(
                "{at}: {} start ids sent ({} redundant) for {stopped} servers stopped",
                self.start_ids_sent, self.start_ids_redundant
            ));
        }
        // Policies sharing a window end share its calls: partial ones only at the end.
        let calls_needed = stopped.div_ceil(MAX_PER_CALL as u64) as usize;
        if self.start_calls.len() > calls_needed {
            let sizes: Vec<String> = self
                .start_calls
                .iter()
                .map(|c| c.servers.to_string())
                .collect();
            missed.push(format!(
                "{at}: {} start calls ({}) where {calls_needed} carry them",
                self.start_calls.len(),
                sizes.join(", ")
            ));
        }
        if self.last_call_after_end_s > self.window_s {
            missed.push(format!(
                "{at}: the last start call went {:.1} s after the window's end (at most one budget window, {:.1} s)",
                self.last_call_after_end_s, self.window_s
            ));
        }
        missed
    }

    /// The row of the start table and, below it, one line per start call.
    pub fn row(&self) -> String {
        let first = self.start_calls.first();
        let last = self.start_calls.last();
        let call = |c: Option<&StartCall>| {
            c.map_or("none".to_owned(), |c| {
                format!("{:+.1} / {:+.1}", c.planned_s, c.actual_s)
            })
        };
        format!(
            "| {} | {} | {} | {} | {:.1}–{:.1} | {:.1} | {} | {} | {} | {:.1} ({:.1}) | {} | {} | {} |\n",
            self.servers,
            self.policies,
            self.stopped_by_hand,
            self.stop_calls,
            self.window_from_s,
            self.window_to_s,
            self.all_stopped_s,
            self.start_calls.len(),
            call(first),
            call(last),
            self.all_running_s,
            self.running_target_s,
            self.responses_429,
            self.started_not_stopped_by_policy,
            self.start_ids_redundant,
        )
    }

    pub fn call_lines(&self) -> String {
        self.start_calls
            .iter()
            .enumerate()
            .map(|(k, c)| {
                format!(
                    "  start call {:2} ({} ids): planned {:+.2} s, actual {:+.2} s from the window's end ({:+.2})\n",
                    k + 1,
                    c.servers,
                    c.planned_s,
                    c.actual_s,
                    c.actual_s - c.planned_s
                )
            })
            .collect()
    }
}

pub const TABLE_HEAD: &str = "| N | P | stopped by hand | stop calls | window s | all stopped s | start calls | first start call s from the end: planned / actual | last start call: planned / actual | all running s (end + one stop) | 429 | started, not stopped by the policy | redundant start ids |\n|---:|---:|---:|---:|---|---:|---:|---|---|---|---:|---:|---:|\n";

/// Whole seconds at or after `at`: window times are written in seconds.
fn next_second(at: Timestamp) -> Result<Timestamp> {
    Ok(Timestamp::from_second(at.as_second() + 1)?)
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

pub async fn run(
    cluster: &Cluster,
    client: &kube::Client,
    shape: Shape,
    settings: &Settings,
) -> Result<StartFigures> {
    let Shape { servers, policies } = shape;
    eprintln!("bench: starts N={servers} P={policies}: setting up");
    let sim = sim::start(
        crate::cell::sim_config(servers, settings),
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let by_hand = stop_by_hand(&sim, STOPPED_BY_HAND_EVERY)?;
    let to_stop = servers - by_hand.len();
    let calls = to_stop.div_ceil(MAX_PER_CALL);
    let window = settings.window;
    let lead = window * u32::try_from(calls.saturating_sub(1))?;
    // Long enough to stop them all (with a quarter to spare), let the budget's
    // window pass, and start them all again within the lead.
    let stopping = settings.bound(to_stop);
    let length = stopping + stopping / 4 + window + lead + Duration::from_secs(3);
    let ns = format!("bench-starts-n{servers}-p{policies}");
    cluster.kubectl.create_namespace(&ns).await?;
    create_secret(client, &ns).await?;

    // The window is fixed before the policies are created (a 10,000-id policy takes
    // a moment) and begins LEAD_IN after the operator is started, right after them.
    let from = next_second(Timestamp::now() + LEAD_IN + Duration::from_secs(1))?;
    let to = Timestamp::from_second(from.as_second() + length.as_secs() as i64 + 1)?;
    let schedule = start_again_window(from, to);
    create_policies(client, &ns, &sim, policies, &|i, ids| {
        let mut target = share_of_ids(i, ids, policies);
        target.schedule = Some(schedule.clone());
        target
    })
    .await?;

    let flags = vec![
        "--log-format=text".to_owned(),
        format!("--budget-servers={MAX_PER_CALL}"),
        format!("--budget-window-ms={}", window.as_millis()),
    ];
    let started = Instant::now();
    let started_wall = Timestamp::now();
    let mut op = Operator::spawn(cluster, &cluster.dir, &ns, Some(&ns), &flags)?;
    let since_start = |at: Timestamp| seconds_between(started_wall, at);
    eprintln!(
        "bench: starts: window {:.1}–{:.1} s from the operator's start, {calls} calls each way, planned lead {:.1} s",
        since_start(from),
        since_start(to),
        lead.as_secs_f64()
    );
    let limit =
        Duration::try_from(to.duration_since(started_wall))? + lead + Duration::from_secs(60);
    let measured = async {
        let all_stopped = wait_servers_in(&sim, Status::Shutoff, servers, started, limit).await?;
        let all_running = wait_servers_in(&sim, Status::Active, to_stop, started, limit).await?;
        tokio::time::sleep(WATCH_AFTER.max(window)).await;
        anyhow::Ok((all_stopped, all_running))
    };
    let (all_stopped, all_running) = measured
        .await
        .map_err(|e| e.context(format!("operator log tail:\n{}", op.log_tail(30))))?;
    op.terminate(Duration::from_secs(10));

    let stats = sim.stats().await;
    let started_by_others = started_of(&sim, &by_hand)?;
    let mut start_jobs: Vec<_> = sim
        .control()
        .jobs()
        .into_iter()
        .filter(|job| job.job_type == "batchStartServers")
        .collect();
    start_jobs.sort_by_key(|job| job.begin_ms);
    sim.shutdown().await;
    cluster
        .kubectl
        .run(&["delete", "namespace", &ns, "--wait=false"], None)
        .await?;

    let end_ms = to.as_millisecond();
    let first_planned = end_ms - i64::try_from(lead.as_millis())?;
    let window_ms = i64::try_from(window.as_millis())?;
    let start_calls: Vec<StartCall> = start_jobs
        .iter()
        .zip(0i64..)
        .map(|(job, k)| StartCall {
            servers: job.servers,
            planned_s: (first_planned + k * window_ms - end_ms) as f64 / 1000.0,
            actual_s: (job.begin_ms - end_ms) as f64 / 1000.0,
        })
        .collect();
    let last_call_after_end_s = start_calls
        .last()
        .map(|c| c.actual_s)
        .context("no start call was accepted")?;
    Ok(StartFigures {
        servers,
        policies,
        stopped_by_hand: by_hand.len(),
        window_from_s: since_start(from),
        window_to_s: since_start(to),
        all_stopped_s: all_stopped.as_secs_f64(),
        stop_calls: stats.stop_calls,
        start_calls,
        all_running_s: all_running.as_secs_f64(),
        running_target_s: since_start(to) + settings.stop.as_secs_f64(),
        start_ids_sent: stats.start_ids_total,
        start_ids_redundant: stats.start_ids_redundant,
        responses_429: stats.responses_429,
        started_not_stopped_by_policy: started_by_others,
        last_call_after_end_s,
        window_s: window.as_secs_f64(),
    })
}
