//! What every scenario uses: its namespace and directory, the in-process ecs-sim,
//! policy and Secret manifests, bounded waits with diagnostics.

use crate::cluster::{self, Cluster};
use crate::kubectl::Kubectl;
use crate::operator::{self, Operator};
use anyhow::{Result, bail};
use ecs_power_operator::sim::{self, RunningSim, SimConfig};
use serde_json::Value;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const PROJECT_ID: &str = sim::DEFAULT_PROJECT_ID;
pub const ACCESS_KEY: &str = sim::DEFAULT_ACCESS_KEY;
pub const SECRET_KEY: &str = sim::DEFAULT_SECRET_KEY;

pub use crate::cluster::tail;

/// One scenario's world: its own namespace and scratch directory.
#[derive(Clone)]
pub struct Ctx {
    pub cluster: Arc<Cluster>,
    pub k: Kubectl,
    /// Namespace of the scenario (e2e-<name>).
    pub ns: String,
    pub dir: PathBuf,
}

impl Ctx {
    pub async fn new(name: &str) -> Result<Self> {
        let cluster = cluster::get()?;
        let ns = format!("e2e-{}", name.replace('_', "-"));
        let dir = cluster.dir.join("scenarios").join(name);
        std::fs::create_dir_all(&dir)?;
        let k = cluster.kubectl.clone();
        k.create_namespace(&ns).await?;
        Ok(Self {
            cluster,
            k,
            ns,
            dir,
        })
    }

    pub async fn namespace(&self, suffix: &str) -> Result<String> {
        let ns = format!("{}-{suffix}", self.ns);
        self.k.create_namespace(&ns).await?;
        Ok(ns)
    }

    /// Starts an operator watching `ns` with the fast test flags plus `extra`, and waits
    /// until it serves /healthz.
    pub async fn operator(&self, name: &str, ns: &str, extra: &[&str]) -> Result<Operator> {
        self.operator_watching(name, Some(ns), extra).await
    }

    /// As [`Ctx::operator`], watching `watch` or (`None`) every namespace: only on a
    /// control plane of the scenario's own ([`Ctx::on_own_cluster`]).
    pub async fn operator_watching(
        &self,
        name: &str,
        watch: Option<&str>,
        extra: &[&str],
    ) -> Result<Operator> {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let flags = operator::with_overrides(operator::fast_flags(), &extra);
        let mut op = Operator::spawn(&self.cluster, &self.dir, name, watch, &flags)?;
        op.wait_healthy(Duration::from_secs(30)).await?;
        Ok(op)
    }

    /// This scenario on a control plane of its own with `crds/` and the kustomization
    /// `deploy_dir` applied, for an operator that watches every namespace; the
    /// scenario's namespace is created there too. It stops when the guard is dropped.
    pub async fn on_own_cluster(&self, deploy_dir: &str) -> Result<(Ctx, cluster::Dedicated)> {
        let name = self
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("own");
        let dedicated = {
            let (name, deploy_dir) = (name.to_owned(), deploy_dir.to_owned());
            tokio::task::spawn_blocking(move || cluster::dedicated(&name, &deploy_dir)).await??
        };
        let cluster = Arc::clone(&dedicated.0);
        let k = cluster.kubectl.clone();
        k.create_namespace(&self.ns).await?;
        let ctx = Ctx {
            cluster,
            k,
            ns: self.ns.clone(),
            dir: self.dir.clone(),
        };
        Ok((ctx, dedicated))
    }

    /// The Secret `otc-credentials` that `Policy` names, with the simulator's keys,
    /// in the scenario's namespace.
    pub async fn credentials(&self) -> Result<()> {
        self.secret(&self.ns, "otc-credentials", ACCESS_KEY, SECRET_KEY)
            .await
    }

