//! The safety guarantees of issue 12, each on the real API server and ecs-sim, each
//! failing on the operator before the fleet owned its state (why: in each doc).
//!
//! a `withdrawn_in_flight`: withdrawn means never sent, also when the call carrying the
//!   ids is refused after the withdrawal, and when a sync was under way at the deletion;
//! b `one_action_per_server`: a Soft and a Hard policy naming the same servers, one stop;
//! c `unknown_outcome`: a stop executed but answered 504 or never answered is not re-sent;
//! d `lost_job`: a job whose poll fails for good does not freeze the fleet;
//! e `locked_servers`: a locked server is not sent, one locked later is bisected out;
//! f `many_unfinished_jobs`: 30 unfinished jobs still leave a status that fits the CRD;
//! g `sync_failures`: every failure that prevents a sync is a Degraded reason + Event.

use crate::ensure_eq;
use crate::harness::{
    ACCESS_KEY, Ctx, Policy, SECRET_KEY, condition, start_sim, summary, wait_until,
    with_budget_window,
};
use crate::operator::{free_port, metric_sum};
use anyhow::{Result, bail};
use ecs_power_operator::sim::{FaultsPatch, RunningSim, ServerErrorMode, SimStats};
use serde_json::Value;
use std::time::{Duration, Instant};

const CREDS: &str = "otc-credentials";

fn count(stats: &SimStats, status: &str) -> u64 {
    stats.servers_by_status.get(status).copied().unwrap_or(0)
}

fn line(s: &SimStats) -> String {
    format!(
        "sim: stop_calls={} stop_ids_total={} accepted={} redundant={} 504-after-accept={} dropped-after-accept={} budget_refusals={} by_status={:?} requests={:?}",
        s.stop_calls,
        s.stop_ids_total,
        s.stop_ids_accepted,
        s.stop_ids_redundant,
        s.accepted_then_failed,
        s.accepted_then_dropped,
        s.budget_refusals,
        s.servers_by_status,
        s.requests
    )
}

fn stopped(s: &Value, n: i64) -> bool {
    s["phase"] == "Stopped" && summary(s, "stopped") == n
}

fn degraded_with(s: &Value, reason: &str) -> bool {
    s["phase"] == "Degraded"
        && condition(s, "Degraded").is_some_and(|c| c["status"] == "True" && c["reason"] == reason)
}

async fn delete_policy(ctx: &Ctx, name: &str) -> Result<()> {
    ctx.k
        .run(
            &[
                "delete",
                "ecspowerpolicy",
                name,
                "-n",
                &ctx.ns,
                "--wait=false",
            ],
            None,
        )
        .await?
        .check()?;
    Ok(())
}

