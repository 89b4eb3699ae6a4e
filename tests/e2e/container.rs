//! The operator's image run with podman the way `deploy/base/deployment.yaml` runs it: the
//! Deployment's args, user, read-only root filesystem, dropped capabilities,
//! no-new-privileges and limits, read from the manifest itself; the ServiceAccount's
//! token, CA and namespace mounted where the kubelet mounts them; the in-cluster
//! environment. Anything in the manifest this cannot reproduce is an error, so the
//! scenario cannot silently run the image some other way than the Deployment does.

use crate::cluster::repo_root;
use crate::operator::{Operator, free_port};
use anyhow::{Context as _, Result, bail, ensure};
use serde_yaml::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// Where the kubelet mounts the ServiceAccount's token, ca.crt and namespace.
pub const SA_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Containers still running, so that a Ctrl-C of the suite can remove them.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// What the Deployment's pod template says about running the operator container.
#[derive(Debug, Clone)]
pub struct PodSpec {
    /// metadata.namespace of the Deployment: the pods' namespace (POD_NAMESPACE).
    pub namespace: String,
    pub args: Vec<String>,
    /// Env vars set from the downward API: (name, fieldPath).
    pub field_env: Vec<(String, String)>,
    pub user: u64,
    pub group: u64,
    pub read_only_root: bool,
    pub drop_all_capabilities: bool,
    pub no_new_privileges: bool,
    pub memory_limit: Option<String>,
    pub cpu_limit: Option<String>,
}

fn str_at<'a>(v: &'a Value, what: &str) -> Result<&'a str> {
    v.as_str()
        .with_context(|| format!("deploy/base/deployment.yaml: {what} is not a string"))
}

