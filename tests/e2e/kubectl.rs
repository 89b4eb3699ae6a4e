//! The real kubectl (built by hack/cplane, same version as kube-apiserver).

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;

#[derive(Debug, Clone)]
pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub cmdline: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Ok(stdout) on success; otherwise an error with the command and its stderr.
    pub fn check(self) -> Result<String> {
        if self.ok() {
            Ok(self.stdout)
        } else {
            bail!(
                "`{}` failed (exit {:?}):\n{}",
                self.cmdline,
                self.code,
                self.stderr.trim()
            )
        }
    }
}

impl Kubectl {
    pub fn new(bin: PathBuf, kubeconfig: PathBuf) -> Self {
        Self { bin, kubeconfig }
    }

    fn cmdline(args: &[&str]) -> String {
        let shown: Vec<&str> = args
            .iter()
            .map(|a| if a.len() > 120 { "…" } else { a })
            .collect();
        format!("kubectl {}", shown.join(" "))
    }

    /// The kubectl command line, shared by the blocking and the async runner so
    /// both talk to the cluster the same way.
    fn command(&self, args: &[&str], stdin: Option<&str>) -> std::process::Command {
        let mut command = std::process::Command::new(&self.bin);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn output(args: &[&str], out: std::process::Output) -> Output {
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            cmdline: Self::cmdline(args),
        }
    }

    pub fn run_sync(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let mut child = self
            .command(args, stdin)
            .spawn()
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes())?;
        }
        Ok(Self::output(args, child.wait_with_output()?))
    }

    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        use tokio::io::AsyncWriteExt as _;
        let mut child = tokio::process::Command::from(self.command(args, stdin))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await?;
            drop(pipe);
        }
        Ok(Self::output(args, child.wait_with_output().await?))
    }

    /// `kubectl apply --server-side -f -` (server-side: no 256 KiB last-applied
    /// annotation, so big policies go through the same path as small ones).
    pub async fn apply(&self, yaml: &str) -> Result<Output> {
        self.run(
            &["apply", "--server-side", "--field-manager=e2e", "-f", "-"],
            Some(yaml),
        )
        .await
    }

    pub async fn apply_ok(&self, yaml: &str) -> Result<String> {
        self.apply(yaml).await?.check()
    }

    /// `kubectl get ... -o json`, parsed; Ok(None) when NotFound.
    pub async fn get_json(&self, args: &[&str]) -> Result<Option<Value>> {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        let out = self.run(&full, None).await?;
        if !out.ok() {
            if out.stderr.contains("NotFound") || out.stderr.contains("not found") {
                return Ok(None);
            }
            out.check()?;
            unreachable!();
        }
        Ok(Some(serde_json::from_str(&out.stdout).with_context(
            || format!("parsing output of kubectl get {}", args.join(" ")),
        )?))
    }

    /// `.status` of a policy (Null when there is none yet).
    pub async fn policy_status(&self, ns: &str, name: &str) -> Result<Value> {
        let out = self
            .run(
                &[
                    "get",
                    "ecspowerpolicy",
                    name,
                    "-n",
                    ns,
                    "-o",
                    "jsonpath={.status}",
                ],
                None,
            )
            .await?
            .check()?;
        if out.trim().is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_str(&out)?)
    }

    /// Events of a namespace, from events.k8s.io/v1 (what the operator writes).
    pub async fn events(&self, ns: &str) -> Result<Vec<Value>> {
        let v = self
            .get_json(&["events.v1.events.k8s.io", "-n", ns])
            .await?
            .unwrap_or(Value::Null);
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    pub async fn create_namespace(&self, ns: &str) -> Result<()> {
        self.apply_ok(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
        ))
        .await?;
        Ok(())
    }
}