/// a. The call carrying a policy's ids is under way when the policy is deleted, and is
/// refused (the cloud's own budget, 429 `Common.1503`). Before, a refused call was put
/// back under every policy it carried, deleted or not, and sent again until accepted:
/// the deleted policy's ten servers were SHUTOFF once the sim's window had passed.
///
/// The sim's budget (10 per 40 s) is below the operator's, so every call after the
/// first is refused until the window passes; ecs-sim's latency fault holds each
/// request 8 s, long enough to delete the policy while its call runs. (A sync still
/// under way at the deletion queues nothing either: the fleet's unit test
/// `a_sync_still_under_way_at_the_deletion_queues_nothing`; its timing cannot be
/// forced from outside the operator.)
pub async fn withdrawn_in_flight(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let window = Duration::from_secs(40);
    let (sim, _op) = with_budget_window(
        &ctx,
        20,
        window,
        |c| c.servers_per_window = 10,
        &[
            "--inventory-max-age-ms=1",
            "--linger-ms=300",
            "--request-timeout-ms=30000",
        ],
    )
    .await?;
    let ids = sim.server_ids();
    ctx.k
        .apply_ok(&Policy::new(ns, "first", &sim, &ids[..10]).yaml())
        .await?;
    ctx.wait_status(ns, "first", Duration::from_secs(30), "first Stopped", |s| {
        stopped(s, 10)
    })
    .await?;
    let first_call = Instant::now();
    sim.control().set_faults(FaultsPatch {
        latency_ms: Some(8000),
        ..FaultsPatch::default()
    });

    ctx.k
        .apply_ok(&Policy::new(ns, "refused", &sim, &ids[10..]).yaml())
        .await?;
    ctx.wait_phase(ns, "refused", "Stopping", Duration::from_secs(30))
        .await?;
    // Queued now; the call leaves after the linger and takes 8 s to be refused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    delete_policy(&ctx, "refused").await?;
    if first_call.elapsed() >= window {
        bail!("the test was too slow: the sim's budget window passed before the deletion");
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    sim.control().set_faults(FaultsPatch {
        latency_ms: Some(0),
        ..FaultsPatch::default()
    });
    // Past the sim's window (and a throttle back-off), anything still queued went out.
    tokio::time::sleep((window + Duration::from_secs(8)).saturating_sub(first_call.elapsed()))
        .await;
    let stats = sim.stats().await;
    let line = line(&stats);
    ensure_eq!(count(&stats, "SHUTOFF"), 10, "servers SHUTOFF ({line})");
    ensure_eq!(stats.stop_ids_accepted, 10, "ids the sim accepted ({line})");
    if stats.budget_refusals == 0 {
        bail!("the deleted policy's call was never refused: the test proves nothing ({line})");
    }
    Ok(())
}

/// b. Two policies name the same ten servers, one Soft and one Hard. Before, a
/// server queued by one policy counted as in flight only for that policy (and only
/// in its lane), so the other queued it in the other lane: two stop calls, and the
/// second stopped servers already being stopped.
pub async fn one_action_per_server(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(10, |c| c.stop_duration = Duration::from_secs(3)).await?;
    ctx.secret(ns, CREDS, ACCESS_KEY, SECRET_KEY).await?;
    let _op = ctx.operator("operator", ns, &[]).await?;
    let ids = sim.server_ids();
    let soft = Policy::new(ns, "soft", &sim, &ids);
    let mut hard = Policy::new(ns, "hard", &sim, &ids);
    hard.stop_type = "Hard".to_owned();
    ctx.k
        .apply_ok(&format!("{}---\n{}", soft.yaml(), hard.yaml()))
        .await?;
    for name in ["soft", "hard"] {
        ctx.wait_status(ns, name, Duration::from_secs(40), "Stopped", |s| {
            stopped(s, 10)
        })
        .await?;
    }
    let stats = sim.stats().await;
    let line = line(&stats);
    ensure_eq!(stats.stop_calls, 1, "stop calls ({line})");
    ensure_eq!(stats.stop_ids_total, 10, "ids sent ({line})");
    ensure_eq!(stats.stop_ids_redundant, 0, "ids sent twice ({line})");
    Ok(())
}

/// c. A stop the cloud executed but whose answer was a gateway 504 (no ECS code), or
/// whose connection was reset before any answer, is not sent again: its servers stay
/// in flight until a listing begun after the answer shows them powering off.
/// Before, a 504 was "transient": the same servers were queued again and re-sent
/// two seconds later (`stop_ids_redundant` 10).
pub async fn unknown_outcome(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(20, |c| c.stop_duration = Duration::from_secs(3)).await?;
    ctx.secret(ns, CREDS, ACCESS_KEY, SECRET_KEY).await?;
    let op = ctx.operator("operator", ns, &[]).await?;
    let ids = sim.server_ids();
    for (name, servers, fault) in [
        (
            "answered-504",
            &ids[..10],
            FaultsPatch {
                accept_then_fail_rate: Some(1.0),
                accept_then_drop_rate: Some(0.0),
                ..FaultsPatch::default()
            },
        ),
        (
            "never-answered",
            &ids[10..],
            FaultsPatch {
                accept_then_fail_rate: Some(0.0),
                accept_then_drop_rate: Some(1.0),
                ..FaultsPatch::default()
            },
        ),
    ] {
        sim.control().set_faults(fault);
        ctx.k
            .apply_ok(&Policy::new(ns, name, &sim, servers).yaml())
            .await?;
        ctx.wait_status(ns, name, Duration::from_secs(60), "Stopped", |s| {
            stopped(s, 10)
        })
        .await?;
    }
    let stats = sim.stats().await;
    let line = line(&stats);
    ensure_eq!(stats.accepted_then_failed, 1, "calls answered 504 ({line})");
    ensure_eq!(
        stats.accepted_then_dropped,
        1,
        "calls never answered ({line})"
    );
    ensure_eq!(stats.stop_ids_accepted, 20, "ids accepted ({line})");
    ensure_eq!(stats.stop_ids_redundant, 0, "ids stopped twice ({line})");
    ensure_eq!(stats.stop_calls, 2, "stop calls ({line})");
    let text = op.metrics().await?;
    let unknown = text
        .lines()
        .find(|l| l.starts_with("ecs_power_operator_errors_total{kind=\"outcome_unknown\"}"));
    if unknown.is_none() {
        bail!("no outcome_unknown error counted in /metrics");
    }
    Ok(())
}

/// d. A policy's status lists a RUNNING job the cloud does not know (its project
/// changed, the job expired): its poll fails with 400 `Common.0011`. Before, that
/// failed every sync of every policy of the fleet, forever; now the job is given up
/// on, shown as `JobLost`, counted in `jobs_lost_total`, and the other policy on the
/// same Secret reaches Stopped.
pub async fn lost_job(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(4, |_| {}).await?;
    ctx.secret(ns, CREDS, ACCESS_KEY, SECRET_KEY).await?;
    let ids = sim.server_ids();
    // The stale status is written before any operator runs: the one started next
    // adopts the job, as after a restart.
    let stale = Policy::new(ns, "stale", &sim, &ids[..2]);
    ctx.k.apply_ok(&stale.yaml()).await?;
    let submitted = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let status = serde_json::json!({"status": {"jobs": [{
        "jobId": "ff0000000000000000000000000000ff",
        "servers": 2,
        "status": "RUNNING",
        "submittedAt": submitted,
    }]}});
    ctx.k
        .run(
            &[
                "patch",
                "ecspowerpolicy",
                "stale",
                "-n",
                ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ],
            None,
        )
        .await?
        .check()?;
    let op = ctx.operator("operator", ns, &[]).await?;
    ctx.k
        .apply_ok(&Policy::new(ns, "other", &sim, &ids[2..]).yaml())
        .await?;
    ctx.wait_status(ns, "other", Duration::from_secs(40), "other Stopped", |s| {
        stopped(s, 2)
    })
    .await?;
    let s = ctx
        .wait_status(
            ns,
            "stale",
            Duration::from_secs(40),
            "Degraded JobLost, the job recorded LOST",
            |s| {
                degraded_with(s, "JobLost")
                    && s["jobs"]
                        .as_array()
                        .is_some_and(|jobs| jobs.iter().any(|j| j["status"] == "LOST"))
            },
        )
        .await?;
    eprintln!("e2e lost_job: stale jobs {}", s["jobs"]);
    ctx.wait_event(ns, "JobLost", Some("Warning"), Duration::from_secs(10))
        .await?;
    // Its own servers are re-observed and stopped too.
    ctx.wait_status(
        ns,
        "stale",
        Duration::from_secs(40),
        "summary.stopped 2",
        |s| summary(s, "stopped") == 2,
    )
    .await?;
    let text = op.metrics().await?;
    let lost = metric_sum(&text, "ecs_power_operator_jobs_lost_total");
    ensure_eq!(lost, Some(1.0), "jobs_lost_total");
    if !text.contains("ecs_power_operator_jobs_lost_total{reason=\"poll_failed\"} 1") {
        bail!("jobs_lost_total should count 1 poll_failed");
    }
    Ok(())
}

/// e. In reject mode the sim refuses a whole batch with 400 `Ecs.0605` for one
/// locked server, without naming it. A server the listing shows locked is not sent
/// at all (status.failures, code `Locked`): 999 go in one call. One locked after the
/// listing is bisected out: the other 99 of its call are stopped, it alone fails.
/// Before, the 1000 were sent whole and refused again at every retry, forever.
pub async fn locked_servers(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(1100, |c| c.server_errors = ServerErrorMode::Reject).await?;
    ctx.secret(ns, CREDS, ACCESS_KEY, SECRET_KEY).await?;
    // A long linger: time to lock a server between a sync's listing and its call.
    let _op = ctx.operator("operator", ns, &["--linger-ms=3000"]).await?;
    let ids = sim.server_ids();
    sim.control().set_locked(&ids[7], true)?;
    ctx.k
        .apply_ok(&Policy::new(ns, "thousand", &sim, &ids[..1000]).yaml())
        .await?;
    let s = ctx
        .wait_status(
            ns,
            "thousand",
            Duration::from_secs(60),
            "999 stopped, the locked one in failures as Locked",
            |s| {
                summary(s, "stopped") == 999
                    && s["failures"].as_array().is_some_and(|f| {
                        f.len() == 1
                            && f[0]["serverId"] == ids[7].as_str()
                            && f[0]["code"] == "Locked"
                    })
            },
        )
        .await?;
    ensure_eq!(summary(&s, "failed"), 1, "summary.failed");
    let stats = sim.stats().await;
    ensure_eq!(stats.stop_calls, 1, "stop calls for 999 ({})", line(&stats));
    ensure_eq!(stats.stop_ids_total, 999, "ids sent ({})", line(&stats));

    // Locked after the sync listed it: the call of 100 is refused, then bisected.
    ctx.k
        .apply_ok(&Policy::new(ns, "hundred", &sim, &ids[1000..]).yaml())
        .await?;
    ctx.wait_phase(ns, "hundred", "Stopping", Duration::from_secs(20))
        .await?;
    sim.control().set_locked(&ids[1042], true)?;
    let s = ctx
        .wait_status(
            ns,
            "hundred",
            Duration::from_secs(90),
            "99 stopped, the one locked later failed with Ecs.0605",
            |s| {
                summary(s, "stopped") == 99
                    && s["failures"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|f| f["serverId"] == ids[1042].as_str()))
            },
        )
        .await?;
    let stats = sim.stats().await;
    let failure = s["failures"]
        .as_array()
        .and_then(|f| {
            f.iter()
                .find(|f| f["serverId"] == ids[1042].as_str())
                .cloned()
        })
        .unwrap_or_default();
    if failure["code"] != "Ecs.0605" && failure["code"] != "Locked" {
        bail!("the late-locked server's failure: {failure}");
    }
    // The whole, two halves, then halves of the refused half: a handful, not 100.
    if stats.stop_calls > 1 + 2 * 8 {
        bail!(
            "bisection took {} calls ({})",
            stats.stop_calls,
            line(&stats)
        );
    }
    eprintln!("e2e locked_servers: {}", line(&stats));
    Ok(())
}