impl PodSpec {
    pub fn from_deployment(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let doc: Value = serde_yaml::from_str(&text)?;
        let namespace = str_at(&doc["metadata"]["namespace"], "metadata.namespace")?.to_owned();
        let pod = &doc["spec"]["template"]["spec"];
        let containers = pod["containers"]
            .as_sequence()
            .context("deploy/base/deployment.yaml: no containers")?;
        ensure!(
            containers.len() == 1,
            "deploy/base/deployment.yaml: {} containers; the scenario runs one",
            containers.len()
        );
        let c = &containers[0];
        for unsupported in ["command", "envFrom", "volumeMounts", "workingDir"] {
            ensure!(
                c[unsupported].is_null(),
                "deploy/base/deployment.yaml: container.{unsupported} is set; the image scenario does not reproduce it yet"
            );
        }
        ensure!(
            pod["volumes"].is_null(),
            "deploy/base/deployment.yaml: volumes are set; the image scenario does not reproduce them yet"
        );
        let args = c["args"]
            .as_sequence()
            .context("deploy/base/deployment.yaml: container.args missing")?
            .iter()
            .map(|a| str_at(a, "an arg").map(str::to_owned))
            .collect::<Result<Vec<_>>>()?;
        let mut field_env = Vec::new();
        for e in c["env"].as_sequence().into_iter().flatten() {
            let name = str_at(&e["name"], "env.name")?;
            let field = e["valueFrom"]["fieldRef"]["fieldPath"].as_str();
            match field {
                Some(f @ ("metadata.name" | "metadata.namespace")) => {
                    field_env.push((name.to_owned(), f.to_owned()))
                }
                _ => bail!(
                    "deploy/base/deployment.yaml: env {name} is not metadata.name or metadata.namespace \
                     from the downward API; the image scenario does not reproduce it yet"
                ),
            }
        }
        let pod_sc = &pod["securityContext"];
        let sc = &c["securityContext"];
        let id = |v: &Value, what: &str| {
            v.as_u64()
                .with_context(|| format!("deploy/base/deployment.yaml: {what} missing"))
        };
        let user =
            id(&sc["runAsUser"], "runAsUser").or_else(|_| id(&pod_sc["runAsUser"], "runAsUser"))?;
        let group = id(&sc["runAsGroup"], "runAsGroup")
            .or_else(|_| id(&pod_sc["runAsGroup"], "runAsGroup"))?;
        let seccomp = pod_sc["seccompProfile"]["type"]
            .as_str()
            .or(sc["seccompProfile"]["type"].as_str());
        ensure!(
            seccomp.is_none_or(|t| t == "RuntimeDefault"),
            "deploy/base/deployment.yaml: seccompProfile {seccomp:?}; podman's default profile is RuntimeDefault only"
        );
        let drops: Vec<&str> = sc["capabilities"]["drop"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        ensure!(
            sc["capabilities"]["add"].is_null(),
            "deploy/base/deployment.yaml: capabilities.add is set; the image scenario does not reproduce it yet"
        );
        Ok(Self {
            namespace,
            args,
            field_env,
            user,
            group,
            read_only_root: sc["readOnlyRootFilesystem"].as_bool() == Some(true),
            drop_all_capabilities: drops == ["ALL"],
            no_new_privileges: sc["allowPrivilegeEscalation"].as_bool() == Some(false),
            memory_limit: c["resources"]["limits"]["memory"]
                .as_str()
                .map(str::to_owned),
            cpu_limit: c["resources"]["limits"]["cpu"].as_str().map(str::to_owned),
        })
    }
}

/// Kubernetes quantities as podman wants them: "256Mi" -> "256m" (MiB), "500m" cpu -> "0.5".
fn podman_memory(quantity: &str) -> Result<String> {
    for (suffix, unit) in [("Gi", "g"), ("Mi", "m"), ("Ki", "k")] {
        if let Some(n) = quantity.strip_suffix(suffix) {
            return Ok(format!("{n}{unit}"));
        }
    }
    bail!("memory limit {quantity:?}: only Ki/Mi/Gi quantities are translated")
}

fn podman_cpus(quantity: &str) -> Result<String> {
    match quantity.strip_suffix('m') {
        Some(milli) => Ok(format!("{}", milli.parse::<f64>()? / 1000.0)),
        None => Ok(quantity.to_owned()),
    }
}

/// The ServiceAccount volume as the kubelet projects it: token, ca.crt, namespace,
/// readable by the container's non-root user.
pub fn write_service_account_dir(
    dir: &Path,
    token: &str,
    ca: &[u8],
    namespace: &str,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("token"), token)?;
    std::fs::write(dir.join("ca.crt"), ca)?;
    std::fs::write(dir.join("namespace"), namespace)?;
    for f in ["token", "ca.crt", "namespace"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// One operator container; stopped and removed on drop.
pub struct Container {
    pub name: String,
    /// The pod name it was given (POD_NAME, its Lease identity).
    pub pod_name: String,
    pub operator: Operator,
    podman: PathBuf,
}

/// How a scenario runs the image: where the API server is, which namespace the
/// operator may watch (the scenario's own, so it leaves other scenarios alone).
pub struct Launch<'a> {
    pub podman: &'a Path,
    pub image: &'a str,
    pub spec: &'a PodSpec,
    pub sa_dir: &'a Path,
    pub apiserver_host: &'a str,
    pub apiserver_port: u16,
    pub watch_namespace: &'a str,
    pub log_dir: &'a Path,
}

impl Container {
    /// `podman run` attached (so the container's stdout/stderr go to the log and a
    /// SIGTERM to podman reaches the operator, as the kubelet's would).
    pub fn start(launch: &Launch<'_>, pod_name: &str) -> Result<Self> {
        let spec = launch.spec;
        // Host network: every container of the host shares its ports, so each gets a
        // free one (the Deployment's containerPort is per pod).
        let port = free_port();
        let name = format!("epo-e2e-{}-{pod_name}", std::process::id());
        let mut command = Command::new(launch.podman);
        // runc: Debian's default crun cannot set RLIMIT_NOFILE in this sandbox.
        command.args(["--runtime", "runc", "run", "--rm", "--name", &name]);
        command.args(["--network", "host", "--pull", "never"]);
        command.args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ]);
        command.args(["--user", &format!("{}:{}", spec.user, spec.group)]);
        if spec.read_only_root {
            // Kubernetes gives a read-only root no writable /tmp or /run; neither does this.
            command.args(["--read-only", "--read-only-tmpfs=false"]);
        }
        if spec.drop_all_capabilities {
            command.args(["--cap-drop", "ALL"]);
        }
        if spec.no_new_privileges {
            command.args(["--security-opt", "no-new-privileges"]);
        }
        if let Some(memory) = &spec.memory_limit {
            command.args(["--memory", &podman_memory(memory)?]);
        }
        if let Some(cpu) = &spec.cpu_limit {
            command.args(["--cpus", &podman_cpus(cpu)?]);
        }
        command.args([
            "--volume",
            &format!("{}:{SA_MOUNT}:ro", launch.sa_dir.display()),
        ]);
        let mut env = vec![
            (
                "KUBERNETES_SERVICE_HOST".to_owned(),
                launch.apiserver_host.to_owned(),
            ),
            (
                "KUBERNETES_SERVICE_PORT".to_owned(),
                launch.apiserver_port.to_string(),
            ),
            // Test isolation, beside the Deployment's args: this scenario's namespace
            // only, and this container's port.
            (
                "EPO_WATCH_NAMESPACE".to_owned(),
                launch.watch_namespace.to_owned(),
            ),
            ("EPO_HTTP_ADDR".to_owned(), format!("127.0.0.1:{port}")),
        ];
        for (var, field) in &spec.field_env {
            let value = match field.as_str() {
                "metadata.name" => pod_name.to_owned(),
                _ => spec.namespace.clone(),
            };
            env.push((var.clone(), value));
        }
        for (var, value) in &env {
            command.args(["--env", &format!("{var}={value}")]);
        }
        command.arg(launch.image).args(&spec.args);
        let log = launch.log_dir.join(format!("{pod_name}.log"));
        std::fs::write(&log, format!("# {command:?}\n"))?;
        LIVE.lock().unwrap().push(name.clone());
        let operator = Operator::spawn_command(pod_name, command, log, port)?;
        Ok(Self {
            name,
            pod_name: pod_name.to_owned(),
            operator,
            podman: launch.podman.to_owned(),
        })
    }

    /// The host pid of the container's process (the operator itself: no shell, no init).
    pub fn main_pid(&self) -> Result<u32> {
        let out = Command::new(&self.podman)
            .args(["inspect", "--format", "{{.State.Pid}}", &self.name])
            .output()?;
        ensure!(
            out.status.success(),
            "podman inspect {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
        ensure!(pid > 0, "container {} has no running process", self.name);
        Ok(pid)
    }

    /// SIGTERM as the kubelet sends it (through podman), SIGKILL after `grace`.
    /// Returns whether it exited on its own within `grace`.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        let (_, clean) = self.operator.terminate(grace);
        clean
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.operator.terminate(Duration::from_secs(5));
        remove(&self.podman, &self.name);
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| n != &self.name);
    }
}

fn remove(podman: &Path, name: &str) {
    let _ = Command::new(podman)
        .args(["rm", "--force", "--ignore", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Removes every container still registered (used by the Ctrl-C handler).
pub fn remove_all_live() {
    let names: Vec<String> = LIVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .collect();
    for name in names {
        remove(Path::new("podman"), &name);
    }
}

/// deploy/base/deployment.yaml of this checkout.
pub fn deployment_manifest() -> PathBuf {
    repo_root().join("deploy/base/deployment.yaml")
}
