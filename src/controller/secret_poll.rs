//! Secret changes without a Secret watch (`--secret-changes=poll`), for the namespaced
//! RBAC mode: the operator may only `get` the Secrets that namespaces granted it, and a
//! watch (list + watch of every Secret) is exactly what it no longer has. Every
//! interval, the metadata of each Secret some policy names is read with a `get` (no
//! data), compared with the version its credentials came from, and the policies of a
//! changed, created, deleted or newly forbidden Secret are synced at once, so a rotated
//! key is used within one interval and a sync.

use super::Context;
use super::credentials;
use crate::policy::EcsPowerPolicy;
use futures::{Stream, StreamExt};
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Secrets looked at at once, so that a round of many namespaces stays short without
/// crowding the API server.
const CONCURRENT_GETS: usize = 8;

/// Each Secret the policies in `store` name, once: `(namespace, name)`.
fn secrets_named(store: &Store<EcsPowerPolicy>) -> BTreeSet<(String, String)> {
    store
        .state()
        .iter()
        .filter_map(|policy| {
            let namespace = policy.metadata.namespace.clone()?;
            Some((
                namespace,
                policy.spec.cloud.credentials_secret_ref.name.clone(),
            ))
        })
        .collect()
}

/// One look at every named Secret: those whose version moved, with their kept
/// credentials dropped.
async fn changed_secrets(ctx: &Context, store: &Store<EcsPowerPolicy>) -> Vec<(String, String)> {
    futures::stream::iter(secrets_named(store))
        .map(|(namespace, name)| async move {
            let current = credentials::current_version(&ctx.client, &namespace, &name).await;
            ctx.credentials
                .outdated(&namespace, &name, &current)
                .then_some((namespace, name))
        })
        .buffer_unordered(CONCURRENT_GETS)
        .filter_map(|changed| async move { changed })
        .collect()
        .await
}

/// The policies to sync because their Secret changed, one poll per `interval`, for as
/// long as the controller runs.
pub fn changes(
    ctx: Arc<Context>,
    store: Store<EcsPowerPolicy>,
    interval: Duration,
) -> impl Stream<Item = ObjectRef<EcsPowerPolicy>> {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures::stream::unfold(ticks, move |mut ticks| {
        let (ctx, store) = (Arc::clone(&ctx), store.clone());
        async move {
            ticks.tick().await;
            let policies: Vec<_> = changed_secrets(&ctx, &store)
                .await
                .into_iter()
                .flat_map(|(namespace, name)| super::policies_naming(&store, &namespace, &name))
                .collect();
            if !policies.is_empty() {
                tracing::info!(
                    policies = policies.len(),
                    "Secret changed: syncing its policies"
                );
            }
            Some((futures::stream::iter(policies), ticks))
        }
    })
    .flatten()
}
