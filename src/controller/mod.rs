//! The EcsPowerPolicy controller: watches policies and the Secrets they name, and
//! reconciles each policy through its project's fleet.

mod credentials;
mod credentials_cache;
mod events;
mod reconcile;
mod recorder;
mod secret_poll;
mod status;
mod stopped_record;
mod timing;

pub use credentials::{ACCESS_KEY, CloudCredentials, CredentialsError, SECRET_KEY};
pub use reconcile::Error;

use crate::fleet::{FleetRegistry, PolicyKey};
use crate::metrics::Metrics;
use crate::plan::Backoff;
use crate::policy::EcsPowerPolicy;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Predicate, WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const CONTROLLER_NAME: &str = "ecs-power-operator";
/// Policies per page of the watch's list calls.
const POLICY_LIST_PAGE_SIZE: u32 = 10;
/// Longest the first round may hold syncs back (an unreachable ECS API, say): its
/// syncs then report the trouble.
const FIRST_ROUND_LIMIT: Duration = Duration::from_secs(10);

/// How the operator learns that a Secret a policy names changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretChanges {
    /// A metadata-only watch of Secrets: needs list and watch of Secrets wherever
    /// policies are (the cluster-wide RBAC mode); a change is seen at once.
    Watch,
    /// A metadata `get` of each named Secret every interval: needs only `get` of the
    /// Secrets policies name (the namespaced RBAC mode).
    Poll(Duration),
}

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Only this namespace, or every namespace.
    pub namespace: Option<String>,
    /// Policies synced at once. Syncs of one project share one listing and one
    /// queue, so more would only crowd the Kubernetes API.
    pub concurrency: u16,
    /// Requeue while stops are queued or running.
    pub active_requeue: Duration,
    /// Re-check for drift (a server started by hand) once everything is stopped.
    pub drift_interval: Duration,
    /// Oldest inventory a sync may use.
    pub inventory_max_age: Duration,
    /// Backoff between stop attempts of a server whose stop failed.
    pub retry_backoff: Backoff,
    /// Backoff between syncs of a policy that cannot be synced (bad Secret, rejected
    /// credentials, API unreachable): doubles from `min` up to `max`.
    pub error_backoff: Backoff,
    /// Host suffixes a policy's ECS endpoint must have; empty allows any host.
    pub allowed_endpoints: Vec<String>,
    /// Longest a sync waits for its fleet's listing before it gives its slot (one of
    /// `concurrency`, shared by every tenant) back and is synced again after
    /// `active_requeue`: a tenant's tarpit endpoint must not hold the slots.
    pub listing_wait: Duration,
    pub secret_changes: SecretChanges,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            namespace: None,
            concurrency: 16,
            active_requeue: Duration::from_secs(2),
            drift_interval: Duration::from_secs(60),
            inventory_max_age: Duration::from_secs(2),
            retry_backoff: Backoff {
                base: Duration::from_secs(10),
                max: Duration::from_secs(600),
            },
            error_backoff: Backoff {
                base: Duration::from_secs(5),
                max: Duration::from_secs(300),
            },
            allowed_endpoints: Vec::new(),
            listing_wait: Duration::from_secs(1),
            secret_changes: SecretChanges::Watch,
        }
    }
}

pub struct Context {
    pub client: Client,
    pub recorder: recorder::EventRecorder,
    pub metrics: Arc<Metrics>,
    pub fleets: FleetRegistry,
    pub config: ControllerConfig,
    /// Consecutive failed syncs per policy, for the error backoff.
    failures: Mutex<HashMap<PolicyKey, u32>>,
    /// Credentials of the Secrets policies name, dropped when the Secret changes.
    credentials: credentials_cache::CredentialsCache,
    /// The `concurrency` sync slots, handed out in the order syncs asked for them.
    sync_slots: tokio::sync::Semaphore,
    /// Shared by the status writes under way, each taking [`status_write_share`].
    status_write_permits: tokio::sync::Semaphore,
}

/// The status writes (each with its Events) under way at once take at most this many
/// permits between them.
const STATUS_WRITE_PERMITS: u32 = 16;

