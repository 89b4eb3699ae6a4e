//! What GitOps tools read from live policies (issue 15): kstatus's verdict, from the
//! real library (hack/cplane/kstatus, what Flux's `wait` and `healthChecks` use), and Argo
//! CD's, from the shipped Lua health check run in gopher-lua (hack/cplane/argocd-health), for
//! each phase; one Event per stop job, shown by `kubectl describe`; the condition
//! gauges.

use crate::cluster::repo_root;
use crate::ensure_eq;
use crate::harness::{ACCESS_KEY, Ctx, Policy, SECRET_KEY, wait_until};
use crate::operator::metric_sum;
use crate::tools::go_tool;
use anyhow::{Context as _, Result, bail};
use ecs_power_operator::sim::RunningSim;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

const HEALTH_CHECK: &str =
    "deploy/argocd/resource_customizations/ecspower.dev/EcsPowerPolicy/health.lua";

/// One policy as both tools read it, from the same moment.
#[derive(Clone, Default)]
struct Reading {
    kstatus: String,
    kstatus_message: String,
    argocd: String,
    phase: String,
    /// The object both judged, kept in the scenario's directory under captured/ (the
    /// testdata of the Argo CD health check comes from there).
    object: Value,
}

/// Without the object: it would bury the verdicts in failure messages.
impl std::fmt::Debug for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reading")
            .field("phase", &self.phase)
            .field("kstatus", &self.kstatus)
            .field("kstatus_message", &self.kstatus_message)
            .field("argocd", &self.argocd)
            .field(
                "observedGeneration",
                &self.object["status"]["observedGeneration"],
            )
            .finish()
    }
}

fn json_lines(text: &str) -> Result<BTreeMap<String, Value>> {
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).with_context(|| format!("line {line}"))?;
            Ok((v["name"].as_str().unwrap_or_default().to_owned(), v))
        })
        .collect()
}

/// The live policies of `ns` read by kstatus and by the Argo CD health check. The two
/// reads are a moment apart: each reading is taken only when both saw the same phase.
struct Readers {
    kstatus: PathBuf,
    argocd: PathBuf,
}

impl Readers {
    async fn new() -> Result<Self> {
        Ok(Self {
            kstatus: go_tool("kstatus").await?,
            argocd: go_tool("argocd-health").await?,
        })
    }

    async fn read(&self, ctx: &Ctx, ns: &str) -> Result<BTreeMap<String, Reading>> {
        let verdicts = tokio::process::Command::new(&self.kstatus)
            .arg("--kubeconfig")
            .arg(&ctx.k.kubeconfig)
            .args(["--namespace", ns])
            .output()
            .await?;
        if !verdicts.status.success() {
            bail!(
                "kstatus failed: {}",
                String::from_utf8_lossy(&verdicts.stderr)
            );
        }
        let verdicts = json_lines(&String::from_utf8(verdicts.stdout)?)?;
        let list = ctx
            .k
            .run(&["get", "epp", "-n", ns, "-o", "json"], None)
            .await?;
        let list = list.check()?;
        let objects: BTreeMap<String, Value> = serde_json::from_str::<Value>(&list)?["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| {
                let name = item["metadata"]["name"].as_str().unwrap_or_default();
                (name.to_owned(), item.clone())
            })
            .collect();
        let health = argocd_eval(&self.argocd, &list).await?;
        let mut readings = BTreeMap::new();
        for (name, verdict) in verdicts {
            let phase = verdict["phase"].as_str().unwrap_or_default().to_owned();
            let Some(object) = objects.get(&name) else {
                continue;
            };
            if object["status"]["phase"].as_str().unwrap_or_default() != phase {
                continue;
            }
            readings.insert(
                name.clone(),
                Reading {
                    kstatus: verdict["status"].as_str().unwrap_or_default().to_owned(),
                    kstatus_message: verdict["message"].as_str().unwrap_or_default().to_owned(),
                    argocd: health
                        .get(&name)
                        .and_then(|h| h["status"].as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    phase,
                    object: object.clone(),
                },
            );
        }
        Ok(readings)
    }

