//! Servers chosen by the cloud's tags: a tag selector stops exactly the tagged servers
//! (exclude wins) and a newly tagged one at the next sync; a selector over maxServers
//! stops nothing and is Stalled; a dry run only reports; two policies selecting the
//! same servers stop each of them once.

use crate::ensure_eq;
use crate::harness::{Ctx, Policy, condition, start_sim, summary};
use anyhow::{Result, bail};
use ecs_power_operator::sim::SimStats;
use serde_json::Value;
use std::time::Duration;

fn shutoff(stats: &SimStats) -> u64 {
    stats.servers_by_status.get("SHUTOFF").copied().unwrap_or(0)
}

fn sample(s: &Value) -> Vec<String> {
    s["selector"]["sample"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect()
}

pub async fn run(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(12, |_| {}).await?;
    let ids = sim.server_ids();
    let control = sim.control();
    let tag = |i: usize, tags: &[&str]| {
        let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
        control.set_tags(&ids[i], &tags)
    };
    // 0..3 carry sel=yes (1 is excluded); 6..12 carry big=yes, more than a cap of 3.
    for i in 0..3 {
        tag(i, &["sel=yes"])?;
    }
    for i in 6..12 {
        tag(i, &["big=yes"])?;
    }
    ctx.credentials().await?;
    let _op = ctx.operator("operator", ns, &[]).await?;

    let selecting = |name: &str, extra: String| {
        let mut p = Policy::new(ns, name, &sim, &[]);
        p.extra_spec = extra;
        p
    };
    let by_tag = selecting(
        "by-tag",
        format!(
            "  selector: {{tags: {{sel: \"yes\"}}}}\n  maxServers: 3\n  exclude: [{{id: \"{}\"}}]\n",
            ids[1]
        ),
    );
    ctx.k.apply_ok(&by_tag.yaml()).await?;
    let s = ctx
        .wait_status(
            ns,
            "by-tag",
            Duration::from_secs(30),
            "Stopped with 2 matched",
            |s| s["phase"] == "Stopped" && s["selector"]["matched"] == 2,
        )
        .await?;
    let mut expected = vec![ids[0].clone(), ids[2].clone()];
    expected.sort();
    ensure_eq!(sample(&s), expected, "matched sample (exclude wins)");
    ensure_eq!(shutoff(&sim.stats().await), 2, "servers SHUTOFF");
    let digest = s["selector"]["digest"].clone();

    // A newly tagged server is the policy's from the next listing, and stopped.
    tag(4, &["sel=yes", "team=new"])?;
    let s = ctx
        .wait_status(
            ns,
            "by-tag",
            Duration::from_secs(20),
            "Stopped with 3 matched",
            |s| s["phase"] == "Stopped" && summary(s, "stopped") == 3,
        )
        .await?;
    ensure_eq!(s["selector"]["matched"].clone(), Value::from(3), "matched");
    if s["selector"]["digest"] == digest {
        bail!("the digest did not change with the matched set");
    }
    ensure_eq!(shutoff(&sim.stats().await), 3, "servers SHUTOFF");

    // Six matches over a cap of 3: nothing stopped, Stalled, a Warning naming the count.
    let over = selecting(
        "over-cap",
        "  selector: {tags: {big: \"yes\"}}\n  maxServers: 3\n".to_owned(),
    );
    ctx.k.apply_ok(&over.yaml()).await?;
    let s = ctx
        .wait_status(
            ns,
            "over-cap",
            Duration::from_secs(30),
            "Stalled with reason MaxServersExceeded",
            |s| {
                condition(s, "Stalled")
                    .is_some_and(|c| c["status"] == "True" && c["reason"] == "MaxServersExceeded")
            },
        )
        .await?;
    ensure_eq!(s["selector"]["matched"].clone(), Value::from(6), "matched");
    let event = ctx
        .wait_event(
            ns,
            "MaxServersExceeded",
            Some("Warning"),
            Duration::from_secs(10),
        )
        .await?;
    if !event["note"]
        .as_str()
        .unwrap_or("")
        .contains("matches 6 servers")
    {
        bail!("the Warning should name the count: {}", event["note"]);
    }

    // A dry run of the same selector with room reports six, stops none.
    let mut dry = selecting(
        "dry",
        "  selector: {tags: {big: \"yes\"}}\n  maxServers: 10\n".to_owned(),
    );
    dry.dry_run = true;
    ctx.k.apply_ok(&dry.yaml()).await?;
    ctx.wait_status(
        ns,
        "dry",
        Duration::from_secs(30),
        "dryRun.wouldStop 6",
        |s| s["dryRun"]["wouldStop"] == 6 && s["selector"]["matched"] == 6,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure_eq!(
        shutoff(&sim.stats().await),
        3,
        "servers SHUTOFF (none by over-cap or dry)"
    );

    // Two policies applied together whose selectors share four servers (6..10 carry
    // half=yes too): the cloud is asked to stop each of the six once.
    for i in 6..10 {
        tag(i, &["big=yes", "half=yes"])?;
    }
    let before = sim.stats().await;
    let wide = selecting(
        "wide",
        "  selector: {tags: {big: \"yes\"}}\n  maxServers: 10\n".to_owned(),
    );
    let narrow = selecting(
        "narrow",
        "  selector: {tags: {big: \"yes\", half: \"yes\"}}\n  maxServers: 10\n".to_owned(),
    );
    ctx.k
        .apply_ok(&format!("{}---\n{}", wide.yaml(), narrow.yaml()))
        .await?;
    for (name, matched) in [("wide", 6), ("narrow", 4)] {
        ctx.wait_status(
            ns,
            name,
            Duration::from_secs(30),
            "Stopped with its matches",
            |s| s["phase"] == "Stopped" && s["selector"]["matched"] == matched,
        )
        .await?;
    }
    let after = sim.stats().await;
    ensure_eq!(shutoff(&after), 9, "servers SHUTOFF");
    ensure_eq!(
        after.stop_ids_accepted - before.stop_ids_accepted,
        6,
        "ids of accepted stop calls for six servers selected by two policies"
    );
    ensure_eq!(
        after.stop_ids_redundant,
        0,
        "ids sent for a server already stopped or stopping"
    );
    Ok(())
}
