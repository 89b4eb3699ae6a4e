//! The four cells: (a) one operator SIGKILLed at seeded random moments with every
//! simulator fault on; (b) two replicas with leader election, the holder SIGKILLed;
//! (c) the holder's connection to the API server black-holed while ids wait for
//! budget; (d) policies with a schedule window and afterWindow Start, the operator
//! SIGKILLed around the window's start and end, the faults of (a) on. Each runs in a
//! fresh namespace against a fresh simulator.

use crate::cluster::{Cluster, OPERATOR_NS};
use crate::operator::Operator;
use crate::proxy::Proxy;
use crate::report::{Figures, Kill, WindowFigures};
use crate::setup::{
    create_policies, create_secret, share_of_ids, start_again_window, started_of, stop_by_hand,
    wait_servers_in, wait_servers_stopped,
};
use crate::watch::{self, PolicyWatch};
use anyhow::{Context as _, Result, bail};
use ecs_power_operator::sim::{self, RunningSim, SimConfig, Status};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Servers per budget window, on both sides (the API's: 1000 per minute).
const BUDGET_SERVERS: usize = 1000;
/// The Lease of cells (b) and (c): a follower takes over 4 s after the last renewal,
/// the holder fences itself after 3 s without a confirmed one.
const LEASE_SECS: u64 = 4;

#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    pub servers: usize,
    pub policies: usize,
    pub window: Duration,
    /// How long the simulator takes to stop a server.
    pub stop: Duration,
    /// Cell (a): SIGKILLs; cell (b): SIGKILLs of the leader.
    pub kills: usize,
    /// Each kill lands this long (uniform, seeded) after the process's first round
    /// ended (in (b): the leader's, once it took the Lease).
    pub kill_after: (Duration, Duration),
    /// Cell (a): 3 % 500s, 2 % accept-then-fail, 1 % accept-then-drop, 100 ms latency
    /// and `job_init`.
    pub faults: bool,
    /// How long a new job stays INIT with its servers untouched (with `faults`).
    pub job_init: Duration,
    /// Upper bound of a cell.
    pub limit: Duration,
}

/// Cell (d): one server in this many is stopped by hand before the window.
const STOPPED_BY_HAND_EVERY: usize = 100;
/// Cell (d): from the cell's start to the window's, so the first process has
/// finished its first round (with the faults' latency) when the window begins.
const WINDOW_LEAD_IN: Duration = Duration::from_secs(6);

/// Cell (d): from the window's end and its `Auto` lead until every server the
/// policies stopped must run again: a process killed at the end comes back, lists
/// and syncs well within it.
const RESTART_ALLOWANCE: Duration = Duration::from_secs(30);

/// Cell (d): a UTC window of whole seconds, `afterWindow: Start`, `startLeadTime: Auto`.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: Timestamp,
    to: Timestamp,
    /// What Auto works out for the servers to start, nothing else queued.
    lead: Duration,
}

impl Window {
    /// Begins `WINDOW_LEAD_IN` from now; long enough to stop `servers` under the
    /// budget with half again to spare for kills and faults, let a budget window
    /// pass, and start them all again within the lead.
    fn for_servers(servers: usize, settings: &Settings) -> Result<Self> {
        let calls = u32::try_from(servers.div_ceil(BUDGET_SERVERS))?;
        let lead = settings.window * calls.saturating_sub(1);
        let stopping = lead + settings.stop;
        let length = stopping * 3 / 2 + settings.window + lead + Duration::from_secs(5);
        let from = Timestamp::from_second((Timestamp::now() + WINDOW_LEAD_IN).as_second() + 1)?;
        let to = Timestamp::from_second(from.as_second() + length.as_secs() as i64 + 1)?;
        Ok(Self { from, to, lead })
    }
}

/// A cell's namespace, simulator, policies and the watch on them.
struct World {
    ns: String,
    sim: Arc<RunningSim>,
    watch: PolicyWatch,
    /// Resolves with the time from `started` until every server was SHUTOFF.
    all_stopped: tokio::task::JoinHandle<Result<Duration>>,
    dir: PathBuf,
    started: Instant,
    started_wall: Timestamp,
    /// Cell (d): the policies' window, and the servers stopped by hand before it.
    window: Option<(Window, Vec<String>)>,
}