    /// Polls until `name` reads (phase, kstatus, argocd) as `want`; returns the reading.
    async fn wait_for(
        &self,
        ctx: &Ctx,
        name: &str,
        want: (&str, &str, &str),
        limit: Duration,
    ) -> Result<Reading> {
        let t0 = std::time::Instant::now();
        let mut last = None;
        while t0.elapsed() < limit {
            if let Some(reading) = self.read(ctx, &ctx.ns).await?.remove(name) {
                let got = (
                    reading.phase.as_str(),
                    reading.kstatus.as_str(),
                    reading.argocd.as_str(),
                );
                if got == want {
                    capture(ctx, &reading)?;
                    return Ok(reading);
                }
                last = Some(reading);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        bail!(
            "{name}: wanted (phase, kstatus, Argo CD) = {want:?} within {limit:?}; last reading {last:?}"
        )
    }
}

fn capture(ctx: &Ctx, reading: &Reading) -> Result<()> {
    let dir = ctx.dir.join("captured");
    std::fs::create_dir_all(&dir)?;
    let name = reading.object["metadata"]["name"]
        .as_str()
        .unwrap_or("policy");
    let file = dir.join(format!(
        "{name}-gen{}-{}-{}.json",
        reading.object["metadata"]["generation"],
        reading.phase.to_lowercase(),
        reading.kstatus.to_lowercase()
    ));
    std::fs::write(&file, serde_json::to_string_pretty(&reading.object)?)?;
    Ok(())
}

async fn argocd_eval(runner: &PathBuf, list: &str) -> Result<BTreeMap<String, Value>> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(runner)
        .arg("eval")
        .arg(repo_root().join(HEALTH_CHECK))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().context("runner stdin")?;
    stdin.write_all(list.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "argocd-health eval failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    json_lines(&String::from_utf8(out.stdout)?)
}

fn policy(ctx: &Ctx, name: &str, sim: &RunningSim, ids: &[String]) -> Policy {
    Policy::new(&ctx.ns, name, sim, ids)
}

/// The Events of one policy with `reason`, oldest first.
fn events_of<'a>(events: &'a [Value], policy: &str, reason: &str) -> Vec<&'a Value> {
    let mut found: Vec<&Value> = events
        .iter()
        .filter(|e| e["regarding"]["name"] == policy && e["reason"] == reason)
        .collect();
    found.sort_by_key(|e| e["eventTime"].as_str().unwrap_or_default().to_owned());
    found
}

/// deploy/argocd, a kustomize Component, merged into an Argo CD install's argocd-cm
/// (shaped as in Argo CD's install.yaml: no namespace, set by the kustomization): the
/// health check lands under its key, as health.lua.
async fn argocd_component_renders(ctx: &Ctx) -> Result<()> {
    let overlay = ctx.dir.join("argocd-overlay");
    std::fs::create_dir_all(&overlay)?;
    std::fs::write(
        overlay.join("argocd-cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  labels:\n    app.kubernetes.io/part-of: argocd\ndata:\n  url: https://argocd.example.com\n",
    )?;
    // kustomize takes components by relative path only.
    let up = "../".repeat(overlay.components().count().saturating_sub(1));
    let component = format!(
        "{up}{}",
        repo_root()
            .join("deploy/argocd")
            .display()
            .to_string()
            .trim_start_matches('/')
    );
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!("namespace: argocd\nresources: [argocd-cm.yaml]\ncomponents: [{component}]\n"),
    )?;
    let rendered = ctx
        .k
        .run(&["kustomize", overlay.to_str().unwrap_or_default()], None)
        .await?
        .check()?;
    let cm: serde_yaml::Value = serde_yaml::from_str(&rendered)?;
    let lua = std::fs::read_to_string(repo_root().join(HEALTH_CHECK))?;
    ensure_eq!(
        cm["data"]["resource.customizations.health.ecspower.dev_EcsPowerPolicy"].as_str(),
        Some(lua.as_str()),
        "the health check in the rendered argocd-cm:\n{rendered}"
    );
    ensure_eq!(
        (
            cm["metadata"]["namespace"].as_str(),
            cm["data"]["url"].as_str()
        ),
        (Some("argocd"), Some("https://argocd.example.com")),
        "the rest of argocd-cm kept"
    );
    Ok(())
}