/// f. A budget of 10 servers per short window makes 30 calls of 10 for one policy of
/// 300, their jobs unfinished for two minutes. Before, every unfinished job was kept
/// in status.jobs while the CRD caps it at 20: the 21st job's status patch was
/// refused and the status froze. Now the newest 20 unfinished jobs are shown and the
/// summary follows all 300.
pub async fn many_unfinished_jobs(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let window = Duration::from_millis(300);
    let (sim, _op) = with_budget_window(
        &ctx,
        300,
        window,
        |c| {
            c.servers_per_window = 10;
            c.stop_duration = Duration::from_secs(120);
        },
        &["--budget-servers=10"],
    )
    .await?;
    ctx.k
        .apply_ok(&Policy::new(ns, "three-hundred", &sim, &sim.server_ids()).yaml())
        .await?;
    wait_until(Duration::from_secs(60), "30 stop calls", || async {
        Ok(sim.stats().await.stop_calls >= 30)
    })
    .await?;
    let s = ctx
        .wait_status(
            ns,
            "three-hundred",
            Duration::from_secs(30),
            "all 300 stopping, 20 RUNNING jobs in status",
            |s| {
                summary(s, "stopping") == 300
                    && s["jobs"].as_array().is_some_and(|jobs| {
                        jobs.len() == 20 && jobs.iter().all(|j| j["status"] == "RUNNING")
                    })
            },
        )
        .await?;
    ensure_eq!(s["phase"], "Stopping", "phase");
    ensure_eq!(sim.stats().await.stop_calls, 30, "stop calls");
    Ok(())
}

