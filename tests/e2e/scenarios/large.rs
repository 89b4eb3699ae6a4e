//! Issue 14 item 4: large policies and kubectl. Client-side `kubectl apply` keeps the
//! whole object in the `kubectl.kubernetes.io/last-applied-configuration` annotation,
//! and the API server refuses annotations over 256 KiB in all; the README and the
//! CRD's description of `spec.servers` say to use `kubectl apply --server-side` for
//! large policies. This finds the largest policy client-side apply accepts (with the
//! real kubectl and API server), applies it, and applies a 10,000-server policy
//! server-side.

use crate::ensure_eq;
use crate::harness::{Ctx, Policy};
use anyhow::{Result, ensure};

/// The CRD's limit.
const MAX_SERVERS: usize = 10_000;

fn policy(ctx: &Ctx, name: &str, ids: &[String]) -> String {
    Policy::with_endpoint(&ctx.ns, name, "http://127.0.0.1:9", ids).yaml()
}

/// Client-side `kubectl apply` of `yaml`, as a dry run on the server (the annotation's
/// size is checked by the API server's validation, which a dry run runs).
async fn client_side(ctx: &Ctx, yaml: &str, dry_run: bool) -> Result<crate::kubectl::Output> {
    let mut args = vec!["apply", "-f", "-"];
    if dry_run {
        args.push("--dry-run=server");
    }
    ctx.k.run(&args, Some(yaml)).await
}

pub async fn run(ctx: Ctx) -> Result<()> {
    let ids: Vec<String> = (0..MAX_SERVERS)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let refused = client_side(&ctx, &policy(&ctx, "client-side", &ids), true).await?;
    ensure!(
        !refused.ok() && refused.stderr.contains("Too long"),
        "client-side apply of {MAX_SERVERS} servers was not refused for the annotation's size: {}",
        refused.stderr
    );
    // The largest accepted: a bisection on dry runs (each a real request).
    let (mut accepted, mut too_many) = (1, MAX_SERVERS);
    while too_many - accepted > 1 {
        let n = (accepted + too_many) / 2;
        let out = client_side(&ctx, &policy(&ctx, "client-side", &ids[..n]), true).await?;
        if out.ok() {
            accepted = n;
        } else {
            ensure!(
                out.stderr.contains("Too long"),
                "client-side apply of {n} servers refused for another reason: {}",
                out.stderr
            );
            too_many = n;
        }
    }
    client_side(&ctx, &policy(&ctx, "client-side", &ids[..accepted]), false)
        .await?
        .check()?;
    // Server-side apply keeps no copy of the object: the CRD's limit is the limit.
    ctx.k.apply_ok(&policy(&ctx, "server-side", &ids)).await?;
    for (name, expected) in [("client-side", accepted), ("server-side", MAX_SERVERS)] {
        let stored = ctx
            .k
            .get_json(&["ecspowerpolicy", name, "-n", &ctx.ns])
            .await?
            .and_then(|p| p["spec"]["servers"].as_array().map(Vec::len));
        ensure_eq!(stored, Some(expected), "servers stored in {name}");
    }
    eprintln!(
        "e2e large_policies: client-side apply accepts at most {accepted} servers ({} refused); server-side {MAX_SERVERS}",
        accepted + 1
    );
    Ok(())
}
