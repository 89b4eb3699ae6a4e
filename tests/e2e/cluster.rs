//! The control plane (etcd + kube-apiserver from `hack/cplane`), started once for the
//! whole suite and stopped at the end, also on panic or Ctrl-C; and control planes of
//! their own for scenarios whose operator watches every namespace (it would act on the
//! other scenarios' policies in the shared one), stopped when the scenario ends.

use crate::kubectl::Kubectl;
use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

pub const OPERATOR_NS: &str = "ecs-power-operator-system";
pub const OPERATOR_SA: &str = "ecs-power-operator";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cplane_sh() -> PathBuf {
    repo_root().join("hack/cplane/cplane.sh")
}

/// A running control plane with `crds/` and `deploy/` applied.
pub struct Cluster {
    /// Everything the suite writes: the control plane's files, logs of each scenario.
    pub dir: PathBuf,
    /// Admin (system:masters) kubectl.
    pub kubectl: Kubectl,
    /// A kubeconfig that authenticates as the operator's ServiceAccount (a token).
    pub operator_kubeconfig: PathBuf,
}

/// Set once the first scenario asked for the cluster; `Err` names what is missing.
static CLUSTER: OnceLock<Result<Arc<Cluster>, String>> = OnceLock::new();
/// Directories of control planes that were started and not stopped yet (so that
/// teardown can stop them even if setup failed half-way).
static STARTED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static SUITE_DIR: OnceLock<PathBuf> = OnceLock::new();

/// The scratch directory, if the suite created one.
pub fn started_dir() -> Option<PathBuf> {
    SUITE_DIR.get().cloned()
}

/// The suite's scratch directory (created on first use, kept when something failed).
pub fn suite_dir() -> &'static Path {
    SUITE_DIR.get_or_init(|| {
        let base = std::env::var_os("E2E_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/e2e"));
        std::fs::create_dir_all(&base).expect("create target/e2e");
        tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(&base)
            .expect("create e2e scratch dir")
            .keep()
    })
}

/// The shared cluster, started on first call. Every scenario calls this; if the harness
/// cannot start, every scenario fails with the same message.
pub fn get() -> Result<Arc<Cluster>> {
    match CLUSTER.get_or_init(|| start().map(Arc::new).map_err(|e| format!("{e:#}"))) {
        Ok(c) => Ok(Arc::clone(c)),
        Err(e) => bail!("the Kubernetes control plane could not be set up: {e}"),
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A control plane of the scenario's own, with `crds/` and the kustomization
/// `deploy_dir` (relative to the repository) applied; stopped when dropped.
pub struct Dedicated(pub Arc<Cluster>, PathBuf);

impl Drop for Dedicated {
    fn drop(&mut self) {
        stop(&self.1);
    }
}

/// Starts a control plane for scenario `name` alone (a few seconds, on other
/// loopback ports than the shared one).
pub fn dedicated(name: &str, deploy_dir: &str) -> Result<Dedicated> {
    let dir = suite_dir().join(format!("cplane-{name}"));
    let cluster = start_at(&dir, deploy_dir)?;
    Ok(Dedicated(Arc::new(cluster), dir.join("cplane")))
}

fn start() -> Result<Cluster> {
    start_at(suite_dir(), "deploy")
}

fn start_at(dir: &Path, deploy_dir: &str) -> Result<Cluster> {
    let t0 = Instant::now();
    let script = cplane_sh();
    if !script.exists() {
        bail!("missing {} (the control-plane harness)", script.display());
    }
    let dir = dir.to_path_buf();
    std::fs::create_dir_all(&dir)?;
    let cplane_dir = dir.join("cplane");
    STARTED.lock().unwrap().push(cplane_dir.clone());
    let out = Command::new(&script)
        .args(["up", "--dir"])
        .arg(&cplane_dir)
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let go = which("go").is_some() || Path::new("/usr/local/go/bin/go").exists();
        bail!(
            "`{} up --dir {}` failed ({}){}\n--- stderr tail ---\n{}",
            script.display(),
            cplane_dir.display(),
            out.status,
            if go {
                String::new()
            } else {
                " — `go` is not installed (needed to build kube-apiserver, etcd and kubectl; run hack/test.sh, which installs/builds them)".to_string()
            },
            tail(&stderr, 30)
        );
    }
    let kubeconfig = PathBuf::from(
        stdout
            .lines()
            .last()
            .context("cplane up printed no kubeconfig path")?
            .trim(),
    );
    let env = std::fs::read_to_string(cplane_dir.join("env")).context("reading cplane env")?;
    let var = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_owned)
            .with_context(|| format!("{k}= missing in {}/env", cplane_dir.display()))
    };
    let kubectl_bin = PathBuf::from(var("KUBECTL")?);
    if !kubectl_bin.exists() {
        bail!(
            "kubectl {} (from cplane env) does not exist",
            kubectl_bin.display()
        );
    }
    let kubectl = Kubectl::new(kubectl_bin, kubeconfig.clone());
    eprintln!(
        "e2e: control plane up in {:.1}s at {}",
        t0.elapsed().as_secs_f64(),
        cplane_dir.display()
    );

    // Install the CRD and deploy/ exactly as the README tells users to.
    let crds = repo_root().join("crds");
    let applied = kubectl.run_sync(&["apply", "-f", &format!("{}/", crds.display())], None)?;
    if !applied.ok() {
        bail!("`kubectl apply -f crds/` failed:\n{}", applied.stderr);
    }
    let deploy = repo_root().join(deploy_dir);
    let applied = kubectl.run_sync(&["apply", "-k", deploy.to_str().unwrap()], None)?;
    if !applied.ok() {
        bail!(
            "`kubectl apply -k {deploy_dir}/` failed:\n{}",
            applied.stderr
        );
    }
    let established = kubectl.run_sync(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/ecspowerpolicies.ecspower.dev",
        ],
        None,
    )?;
    if !established.ok() {
        bail!(
            "CRD ecspowerpolicies.ecspower.dev not Established:\n{}",
            established.stderr
        );
    }

    // The operator runs as its ServiceAccount, with a token, so deploy/'s RBAC is what
    // it gets — nothing more.
    let token = kubectl.run_sync(
        &[
            "create",
            "token",
            OPERATOR_SA,
            "-n",
            OPERATOR_NS,
            "--duration=2h",
        ],
        None,
    )?;
    if !token.ok() {
        bail!("kubectl create token failed:\n{}", token.stderr);
    }
    let (server, ca_data) = server_and_ca(&kubeconfig)?;
    let operator_kubeconfig = dir.join("operator.kubeconfig");
    write_token_kubeconfig(&operator_kubeconfig, &server, &ca_data, token.stdout.trim())?;
    eprintln!(
        "e2e: {deploy_dir}/ applied, operator token ready after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    Ok(Cluster {
        dir,
        kubectl,
        operator_kubeconfig,
    })
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.is_file())
    })
}