/// g. Failures that prevent a sync, each with its own reason: an endpoint nobody
/// listens on, one whose name does not resolve, one that does not speak TLS, a region
/// that does not exist.
/// Before, each was a sync error retried with backoff and nothing in status.
pub async fn sync_failures(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim: RunningSim = start_sim(2, |_| {}).await?;
    ctx.secret(ns, CREDS, ACCESS_KEY, SECRET_KEY).await?;
    let _op = ctx.operator("operator", ns, &[]).await?;
    let ids = sim.server_ids();
    let refused = format!("http://127.0.0.1:{}", free_port());
    let not_tls = format!("https://{}", sim.addr());
    let cases = [
        ("refused", Some(refused.as_str()), "EndpointUnreachable"),
        (
            "unresolved",
            Some("https://ecs.nowhere.invalid"),
            "EndpointNotResolved",
        ),
        ("not-tls", Some(not_tls.as_str()), "TlsHandshakeFailed"),
        ("no-region", None, "UnknownRegion"),
    ];
    let mut yaml = String::new();
    for (name, endpoint, _) in &cases {
        let mut policy = Policy::with_endpoint(ns, name, endpoint.unwrap_or(""), &ids);
        if endpoint.is_none() {
            policy.endpoint.clear();
        }
        let mut text = policy.yaml();
        if endpoint.is_none() {
            text = text
                .replace("    endpoint: \"\"\n", "")
                .replace("region: eu-de", "region: eu-dee");
        }
        yaml += &text;
        yaml += "---\n";
    }
    ctx.k.apply_ok(&yaml).await?;
    for (name, _, reason) in &cases {
        let s = ctx
            .wait_status(
                ns,
                name,
                Duration::from_secs(60),
                &format!("Degraded {reason}"),
                |s| degraded_with(s, reason),
            )
            .await?;
        let message = condition(&s, "Degraded").map(|c| c["message"].clone());
        eprintln!("e2e sync_failures: {name}: {reason}: {message:?}");
        if message
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains(SECRET_KEY))
        {
            bail!("{name}: the Degraded message shows the secret key");
        }
    }
    for (_, _, reason) in &cases {
        ctx.wait_event(ns, reason, Some("Warning"), Duration::from_secs(10))
            .await?;
    }
    Ok(())
}
