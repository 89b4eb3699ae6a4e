//! Configuration problems: missing Secret, wrong credentials, Secrets of another
//! namespace, a call journal the operator may not keep. Degraded with a reason, an
//! Event, never a crash or a leak.

use crate::ensure_eq;
use crate::harness::{
    ACCESS_KEY, Ctx, Policy, SECRET_KEY, condition, degraded_with, start_sim, summary,
};
use crate::operator::metric_sum;
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

/// Missing Secret → Degraded/SecretNotFound + Warning Event, no crash, no tight loop;
/// creating the Secret → Stopped.
pub async fn missing_secret(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(20, |_| {}).await?;
    let mut op = ctx.operator("operator", ns, &[]).await?;
    ctx.k
        .apply_ok(&Policy::new(ns, "no-secret", &sim, &sim.server_ids()).yaml())
        .await?;
    let s = ctx
        .wait_status(
            ns,
            "no-secret",
            Duration::from_secs(30),
            "phase Degraded, Degraded=True reason SecretNotFound",
            |s| degraded_with(s, "SecretNotFound"),
        )
        .await?;
    let message = condition(&s, "Degraded")
        .map(|c| c["message"].clone())
        .unwrap_or_default();
    if !message.as_str().unwrap_or("").contains("otc-credentials") {
        bail!("the Degraded message should name the Secret: {message}");
    }
    ctx.wait_event(
        ns,
        "SecretNotFound",
        Some("Warning"),
        Duration::from_secs(10),
    )
    .await?;

    // Backoff, not a tight loop: few reconciles over 5 s, and the process is alive.
    let r0 = metric_sum(&op.metrics().await?, "ecs_power_operator_reconciles_total").unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    if !op.alive() {
        bail!("operator exited ({:?}) with a missing Secret", op.exit);
    }
    let r1 = metric_sum(&op.metrics().await?, "ecs_power_operator_reconciles_total").unwrap_or(0.0);
    eprintln!(
        "e2e missing_secret: {} reconciles in 5 s while Degraded",
        r1 - r0
    );
    if r1 - r0 > 25.0 {
        bail!(
            "{} reconciles in 5 s with a missing Secret: a tight error loop",
            r1 - r0
        );
    }
    ensure_eq!(
        sim.stats().await.stop_calls,
        0,
        "stop calls without credentials"
    );

    let t0 = Instant::now();
    ctx.credentials().await?;
    ctx.wait_status(
        ns,
        "no-secret",
        Duration::from_secs(30),
        "Stopped after the Secret was created",
        |s| s["phase"] == "Stopped" && summary(s, "stopped") == 20,
    )
    .await?;
    eprintln!(
        "e2e missing_secret: Stopped {:.1}s after the Secret was created",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Wrong secret key → Degraded/AuthenticationFailed; the key is nowhere to be seen;
/// the right key in the Secret → Stopped.
pub async fn bad_credentials(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(20, |_| {}).await?;
    let wrong = format!("e2eWrongSecretKey{}", uuid::Uuid::new_v4().simple());
    ctx.secret(ns, "otc-credentials", ACCESS_KEY, &wrong)
        .await?;
    let mut op = ctx.operator("operator", ns, &["--log-format=json"]).await?;
    ctx.k
        .apply_ok(&Policy::new(ns, "bad-creds", &sim, &sim.server_ids()).yaml())
        .await?;
    ctx.wait_status(
        ns,
        "bad-creds",
        Duration::from_secs(30),
        "Degraded=True reason AuthenticationFailed",
        |s| degraded_with(s, "AuthenticationFailed"),
    )
    .await?;
    ctx.wait_event(
        ns,
        "AuthenticationFailed",
        Some("Warning"),
        Duration::from_secs(10),
    )
    .await?;
    let s0 = sim.stats().await.signature_failures;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stats = sim.stats().await;
    eprintln!(
        "e2e bad_credentials: 401s from the sim: {} in total, {} in the last 5 s",
        stats.signature_failures,
        stats.signature_failures - s0
    );
    if stats.signature_failures == 0 {
        bail!("the sim saw no request with a bad signature");
    }
    if stats.signature_failures - s0 > 10 {
        bail!(
            "{} refused requests in 5 s: no backoff on 401",
            stats.signature_failures - s0
        );
    }
    ensure_eq!(stats.stop_calls, 0, "stop calls with bad credentials");
    if !op.alive() {
        bail!("operator exited ({:?})", op.exit);
    }

    let object = ctx
        .k
        .run(&["get", "epp", "bad-creds", "-n", ns, "-o", "json"], None)
        .await?
        .check()?;
    let events = ctx
        .k
        .run(
            &["get", "events.v1.events.k8s.io", "-n", ns, "-o", "json"],
            None,
        )
        .await?
        .check()?;
    let core_events = ctx
        .k
        .run(&["get", "events", "-n", ns, "-o", "json"], None)
        .await?
        .check()?;
    let log = op.log_text();
    for (place, text) in [
        ("the policy", &object),
        ("events.k8s.io Events", &events),
        ("core Events", &core_events),
        ("the operator log", &log),
    ] {
        if text.contains(&wrong) {
            bail!("the secret key appears in {place}");
        }
        if text.contains(SECRET_KEY) {
            bail!("the sim's real secret key appears in {place}");
        }
    }
    if log.is_empty() {
        bail!("the operator log is empty: nothing to check for leaks");
    }

    // Rotating the Secret to the right key: the credentials the operator kept are
    // dropped with the change, and the policy recovers without a restart.
    ctx.credentials().await?;
    ctx.wait_phase(ns, "bad-creds", "Stopped", Duration::from_secs(30))
        .await?;
    // The fleet of the rejected key has no policy left: it is dropped, not kept forever.
    if !op
        .log_text()
        .contains("fleet retired: no policy uses it any more")
    {
        bail!("the fleet of the rotated-out credentials was not retired");
    }
    Ok(())
}

/// Two namespaces: ns-b's policy names a Secret that exists only in ns-a.
pub async fn two_namespaces(ctx: Ctx) -> Result<()> {
    let ns_a = ctx.namespace("a").await?;
    let ns_b = ctx.namespace("b").await?;
    let sim = start_sim(100, |_| {}).await?;
    let ids = sim.server_ids();
    ctx.secret(&ns_a, "otc-credentials", ACCESS_KEY, SECRET_KEY)
        .await?;
    let _op_a = ctx.operator("operator-a", &ns_a, &[]).await?;
    let _op_b = ctx.operator("operator-b", &ns_b, &[]).await?;
    ctx.k
        .apply_ok(&Policy::new(&ns_a, "team-a", &sim, &ids[..50]).yaml())
        .await?;
    ctx.k
        .apply_ok(&Policy::new(&ns_b, "team-b", &sim, &ids[50..]).yaml())
        .await?;
    ctx.wait_status(
        &ns_a,
        "team-a",
        Duration::from_secs(30),
        "ns-a policy Stopped",
        |s| s["phase"] == "Stopped" && summary(s, "stopped") == 50,
    )
    .await?;
    ctx.wait_status(
        &ns_b,
        "team-b",
        Duration::from_secs(30),
        "ns-b policy Degraded/SecretNotFound",
        |s| degraded_with(s, "SecretNotFound"),
    )
    .await?;
    ctx.wait_event(
        &ns_b,
        "SecretNotFound",
        Some("Warning"),
        Duration::from_secs(10),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = sim.stats().await;
    ensure_eq!(stats.stop_ids_total, 50, "ids stopped (only ns-a's)");
    ensure_eq!(
        stats.servers_by_status.get("ACTIVE").copied(),
        Some(50),
        "ns-b's servers still ACTIVE"
    );
    Ok(())
}

/// An operator that may not keep its call journal (its `--lease-namespace` is one it
/// has no rights in) stops nothing: Degraded/CallJournalUnavailable naming the
/// ConfigMap, a Warning Event, no stop call.
pub async fn journal_unavailable(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(20, |_| {}).await?;
    ctx.credentials().await?;
    let elsewhere = format!("--lease-namespace={ns}-nowhere");
    let _op = ctx.operator("operator", ns, &[elsewhere.as_str()]).await?;
    ctx.k
        .apply_ok(&Policy::new(ns, "unjournalled", &sim, &sim.server_ids()).yaml())
        .await?;
    let s = ctx
        .wait_status(
            ns,
            "unjournalled",
            Duration::from_secs(30),
            "Degraded=True reason CallJournalUnavailable",
            |s| degraded_with(s, "CallJournalUnavailable"),
        )
        .await?;
    let message = condition(&s, "Degraded")
        .and_then(|c| c["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    if !message.contains("call journal ConfigMap") || !message.contains("--lease-namespace") {
        bail!("the Degraded message should name the journal and the flag: {message}");
    }
    ctx.wait_event(
        ns,
        "CallJournalUnavailable",
        Some("Warning"),
        Duration::from_secs(10),
    )
    .await?;
    ensure_eq!(
        sim.stats().await.stop_calls,
        0,
        "stop calls without a journal"
    );
    Ok(())
}