impl World {
    /// `servers` over `policies` on a simulator as `settings` say; with `window`,
    /// the policies stop their servers only inside it and start them again after it,
    /// and 1 % of the servers are stopped by hand first.
    async fn new(
        (cluster, client): (&Cluster, &kube::Client),
        cell: &str,
        settings: &Settings,
        (servers, policies): (usize, usize),
        window: Option<Window>,
    ) -> Result<Self> {
        let ns = format!("chaos-{cell}");
        let sim = sim::start(sim_config(settings, servers), "127.0.0.1:0".parse()?).await?;
        let by_hand = match window {
            Some(_) => stop_by_hand(&sim, STOPPED_BY_HAND_EVERY)?,
            None => Vec::new(),
        };
        cluster.kubectl.create_namespace(&ns).await?;
        create_secret(client, &ns).await?;
        let schedule = window.map(|w| start_again_window(w.from, w.to));
        create_policies(client, &ns, &sim, policies, &|i, ids| {
            let mut target = share_of_ids(i, ids, policies);
            target.schedule = schedule.clone();
            target
        })
        .await?;
        let goal = match window {
            Some(_) => watch::started_again,
            None => watch::stopped_and_ready,
        };
        let watch = PolicyWatch::start(client, &ns, policies, goal);
        eprintln!("chaos {cell}: {servers} servers over {policies} policies in {ns}");
        let sim = Arc::new(sim);
        let started = Instant::now();
        let started_wall = Timestamp::now();
        // With a window, every server must be stopped before its end.
        let limit = match window {
            Some(w) => Duration::try_from(w.to.duration_since(started_wall))?,
            None => settings.limit,
        };
        let all_stopped = tokio::spawn({
            let sim = Arc::clone(&sim);
            async move { wait_servers_stopped(&sim, servers, started, limit).await }
        });
        Ok(Self {
            ns,
            sim,
            watch,
            all_stopped,
            dir: cluster.dir.clone(),
            started,
            started_wall,
            window: window.map(|w| (w, by_hand)),
        })
    }

    fn since_start(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }

    fn spawn(&self, kubeconfig: &Path, name: &str, flags: &[String]) -> Result<Operator> {
        Operator::spawn_with_kubeconfig(
            kubeconfig,
            &self.dir,
            &format!("{}-{name}", self.ns),
            Some(&self.ns),
            flags,
        )
    }

    /// Waits for every server SHUTOFF and every policy at its goal (with a window:
    /// every server the policies stopped ACTIVE again first); then the figures from
    /// the simulator's side and the watch.
    async fn finish(self, cell: &str, settings: &Settings, kills: Vec<Kill>) -> Result<Figures> {
        let servers = self.sim.server_ids().len();
        let all_stopped = self.all_stopped.await??;
        let window = match &self.window {
            Some((window, by_hand)) => {
                let to_start = servers - by_hand.len();
                let running = wait_servers_in(
                    &self.sim,
                    Status::Active,
                    to_start,
                    self.started,
                    settings.limit,
                )
                .await?;
                Some((window, by_hand, running))
            }
            None => None,
        };
        let left = settings.limit.saturating_sub(self.started.elapsed());
        let all_ready = self.watch.wait_all_ready(left).await?;
        if window.is_some() {
            // A start sent twice or late shows in the simulator's counters only if
            // the cell still watches: one more budget window.
            tokio::time::sleep(settings.window).await;
        }
        let stats = self.sim.stats().await;
        let since_start = |at: Timestamp| at.duration_since(self.started_wall).as_secs_f64();
        let window = match window {
            Some((window, by_hand, running)) => Some(WindowFigures {
                from_s: since_start(window.from),
                to_s: since_start(window.to),
                stopped_by_hand: by_hand.len(),
                all_running_s: running.as_secs_f64(),
                running_target_s: since_start(window.to)
                    + (window.lead + RESTART_ALLOWANCE).as_secs_f64(),
                start_calls: stats.start_calls,
                start_ids_sent: stats.start_ids_total,
                start_ids_accepted: stats.start_ids_accepted,
                start_ids_redundant: stats.start_ids_redundant,
                start_ids_resent_after_lost: stats.start_ids_resent_after_lost,
                started_not_stopped_by_policy: started_of(&self.sim, by_hand)?,
            }),
            None => None,
        };
        let seen = self.watch.seen();
        Ok(Figures {
            cell: cell.to_owned(),
            seed: settings.seed,
            servers,
            policies: seen.ready.len(),
            kills,
            all_stopped_s: all_stopped.as_secs_f64(),
            all_ready_s: all_ready
                .saturating_duration_since(self.started)
                .as_secs_f64(),
            stop_calls: stats.stop_calls,
            stop_ids_sent: stats.stop_ids_total,
            stop_ids_accepted: stats.stop_ids_accepted,
            stop_ids_redundant: stats.stop_ids_redundant,
            stop_ids_resent_after_lost: stats.stop_ids_resent_after_lost,
            responses_429: stats.responses_429,
            status_writes: seen.status_writes,
            longest_no_leader_s: 0.0,
            old_leader_calls_after_takeover: None,
            old_leader_calls_after_follower_first: None,
            window,
            notes: vec![format!(
                "sim: {} answered 504 after acceptance, {} reset after acceptance, {} injected 500s",
                stats.accepted_then_failed, stats.accepted_then_dropped, stats.injected_errors
            )],
        })
    }
}

