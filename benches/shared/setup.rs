//! What the benchmarks share (fleet and chaos): the admin client, the Secret, the
//! policies on a simulator (with a schedule window if asked), servers stopped by
//! someone else, and the waits for the simulator to report servers SHUTOFF or
//! ACTIVE. The control plane and operator processes come from `tests/e2e/`.

use anyhow::{Context as _, Result, bail};
use ecs_power_operator::policy::{
    CloudSpec, EcsPowerPolicy, EcsPowerPolicySpec, SecretRef, ServerRef, StopType,
};
use ecs_power_operator::schedule::spec::{AfterWindow, Day, ScheduleSpec, WindowSpec};
use ecs_power_operator::selector::spec::SelectorSpec;
use ecs_power_operator::sim::{self, RunningSim, Status};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use std::path::Path;
use std::time::{Duration, Instant};

pub const SECRET_NAME: &str = "otc-credentials";
/// Policies created at once.
const CREATE_CONCURRENCY: usize = 16;

/// A client of the control plane as its admin (the operator runs as its ServiceAccount).
pub async fn admin_client(kubeconfig: &Path) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// The Secret `otc-credentials` with the simulator's default credentials.
pub async fn create_secret(client: &kube::Client, ns: &str) -> Result<()> {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(SECRET_NAME.to_owned()),
            ..Default::default()
        },
        string_data: Some(
            [
                ("accessKey".to_owned(), sim::DEFAULT_ACCESS_KEY.to_owned()),
                ("secretKey".to_owned(), sim::DEFAULT_SECRET_KEY.to_owned()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// What one policy names: servers by id, and a selector with its cap; and when.
pub struct Target {
    pub servers: Vec<ServerRef>,
    pub selector: Option<SelectorSpec>,
    pub max_servers: Option<u32>,
    /// None: always stopped.
    pub schedule: Option<ScheduleSpec>,
}

/// Policy `i` of `count` lists its even share of `ids` by id.
pub fn share_of_ids(i: usize, ids: &[String], count: usize) -> Target {
    let range = i * ids.len() / count..(i + 1) * ids.len() / count;
    Target {
        servers: ids[range]
            .iter()
            .map(|id| ServerRef { id: id.clone() })
            .collect(),
        selector: None,
        max_servers: None,
        schedule: None,
    }
}

/// One UTC window from `from` to `to` (whole seconds; a `to` at or before `from`'s
/// time of day ends on the next day), `afterWindow: Start` with `startLeadTime: Auto`:
/// the servers stopped in it are started again so that the last start call goes out
/// by its end.
pub fn start_again_window(from: jiff::Timestamp, to: jiff::Timestamp) -> ScheduleSpec {
    let utc = |at: jiff::Timestamp| at.to_zoned(jiff::tz::TimeZone::UTC);
    let day = match utc(from).weekday() {
        jiff::civil::Weekday::Monday => Day::Mon,
        jiff::civil::Weekday::Tuesday => Day::Tue,
        jiff::civil::Weekday::Wednesday => Day::Wed,
        jiff::civil::Weekday::Thursday => Day::Thu,
        jiff::civil::Weekday::Friday => Day::Fri,
        jiff::civil::Weekday::Saturday => Day::Sat,
        jiff::civil::Weekday::Sunday => Day::Sun,
    };
    let time = |at: jiff::Timestamp| Some(utc(at).strftime("%H:%M:%S").to_string());
    ScheduleSpec {
        time_zone: "UTC".to_owned(),
        windows: vec![WindowSpec {
            days: vec![day],
            from: time(from),
            to: time(to),
        }],
        exceptions: Vec::new(),
        after_window: AfterWindow::Start,
        start_lead_time: Some("Auto".to_owned()),
    }
}

/// Stops every `every`-th server through the admin API, as someone else would: a
/// policy must never start those. Returns their ids.
pub fn stop_by_hand(sim: &RunningSim, every: usize) -> Result<Vec<String>> {
    let control = sim.control();
    let ids: Vec<String> = sim.server_ids().into_iter().step_by(every).collect();
    for id in &ids {
        control.set_status(id, Status::Shutoff)?;
    }
    Ok(ids)
}

/// Of `ids` (stopped by hand), those no longer SHUTOFF: started by someone who
/// had no business starting them.
pub fn started_of(sim: &RunningSim, ids: &[String]) -> Result<usize> {
    let control = sim.control();
    let mut started = 0;
    for id in ids {
        if control.status(id)? != Status::Shutoff {
            started += 1;
        }
    }
    Ok(started)
}

/// `count` policies `p-0000`, `p-0001`, ... on the simulator, policy `i` naming
/// `target(i, server ids)`. Returns how long creating them took.
pub async fn create_policies(
    client: &kube::Client,
    ns: &str,
    sim: &RunningSim,
    count: usize,
    target: &(dyn Fn(usize, &[String]) -> Target + Sync),
) -> Result<Duration> {
    let t0 = Instant::now();
    let ids = sim.server_ids();
    let api: Api<EcsPowerPolicy> = Api::namespaced(client.clone(), ns);
    let endpoint = sim.base_url();
    futures::stream::iter(0..count)
        .map(|i| {
            let Target {
                servers,
                selector,
                max_servers,
                schedule,
            } = target(i, &ids);
            let spec = EcsPowerPolicySpec {
                cloud: CloudSpec {
                    project_id: sim::DEFAULT_PROJECT_ID.to_owned(),
                    region: "eu-de".to_owned(),
                    endpoint: Some(endpoint.clone()),
                    credentials_secret_ref: SecretRef {
                        name: SECRET_NAME.to_owned(),
                    },
                },
                servers,
                selector,
                exclude: Vec::new(),
                max_servers,
                stop_type: StopType::Soft,
                suspend: false,
                dry_run: false,
                schedule,
            };
            let policy = EcsPowerPolicy::new(&format!("p-{i:04}"), spec);
            let api = api.clone();
            async move { api.create(&PostParams::default(), &policy).await }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_for_each(|_| async { Ok(()) })
        .await
        .context("creating policies")?;
    Ok(t0.elapsed())
}

/// Time from `since` until the simulator reports `servers` servers SHUTOFF.
pub async fn wait_servers_stopped(
    sim: &RunningSim,
    servers: usize,
    since: Instant,
    limit: Duration,
) -> Result<Duration> {
    wait_servers_in(sim, Status::Shutoff, servers, since, limit).await
}

/// Time from `since` until the simulator reports at least `servers` servers in
/// `status`, polled every 50 ms; an error once `limit` (from `since`) has passed.
pub async fn wait_servers_in(
    sim: &RunningSim,
    status: Status,
    servers: usize,
    since: Instant,
    limit: Duration,
) -> Result<Duration> {
    loop {
        let stats = sim.stats().await;
        let count = stats
            .servers_by_status
            .get(status.as_str())
            .copied()
            .unwrap_or(0);
        if count as usize >= servers {
            return Ok(since.elapsed());
        }
        if since.elapsed() > limit {
            bail!(
                "only {count} of {servers} servers {} after {limit:?}",
                status.as_str()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
