//! The happy paths and the ECS-side trouble: 2,500 servers, restart mid-job,
//! throttling, drift, dryRun, suspend, coalescing (also over a slow first round),
//! fairness, a budget below a full call, withdrawn stops, metrics.

use crate::ensure_eq;
use crate::harness::{
    ACCESS_KEY, Ctx, Policy, SECRET_KEY, condition, start_sim, summary, wait_until,
    with_budget_window,
};
use crate::operator::metric_sum;
use anyhow::{Result, bail, ensure};
use ecs_power_operator::sim::{RunningSim, SimStats, Status};
use serde_json::Value;
use std::time::{Duration, Instant};

const CREDS: &str = "otc-credentials";

fn shutoff(stats: &SimStats) -> u64 {
    stats.servers_by_status.get("SHUTOFF").copied().unwrap_or(0)
}

fn active(stats: &SimStats) -> u64 {
    stats.servers_by_status.get("ACTIVE").copied().unwrap_or(0)
}

fn stats_line(s: &SimStats) -> String {
    format!(
        "sim: stop_calls={} stop_ids_total={} stop_ids_max={} 429s={} (throttled {}, budget {}) 401s={} by_status={:?} requests={:?}",
        s.stop_calls,
        s.stop_ids_total,
        s.stop_ids_max,
        s.responses_429,
        s.rate_limited,
        s.budget_refusals,
        s.signature_failures,
        s.servers_by_status,
        s.requests
    )
}

fn stopped_and_ready(s: &Value, n: i64) -> bool {
    s["phase"] == "Stopped"
        && summary(s, "stopped") == n
        && condition(s, "Ready").is_some_and(|c| c["status"] == "True")
}

fn has_running_job(s: &Value) -> bool {
    s["jobs"]
        .as_array()
        .is_some_and(|jobs| jobs.iter().any(|j| j["status"] == "RUNNING"))
}

async fn setup(ctx: &Ctx, sim: &RunningSim) -> Result<()> {
    let _ = sim;
    ctx.secret(&ctx.ns, CREDS, ACCESS_KEY, SECRET_KEY).await
}