fn sim_config(settings: &Settings, servers: usize) -> SimConfig {
    let mut config = SimConfig {
        servers,
        seed: settings.seed,
        stop_duration: settings.stop,
        servers_per_window: BUDGET_SERVERS,
        budget_window: settings.window,
        ..SimConfig::default()
    };
    if settings.faults {
        config.error_rate = 0.03;
        config.accept_then_fail_rate = 0.02;
        config.accept_then_drop_rate = 0.01;
        config.latency = Duration::from_millis(100);
        config.job_init = settings.job_init;
    }
    config
}

/// The operator's flags in every cell: the budget as the simulator's; unknown
/// outcomes settle after twice the sim's job INIT (at least 1 s), which bounds how
/// long a new job leaves its servers untouched (a real cloud's is unknown: 10 s by
/// default); the rest default.
fn flags(settings: &Settings) -> Vec<String> {
    let settle = (settings.job_init * 2).max(Duration::from_secs(1));
    vec![
        "--log-format=text".to_owned(),
        format!("--budget-servers={BUDGET_SERVERS}"),
        format!("--budget-window-ms={}", settings.window.as_millis()),
        format!("--unknown-outcome-settle-ms={}", settle.as_millis()),
    ]
}

fn leader_flags(settings: &Settings, lease: &str, identity: &str) -> Vec<String> {
    let mut flags = flags(settings);
    flags.extend([
        "--leader-election".to_owned(),
        format!("--lease-name={lease}"),
        format!("--lease-namespace={OPERATOR_NS}"),
        format!("--identity={identity}"),
        format!("--lease-duration-secs={LEASE_SECS}"),
    ]);
    flags
}

fn kill_delay(rng: &mut StdRng, settings: &Settings) -> Duration {
    let (lo, hi) = settings.kill_after;
    Duration::from_secs_f64(rng.random_range(lo.as_secs_f64()..=hi.as_secs_f64()))
}

