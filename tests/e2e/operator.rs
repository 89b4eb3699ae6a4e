//! The operator binary as a local process, authenticated as its ServiceAccount.

use crate::cluster::Cluster;
use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pids of operators still running, so that a Ctrl-C of the suite can stop them.
pub static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

pub const BIN: &str = env!("CARGO_BIN_EXE_ecs-power-operator");

/// Budget shared by sim and operator in the scenarios: 1000 servers per window.
pub const BUDGET_SERVERS: usize = 1000;
pub const BUDGET_WINDOW_MS: u64 = 4000;

/// `base` with every flag that `extra` names replaced by `extra`'s value (clap refuses
/// a repeated option). Flags are in `--name=value` form.
pub fn with_overrides(base: Vec<String>, extra: &[String]) -> Vec<String> {
    let key = |flag: &str| flag.split('=').next().unwrap_or(flag).to_owned();
    let overridden: Vec<String> = extra.iter().map(|f| key(f)).collect();
    base.into_iter()
        .filter(|f| !overridden.contains(&key(f)))
        .chain(extra.iter().cloned())
        .collect()
}

/// Flags that make the operator fast enough for tests (`--name=value` form).
pub fn fast_flags() -> Vec<String> {
    [
        "--log-format=text",
        &format!("--budget-servers={BUDGET_SERVERS}"),
        &format!("--budget-window-ms={BUDGET_WINDOW_MS}"),
        "--active-requeue-ms=500",
        "--drift-interval-ms=3000",
        "--inventory-max-age-ms=300",
        "--linger-ms=500",
        "--job-poll-interval-ms=500",
        "--request-timeout-ms=5000",
        "--retry-backoff-ms=1000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

pub struct Operator {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
    pub port: u16,
    pub exit: Option<ExitStatus>,
}

impl Operator {
    /// `ecs-power-operator run --watch-namespace NS --http-addr 127.0.0.1:PORT <flags>`
    /// (`watch_ns` None: every namespace, as `deploy/` runs it), with KUBECONFIG = the
    /// ServiceAccount token kubeconfig; stdout+stderr to `dir/name.log`.
    pub fn spawn(
        cluster: &Cluster,
        dir: &Path,
        name: &str,
        watch_ns: Option<&str>,
        flags: &[String],
    ) -> Result<Self> {
        Self::spawn_with_kubeconfig(&cluster.operator_kubeconfig, dir, name, watch_ns, flags)
    }

    /// [`Self::spawn`] with another kubeconfig of the ServiceAccount (e.g. one whose
    /// server is a proxy in front of the API server).
    pub fn spawn_with_kubeconfig(
        kubeconfig: &Path,
        dir: &Path,
        name: &str,
        watch_ns: Option<&str>,
        flags: &[String],
    ) -> Result<Self> {
        let port = free_port();
        let log = dir.join(format!("{name}.log"));
        let mut args: Vec<String> = vec!["run".into(), format!("--http-addr=127.0.0.1:{port}")];
        args.extend(watch_ns.map(|ns| format!("--watch-namespace={ns}")));
        args.extend(flags.iter().cloned());
        let mut command = Command::new(BIN);
        command
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("E2E_OPERATOR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE");
        Self::spawn_command(name, command, log, port)
    }

    /// Starts `command` (an operator serving HTTP on 127.0.0.1:`port`), stdout+stderr
    /// appended to `log`.
    pub fn spawn_command(
        name: &str,
        mut command: Command,
        log: PathBuf,
        port: u16,
    ) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("open {}", log.display()))?;
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        LIVE.lock().unwrap().push(child.id());
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            log,
            port,
            exit: None,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.reap(status);
                false
            }
            Err(_) => false,
        }
    }

    fn reap(&mut self, status: ExitStatus) {
        if let Some(child) = self.child.take() {
            LIVE.lock().unwrap().retain(|p| *p != child.id());
        }
        self.exit = Some(status);
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args([sig, &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// SIGKILL, like a node dying: no cleanup at all.
    pub fn kill9(&mut self) {
        self.signal("-KILL");
        self.wait_exit(Duration::from_secs(5));
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns how long it took to exit and whether
    /// it exited on its own.
    pub fn terminate(&mut self, grace: Duration) -> (Duration, bool) {
        let t0 = Instant::now();
        if self.child.is_none() {
            return (Duration::ZERO, true);
        }
        self.signal("-TERM");
        if self.wait_exit(grace) {
            return (t0.elapsed(), true);
        }
        self.signal("-KILL");
        self.wait_exit(Duration::from_secs(5));
        (t0.elapsed(), false)
    }

    fn wait_exit(&mut self, limit: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if !self.alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        !self.alive()
    }

    /// Peak resident memory of the process so far (VmHWM), from /proc.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        let pid = self.pid().context("the operator is not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmHWM in /proc/{pid}/status"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        crate::cluster::tail(&self.log_text(), lines)
    }

    /// GET http://127.0.0.1:PORT/path -> (status, body).
    pub async fn http_get(&self, path: &str) -> Result<(u16, String)> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let resp = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await?))
    }

    pub async fn metrics(&self) -> Result<String> {
        let (status, body) = self.http_get("/metrics").await?;
        if status != 200 {
            bail!("{}: /metrics answered {status}", self.name);
        }
        Ok(body)
    }

    /// Waits until /healthz answers 200 (fails at once if the process exits).
    pub async fn wait_healthy(&mut self, limit: Duration) -> Result<()> {
        let t0 = Instant::now();
        loop {
            if !self.alive() {
                bail!(
                    "operator {} exited ({:?}) before serving /healthz; log tail:\n{}",
                    self.name,
                    self.exit,
                    self.log_tail(40)
                );
            }
            if let Ok((200, _)) = self.http_get("/healthz").await {
                return Ok(());
            }
            if t0.elapsed() > limit {
                bail!(
                    "operator {} did not serve /healthz within {limit:?}; log tail:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(5));
    }
}

/// Sum of every sample of a metric (all label sets) in Prometheus text; None if absent.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Kills every operator still registered (used by the Ctrl-C handler).
pub fn kill_all_live() {
    for pid in LIVE.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}