/// Issue 4: 2,500 servers, exactly 3 stop calls of at most 1000 ids, progress visible.
pub async fn stop_2500(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(2500, |c| c.stop_duration = Duration::from_secs(6)).await?;
    setup(&ctx, &sim).await?;
    let _op = ctx.operator("operator", ns, &[]).await?;
    let ids = sim.server_ids();
    let t0 = Instant::now();
    ctx.k
        .apply_ok(&Policy::new(ns, "fleet-2500", &sim, &ids).yaml())
        .await?;

    let progress = ctx
        .wait_status(
            ns,
            "fleet-2500",
            Duration::from_secs(60),
            "phase Stopping, stopped < 2500 and a RUNNING job",
            |s| s["phase"] == "Stopping" && summary(s, "stopped") < 2500 && has_running_job(s),
        )
        .await?;
    eprintln!(
        "e2e stop_2500: progress seen after {:.1}s: summary {}",
        t0.elapsed().as_secs_f64(),
        progress["summary"]
    );
    let done = ctx
        .wait_status(
            ns,
            "fleet-2500",
            Duration::from_secs(90),
            "phase Stopped, summary.stopped 2500, Ready=True",
            |s| stopped_and_ready(s, 2500),
        )
        .await?;
    eprintln!(
        "e2e stop_2500: Stopped after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let stats = sim.stats().await;
    let line = stats_line(&stats);
    ensure_eq!(stats.stop_calls, 3, "stop calls ({line})");
    if stats.stop_ids_max > 1000 {
        bail!("a stop call carried {} ids (> 1000)", stats.stop_ids_max);
    }
    ensure_eq!(
        stats.stop_ids_total,
        2500,
        "ids over all stop calls ({line})"
    );
    ensure_eq!(shutoff(&stats), 2500, "servers SHUTOFF in the sim");
    ensure_eq!(summary(&done, "desired"), 2500, "summary.desired");
    ensure_eq!(summary(&done, "failed"), 0, "summary.failed");
    let jobs = done["jobs"].as_array().cloned().unwrap_or_default();
    let job_servers: i64 = jobs.iter().filter_map(|j| j["servers"].as_i64()).sum();
    if jobs.is_empty() || jobs.iter().any(|j| j["status"] != "SUCCESS") {
        bail!(
            "status.jobs should list finished SUCCESS jobs: {}",
            Value::Array(jobs)
        );
    }
    ensure_eq!(job_servers, 2500, "sum of status.jobs[].servers");
    let generation = ctx
        .k
        .get_json(&["epp", "fleet-2500", "-n", ns])
        .await?
        .unwrap_or_default()["metadata"]["generation"]
        .clone();
    ensure_eq!(
        done["observedGeneration"],
        generation,
        "status.observedGeneration vs metadata.generation"
    );

    // Printer columns.
    let table = ctx.k.run(&["get", "epp", "-n", ns], None).await?.check()?;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    ensure_eq!(
        header,
        vec!["NAME", "DESIRED", "STOPPED", "FAILED", "PHASE", "AGE"],
        "kubectl get epp columns:\n{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    ensure_eq!(
        row.get(..5).map(|r| r.to_vec()),
        Some(vec!["fleet-2500", "2500", "2500", "0", "Stopped"]),
        "kubectl get epp row:\n{table}"
    );
    eprintln!("e2e stop_2500: kubectl get epp:\n{table}");

    for reason in ["StopSubmitted", "StopSucceeded", "AllStopped"] {
        let e = ctx
            .wait_event(ns, reason, Some("Normal"), Duration::from_secs(10))
            .await?;
        ensure_eq!(
            e["regarding"]["name"].as_str(),
            Some("fleet-2500"),
            "Event {reason} regarding"
        );
    }
    Ok(())
}

/// Issue 4: kill -9 mid-job, a new operator resumes and submits no duplicate stop.
pub async fn restart_mid_job(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(600, |c| c.stop_duration = Duration::from_secs(8)).await?;
    setup(&ctx, &sim).await?;
    let mut first = ctx.operator("operator-1", ns, &[]).await?;
    ctx.k
        .apply_ok(&Policy::new(ns, "restart", &sim, &sim.server_ids()).yaml())
        .await?;
    let running = ctx
        .wait_status(
            ns,
            "restart",
            Duration::from_secs(30),
            "a RUNNING job in status.jobs",
            has_running_job,
        )
        .await?;
    first.kill9();
    let before = sim.stats().await;
    eprintln!(
        "e2e restart_mid_job: killed -9 with jobs {} ; {}",
        running["jobs"],
        stats_line(&before)
    );
    ensure_eq!(before.stop_calls, 1, "stop calls before the restart");
    let _second = ctx.operator("operator-2", ns, &[]).await?;
    ctx.wait_status(
        ns,
        "restart",
        Duration::from_secs(60),
        "phase Stopped, 600 stopped, Ready=True",
        |s| stopped_and_ready(s, 600),
    )
    .await?;
    let after = sim.stats().await;
    let line = stats_line(&after);
    ensure_eq!(
        after.stop_calls,
        1,
        "stop calls in total (a duplicate was sent after the restart; {line})"
    );
    ensure_eq!(
        after.stop_ids_total,
        600,
        "ids over all stop calls ({line})"
    );
    ensure_eq!(shutoff(&after), 600, "servers SHUTOFF");
    Ok(())
}

/// Throttling: the sim answers 429 above 1 request/s; the policy still gets Stopped.
pub async fn throttling(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(1500, |c| c.throttle_rps = Some(1.0)).await?;
    setup(&ctx, &sim).await?;
    let op = ctx.operator("operator", ns, &[]).await?;
    let t0 = Instant::now();
    ctx.k
        .apply_ok(&Policy::new(ns, "throttled", &sim, &sim.server_ids()).yaml())
        .await?;
    ctx.wait_status(
        ns,
        "throttled",
        Duration::from_secs(120),
        "phase Stopped, 1500 stopped",
        |s| stopped_and_ready(s, 1500),
    )
    .await?;
    let stats = sim.stats().await;
    let line = stats_line(&stats);
    eprintln!(
        "e2e throttling: Stopped after {:.1}s; {line}",
        t0.elapsed().as_secs_f64()
    );
    if stats.rate_limited == 0 {
        bail!("the sim sent no 429 — the scenario did not exercise throttling ({line})");
    }
    if stats.stop_ids_max > 1000 {
        bail!("a stop call carried {} ids", stats.stop_ids_max);
    }
    ensure_eq!(shutoff(&stats), 1500, "servers SHUTOFF");
    let accepted = stats.requests_with("batch_action", 200);
    ensure_eq!(accepted, 2, "accepted stop calls (HTTP 200) ({line})");
    let metrics = op.metrics().await.unwrap_or_default();
    eprintln!(
        "e2e throttling: operator ecs_requests_total={:?} wait_seconds_total={:?}",
        metric_sum(&metrics, "ecs_power_operator_ecs_requests_total"),
        metric_sum(&metrics, "ecs_power_operator_wait_seconds_total")
    );
    Ok(())
}

/// Drift: a server started by hand after Stopped is stopped again.
pub async fn drift(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(30, |_| {}).await?;
    setup(&ctx, &sim).await?;
    let _op = ctx
        .operator("operator", ns, &["--drift-interval-ms=2000"])
        .await?;
    let ids = sim.server_ids();
    ctx.k
        .apply_ok(&Policy::new(ns, "drift", &sim, &ids).yaml())
        .await?;
    ctx.wait_status(ns, "drift", Duration::from_secs(30), "phase Stopped", |s| {
        stopped_and_ready(s, 30)
    })
    .await?;
    ensure_eq!(sim.stats().await.stop_calls, 1, "stop calls before drift");
    sim.control().set_status(&ids[7], Status::Active)?;
    let t0 = Instant::now();
    wait_until(
        Duration::from_secs(30),
        "the started server to be stopped again",
        || async {
            let s = sim.stats().await;
            Ok(s.stop_calls == 2 && shutoff(&s) == 30)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    eprintln!(
        "e2e drift: re-stopped after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let stats = sim.stats().await;
    ensure_eq!(
        stats.stop_ids_total,
        31,
        "ids over all stop calls ({})",
        stats_line(&stats)
    );
    ctx.wait_status(
        ns,
        "drift",
        Duration::from_secs(20),
        "phase Stopped again",
        |s| stopped_and_ready(s, 30),
    )
    .await?;
    Ok(())
}

/// dryRun: nothing stopped, status.dryRun.wouldStop == N.
pub async fn dry_run(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(100, |_| {}).await?;
    setup(&ctx, &sim).await?;
    let _op = ctx.operator("operator", ns, &[]).await?;
    let mut p = Policy::new(ns, "dry", &sim, &sim.server_ids());
    p.dry_run = true;
    ctx.k.apply_ok(&p.yaml()).await?;
    let s = ctx
        .wait_status(
            ns,
            "dry",
            Duration::from_secs(30),
            "status.dryRun.wouldStop == 100",
            |s| s["dryRun"]["wouldStop"] == 100,
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = sim.stats().await;
    ensure_eq!(
        stats.stop_calls,
        0,
        "stop calls under dryRun ({})",
        stats_line(&stats)
    );
    ensure_eq!(active(&stats), 100, "servers still ACTIVE");
    eprintln!("e2e dry_run: phase {} dryRun {}", s["phase"], s["dryRun"]);
    Ok(())
}

/// suspend: nothing stopped, phase Suspended; un-suspending stops them.
pub async fn suspend(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(100, |_| {}).await?;
    setup(&ctx, &sim).await?;
    let _op = ctx.operator("operator", ns, &[]).await?;
    let mut p = Policy::new(ns, "paused", &sim, &sim.server_ids());
    p.suspend = true;
    ctx.k.apply_ok(&p.yaml()).await?;
    ctx.wait_phase(ns, "paused", "Suspended", Duration::from_secs(30))
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = sim.stats().await;
    ensure_eq!(
        stats.stop_calls,
        0,
        "stop calls while suspended ({})",
        stats_line(&stats)
    );
    ensure_eq!(active(&stats), 100, "servers still ACTIVE");
    p.suspend = false;
    ctx.k.apply_ok(&p.yaml()).await?;
    ctx.wait_status(
        ns,
        "paused",
        Duration::from_secs(30),
        "Stopped after un-suspending",
        |s| stopped_and_ready(s, 100),
    )
    .await?;
    ensure_eq!(
        sim.stats().await.stop_calls,
        1,
        "stop calls after un-suspending"
    );
    Ok(())
}

/// Issue 7: three 400-server policies of one project → 2 stop calls, not 3.
pub async fn coalescing(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(1200, |_| {}).await?;
    setup(&ctx, &sim).await?;
    let _op = ctx.operator("operator", ns, &["--linger-ms=1000"]).await?;
    let ids = sim.server_ids();
    let docs: Vec<String> = (0..3)
        .map(|i| Policy::new(ns, &format!("team-{i}"), &sim, &ids[i * 400..(i + 1) * 400]).yaml())
        .collect();
    ctx.k.apply_ok(&docs.join("---\n")).await?;
    for i in 0..3 {
        ctx.wait_status(
            ns,
            &format!("team-{i}"),
            Duration::from_secs(60),
            "phase Stopped, 400 stopped",
            |s| stopped_and_ready(s, 400),
        )
        .await?;
    }
    let stats = sim.stats().await;
    let line = stats_line(&stats);
    ensure_eq!(
        stats.stop_calls,
        2,
        "stop calls for 3 x 400 servers ({line})"
    );
    ensure_eq!(
        stats.stop_ids_total,
        1200,
        "ids over all stop calls ({line})"
    );
    if stats.stop_ids_max > 1000 {
        bail!("a stop call carried {} ids", stats.stop_ids_max);
    }
    Ok(())
}

/// A budget set below a full call (`--budget-servers=500`) makes calls of 500: a batch
/// of 1000 that the budget can never cover would wait forever. Between calls the
/// policy only waits for budget; with a 10-minute drift interval it is synced again
/// only because its next call going out says so.
pub async fn small_budget(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let (sim, _op) = with_budget_window(
        &ctx,
        1200,
        Duration::from_millis(1500),
        |c| c.stop_duration = Duration::from_millis(300),
        &["--budget-servers=500", "--drift-interval-ms=600000"],
    )
    .await?;
    ctx.k
        .apply_ok(&Policy::new(ns, "fleet-1200", &sim, &sim.server_ids()).yaml())
        .await?;
    ctx.wait_status(
        ns,
        "fleet-1200",
        Duration::from_secs(60),
        "phase Stopped, 1200 stopped",
        |s| stopped_and_ready(s, 1200),
    )
    .await?;
    let stats = sim.stats().await;
    let line = stats_line(&stats);
    ensure_eq!(stats.stop_calls, 3, "stop calls of at most 500 ({line})");
    ensure_eq!(stats.stop_ids_max, 500, "largest stop call ({line})");
    ensure_eq!(stats.responses_429, 0, "429s ({line})");
    Ok(())
}

/// A huge policy does not starve a small one: 10 servers wanted while 4000 of another
/// policy wait for budget ride in the next call, not the last one.
pub async fn fairness(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    // Windows long enough that the small policy's first sync (seconds on a loaded
    // machine) lands while the huge policy's calls still wait for budget.
    let (sim, _op) = with_budget_window(
        &ctx,
        5010,
        Duration::from_secs(3),
        |c| c.stop_duration = Duration::from_millis(500),
        &[],
    )
    .await?;
    let ids = sim.server_ids();
    ctx.k
        .apply_ok(&Policy::new(ns, "huge", &sim, &ids[..5000]).yaml())
        .await?;
    wait_until(
        Duration::from_secs(30),
        "the huge policy's first stop call",
        || async { Ok(sim.stats().await.stop_calls >= 1) },
    )
    .await?;
    ctx.k
        .apply_ok(&Policy::new(ns, "small", &sim, &ids[5000..]).yaml())
        .await?;
    let calls = sim.stats().await.stop_calls;
    if calls > 1 {
        bail!("the test was too slow: {calls} stop calls before the small policy was applied");
    }
    let small = ctx
        .wait_status(
            ns,
            "small",
            Duration::from_secs(30),
            "phase Stopped, 10 stopped",
            |s| stopped_and_ready(s, 10),
        )
        .await?;
    let huge = ctx
        .wait_status(
            ns,
            "huge",
            Duration::from_secs(60),
            "phase Stopped, 5000 stopped",
            |s| stopped_and_ready(s, 5000),
        )
        .await?;
    let job_ids = |status: &Value| -> Vec<(String, String)> {
        let mut jobs: Vec<(String, String)> = status["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|j| {
                let field = |k: &str| j[k].as_str().unwrap_or_default().to_owned();
                (field("submittedAt"), field("jobId"))
            })
            .collect();
        jobs.sort();
        jobs
    };
    let huge_jobs = job_ids(&huge);
    let small_jobs = job_ids(&small);
    let stats = sim.stats().await;
    ensure_eq!(stats.stop_calls, 6, "stop calls ({})", stats_line(&stats));
    ensure_eq!(huge_jobs.len(), 6, "jobs in huge's status: {huge_jobs:?}");
    ensure_eq!(
        small_jobs.len(),
        1,
        "jobs in small's status: {small_jobs:?}"
    );
    // The small policy's servers rode in one of the huge policy's calls after its
    // first and before its last: without fair turns they wait behind all 4000 (the
    // last call). Which call depends on when its sync lands beside the worker (the next
    // one on an idle machine, a later one under load).
    let position = huge_jobs.iter().position(|job| job.1 == small_jobs[0].1);
    ensure!(
        position.is_some_and(|at| at > 0 && at + 1 < huge_jobs.len()),
        "small's job {} at {position:?} of huge's jobs in order {huge_jobs:?}",
        small_jobs[0].1
    );
    Ok(())
}

/// Policies that exist when the operator starts are all planned, and their stops
/// queued, before the first syncs write their status one after the other: the stops
/// go out in one call, partial as it is, when that first round ends. One sync at a
/// time and a 50 ms linger (a partial batch waits 0.5 s at most) make the first round
/// of syncs of 199 policies far longer than any linger: without the first round,
/// their 995 servers went out in 5 calls; with its gate stuck, in none.
pub async fn first_round(ctx: Ctx) -> Result<()> {
    const POLICIES: usize = 199;
    const PER_POLICY: usize = 5;
    let ns = &ctx.ns;
    let sim = start_sim(POLICIES * PER_POLICY, |_| {}).await?;
    setup(&ctx, &sim).await?;
    let ids = sim.server_ids();
    let docs: Vec<String> = ids
        .chunks(PER_POLICY)
        .enumerate()
        .map(|(i, chunk)| Policy::new(ns, &format!("small-{i:03}"), &sim, chunk).yaml())
        .collect();
    ctx.k.apply_ok(&docs.join("---\n")).await?;
    let t0 = Instant::now();
    let op = ctx
        .operator("operator", ns, &["--concurrency=1", "--linger-ms=50"])
        .await?;
    wait_until(Duration::from_secs(180), "every policy Stopped", || async {
        let list = ctx
            .k
            .get_json(&["epp", "-n", ns])
            .await?
            .unwrap_or_default();
        let items = list["items"].as_array().cloned().unwrap_or_default();
        Ok(items.len() == POLICIES && items.iter().all(|p| p["status"]["phase"] == "Stopped"))
    })
    .await?;
    eprintln!(
        "e2e first_round: {POLICIES} policies Stopped {:.1}s after the operator started",
        t0.elapsed().as_secs_f64()
    );
    if !op.log_text().contains("first round done") {
        bail!("the operator never logged the end of its first round");
    }
    let stats = sim.stats().await;
    let line = stats_line(&stats);
    ensure_eq!(
        shutoff(&stats),
        (POLICIES * PER_POLICY) as u64,
        "servers SHUTOFF in the sim ({line})"
    );
    ensure_eq!(
        stats.stop_calls,
        1,
        "stop calls for 199 x 5 servers ({line})"
    );
    ensure_eq!(
        stats.stop_ids_total,
        (POLICIES * PER_POLICY) as u64,
        "ids over all stop calls ({line})"
    );
    Ok(())
}

/// Stops queued for the budget are withdrawn when their policy is deleted or
/// suspended before they are sent: nothing is stopped for a policy that stopped asking.
pub async fn withdrawn(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    // A long window, so the late policies' ids surely wait in the queue.
    let window = Duration::from_secs(12);
    let (sim, _op) = with_budget_window(&ctx, 1500, window, |_| {}, &[]).await?;
    let ids = sim.server_ids();
    ctx.k
        .apply_ok(&Policy::new(ns, "first", &sim, &ids[..1000]).yaml())
        .await?;
    wait_until(Duration::from_secs(30), "the first stop call", || async {
        Ok(sim.stats().await.stop_calls == 1)
    })
    .await?;
    let first_call = Instant::now();
    let late = Policy::new(ns, "late", &sim, &ids[1000..1300]);
    let mut paused = Policy::new(ns, "paused", &sim, &ids[1300..]);
    ctx.k
        .apply_ok(&format!("{}---\n{}", late.yaml(), paused.yaml()))
        .await?;
    for name in ["late", "paused"] {
        ctx.wait_phase(ns, name, "Stopping", Duration::from_secs(5))
            .await?;
    }
    ctx.k
        .run(&["delete", "ecspowerpolicy", "late", "-n", ns], None)
        .await?
        .check()?;
    paused.suspend = true;
    ctx.k.apply_ok(&paused.yaml()).await?;
    if first_call.elapsed() >= window {
        bail!("the test was too slow: the budget window passed before the withdrawal");
    }
    ctx.wait_phase(ns, "paused", "Suspended", Duration::from_secs(10))
        .await?;
    // Past the window (and a linger), the queue would have gone out.
    tokio::time::sleep((window + Duration::from_secs(3)).saturating_sub(first_call.elapsed()))
        .await;
    let stats = sim.stats().await;
    let line = stats_line(&stats);
    ensure_eq!(stats.stop_calls, 1, "stop calls ({line})");
    ensure_eq!(active(&stats), 500, "servers still ACTIVE ({line})");
    Ok(())
}

/// /metrics, /healthz, /readyz.
pub async fn metrics_health(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(10, |_| {}).await?;
    setup(&ctx, &sim).await?;
    let op = ctx.operator("operator", ns, &[]).await?;
    ctx.k
        .apply_ok(&Policy::new(ns, "small", &sim, &sim.server_ids()).yaml())
        .await?;
    ctx.wait_status(ns, "small", Duration::from_secs(30), "phase Stopped", |s| {
        stopped_and_ready(s, 10)
    })
    .await?;
    for path in ["/healthz", "/readyz"] {
        let (code, body) = op.http_get(path).await?;
        ensure_eq!(code, 200, "{path} (body {body:?})");
    }
    let text = op.metrics().await?;
    let mut problems = Vec::new();
    for name in [
        "ecs_power_operator_reconciles_total",
        "ecs_power_operator_ecs_requests_total",
        "ecs_power_operator_stop_calls_total",
    ] {
        match metric_sum(&text, name) {
            None => problems.push(format!("{name} missing")),
            Some(v) if v <= 0.0 => problems.push(format!("{name} = {v}, expected > 0")),
            Some(_) => {}
        }
    }
    let stops = metric_sum(&text, "ecs_power_operator_stop_calls_total");
    if stops != Some(sim.stats().await.stop_calls as f64) {
        problems.push(format!(
            "stop_calls_total {stops:?} != sim stop calls {}",
            sim.stats().await.stop_calls
        ));
    }
    if !problems.is_empty() {
        let names: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        bail!(
            "/metrics: {}\nmetric families served:\n{}",
            problems.join("; "),
            names.join("\n")
        );
    }
    Ok(())
}