/// Each write makes the API server handle the policy's whole object, whose size is
/// mostly the server ids its spec names (`servers`, `exclude`): a write takes a permit
/// per 250 of them (at least one, at most all). Sixteen writes of 1000 ids each at once
/// took most of the API server's CPU, and the call journal's write, which every batch
/// call waits for, waited with them (100,000 servers over 100 policies on two cores:
/// status patches 0.98 s each, journal writes 91–93 % of the calls' time); four at
/// once left the journal most of it. Policies that name no ids (selectors) still
/// write sixteen at once: four at once made their last statuses lag 9 s behind.
fn status_write_share(named_ids: usize) -> u32 {
    u32::try_from(named_ids.div_ceil(250))
        .unwrap_or(u32::MAX)
        .clamp(1, STATUS_WRITE_PERMITS)
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        fleets: FleetRegistry,
        config: ControllerConfig,
        instance: Option<String>,
    ) -> Self {
        Self {
            recorder: recorder::EventRecorder::new(client.clone(), CONTROLLER_NAME, instance),
            client,
            metrics,
            fleets,
            failures: Mutex::default(),
            credentials: Default::default(),
            sync_slots: tokio::sync::Semaphore::new(usize::from(config.concurrency)),
            status_write_permits: tokio::sync::Semaphore::new(STATUS_WRITE_PERMITS as usize),
            config,
        }
    }

    /// Waits until the status of a policy naming `named_ids` server ids may be written.
    async fn status_write_permit(&self, named_ids: usize) -> tokio::sync::SemaphorePermit<'_> {
        self.status_write_permits
            .acquire_many(status_write_share(named_ids))
            .await
            .expect("the status write permits are never closed")
    }

    /// The delay before the next try of a policy that failed to sync `n` times in a row.
    fn failed_sync(&self, policy: &PolicyKey) -> Duration {
        let mut failures = self.failures.lock().expect("failure counts lock poisoned");
        let count = failures.entry(policy.clone()).or_default();
        *count += 1;
        self.config.error_backoff.delay(*count)
    }

    fn synced(&self, policy: &PolicyKey) {
        self.failures
            .lock()
            .expect("failure counts lock poisoned")
            .remove(policy);
    }
}

fn error_policy(policy: Arc<EcsPowerPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = PolicyKey::of(&policy);
    ctx.metrics.error(error.kind());
    let delay = ctx.failed_sync(&key);
    tracing::warn!(policy = %key, %error, retry_in = ?delay, "sync failed");
    Action::requeue(delay)
}

/// `K` in the watched namespace, or in all of them.
fn watched<K>(ctx: &Context) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match &ctx.config.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    }
}

