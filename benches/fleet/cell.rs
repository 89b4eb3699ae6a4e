//! One cell of the matrix: N servers in a fresh simulator, P policies in a fresh
//! namespace, created before the operator starts; the clock runs from the operator's
//! start until the simulator reports every server SHUTOFF and every policy's status
//! says Stopped.

use crate::cluster::Cluster;
use crate::operator::{self, Operator};
use crate::report::{self, Cell, CellFigures, EtaFigures, MAX_PER_CALL, Settings};
use crate::setup::{create_policies, create_secret, wait_servers_stopped};
use crate::targeting::{self, Targeting};
use anyhow::{Context as _, Result, bail};
use ecs_power_operator::policy::{EcsPowerPolicy, MAX_SERVERS_PER_POLICY, Phase};
use ecs_power_operator::sim::{self, RunningSim, SimConfig};
use futures::TryStreamExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub fn sim_config(servers: usize, settings: &Settings) -> SimConfig {
    SimConfig {
        servers,
        seed: servers as u64,
        stop_duration: settings.stop,
        servers_per_window: MAX_PER_CALL,
        budget_window: settings.window,
        ..SimConfig::default()
    }
}

/// N servers over P policies that name them by `targeting`.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub servers: usize,
    pub policies: usize,
    pub targeting: Targeting,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (servers, policies) = (self.servers, self.policies);
        write!(f, "N={servers} P={policies} by {}", self.targeting.name())
    }
}

pub async fn run(
    cluster: &Cluster,
    client: &kube::Client,
    shape: Shape,
    settings: &Settings,
) -> Result<Cell> {
    let Shape {
        servers,
        policies,
        targeting,
    } = shape;
    if targeting == Targeting::Ids && servers.div_ceil(policies) > MAX_SERVERS_PER_POLICY {
        return Ok(Cell::NotApplicable {
            servers,
            policies,
            reason: format!(
                "a policy lists at most {MAX_SERVERS_PER_POLICY} servers (the CRD's limit, which keeps it far below etcd's object size limit)"
            ),
        });
    }
    eprintln!("bench: {shape}: setting up");
    let sim = sim::start(sim_config(servers, settings), "127.0.0.1:0".parse()?).await?;
    tag_servers(&sim, shape)?;
    let ns = format!("bench-n{servers}-p{policies}-{}", targeting.name());
    cluster.kubectl.create_namespace(&ns).await?;
    create_secret(client, &ns).await?;
    let took = create_policies(client, &ns, &sim, policies, &|i, ids| {
        targeting::policy_target(targeting, i, ids, policies)
    })
    .await?;
    eprintln!(
        "bench: {policies} policies created in {:.1}s",
        took.as_secs_f64()
    );

    let policy_api: Api<EcsPowerPolicy> = Api::namespaced(client.clone(), &ns);
    let flags = vec![
        "--log-format=text".to_owned(),
        format!("--budget-servers={MAX_PER_CALL}"),
        format!("--budget-window-ms={}", settings.window.as_millis()),
    ];
    let control_plane_cpu_before = control_plane_cpu_s(cluster)?;
    let started = Instant::now();
    let started_wall = jiff::Timestamp::now();
    let mut op = Operator::spawn(cluster, &cluster.dir, &ns, Some(&ns), &flags)?;
    let limit = settings.bound(servers) * 3 + Duration::from_secs(120);
    let (all_stopped, (policies_stopped, last_policy_eta)) = tokio::try_join!(
        wait_servers_stopped(&sim, servers, started, limit),
        wait_policies_stopped(policy_api, policies, (started, started_wall), limit),
    )
    .map_err(|e| e.context(format!("operator log tail:\n{}", op.log_tail(30))))?;

    let control_plane_cpu = control_plane_cpu_s(cluster)? - control_plane_cpu_before;
    let metrics = op.metrics().await?;
    std::fs::write(cluster.dir.join(format!("{ns}.metrics")), &metrics)?;
    let usage = process_usage(&op)?;
    op.terminate(Duration::from_secs(10));
    let stats = sim.stats().await;
    sim.shutdown().await;
    // Free the control plane for the next cell; nobody waits for it.
    cluster
        .kubectl
        .run(&["delete", "namespace", &ns, "--wait=false"], None)
        .await?;

    let metric = |name: &str| operator::metric_sum(&metrics, name).unwrap_or(0.0);
    let list_pages: u64 = stats
        .requests
        .get("list_servers")
        .map_or(0, |codes| codes.values().sum());
    let pages_per_listing = servers.div_ceil(MAX_PER_CALL) as f64;
    let listings = list_pages as f64 / pages_per_listing;
    let reconciles = metric("ecs_power_operator_reconciles_total") as u64;
    let sync_rounds = reconciles as f64 / policies as f64;
    let bound = settings.bound(servers);
    Ok(Cell::Measured(Box::new(CellFigures {
        servers,
        policies,
        targeting,
        stop_calls: stats.stop_calls,
        stop_calls_bound: servers.div_ceil(MAX_PER_CALL) as u64,
        largest_stop_call: stats.stop_ids_max,
        stop_ids_sent: stats.stop_ids_total,
        listings,
        list_pages,
        reconciles,
        sync_rounds,
        listings_per_sync_round: listings / sync_rounds,
        ecs_requests: stats.requests.values().flat_map(|c| c.values()).sum(),
        responses_429: stats.responses_429,
        all_stopped_s: all_stopped.as_secs_f64(),
        all_policies_stopped_s: policies_stopped.as_secs_f64(),
        bound_s: bound.as_secs_f64(),
        over_bound_pct: report::percent_over(all_stopped, bound),
        status_writes: metric("ecs_power_operator_status_writes_total") as u64,
        peak_rss_mib: usage.peak_rss_mib,
        cpu_s: usage.cpu_s,
        control_plane_cpu_s: control_plane_cpu,
        last_policy_eta,
    })))
}