fn server_and_ca(kubeconfig: &Path) -> Result<(String, String)> {
    let text = std::fs::read_to_string(kubeconfig)?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let cluster = &doc["clusters"][0]["cluster"];
    let server = cluster["server"]
        .as_str()
        .context("kubeconfig: no server")?
        .to_owned();
    let ca = match cluster["certificate-authority-data"].as_str() {
        Some(ca) => ca.to_owned(),
        None => bail!(
            "kubeconfig {} has no certificate-authority-data",
            kubeconfig.display()
        ),
    };
    Ok((server, ca))
}

pub fn write_token_kubeconfig(path: &Path, server: &str, ca_data: &str, token: &str) -> Result<()> {
    let cfg = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: {server}
    certificate-authority-data: {ca_data}
users:
- name: {OPERATOR_SA}
  user:
    token: {token}
contexts:
- name: operator
  context:
    cluster: e2e
    user: {OPERATOR_SA}
    namespace: {OPERATOR_NS}
current-context: operator
"
    );
    std::fs::write(path, cfg)?;
    Ok(())
}

/// Stops every control plane still running. Idempotent.
pub fn teardown() {
    let dirs = std::mem::take(&mut *STARTED.lock().unwrap_or_else(|e| e.into_inner()));
    for dir in dirs {
        down(&dir);
    }
}

/// Stops the control plane in `dir`, if it still runs.
fn stop(dir: &Path) {
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    let Some(at) = started.iter().position(|d| d == dir) else {
        return;
    };
    started.remove(at);
    drop(started);
    down(dir);
}

fn down(dir: &Path) {
    let t0 = Instant::now();
    let out = Command::new(cplane_sh())
        .args(["down", "--dir"])
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            eprintln!(
                "e2e: control plane {} stopped in {:.1}s",
                dir.display(),
                t0.elapsed().as_secs_f64()
            )
        }
        Ok(o) => eprintln!(
            "e2e: WARNING: cplane down failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("e2e: WARNING: cannot run cplane down: {e}"),
    }
    // Make sure: the pid files are gone when down succeeded.
    for name in ["kube-apiserver.pid", "etcd.pid"] {
        if dir.join(name).exists() {
            eprintln!(
                "e2e: WARNING: {} still present after down",
                dir.join(name).display()
            );
        }
    }
}
