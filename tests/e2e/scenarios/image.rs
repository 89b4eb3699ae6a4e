//! Issue 16: the image hack/image.sh built, run by podman as deploy/base/deployment.yaml
//! runs it (see container.rs): two containers, in-cluster configuration from the
//! mounted ServiceAccount token only; probes answer, one leads, a policy reaches
//! Stopped on ecs-sim, and a SIGTERM hands the Lease over.

use crate::cluster::{OPERATOR_NS, OPERATOR_SA};
use crate::container::{self, Container, Launch, PodSpec};
use crate::ensure_eq;
use crate::harness::{ACCESS_KEY, Ctx, Policy, SECRET_KEY, start_sim, summary, wait_until};
use crate::operator::metric_sum;
use crate::scenarios::leader::holder;
use crate::tools;
use anyhow::{Context as _, Result, bail, ensure};
use std::time::Duration;

/// The Lease the Deployment's replicas share (the operator's default --lease-name,
/// which the Deployment's args keep).
const LEASE: &str = "ecs-power-operator";
const SERVERS: usize = 20;

async fn reconciles(c: &Container) -> Result<f64> {
    let text = c.operator.metrics().await?;
    Ok(metric_sum(&text, "ecs_power_operator_reconciles_total").unwrap_or(0.0))
}

/// The field of /proc/PID/status named `key`.
fn proc_status(pid: u32, key: &str) -> Result<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_owned())
        .with_context(|| format!("/proc/{pid}/status has no {key}"))
}

/// Checks from the host that the container's process runs as the Deployment says.
fn check_confinement(c: &Container, spec: &PodSpec) -> Result<()> {
    let pid = c.main_pid()?;
    let uid = proc_status(pid, "Uid")?;
    let gid = proc_status(pid, "Gid")?;
    ensure!(
        uid.split_whitespace().all(|u| u == spec.user.to_string()),
        "{}: uids {uid}, expected {} everywhere",
        c.pod_name,
        spec.user
    );
    ensure!(
        gid.split_whitespace().all(|g| g == spec.group.to_string()),
        "{}: gids {gid}, expected {}",
        c.pod_name,
        spec.group
    );
    for caps in ["CapEff", "CapPrm", "CapBnd"] {
        ensure_eq!(
            proc_status(pid, caps)?,
            "0000000000000000",
            "{} {caps} (all capabilities dropped)",
            c.pod_name
        );
    }
    ensure_eq!(
        proc_status(pid, "NoNewPrivs")?,
        "1",
        "{} NoNewPrivs",
        c.pod_name
    );
    // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    let root = mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(4) == Some(&"/"))
        .with_context(|| format!("{}: no / in mountinfo", c.pod_name))?;
    ensure!(
        root.get(5).is_some_and(|o| o.split(',').any(|x| x == "ro")),
        "{}: the root filesystem is mounted {:?}, not read-only",
        c.pod_name,
        root.get(5)
    );
    Ok(())
}

/// The content of `name` in the gzipped layer tarball `layer`.
async fn layer_file(tar: &std::path::Path, layer: &str, name: &str) -> Result<String> {
    tools::run(tar, &["-xzOf", layer, name], None)
        .await?
        .check()
}