/// The policies in `store` whose credentials are Secret `namespace/name`.
fn policies_naming(
    store: &reflector::Store<EcsPowerPolicy>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<EcsPowerPolicy>> {
    store
        .state()
        .into_iter()
        .filter(|policy| {
            policy.namespace().as_deref() == Some(namespace)
                && policy.spec.cloud.credentials_secret_ref.name == name
        })
        .map(|policy| ObjectRef::from_obj(&*policy))
        .collect()
}

/// The override annotation's value, as a predicate: setting, changing or removing it
/// syncs the policy at once, although it leaves the generation as it was.
fn keep_running_until(policy: &EcsPowerPolicy) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    policy
        .annotations()
        .get(timing::KEEP_RUNNING_UNTIL)
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// Runs the controller until `shutdown` resolves; reconciles under way then finish.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let policies: Api<EcsPowerPolicy> = watched(&ctx);
    // Only spec changes (a new generation) and the keep-running-until annotation trigger
    // a sync: the operator's own status writes must not, or a status that changes on
    // every try (a request id in an error message) would loop without backoff.
    // Requeues and the Secret watch do the rest.
    let (store, writer) = reflector::store();
    // The first round: every listed policy is planned and its stops queued before any
    // sync starts reporting (syncs wait for it), so that stops go out in full calls
    // within a second of start-up, not after a round of 1000 status writes.
    ctx.fleets.begin_first_round();
    let listed = store.clone();
    let planner = Arc::clone(&ctx);
    let shutdown = shutdown.shared();
    let stopping = shutdown.clone();
    let stopping_syncs = shutdown.clone();
    let first_round = async move {
        let round = async {
            if listed.wait_until_ready().await.is_err() {
                tracing::warn!("the policy watch ended before its first list: no first round");
                return;
            }
            let started = std::time::Instant::now();
            let planning = reconcile::plan_ahead(&listed, &planner);
            let cut_short = tokio::time::timeout(FIRST_ROUND_LIMIT, planning)
                .await
                .is_err();
            tracing::info!(
                took_ms = started.elapsed().as_millis() as u64,
                cut_short,
                "first round done"
            );
        };
        tokio::select! {
            () = round => planner.fleets.end_first_round(),
            // Stopping (SIGTERM, leadership lost): held batches stay held, and the
            // fleets' workers are cancelled once the controller has returned.
            () = stopping => planner.fleets.abandon_first_round(),
        }
        // Ends only with the controller, beside which it runs.
        std::future::pending::<()>().await
    };
    let latest = store.clone();
    let deletions = Arc::clone(&ctx);
    let secrets_changed = Arc::clone(&ctx);
    // Small list pages: a page is deserialised whole, managed fields included (they
    // repeat every server id), before they can be dropped. Measured at the default
    // 500: 32 MB for 500 policies of 100 servers, the operator's peak of memory; at 50,
    // 32 MB for 50 policies of 1000.
    let list_config = watcher::Config::default().page_size(POLICY_LIST_PAGE_SIZE);
    let policy_changes = watcher(policies, list_config)
        .default_backoff()
        // Managed fields list every server id again, as JSON: at 1000 policies the
        // biggest part of the cache, and nothing here reads them.
        .modify(|policy| policy.managed_fields_mut().clear())
        .reflect(writer)
        // A deleted policy is never reconciled again: withdraw what it queued here.
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(policy) = event {
                let key = PolicyKey::of(policy);
                deletions
                    .fleets
                    .policy_deleted(&key, policy.uid().as_deref());
                reconcile::forget_reports(&deletions, &key);
            }
        })
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(keep_running_until),
            Default::default(),
        );
    // A policy whose stops wait in the queue is synced when they go out, not polled;
    // one whose start lead grew, when the policy that made it grow begins starting.
    let fleets_ask = futures::stream::unfold(ctx.fleets.take_to_sync(), |rx| async move {
        let mut rx = rx?;
        let policy = rx.recv().await?;
        Some((policy, Some(rx)))
    })
    .map(|policy| policy.object_ref());
    // Unbounded here: at its limit kube-runtime's runner keeps the syncs that wait in
    // a hash set and takes the first in hash order when a slot frees, so a policy
    // triggered by every call that carries its servers kept winning; measured at 100
    // policies, 22 got their first sync only once every stop was done. The limit is
    // `Context::sync_slots` (first come, first served), taken inside the sync.
    let controller = Controller::for_stream(policy_changes, store.clone())
        .with_config(controller::Config::default())
        .reconcile_on(fleets_ask);
    let controller = match ctx.config.secret_changes {
        SecretChanges::Watch => controller.watches(
            // A fixed Secret should not wait for the error backoff: reconcile every
            // policy that names it, right away. Metadata only: the watch must not
            // stream (and the operator hold) the data of every Secret it may list,
            // other tenants' and Helm releases' included; the credentials come from a
            // `get` of exactly the Secret a policy names.
            watched::<PartialObjectMeta<Secret>>(&ctx),
            watcher::Config::default(),
            move |secret: PartialObjectMeta<Secret>| {
                let namespace = secret.namespace().unwrap_or_default();
                let name = secret.name_any();
                secrets_changed.credentials.invalidate(&namespace, &name);
                policies_naming(&store, &namespace, &name)
            },
        ),
        SecretChanges::Poll(interval) => {
            controller.reconcile_on(secret_poll::changes(secrets_changed, store, interval))
        }
    };
    let sync = move |policy, ctx| {
        reconcile::reconcile(policy, ctx, latest.clone(), stopping_syncs.clone()).boxed()
    };
    let controller = controller
        .graceful_shutdown_on(shutdown)
        .run(sync, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "controller event");
            }
        });
    tokio::select! {
        () = controller => {}
        () = first_round => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_write_takes_a_permit_per_250_named_ids_at_least_one_at_most_all() {
        assert_eq!(status_write_share(0), 1, "a selector's policy");
        assert_eq!(status_write_share(250), 1);
        assert_eq!(status_write_share(251), 2);
        assert_eq!(status_write_share(1000), 4, "four such writes at once");
        assert_eq!(
            status_write_share(10_000),
            STATUS_WRITE_PERMITS,
            "one at a time"
        );
    }
}
