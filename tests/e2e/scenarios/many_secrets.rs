//! Issue 14: Secrets no policy names cost the operator nothing. 2,000 Secrets of
//! 100 KiB in other namespaces (Helm releases' are of that kind) raise the peak RSS of
//! an operator for all namespaces, with its cluster-wide metadata-only Secret watch,
//! by less than 10 MiB. On a control plane of its own: the operator watches every
//! namespace, and 200 MB of Secrets would slow the shared one for everybody.

use crate::harness::{ACCESS_KEY, Ctx, Policy, SECRET_KEY, start_sim, wait_until};
use crate::operator::metric_sum;
use anyhow::{Result, ensure};
use ecs_power_operator::sim::RunningSim;
use futures::{StreamExt, TryStreamExt};
use std::time::{Duration, Instant};

const SECRETS: usize = 2_000;
const SECRET_BYTES: usize = 100 * 1024;
const NAMESPACES: usize = 20;
/// Secrets per `kubectl create` (10 MB of manifest).
const BATCH: usize = 100;
/// Namespaces filled at once.
const CONCURRENT_CREATES: usize = 4;
const RSS_GROWTH_LIMIT_KIB: u64 = 10 * 1024;

/// An operator for all namespaces, once it has synced the policy (Stopped) and run
/// a few more seconds: its peak RSS.
async fn peak_with_policy(ctx: &Ctx, name: &str, sim: &RunningSim) -> Result<u64> {
    let op = ctx.operator_watching(name, None, &[]).await?;
    ctx.k
        .apply_ok(&Policy::new(&ctx.ns, "policy", sim, &sim.server_ids()).yaml())
        .await?;
    wait_until(
        Duration::from_secs(60),
        "the policy synced by this operator",
        || async {
            let synced = metric_sum(&op.metrics().await?, "ecs_power_operator_reconciles_total");
            Ok(synced.is_some_and(|n| n >= 1.0))
        },
    )
    .await?;
    ctx.wait_phase(&ctx.ns, "policy", "Stopped", Duration::from_secs(60))
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    op.peak_rss_kib()
}

fn secrets_yaml(ns: &str, from: usize, value: &str) -> String {
    (from..from + BATCH)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: release-{i}\n  namespace: {ns}\ntype: Opaque\nstringData:\n  blob: {value}\n---\n"
            )
        })
        .collect()
}

pub async fn run(ctx: Ctx) -> Result<()> {
    let (ctx, _control_plane) = ctx.on_own_cluster("deploy").await?;
    let sim = start_sim(100, |_| {}).await?;
    ctx.secret(&ctx.ns, "otc-credentials", ACCESS_KEY, SECRET_KEY)
        .await?;
    let without = peak_with_policy(&ctx, "without", &sim).await?;

    let value = "x".repeat(SECRET_BYTES);
    let per_namespace = SECRETS / NAMESPACES;
    let created = Instant::now();
    futures::stream::iter(0..NAMESPACES)
        .map(|n| {
            let (ctx, value) = (&ctx, &value);
            async move {
                let ns = ctx.namespace(&format!("other-{n}")).await?;
                for from in (0..per_namespace).step_by(BATCH) {
                    let yaml = secrets_yaml(&ns, from, value);
                    ctx.k
                        .run(&["create", "-f", "-"], Some(&yaml))
                        .await?
                        .check()?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENT_CREATES)
        .try_collect::<()>()
        .await?;
    let created = created.elapsed();
    let with = peak_with_policy(&ctx, "with", &sim).await?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "e2e many_secrets: operator peak RSS {:.1} MiB without, {:.1} MiB with {SECRETS} Secrets of {} KiB in {NAMESPACES} other namespaces (created in {:.1}s)",
        mib(without),
        mib(with),
        SECRET_BYTES / 1024,
        created.as_secs_f64()
    );
    ensure!(
        with.saturating_sub(without) < RSS_GROWTH_LIMIT_KIB,
        "{SECRETS} Secrets raised the peak RSS from {without} KiB to {with} KiB (limit +{RSS_GROWTH_LIMIT_KIB} KiB)"
    );
    Ok(())
}