/// `hack/image.sh --oci-archive FILE` writes the image as an OCI archive: an
/// index.json naming it, whose manifest is a blob of the archive.
async fn check_oci_archive(ctx: &Ctx, image: &str) -> Result<()> {
    let archive = ctx.dir.join("image.oci.tar");
    let archive_arg = archive.to_string_lossy().into_owned();
    let script = crate::cluster::repo_root().join("hack/image.sh");
    let printed = tools::run(&script, &["--oci-archive", &archive_arg], None)
        .await?
        .check()?;
    ensure_eq!(printed.trim(), image, "hack/image.sh --oci-archive printed");
    let tar = tools::installed("tar", "tar")?;
    let index = tools::run(&tar, &["-xOf", &archive_arg, "index.json"], None)
        .await?
        .check()?;
    let index: serde_json::Value = serde_json::from_str(&index).context("index.json")?;
    let manifest = &index["manifests"][0];
    ensure_eq!(
        manifest["annotations"]["org.opencontainers.image.ref.name"].as_str(),
        Some(image),
        "the archive's image name"
    );
    let digest = manifest["digest"]
        .as_str()
        .and_then(|d| d.strip_prefix("sha256:"))
        .context("index.json: no sha256 manifest digest")?;
    let listing = tools::run(&tar, &["-tf", &archive_arg], None)
        .await?
        .check()?;
    ensure!(
        listing
            .lines()
            .any(|l| l == format!("blobs/sha256/{digest}")),
        "the archive lacks its manifest blob {digest}"
    );

    // The one layer is the whole filesystem: FROM scratch, nothing but the binary,
    // the CA roots and the user database.
    let blob = |digest: &str| format!("blobs/sha256/{digest}");
    let manifest = tools::run(&tar, &["-xOf", &archive_arg, &blob(digest)], None)
        .await?
        .check()?;
    let manifest: serde_json::Value = serde_json::from_str(&manifest).context("manifest")?;
    let layers = manifest["layers"]
        .as_array()
        .context("manifest: no layers")?;
    ensure_eq!(layers.len(), 1, "layers of the image");
    let layer_digest = layers[0]["digest"]
        .as_str()
        .and_then(|d| d.strip_prefix("sha256:"))
        .context("manifest: layer digest")?;
    let layer = ctx.dir.join("layer.tar.gz");
    let layer_arg = layer.to_string_lossy().into_owned();
    tools::run(
        &tar,
        &[
            "-xf",
            &archive_arg,
            "-C",
            &ctx.dir.to_string_lossy(),
            &blob(layer_digest),
        ],
        None,
    )
    .await?
    .check()?;
    std::fs::rename(ctx.dir.join(blob(layer_digest)), &layer)?;
    let files = tools::run(&tar, &["-tzvf", &layer_arg], None)
        .await?
        .check()?;
    let mut regular: Vec<String> = files
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect();
    regular.sort();
    ensure_eq!(
        regular,
        [
            "ecs-power-operator",
            "etc/group",
            "etc/passwd",
            "etc/ssl/certs/ca-certificates.crt"
        ]
        .map(String::from)
        .to_vec(),
        "files of the image"
    );
    let roots = layer_file(&tar, &layer_arg, "etc/ssl/certs/ca-certificates.crt").await?;
    let count = roots.matches("-----BEGIN CERTIFICATE-----").count();
    ensure!(
        count >= 50,
        "the image's CA bundle holds {count} certificates"
    );
    ensure!(
        layer_file(&tar, &layer_arg, "etc/passwd")
            .await?
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "the image's /etc/passwd has no nonroot user 65532"
    );
    eprintln!("e2e image: OCI archive with one layer: the binary, {count} CA roots, passwd, group");
    Ok(())
}