    pub async fn secret(
        &self,
        ns: &str,
        name: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Result<()> {
        self.k
            .apply_ok(&format!(
                "apiVersion: v1
kind: Secret
metadata:
  name: {name}
  namespace: {ns}
type: Opaque
stringData:
  accessKey: {access_key}
  secretKey: {secret_key}
"
            ))
            .await?;
        Ok(())
    }

    pub async fn status(&self, ns: &str, policy: &str) -> Result<Value> {
        self.k.policy_status(ns, policy).await
    }

    /// Polls the policy's status until `pred` holds; on timeout the error names `what`
    /// and shows the last status.
    pub async fn wait_status(
        &self,
        ns: &str,
        policy: &str,
        limit: Duration,
        what: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Result<Value> {
        let t0 = Instant::now();
        let mut last = Value::Null;
        while t0.elapsed() < limit {
            match self.status(ns, policy).await {
                Ok(s) => {
                    if pred(&s) {
                        return Ok(s);
                    }
                    last = s;
                }
                Err(e) => last = Value::String(format!("(kubectl failed: {e:#})")),
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        bail!(
            "timed out after {limit:?} waiting for {ns}/{policy}: {what}\nlast status: {}",
            compact_status(&last)
        )
    }

    pub async fn wait_phase(
        &self,
        ns: &str,
        policy: &str,
        phase: &str,
        limit: Duration,
    ) -> Result<Value> {
        self.wait_status(ns, policy, limit, &format!("phase {phase}"), |s| {
            s["phase"] == phase
        })
        .await
    }

    /// Waits until the policy is Degraded with `reason`; returns that status.
    pub async fn wait_degraded(&self, ns: &str, policy: &str, reason: &str) -> Result<Value> {
        self.wait_status(
            ns,
            policy,
            Duration::from_secs(30),
            &format!("Degraded/{reason}"),
            |s| degraded_with(s, reason),
        )
        .await
    }

    /// Everything useful when a scenario failed: statuses, events, operator log tails.
    pub async fn diagnostics(&self) -> String {
        let mut out = String::new();
        let list = self
            .k
            .get_json(&["ecspowerpolicies", "-A"])
            .await
            .ok()
            .flatten()
            .unwrap_or(Value::Null);
        for item in list["items"].as_array().into_iter().flatten() {
            let ns = item["metadata"]["namespace"].as_str().unwrap_or("");
            if !ns.starts_with(&self.ns) {
                continue;
            }
            out += &format!(
                "--- policy {ns}/{} status: {}\n",
                item["metadata"]["name"].as_str().unwrap_or("?"),
                compact_status(&item["status"])
            );
        }
        if let Ok(events) = self.k.events(&self.ns).await {
            out += "--- events:\n";
            for e in events.iter().rev().take(15) {
                out += &format!(
                    "  {} {} {}: {}\n",
                    e["type"].as_str().unwrap_or(""),
                    e["reason"].as_str().unwrap_or(""),
                    e["regarding"]["name"].as_str().unwrap_or(""),
                    e["note"].as_str().unwrap_or("")
                );
            }
        }
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            let mut logs: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            logs.sort();
            for log in logs {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                out += &format!("--- tail of {}:\n{}\n", log.display(), tail(&text, 25));
            }
        }
        out
    }
}

/// A status with long lists shortened, for failure messages.
pub fn compact_status(status: &Value) -> String {
    let mut s = status.clone();
    if let Some(obj) = s.as_object_mut() {
        for key in ["jobs", "failures"] {
            if let Some(Value::Array(items)) = obj.get_mut(key) {
                let n = items.len();
                items.truncate(5);
                if n > 5 {
                    items.push(Value::String(format!("... {} more", n - 5)));
                }
            }
        }
        if let Some(Value::Array(sample)) = obj.get_mut("dryRun").and_then(|d| d.get_mut("sample"))
        {
            sample.truncate(3);
        }
    }
    serde_json::to_string_pretty(&s).unwrap_or_default()
}

/// Starts an in-process ecs-sim with `servers` ACTIVE servers and the test budget;
/// `tweak` adjusts the config.
pub async fn start_sim(servers: usize, tweak: impl FnOnce(&mut SimConfig)) -> Result<RunningSim> {
    let mut config = SimConfig {
        servers,
        seed: rand_seed(),
        servers_per_window: operator::BUDGET_SERVERS,
        budget_window: Duration::from_millis(operator::BUDGET_WINDOW_MS),
        stop_duration: Duration::from_secs(2),
        ..SimConfig::default()
    };
    tweak(&mut config);
    Ok(sim::start(config, "127.0.0.1:0".parse()?).await?)
}

/// A sim of `servers` and an operator that share a budget `window` other than the
/// suite's (both sides must count the same window), the operator with `extra` flags,
/// and the Secret `otc-credentials` for it.
pub async fn with_budget_window(
    ctx: &Ctx,
    servers: usize,
    window: Duration,
    tweak: impl FnOnce(&mut SimConfig),
    extra: &[&str],
) -> Result<(RunningSim, Operator)> {
    let sim = start_sim(servers, |c| {
        c.budget_window = window;
        tweak(c);
    })
    .await?;
    ctx.credentials().await?;
    let window_flag = format!("--budget-window-ms={}", window.as_millis());
    let mut flags = vec![window_flag.as_str()];
    flags.extend_from_slice(extra);
    let op = ctx.operator("operator", &ctx.ns, &flags).await?;
    Ok((sim, op))
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub ns: String,
    pub project_id: String,
    pub endpoint: String,
    pub secret: String,
    pub ids: Vec<String>,
    pub stop_type: String,
    pub suspend: bool,
    pub dry_run: bool,
    /// More spec fields as YAML lines indented by two (selector, exclude, maxServers).
    pub extra_spec: String,
}

impl Policy {
    /// A policy on the sim, credentials in Secret `otc-credentials`.
    pub fn new(ns: &str, name: &str, sim: &RunningSim, ids: &[String]) -> Self {
        Self::with_endpoint(ns, name, &sim.base_url(), ids)
    }

    pub fn with_endpoint(ns: &str, name: &str, endpoint: &str, ids: &[String]) -> Self {
        Self {
            name: name.to_owned(),
            ns: ns.to_owned(),
            project_id: PROJECT_ID.to_owned(),
            endpoint: endpoint.to_owned(),
            secret: "otc-credentials".to_owned(),
            ids: ids.to_vec(),
            stop_type: "Soft".to_owned(),
            suspend: false,
            dry_run: false,
            extra_spec: String::new(),
        }
    }

    pub fn yaml(&self) -> String {
        let mut y = format!(
            "apiVersion: ecspower.dev/v1alpha1
kind: EcsPowerPolicy
metadata:
  name: {}
  namespace: {}
spec:
  cloud:
    projectId: \"{}\"
    region: eu-de
    endpoint: \"{}\"
    credentialsSecretRef:
      name: {}
  stopType: {}
  suspend: {}
  dryRun: {}
",
            self.name,
            self.ns,
            self.project_id,
            self.endpoint,
            self.secret,
            self.stop_type,
            self.suspend,
            self.dry_run
        );
        y += &self.extra_spec;
        if !self.ids.is_empty() {
            y += "  servers:\n";
        }
        for id in &self.ids {
            y += &format!("  - id: \"{id}\"\n");
        }
        y
    }
}

impl Ctx {
    /// Waits until an Event with `reason` (and `type_`, if given) exists in `ns`.
    pub async fn wait_event(
        &self,
        ns: &str,
        reason: &str,
        type_: Option<&str>,
        limit: Duration,
    ) -> Result<Value> {
        let t0 = Instant::now();
        loop {
            let events = self.k.events(ns).await?;
            if let Some(e) = events
                .iter()
                .find(|e| e["reason"] == reason && type_.is_none_or(|t| e["type"] == t))
            {
                return Ok(e.clone());
            }
            if t0.elapsed() > limit {
                let seen: Vec<String> = events
                    .iter()
                    .map(|e| {
                        format!(
                            "{}/{}",
                            e["type"].as_str().unwrap_or(""),
                            e["reason"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                bail!(
                    "no {} Event with reason {reason} in {ns} after {limit:?}; events seen: {seen:?}",
                    type_.unwrap_or("any")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Bounded wait on an arbitrary async predicate.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let t0 = Instant::now();
    let mut last_err = None;
    while t0.elapsed() < limit {
        match f().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(format!("{e:#}")),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "timed out after {limit:?} waiting for {what}{}",
        last_err
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default()
    )
}

/// The condition of `type_` in a status, if any.
pub fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Phase Degraded with a True Degraded condition of `reason`.
pub fn degraded_with(status: &Value, reason: &str) -> bool {
    status["phase"] == "Degraded"
        && condition(status, "Degraded")
            .is_some_and(|c| c["status"] == "True" && c["reason"] == reason)
}

pub fn summary(status: &Value, key: &str) -> i64 {
    status["summary"][key].as_i64().unwrap_or(-1)
}

/// Asserts with a message, as an error (scenarios return Result).
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            anyhow::bail!("{}: expected {:?}, got {:?}", format!($($msg)+), r, l);
        }
    }};
}