/// A process is killed at a seeded random moment after its first round, so that the
/// kills land among its calls, job polls and status writes: a kill during the first
/// round (nothing is sent there) would prove little. Returns when the round ended.
async fn first_round_done(op: &mut Operator, limit: Duration) -> Result<Instant> {
    let t0 = Instant::now();
    loop {
        if op.log_text().contains("first round done") {
            return Ok(Instant::now());
        }
        if !op.alive() || t0.elapsed() > limit {
            bail!(
                "{} did not finish its first round within {limit:?}; log tail:\n{}",
                op.name,
                op.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (a) One operator, SIGKILLed `kills` times at seeded random moments after its first
/// round and started again at once, the simulator's faults on.
pub async fn kills(
    cluster: &Cluster,
    client: &kube::Client,
    settings: &Settings,
) -> Result<Figures> {
    let world = World::new(
        (cluster, client),
        "a",
        settings,
        (settings.servers, settings.policies),
        None,
    )
    .await?;
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let kill_at = |_: usize, up: Instant| up + kill_delay(&mut rng, settings);
    kill_series(cluster, world, "a", settings, kill_at).await
}

/// (d) Policies with a schedule window and afterWindow Start (Auto lead), one
/// operator SIGKILLed `kills` times at seeded moments around the window's start
/// (half the kills: from 1 s before it until half the stops had time to go) and
/// around the time starting begins and the window's end (the rest: from 1 s before
/// the planned first start until 2 s past the end), each at least `kill_after.0`
/// after that process's first round; the faults of (a) on.
pub async fn window_kills(
    cluster: &Cluster,
    client: &kube::Client,
    settings: &Settings,
) -> Result<Figures> {
    let to_stop = settings.servers - settings.servers.div_ceil(STOPPED_BY_HAND_EVERY);
    let window = Window::for_servers(to_stop, settings)?;
    let world = World::new(
        (cluster, client),
        "d",
        settings,
        (settings.servers, settings.policies),
        Some(window),
    )
    .await?;
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let plan = kill_plan(&mut rng, &window, world.started_wall, settings);
    eprintln!(
        "chaos d: window {:.1}–{:.1}s, starting planned from {:.1}s, kills planned at {:.1?}s",
        plan.from_s, plan.to_s, plan.first_start_s, plan.kills_s
    );
    let started = world.started;
    let kill_at = |n: usize, up: Instant| {
        let planned = started + Duration::from_secs_f64(plan.kills_s[n - 1].max(0.0));
        planned.max(up + settings.kill_after.0)
    };
    kill_series(cluster, world, "d", settings, kill_at).await
}

/// One operator SIGKILLed `settings.kills` times, the n-th (from 1) at
/// `kill_at(n, end of that process's first round)`, and started again at once; then
/// the cell's figures with the longest time from a kill to a process serving /healthz.
async fn kill_series(
    cluster: &Cluster,
    world: World,
    cell: &str,
    settings: &Settings,
    mut kill_at: impl FnMut(usize, Instant) -> Instant,
) -> Result<Figures> {
    let kubeconfig = &cluster.operator_kubeconfig;
    let mut kills = Vec::new();
    let mut longest = Duration::ZERO;
    let mut op = world.spawn(kubeconfig, "operator-1", &flags(settings))?;
    let mut killed_at: Option<Instant> = None;
    for n in 1..=settings.kills {
        op.wait_healthy(Duration::from_secs(30)).await?;
        if let Some(at) = killed_at {
            longest = longest.max(at.elapsed());
        }
        let up = first_round_done(&mut op, Duration::from_secs(60)).await?;
        tokio::time::sleep_until(kill_at(n, up).into()).await;
        op.kill9();
        let at = Instant::now();
        let kill = Kill {
            at_s: world.since_start(at),
            process: op.name.clone(),
            after_s: (at - up).as_secs_f64(),
        };
        eprintln!(
            "chaos {cell}: kill {n} at {:.2}s: {} {:.2}s after its first round",
            kill.at_s, kill.process, kill.after_s
        );
        kills.push(kill);
        killed_at = Some(at);
        op = world.spawn(kubeconfig, &format!("operator-{}", n + 1), &flags(settings))?;
    }
    op.wait_healthy(Duration::from_secs(30)).await?;
    if let Some(at) = killed_at {
        longest = longest.max(at.elapsed());
    }
    let mut figures = world
        .finish(cell, settings, kills)
        .await
        .map_err(|e| e.context(format!("last operator's log tail:\n{}", op.log_tail(30))))?;
    figures.longest_no_leader_s = longest.as_secs_f64();
    Ok(figures)
}

/// When cell (d) kills, in seconds from the cell's start, sorted.
struct KillPlan {
    from_s: f64,
    to_s: f64,
    first_start_s: f64,
    kills_s: Vec<f64>,
}

fn kill_plan(
    rng: &mut StdRng,
    window: &Window,
    started: Timestamp,
    settings: &Settings,
) -> KillPlan {
    let since_start = |at: Timestamp| at.duration_since(started).as_secs_f64();
    let (from_s, to_s) = (since_start(window.from), since_start(window.to));
    let first_start_s = to_s - window.lead.as_secs_f64();
    let around_start = (from_s - 1.0, from_s + (first_start_s - from_s) / 2.0);
    let around_end = (first_start_s - 1.0, to_s + 2.0);
    let mut kills_s: Vec<f64> = (0..settings.kills)
        .map(|n| {
            let (lo, hi) = if n % 2 == 0 { around_start } else { around_end };
            rng.random_range(lo..=hi)
        })
        .collect();
    kills_s.sort_by(f64::total_cmp);
    KillPlan {
        from_s,
        to_s,
        first_start_s,
        kills_s,
    }
}

/// The holder of the Lease, if any.
async fn holder(leases: &Api<Lease>, name: &str) -> Result<Option<String>> {
    let lease = leases.get_opt(name).await?;
    Ok(lease
        .and_then(|l| l.spec?.holder_identity)
        .filter(|h| !h.is_empty()))
}

/// Waits until the Lease names one of `live` (by operator name suffix = identity).
async fn wait_live_holder(
    leases: &Api<Lease>,
    lease: &str,
    live: &[String],
    limit: Duration,
) -> Result<(String, Instant)> {
    let t0 = Instant::now();
    loop {
        if let Some(h) = holder(leases, lease).await?
            && live.contains(&h)
        {
            return Ok((h, Instant::now()));
        }
        if t0.elapsed() > limit {
            bail!("no live replica of {live:?} took the Lease {lease} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (b) Two replicas with leader election; the holder SIGKILLed `kills` times at a
/// seeded random moment after its first round as leader, a new replica started
/// each time.
pub async fn leader_kills(
    cluster: &Cluster,
    client: &kube::Client,
    settings: &Settings,
) -> Result<Figures> {
    let world = World::new(
        (cluster, client),
        "b",
        settings,
        (settings.servers, settings.policies),
        None,
    )
    .await?;
    let lease = "chaos-b";
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NS);
    let kubeconfig = &cluster.operator_kubeconfig;
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let mut started = 0;
    let mut spawn = |world: &World| -> Result<(String, Operator)> {
        started += 1;
        let identity = format!("replica-{started}");
        let op = world.spawn(
            kubeconfig,
            &identity,
            &leader_flags(settings, lease, &identity),
        )?;
        Ok((identity, op))
    };
    let mut replicas = vec![spawn(&world)?, spawn(&world)?];
    let mut kills = Vec::new();
    let mut longest = Duration::ZERO;
    let mut killed_at: Option<Instant> = None;
    let wait = Duration::from_secs(LEASE_SECS * 5);
    for n in 1..=settings.kills {
        let live: Vec<String> = replicas.iter().map(|(id, _)| id.clone()).collect();
        let (leader, since) = wait_live_holder(&leases, lease, &live, wait).await?;
        if let Some(at) = killed_at {
            longest = longest.max(since - at);
        }
        let index = replicas
            .iter()
            .position(|(id, _)| *id == leader)
            .context("the holder is one of the replicas")?;
        let (_, mut op) = replicas.remove(index);
        first_round_done(&mut op, Duration::from_secs(60)).await?;
        tokio::time::sleep(kill_delay(&mut rng, settings)).await;
        op.kill9();
        let at = Instant::now();
        let kill = Kill {
            at_s: world.since_start(at),
            process: leader.clone(),
            after_s: (at - since).as_secs_f64(),
        };
        eprintln!(
            "chaos b: kill {n} at {:.2}s: leader {} after leading {:.2}s",
            kill.at_s, kill.process, kill.after_s
        );
        kills.push(kill);
        killed_at = Some(at);
        replicas.push(spawn(&world)?);
    }
    let live: Vec<String> = replicas.iter().map(|(id, _)| id.clone()).collect();
    let (_, since) = wait_live_holder(&leases, lease, &live, wait).await?;
    if let Some(at) = killed_at {
        longest = longest.max(since - at);
    }
    let mut figures = world.finish("b", settings, kills).await.map_err(|e| {
        let tails: Vec<String> = replicas
            .iter()
            .map(|(id, op)| format!("--- {id}:\n{}", op.log_tail(20)))
            .collect();
        e.context(tails.join("\n"))
    })?;
    figures.longest_no_leader_s = longest.as_secs_f64();
    Ok(figures)
}

/// Stop calls an operator sent (every attempt, whatever came back), from its /metrics;
/// None once it no longer answers.
async fn stop_attempts(op: &Operator) -> Option<u64> {
    let text = op.metrics().await.ok()?;
    Some(
        text.lines()
            .filter(|l| {
                l.starts_with("ecs_power_operator_ecs_requests_total{")
                    && l.contains("operation=\"os-stop\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
    )
}

/// A copy of the kubeconfig at `kubeconfig` whose server is a proxy to the API
/// server (the certificate names 127.0.0.1, so TLS passes through it untouched).
async fn proxied_kubeconfig(kubeconfig: &Path, into: &Path) -> Result<(Proxy, PathBuf)> {
    let text = std::fs::read_to_string(kubeconfig)?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let server = doc["clusters"][0]["cluster"]["server"]
        .as_str()
        .context("kubeconfig: no server")?;
    let addr: SocketAddr = server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("the API server {server} is not a loopback ip:port"))?;
    let proxy = Proxy::start(addr).await?;
    std::fs::write(
        into,
        text.replace(server, &format!("https://{}", proxy.addr)),
    )?;
    Ok((proxy, into.to_path_buf()))
}

/// (c) Replica A reaches the API server through a proxy, replica B directly. Once A
/// leads and its first call (1000 of 1500 servers) is in status, the proxy
/// black-holes A's connection while the other 500 wait for the budget. A must send
/// nothing from then on; B takes over, counts the spent budget and sends the 500.
pub async fn blackhole(
    cluster: &Cluster,
    client: &kube::Client,
    settings: &Settings,
) -> Result<Figures> {
    let servers = 1500;
    let world = World::new((cluster, client), "c", settings, (servers, 1), None).await?;
    let lease = "chaos-c";
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NS);
    let (proxy, proxied) = proxied_kubeconfig(
        &cluster.operator_kubeconfig,
        &cluster.dir.join("chaos-c-proxied.kubeconfig"),
    )
    .await?;
    let mut a = world.spawn(
        &proxied,
        "replica-a",
        &leader_flags(settings, lease, "replica-a"),
    )?;
    let live = ["replica-a".to_owned()];
    wait_live_holder(&leases, lease, &live, Duration::from_secs(30)).await?;
    let mut b = world.spawn(
        &cluster.operator_kubeconfig,
        "replica-b",
        &leader_flags(settings, lease, "replica-b"),
    )?;
    b.wait_healthy(Duration::from_secs(30)).await?;

    // A's first call recorded in status: B can carry its budget over.
    let policies: Api<ecs_power_operator::policy::EcsPowerPolicy> =
        Api::namespaced(client.clone(), &world.ns);
    let t0 = Instant::now();
    loop {
        let policy = policies.get("p-0000").await?;
        if policy.status.is_some_and(|s| !s.jobs.is_empty()) {
            break;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!(
                "replica-a recorded no job within 30 s; its log:\n{}",
                a.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a_before = stop_attempts(&a).await.context("replica-a's /metrics")?;
    proxy.blackhole();
    let blackholed = Instant::now();
    eprintln!(
        "chaos c: black-holed replica-a at {:.2}s after {a_before} stop calls",
        world.since_start(blackholed)
    );

    // Watch the hand-over: who holds the Lease, what each replica sent.
    let mut a_last = a_before;
    let mut takeover: Option<(Instant, u64)> = None;
    let mut follower_first: Option<(Instant, u64)> = None;
    let until = settings.window * 2 + Duration::from_secs(LEASE_SECS * 3);
    while blackholed.elapsed() < until || follower_first.is_none() {
        if blackholed.elapsed() > settings.limit {
            bail!("replica-b sent no stop call; its log:\n{}", b.log_tail(30));
        }
        if let Some(calls) = stop_attempts(&a).await {
            a_last = calls;
        }
        if takeover.is_none() && holder(&leases, lease).await?.as_deref() == Some("replica-b") {
            takeover = Some((Instant::now(), a_last));
            eprintln!(
                "chaos c: replica-b holds the Lease {:.2}s after the black-hole",
                blackholed.elapsed().as_secs_f64()
            );
        }
        if follower_first.is_none() && stop_attempts(&b).await.unwrap_or(0) > 0 {
            follower_first = Some((Instant::now(), a_last));
            eprintln!(
                "chaos c: replica-b's first stop call {:.2}s after the black-hole",
                blackholed.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a_alive = a.alive();
    let (took_over, a_at_takeover) = takeover.context("replica-b never held the Lease")?;
    let (_, a_at_first) = follower_first.context("replica-b sent no stop call")?;
    let mut figures = world
        .finish("c", settings, Vec::new())
        .await
        .map_err(|e| e.context(format!("replica-b's log tail:\n{}", b.log_tail(30))))?;
    let b_calls = stop_attempts(&b).await.unwrap_or(0);
    // A's count is its last answer before it exited: the simulator's own count
    // shows whether it missed a call.
    if figures.stop_calls != a_last + b_calls {
        bail!(
            "the simulator saw {} stop calls, the replicas' metrics explain {} (replica-a {a_last}, replica-b {b_calls})",
            figures.stop_calls,
            a_last + b_calls
        );
    }
    figures.longest_no_leader_s = (took_over - blackholed).as_secs_f64();
    figures.old_leader_calls_after_takeover = Some(a_last - a_at_takeover.min(a_last));
    figures.old_leader_calls_after_follower_first = Some(a_last - a_at_first.min(a_last));
    figures.notes.push(format!(
        "replica-a: {a_before} stop calls before the black-hole, {a_last} in all (process {} at the end of the hand-over); replica-b: {b_calls}",
        if a_alive { "still running" } else { "exited" }
    ));
    Ok(figures)
}