pub async fn run(ctx: Ctx) -> Result<()> {
    let podman = tools::installed("podman", "podman")?;
    tools::installed("runc", "runc")?;
    let image = tools::operator_image().await?;
    check_oci_archive(&ctx, &image).await?;
    let spec = PodSpec::from_deployment(&container::deployment_manifest())?;
    ensure_eq!(spec.namespace, OPERATOR_NS, "the Deployment's namespace");
    // What the Deployment promises (README, Installing), checked below on the process.
    ensure!(
        spec.read_only_root
            && spec.drop_all_capabilities
            && spec.no_new_privileges
            && spec.user != 0,
        "deploy/base/deployment.yaml no longer runs the operator read-only, non-root, without \
         capabilities and privilege escalation: {spec:?}"
    );
    eprintln!("e2e image: {image}, args {:?}", spec.args);

    // The ServiceAccount volume the kubelet would mount: a token of the Deployment's
    // ServiceAccount, the cluster's CA, the pod's namespace.
    let token = ctx
        .k
        .run(
            &[
                "create",
                "token",
                OPERATOR_SA,
                "-n",
                OPERATOR_NS,
                "--duration=1h",
            ],
            None,
        )
        .await?
        .check()?;
    let ca = std::fs::read(ctx.cluster.dir.join("cplane/pki/ca.crt"))
        .context("the control plane's CA (cplane/pki/ca.crt)")?;
    let sa_dir = ctx.dir.join("serviceaccount");
    container::write_service_account_dir(&sa_dir, token.trim(), &ca, &spec.namespace)?;
    let env = std::fs::read_to_string(ctx.cluster.dir.join("cplane/env"))?;
    let server = env
        .lines()
        .find_map(|l| l.strip_prefix("KUBE_APISERVER="))
        .context("KUBE_APISERVER= missing in cplane/env")?;
    let authority = server
        .strip_prefix("https://")
        .with_context(|| format!("KUBE_APISERVER {server} is not https://"))?;
    let (host, port) = authority
        .rsplit_once(':')
        .with_context(|| format!("KUBE_APISERVER {server} has no port"))?;

    let sim = start_sim(SERVERS, |_| {}).await?;
    let ids = sim.server_ids();
    ctx.secret(&ctx.ns, "otc-credentials", ACCESS_KEY, SECRET_KEY)
        .await?;
    let launch = Launch {
        podman: &podman,
        image: &image,
        spec: &spec,
        sa_dir: &sa_dir,
        apiserver_host: host,
        apiserver_port: port.parse()?,
        watch_namespace: &ctx.ns,
        log_dir: &ctx.dir,
    };
    let mut a = Container::start(&launch, "ecs-power-operator-7d9f-a")?;
    let mut b = Container::start(&launch, "ecs-power-operator-7d9f-b")?;
    for c in [&mut a, &mut b] {
        // Generous: two containers start at once on a busy machine.
        c.operator.wait_healthy(Duration::from_secs(60)).await?;
        let (status, body) = c.operator.http_get("/readyz").await?;
        // Readiness follows the API server connection; give it the probe's patience.
        if status != 200 {
            let op = &c.operator;
            wait_until(Duration::from_secs(30), "/readyz 200", || async {
                Ok(op.http_get("/readyz").await?.0 == 200)
            })
            .await
            .with_context(|| format!("{}: /readyz answered {status} {body}", c.pod_name))?;
        }
        check_confinement(c, &spec)?;
    }

    ctx.k
        .apply_ok(&Policy::new(&ctx.ns, "nightly", &sim, &ids).yaml())
        .await?;
    ctx.wait_status(
        &ctx.ns,
        "nightly",
        Duration::from_secs(90),
        "policy Stopped by the containerized operator",
        |s| s["phase"] == "Stopped" && summary(s, "stopped") == SERVERS as i64,
    )
    .await?;
    let leader_id = holder(&ctx, LEASE)
        .await?
        .with_context(|| format!("Lease {OPERATOR_NS}/{LEASE} has no holder"))?;
    let (leader, follower) = if leader_id == a.pod_name {
        (&mut a, &mut b)
    } else if leader_id == b.pod_name {
        (&mut b, &mut a)
    } else {
        bail!("the Lease holder is {leader_id:?}, neither container's POD_NAME");
    };
    let (rl, rf) = (reconciles(leader).await?, reconciles(follower).await?);
    eprintln!("e2e image: holder {leader_id}; reconciles leader={rl} follower={rf}");
    ensure!(
        rl > 0.0,
        "the Lease holder {leader_id} shows {rl} reconciles"
    );
    ensure!(
        rf == 0.0,
        "the follower {} reconciled ({rf}) without the Lease",
        follower.pod_name
    );
    let stats = sim.stats().await;
    ensure_eq!(
        stats.stop_ids_total,
        SERVERS as u64,
        "ids over all stop calls"
    );

    // The Deployment's --log-format=json: every line the operator wrote is JSON, and
    // neither the secret key nor the ServiceAccount token is in it.
    for c in [&*leader, &*follower] {
        let log = c.operator.log_text();
        let lines: Vec<&str> = log.lines().filter(|l| !l.starts_with("# ")).collect();
        ensure!(!lines.is_empty(), "{} wrote no log line", c.pod_name);
        for line in &lines {
            serde_json::from_str::<serde_json::Value>(line)
                .with_context(|| format!("{}: log line is not JSON: {line}", c.pod_name))?;
        }
        ensure!(
            !log.contains(SECRET_KEY) && !log.contains(token.trim()),
            "{}: a secret appears in the log",
            c.pod_name
        );
    }

    // podman stop = the kubelet's SIGTERM: the leader exits in time and the follower
    // takes the Lease.
    let follower_id = follower.pod_name.clone();
    ensure!(
        leader.terminate(Duration::from_secs(20)),
        "the leader container did not exit within 20 s of SIGTERM"
    );
    wait_until(
        Duration::from_secs(30),
        "the other container to take the Lease",
        || async { Ok(holder(&ctx, LEASE).await?.as_deref() == Some(follower_id.as_str())) },
    )
    .await?;
    eprintln!("e2e image: {follower_id} took the Lease after the leader's SIGTERM");
    Ok(())
}