/// The tags a selector cell's policies select by (an id cell's servers keep the
/// simulator's own).
fn tag_servers(sim: &RunningSim, shape: Shape) -> Result<()> {
    if shape.targeting == Targeting::Ids {
        return Ok(());
    }
    let control = sim.control();
    for (n, id) in sim.server_ids().iter().enumerate() {
        let tags = targeting::server_tags(shape.targeting, n, shape.servers, shape.policies);
        control.set_tags(id, &tags)?;
    }
    Ok(())
}

/// What the watch saw of one policy.
#[derive(Default)]
struct Seen {
    phase: Option<Phase>,
    /// Each status seen, in seconds from the start, and the estimate it showed.
    shown: Vec<(f64, Option<f64>)>,
    stopped_s: Option<f64>,
}

/// Time from `since` until every one of `count` policies has phase Stopped, from a
/// watch (polling a list of 1000 policies would load the control plane under test),
/// and the estimates of the policy that became Stopped last against its finish.
async fn wait_policies_stopped(
    api: Api<EcsPowerPolicy>,
    count: usize,
    (since, since_wall): (Instant, jiff::Timestamp),
    limit: Duration,
) -> Result<(Duration, Option<EtaFigures>)> {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let events = watcher::watcher(api, watcher::Config::default());
    let mut objects = std::pin::pin!(events.applied_objects());
    let watch = async {
        while let Some(policy) = objects.try_next().await? {
            let now_s = since.elapsed().as_secs_f64();
            let status = policy.status.as_ref();
            let entry = seen
                .entry(kube::ResourceExt::name_any(&policy))
                .or_default();
            entry.phase = status.and_then(|s| s.phase);
            if entry.stopped_s.is_none() {
                let estimate = status.and_then(|s| s.queue.as_ref()).map(|queue| {
                    let at = queue.estimated_completion_time.0;
                    at.duration_since(since_wall).as_secs_f64()
                });
                entry.shown.push((now_s, estimate));
            }
            if entry.phase == Some(Phase::Stopped) {
                entry.stopped_s.get_or_insert(now_s);
            }
            let stopped = seen
                .values()
                .filter(|p| p.phase == Some(Phase::Stopped))
                .count();
            if stopped == count {
                let estimated = seen
                    .values()
                    .filter(|p| p.shown.iter().any(|(_, estimate)| estimate.is_some()))
                    .count();
                eprintln!("bench: {estimated} of {count} policies showed an estimate");
                let last = seen
                    .iter()
                    .filter_map(|(name, p)| Some((name, p.stopped_s?, &p.shown)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                let eta = last.and_then(|(name, stopped_s, shown)| {
                    EtaFigures::new(name.clone(), shown, stopped_s)
                });
                return Ok((since.elapsed(), eta));
            }
        }
        bail!("the policy watch ended")
    };
    match tokio::time::timeout(limit.saturating_sub(since.elapsed()), watch).await {
        Ok(result) => result,
        Err(_) => {
            let stopped = seen
                .values()
                .filter(|p| p.phase == Some(Phase::Stopped))
                .count();
            bail!("only {stopped} of {count} policies Stopped after {limit:?}")
        }
    }
}

struct Usage {
    peak_rss_mib: f64,
    cpu_s: f64,
}

/// The operator's peak resident set (the kernel's high-water mark) and CPU time so far.
fn process_usage(op: &Operator) -> Result<Usage> {
    let pid = op.pid().context("the operator is not running")?;
    let process = procfs::process::Process::new(pid as i32)?;
    let peak_kib = process
        .status()?
        .vmhwm
        .context("no VmHWM in /proc/<pid>/status")?;
    Ok(Usage {
        peak_rss_mib: peak_kib as f64 / 1024.0,
        cpu_s: cpu_s(&process)?,
    })
}

fn cpu_s(process: &procfs::process::Process) -> Result<f64> {
    let stat = process.stat()?;
    let ticks = (stat.utime + stat.stime) as f64;
    Ok(ticks / procfs::ticks_per_second() as f64)
}

/// CPU seconds kube-apiserver and etcd have used so far: on one machine, the operator's
/// syncs of many policies wait mostly for them.
fn control_plane_cpu_s(cluster: &Cluster) -> Result<f64> {
    let mut total = 0.0;
    for name in ["kube-apiserver", "etcd"] {
        let pid_file = cluster.dir.join("cplane").join(format!("{name}.pid"));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?
            .trim()
            .parse()
            .with_context(|| format!("pid in {}", pid_file.display()))?;
        total += cpu_s(&procfs::process::Process::new(pid)?)?;
    }
    Ok(total)
}