/// Each phase, read by kstatus and by the Argo CD health check; a spec changed while
/// the operator is down; a Secret fixed; the Events of three jobs; the gauges.
pub async fn run(ctx: Ctx) -> Result<()> {
    let ns = ctx.ns.clone();
    argocd_component_renders(&ctx).await?;
    let readers = Readers::new().await?;
    let sim = crate::harness::start_sim(2550, |c| c.stop_duration = Duration::from_secs(3)).await?;
    let ids = sim.server_ids();
    ctx.secret(&ns, "otc-credentials", ACCESS_KEY, SECRET_KEY)
        .await?;
    ctx.secret(&ns, "wrong-credentials", ACCESS_KEY, "e2eWrongSecretKey")
        .await?;
    let mut op = ctx.operator("operator", &ns, &[]).await?;

    let nightly = policy(&ctx, "nightly", &sim, &ids[..2500]);
    let mut suspended = policy(&ctx, "suspended", &sim, &ids[2500..2510]);
    suspended.suspend = true;
    let mut dry_run = policy(&ctx, "dry-run", &sim, &ids[2510..2520]);
    dry_run.dry_run = true;
    let mut no_secret = policy(&ctx, "no-secret", &sim, &ids[2520..2530]);
    no_secret.secret = "missing-credentials".into();
    let mut wrong_key = policy(&ctx, "wrong-key", &sim, &ids[2530..2540]);
    wrong_key.secret = "wrong-credentials".into();
    let mut unknown_ids = ids[2540..2545].to_vec();
    unknown_ids.push(uuid::Uuid::new_v4().to_string());
    let unknown = policy(&ctx, "unknown-server", &sim, &unknown_ids);
    // Every ECS request answered with a 5xx: every sync fails and is retried.
    let broken = crate::harness::start_sim(5, |c| c.error_rate = 1.0).await?;
    let failing_api = policy(&ctx, "failing-api", &broken, &broken.server_ids());
    // Scheduled, outside its window (one on a day three days off): as scheduled right
    // now, so Current and Healthy. It stops nothing, so it may share suspended's servers.
    let mut outside_window = policy(&ctx, "outside-window", &sim, &ids[2500..2505]);
    let other_day = (jiff::Timestamp::now() + Duration::from_secs(3 * 86_400))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%a")
        .to_string();
    outside_window.extra_spec = format!(
        "  schedule:\n    timeZone: UTC\n    windows: [{{days: [{other_day}], from: \"01:00\", to: \"02:00\"}}]\n"
    );
    let all = [
        &nightly,
        &suspended,
        &dry_run,
        &no_secret,
        &wrong_key,
        &unknown,
        &failing_api,
        &outside_window,
    ];
    for p in all {
        ctx.k.apply_ok(&p.yaml()).await?;
    }

    // While its three jobs run: InProgress (Reconciling=True), Progressing.
    let limit = Duration::from_secs(60);
    let stopping = readers
        .wait_for(
            &ctx,
            "nightly",
            ("Stopping", "InProgress", "Progressing"),
            limit,
        )
        .await?;
    eprintln!("e2e gitops: nightly while stopping: {stopping:?}");
    let finals = [
        ("nightly", ("Stopped", "Current", "Healthy")),
        ("suspended", ("Suspended", "Current", "Suspended")),
        ("dry-run", ("Pending", "Current", "Healthy")),
        ("outside-window", ("Idle", "Current", "Healthy")),
        ("no-secret", ("Degraded", "Failed", "Degraded")),
        ("wrong-key", ("Degraded", "Failed", "Degraded")),
        ("unknown-server", ("Degraded", "Failed", "Degraded")),
    ];
    for (name, want) in finals {
        let reading = readers.wait_for(&ctx, name, want, limit).await?;
        eprintln!("e2e gitops: {name}: {reading:?}");
    }
    // A sync that fails and is retried still records the generation it tried:
    // observed, Reconciling, InProgress (whatever Degraded reason it may also carry).
    let t0 = std::time::Instant::now();
    let retried = loop {
        let reading = readers.read(&ctx, &ns).await?.remove("failing-api");
        if let Some(r) = reading.filter(|r| r.object["status"]["observedGeneration"] == 1) {
            break r;
        }
        if t0.elapsed() > limit {
            bail!("failing-api: observedGeneration never reached 1 within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let reconciling = crate::harness::condition(&retried.object["status"], "Reconciling").cloned();
    ensure_eq!(
        (
            retried.kstatus.as_str(),
            reconciling.as_ref().map(|c| c["status"].clone())
        ),
        ("InProgress", Some(Value::from("True"))),
        "failing-api, a failed sync retried ({retried:?})"
    );
    capture(&ctx, &retried)?;
    eprintln!("e2e gitops: failing-api: {retried:?}");
    let failed = readers.read(&ctx, &ns).await?;
    for (name, reason) in [
        ("no-secret", "missing-credentials"),
        ("wrong-key", "a person must act"),
        ("unknown-server", "do not exist"),
    ] {
        let message = &failed[name].kstatus_message;
        if !message.contains(reason) {
            bail!("kstatus's message for {name} should say why ({reason}): {message}");
        }
    }

    // One Event per job, naming it; `kubectl describe` shows each submission and result.
    // The servers may read SHUTOFF before the last job is polled to its end: wait for it.
    let status = ctx
        .wait_status(&ns, "nightly", limit, "every job of nightly SUCCESS", |s| {
            s["jobs"]
                .as_array()
                .is_some_and(|jobs| jobs.iter().all(|j| j["status"] == "SUCCESS"))
        })
        .await?;
    let jobs: BTreeSet<String> = status["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j["jobId"].as_str().map(str::to_owned))
        .collect();
    ensure_eq!(jobs.len(), 3, "jobs of 2500 servers in status.jobs");
    let events = ctx.k.events(&ns).await?;
    for reason in ["StopSubmitted", "StopSucceeded"] {
        let of_jobs = events_of(&events, "nightly", reason);
        let named: BTreeSet<String> = jobs
            .iter()
            .filter(|job| {
                of_jobs
                    .iter()
                    .filter(|e| {
                        e["note"]
                            .as_str()
                            .unwrap_or_default()
                            .contains(job.as_str())
                    })
                    .count()
                    == 1
            })
            .cloned()
            .collect();
        ensure_eq!(
            (of_jobs.len(), &named),
            (3, &jobs),
            "{reason} Events of nightly, one naming each job: {of_jobs:?}"
        );
        if let Some(folded) = of_jobs
            .iter()
            .find(|e| !e["series"].is_null() || !e["deprecatedCount"].is_null())
        {
            bail!("a {reason} Event was folded into a series: {folded}");
        }
    }
    let describe = ctx
        .k
        .run(&["describe", "epp", "nightly", "-n", &ns], None)
        .await?
        .check()?;
    for job in &jobs {
        for reason in ["StopSubmitted", "StopSucceeded"] {
            if !describe
                .lines()
                .any(|line| line.contains(reason) && line.contains(job.as_str()))
            {
                bail!("kubectl describe epp shows no {reason} line for job {job}:\n{describe}");
            }
        }
    }
    let warning = events_of(&events, "no-secret", "SecretNotFound");
    if warning.len() != 1 || warning[0]["type"] != "Warning" {
        bail!("no-secret should have had one Warning SecretNotFound: {warning:?}");
    }

    // The condition gauges, as the alert reads them.
    let gauge = |text: &str, policy: &str, type_: &str| {
        metric_sum(
            text,
            &format!(
                "ecs_power_operator_policy_condition{{namespace=\"{ns}\",policy=\"{policy}\",type=\"{type_}\"}}"
            ),
        )
    };
    let metrics = op.metrics().await?;
    for (policy, type_, value) in [
        ("no-secret", "Stalled", 1.0),
        ("no-secret", "Ready", 0.0),
        ("nightly", "Ready", 1.0),
        ("nightly", "Stalled", 0.0),
        ("nightly", "Reconciling", 0.0),
    ] {
        ensure_eq!(
            gauge(&metrics, policy, type_),
            Some(value),
            "policy_condition of {policy} {type_}"
        );
    }

    // A spec changed while no operator runs: not observed, InProgress / Progressing,
    // until an operator syncs it.
    op.terminate(Duration::from_secs(10));
    let mut hard = nightly.clone();
    hard.stop_type = "Hard".into();
    ctx.k.apply_ok(&hard.yaml()).await?;
    // A policy no operator has seen: the API server's default status (observedGeneration
    // 0) reads InProgress / Progressing, not done before anything happened.
    let fresh = policy(&ctx, "fresh", &sim, &ids[2545..2550]);
    ctx.k.apply_ok(&fresh.yaml()).await?;
    let unobserved = readers.read(&ctx, &ns).await?;
    for name in ["nightly", "fresh"] {
        let reading = unobserved
            .get(name)
            .with_context(|| format!("no reading of {name}: {unobserved:?}"))?;
        ensure_eq!(
            (reading.kstatus.as_str(), reading.argocd.as_str()),
            ("InProgress", "Progressing"),
            "{name} not observed yet ({reading:?})"
        );
        capture(&ctx, reading)?;
    }
    if !unobserved["nightly"]
        .kstatus_message
        .contains("generation is 2, but latest observed generation is 1")
    {
        bail!(
            "kstatus should say the new generation is not observed: {:?}",
            unobserved["nightly"]
        );
    }
    let mut op = ctx.operator("operator-2", &ns, &[]).await?;
    for name in ["nightly", "fresh"] {
        readers
            .wait_for(&ctx, name, ("Stopped", "Current", "Healthy"), limit)
            .await?;
    }
    let observed = ctx.status(&ns, "nightly").await?["observedGeneration"].clone();
    ensure_eq!(observed, Value::from(2), "nightly's observedGeneration");
    // The new operator's gauges cover the policies whose status it did not change.
    wait_until(
        Duration::from_secs(20),
        "operator-2's gauge of no-secret Stalled = 1 (its status unchanged)",
        || {
            let metrics = op.metrics();
            let gauge = &gauge;
            async move { Ok(gauge(&metrics.await?, "no-secret", "Stalled") == Some(1.0)) }
        },
    )
    .await?;

    // The Secret appears: Current and Healthy, and a Normal Event says it recovered.
    ctx.secret(&ns, "missing-credentials", ACCESS_KEY, SECRET_KEY)
        .await?;
    readers
        .wait_for(&ctx, "no-secret", ("Stopped", "Current", "Healthy"), limit)
        .await?;
    ctx.wait_event(&ns, "Recovered", Some("Normal"), Duration::from_secs(10))
        .await?;

    // A deleted policy's gauges go with it.
    ctx.k
        .run(&["delete", "epp", "unknown-server", "-n", &ns], None)
        .await?
        .check()?;
    wait_until(
        Duration::from_secs(20),
        "the gauges of the deleted policy unknown-server to disappear",
        || {
            let metrics = op.metrics();
            async move { Ok(!metrics.await?.contains("policy=\"unknown-server\"")) }
        },
    )
    .await?;
    if !op.alive() {
        bail!("operator exited: {:?}", op.exit);
    }
    Ok(())
}
