//! What the benchmarks share (fleet and chaos): the admin client, the Secret, the
//! policies on a simulator, and the wait for the simulator to report them
//! all SHUTOFF. The control plane and operator processes come from `tests/e2e/`.

use anyhow::{Context as _, Result, bail};
use ecs_power_operator::policy::{
    CloudSpec, EcsPowerPolicy, EcsPowerPolicySpec, SecretRef, ServerRef, StopType,
};
use ecs_power_operator::selector::spec::SelectorSpec;
use ecs_power_operator::sim::{self, RunningSim};
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

/// What one policy names: servers by id, and a selector with its cap.
pub struct Target {
    pub servers: Vec<ServerRef>,
    pub selector: Option<SelectorSpec>,
    pub max_servers: Option<u32>,
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
    }
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
                schedule: None,
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
    loop {
        let stats = sim.stats().await;
        let shutoff = stats.servers_by_status.get("SHUTOFF").copied().unwrap_or(0);
        if shutoff as usize >= servers {
            return Ok(since.elapsed());
        }
        if since.elapsed() > limit {
            bail!("only {shutoff} of {servers} servers SHUTOFF after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
