//! Issue 6: two replicas with leader election; only the holder reconciles; SIGTERM
//! releases the Lease and the other takes over.

use crate::cluster::OPERATOR_NS;
use crate::ensure_eq;
use crate::harness::{Ctx, Policy, start_sim, summary, wait_until};
use crate::operator::{Operator, metric_sum};
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

const LEASE: &str = "e2e-leader-election";
const LEASE_SECS: u64 = 4;

/// The holder of the Lease `lease` in the operator's namespace, if any.
pub async fn holder(ctx: &Ctx, lease: &str) -> Result<Option<String>> {
    let lease = ctx
        .k
        .get_json(&["leases.coordination.k8s.io", lease, "-n", OPERATOR_NS])
        .await?;
    Ok(lease
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        .filter(|h| !h.is_empty()))
}

async fn reconciles(op: &Operator) -> f64 {
    match op.metrics().await {
        Ok(text) => metric_sum(&text, "ecs_power_operator_reconciles_total").unwrap_or(0.0),
        Err(_) => -1.0,
    }
}

pub async fn run(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(100, |_| {}).await?;
    let ids = sim.server_ids();
    ctx.credentials().await?;
    let args = |id: &str| {
        vec![
            "--leader-election".to_string(),
            format!("--lease-name={LEASE}"),
            format!("--lease-namespace={OPERATOR_NS}"),
            format!("--identity={id}"),
            format!("--lease-duration-secs={LEASE_SECS}"),
        ]
    };
    let a_args = args("replica-a");
    let b_args = args("replica-b");
    let a_refs: Vec<&str> = a_args.iter().map(String::as_str).collect();
    let b_refs: Vec<&str> = b_args.iter().map(String::as_str).collect();
    let mut a = ctx.operator("replica-a", ns, &a_refs).await?;
    let mut b = ctx.operator("replica-b", ns, &b_refs).await?;

    ctx.k
        .apply_ok(&Policy::new(ns, "first", &sim, &ids[..50]).yaml())
        .await?;
    ctx.wait_status(
        ns,
        "first",
        Duration::from_secs(40),
        "first policy Stopped",
        |s| s["phase"] == "Stopped" && summary(s, "stopped") == 50,
    )
    .await?;
    let leader_id = holder(&ctx, LEASE)
        .await?
        .ok_or_else(|| anyhow::anyhow!("Lease {OPERATOR_NS}/{LEASE} has no holder"))?;
    let (leader, follower, follower_id) = match leader_id.as_str() {
        "replica-a" => (&mut a, &mut b, "replica-b"),
        "replica-b" => (&mut b, &mut a, "replica-a"),
        other => bail!("Lease holder is {other:?}, neither replica"),
    };
    let (rl, rf) = (reconciles(leader).await, reconciles(follower).await);
    eprintln!("e2e leader_election: holder {leader_id}; reconciles leader={rl} follower={rf}");
    if rl <= 0.0 {
        bail!("the Lease holder {leader_id} shows {rl} reconciles");
    }
    if rf != 0.0 {
        bail!(
            "the follower {follower_id} reconciled too ({rf} reconciles) while not holding the Lease"
        );
    }

    // Graceful shutdown releases the Lease.
    let (took, clean) = leader.terminate(Duration::from_secs(10));
    let after_exit = holder(&ctx, LEASE).await?;
    eprintln!(
        "e2e leader_election: leader exited in {took:?} (clean: {clean}); holder right after: {after_exit:?}"
    );
    if !clean {
        bail!("the leader did not exit within 10 s of SIGTERM");
    }
    if after_exit.as_deref() == Some(leader_id.as_str()) {
        bail!("the Lease still names {leader_id} right after it exited: not released on SIGTERM");
    }
    let t0 = Instant::now();
    wait_until(
        Duration::from_secs(LEASE_SECS + 2),
        "the follower to take the Lease",
        || async { Ok(holder(&ctx, LEASE).await?.as_deref() == Some(follower_id)) },
    )
    .await?;
    eprintln!(
        "e2e leader_election: {follower_id} holds the Lease {:.1}s after the leader exited",
        t0.elapsed().as_secs_f64() + 0.0
    );

    ctx.k
        .apply_ok(&Policy::new(ns, "second", &sim, &ids[50..]).yaml())
        .await?;
    ctx.wait_status(
        ns,
        "second",
        Duration::from_secs(40),
        "second policy Stopped by the new leader",
        |s| s["phase"] == "Stopped" && summary(s, "stopped") == 50,
    )
    .await?;
    let rf2 = reconciles(follower).await;
    if rf2 <= 0.0 {
        bail!("the new leader {follower_id} shows {rf2} reconciles");
    }
    let stats = sim.stats().await;
    ensure_eq!(
        stats.stop_ids_total,
        100,
        "ids over all stop calls (no duplicate across the hand-over)"
    );
    ensure_eq!(stats.stop_calls, 2, "stop calls");
    Ok(())
}
