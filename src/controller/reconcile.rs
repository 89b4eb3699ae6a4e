//! One sync of one policy: observe, plan, act, report.

use super::Context;
use super::credentials::{self, CredentialsError};
use super::status::{self, Problem, SyncReport};
use crate::ecs::endpoint;
use crate::ecs::error::{EcsError, ErrorKind};
use crate::ecs::wire::PowerActionType;
use crate::fleet::{CloudTarget, Fleet, PolicyObservation};
use crate::plan::{Mode, ObservedPower, PlanInput, PlanOutcome, RetryState, plan_stops};
use crate::policy::{EcsPowerPolicy, EcsPowerPolicyStatus, StopType};
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Errors that make a sync fail outright (and retry with backoff). Configuration and
/// cloud errors a person must fix are not here: they become a Degraded condition.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing status of {policy}: {source}")]
    StatusPatch {
        policy: String,
        #[source]
        source: kube::Error,
    },
    #[error("ECS API: {0}")]
    Ecs(#[from] EcsError),
    #[error("{0}")]
    Credentials(#[from] CredentialsError),
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::StatusPatch { .. } => "kubernetes",
            Error::Ecs(error) => error.kind().as_str(),
            Error::Credentials(_) => "kubernetes",
        }
    }
}

pub fn policy_key(policy: &EcsPowerPolicy) -> String {
    format!(
        "{}/{}",
        policy.namespace().unwrap_or_default(),
        policy.name_any()
    )
}

pub async fn reconcile(policy: Arc<EcsPowerPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The first round may be planning this very policy: one plan at a time.
    ctx.first_round_done().await;
    let key = policy_key(&policy);
    let started = Instant::now();
    let span = tracing::info_span!("reconcile", policy = %key);
    let result = sync(&policy, &ctx, &key).instrument(span).await;
    let label = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciled(label, started.elapsed());
    result
}

/// Why a policy cannot be synced, for the cases a person has to fix.
fn problem_of(error: &EcsError) -> Option<Problem> {
    let reason = match error.kind() {
        ErrorKind::Auth if error.failure().and_then(|f| f.status) == Some(403) => "Forbidden",
        ErrorKind::Auth => "AuthenticationFailed",
        ErrorKind::Config => "InvalidCloudConfig",
        _ => return None,
    };
    Some(Problem {
        reason,
        message: error.to_string(),
    })
}

fn target_of(
    policy: &EcsPowerPolicy,
    creds: credentials::CloudCredentials,
) -> Result<CloudTarget, EcsError> {
    let cloud = &policy.spec.cloud;
    let endpoint = match &cloud.endpoint {
        Some(url) => {
            let url = url::Url::parse(url)
                .map_err(|e| EcsError::Config(format!("spec.cloud.endpoint `{url}`: {e}")))?;
            endpoint::validate(&url)?;
            url
        }
        None => endpoint::default_ecs_endpoint(&cloud.region)?,
    };
    Ok(CloudTarget {
        endpoint,
        project_id: cloud.project_id.clone(),
        access_key: creds.access_key,
        secret_key: creds.secret_key,
    })
}

/// A policy planned against its fleet, its stops queued.
struct Planned {
    fleet: Arc<Fleet>,
    desired: HashSet<String>,
    observed: PolicyObservation,
    retries: HashMap<String, RetryState>,
    mode: Mode,
    outcome: PlanOutcome,
    now: jiff::Timestamp,
}

/// What a sync found before reporting it.
enum Prepared {
    Planned(Box<Planned>),
    /// Nothing could be planned until a person fixes this; `kind` is the ECS error
    /// kind behind it, if it came from the API.
    Problem {
        problem: Problem,
        kind: Option<&'static str>,
    },
}

/// A policy that cannot be synced until a person acts: nothing is stopped in its name
/// meanwhile, with credentials or a project it may no longer have.
fn problem(ctx: &Context, key: &str, problem: Problem, kind: Option<&'static str>) -> Prepared {
    ctx.fleets.forget_policy(key);
    Prepared::Problem { problem, kind }
}

/// The problem a person must fix behind `error`, or the error to retry with backoff.
fn prepared_from(ctx: &Context, key: &str, error: EcsError) -> Result<Prepared, Error> {
    match problem_of(&error) {
        Some(found) => Ok(problem(ctx, key, found, Some(error.kind().as_str()))),
        None => Err(Error::Ecs(error)),
    }
}

/// Observe, plan and queue the stops of one policy: everything of a sync but the
/// report. Writes nothing to Kubernetes.
async fn prepare(policy: &EcsPowerPolicy, ctx: &Context, key: &str) -> Result<Prepared, Error> {
    let mode = if policy.spec.suspend {
        Mode::Suspend
    } else if policy.spec.dry_run {
        Mode::DryRun
    } else {
        Mode::Act
    };
    // Suspended or dry run: nothing queued earlier goes out in its name, whatever
    // happens below (a missing Secret, an unreachable API).
    if mode != Mode::Act {
        ctx.fleets.withdraw_policy(key);
    }
    let namespace = policy.namespace().unwrap_or_default();
    let secret_name = &policy.spec.cloud.credentials_secret_ref.name;
    let creds = match ctx
        .credentials
        .load(&ctx.client, &namespace, secret_name)
        .await
    {
        Ok(creds) => creds,
        Err(CredentialsError::Kubernetes { source, .. }) if !is_not_found(&source) => {
            return Err(Error::Credentials(CredentialsError::Kubernetes {
                namespace,
                name: secret_name.clone(),
                source,
            }));
        }
        Err(error) => {
            let found = Problem {
                reason: error.reason(),
                message: error.to_string(),
            };
            return Ok(problem(ctx, key, found, None));
        }
    };
    let fleet = match target_of(policy, creds).and_then(|t| ctx.fleets.fleet_for(key, &t)) {
        Ok(fleet) => fleet,
        Err(error) => return prepared_from(ctx, key, error),
    };

    let previous_jobs = policy.status.iter().flat_map(|status| &status.jobs);
    fleet.adopt_jobs(
        key,
        previous_jobs
            .filter(|job| job.status.in_flight())
            .map(|job| (job.job_id.clone(), job.submitted_at.0)),
    );
    let desired: Vec<String> = policy.spec.servers.iter().map(|s| s.id.clone()).collect();
    let observed = match fleet
        .observe(key, &desired, ctx.config.inventory_max_age)
        .await
    {
        Ok(observed) => observed,
        Err(error) => return prepared_from(ctx, key, error),
    };
    let desired_set: HashSet<String> = desired.iter().cloned().collect();
    let retries = fleet.retry_states(&desired_set);
    let now = jiff::Timestamp::now();
    let outcome = plan_stops(&PlanInput {
        desired: &desired,
        observed: &observed.servers,
        in_flight: &observed.in_flight,
        retries: &retries,
        now,
        mode,
        backoff: ctx.config.retry_backoff,
    });

    let stop_type = match policy.spec.stop_type {
        StopType::Soft => PowerActionType::Soft,
        StopType::Hard => PowerActionType::Hard,
    };
    // Queued ids of servers removed from its list must not be stopped in its name.
    if mode == Mode::Act {
        fleet.withdraw(key, &desired_set);
    }
    fleet.enqueue(key, outcome.to_stop.clone(), stop_type);
    Ok(Prepared::Planned(Box::new(Planned {
        fleet,
        desired: desired_set,
        observed,
        retries,
        mode,
        outcome,
        now,
    })))
}

/// Queues the stops of every policy listed at start, before any sync reports: at
/// 1000 policies the first round of syncs takes seconds of status writes, and the
/// stops need none of them. Problems and errors are left to each policy's sync.
pub async fn plan_ahead(store: &Store<EcsPowerPolicy>, ctx: &Context) {
    let policies = store.state();
    tracing::info!(
        policies = policies.len(),
        "first round: planning every listed policy"
    );
    futures::stream::iter(policies)
        .for_each_concurrent(usize::from(ctx.config.concurrency), |policy| async move {
            let key = policy_key(&policy);
            if let Err(error) = prepare(&policy, ctx, &key).await {
                tracing::debug!(policy = %key, %error, "planning ahead failed; the sync will report it");
            }
            // Deleted while the round ran: its deletion found nothing to withdraw yet.
            if store.get(&ObjectRef::from_obj(&*policy)).is_none() {
                ctx.fleets.forget_policy(&key);
            }
        })
        .await;
}

/// What a deleted policy leaves in the operator's reports: its condition gauges and
/// its Event budget.
pub fn forget_reports(policy: &EcsPowerPolicy, ctx: &Context, key: &str) {
    ctx.metrics
        .forget_policy_conditions(&policy.namespace().unwrap_or_default(), &policy.name_any());
    ctx.recorder.forget(key);
}

async fn sync(policy: &EcsPowerPolicy, ctx: &Context, key: &str) -> Result<Action, Error> {
    let previous = policy.status.clone().unwrap_or_default();
    let prepared = match prepare(policy, ctx, key).await {
        Ok(prepared) => prepared,
        Err(error) => return Err(report_error(policy, ctx, key, &previous, error).await),
    };
    let planned = match prepared {
        Prepared::Planned(planned) => planned,
        Prepared::Problem { problem, kind } => {
            if let Some(kind) = kind {
                ctx.metrics.error(kind);
            }
            return report_problem(policy, ctx, key, &previous, problem).await;
        }
    };
    let Planned {
        fleet,
        desired,
        observed,
        retries,
        mode,
        outcome,
        now,
    } = *planned;
    let jobs = fleet.jobs_of(key, &desired);
    let failing: HashMap<_, _> = retries
        .into_iter()
        .filter(|(id, _)| observed.servers.get(id) != Some(&ObservedPower::Stopped))
        .collect();
    let problem = fleet.last_submit_failure().and_then(|failure| {
        matches!(failure.kind, "auth" | "config" | "invalid").then(|| Problem {
            reason: "StopCallRefused",
            message: failure.message,
        })
    });
    let next = status::from_sync(
        &previous,
        &SyncReport {
            generation: policy.meta().generation,
            outcome: &outcome,
            jobs: &jobs,
            failing: &failing,
            dry_run: mode == Mode::DryRun,
            problem,
            now,
        },
    );
    write_status(policy, ctx, key, &previous, next).await?;
    ctx.synced(key);
    // Its stops all wait for budget: it is synced when they go out (the worker says
    // so), not every few seconds for as long as the budget makes it wait.
    let powering_off = observed
        .servers
        .values()
        .any(|power| *power == ObservedPower::Stopping);
    let waiting = !powering_off && fleet.only_queued(key, &desired);
    Ok(Action::requeue(next_sync_in(ctx, &outcome, &jobs, waiting)))
}

fn next_sync_in(
    ctx: &Context,
    outcome: &PlanOutcome,
    jobs: &[crate::fleet::JobView],
    waiting_for_budget: bool,
) -> std::time::Duration {
    let active = !outcome.to_stop.is_empty()
        || outcome.summary.stopping > 0
        || jobs.iter().any(|job| !job.status.is_terminal());
    let base = if active && !waiting_for_budget {
        ctx.config.active_requeue
    } else {
        ctx.config.drift_interval
    };
    outcome.next_retry_in.map_or(base, |retry| retry.min(base))
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// A problem a person must fix: Degraded status, a Warning Event, and a retry with
/// backoff (a fixed Secret triggers a sync at once through the Secret watch).
async fn report_problem(
    policy: &EcsPowerPolicy,
    ctx: &Context,
    key: &str,
    previous: &EcsPowerPolicyStatus,
    problem: Problem,
) -> Result<Action, Error> {
    tracing::warn!(reason = problem.reason, message = %problem.message, "policy cannot be synced");
    let next = status::from_problem(
        previous,
        policy.meta().generation,
        &problem,
        jiff::Timestamp::now(),
    );
    write_status(policy, ctx, key, previous, next).await?;
    Ok(Action::requeue(ctx.failed_sync(key)))
}

/// A sync that failed with an error retried with backoff: its spec is marked observed
/// and Reconciling (see [`status::from_sync_error`]). Returns the error, or the one of
/// writing that status.
async fn report_error(
    policy: &EcsPowerPolicy,
    ctx: &Context,
    key: &str,
    previous: &EcsPowerPolicyStatus,
    error: Error,
) -> Error {
    let next = status::from_sync_error(
        previous,
        policy.meta().generation,
        &error.to_string(),
        jiff::Timestamp::now(),
    );
    match write_status(policy, ctx, key, previous, next).await {
        Ok(()) => error,
        Err(write_failed) => write_failed,
    }
}

/// One patch of the status subresource, only when it changed; then the Events for what
/// changed. A JSON patch that sets the whole status: the operator is its only writer,
/// and a server-side apply would make the API server merge field ownership over the
/// policy's whole server list on every write (measured: syncs of 1000 policies were
/// bound by it).
async fn write_status(
    policy: &EcsPowerPolicy,
    ctx: &Context,
    key: &str,
    previous: &EcsPowerPolicyStatus,
    next: EcsPowerPolicyStatus,
) -> Result<(), Error> {
    let namespace = policy.namespace().unwrap_or_default();
    if next == *previous {
        // Set on every sync, not only on writes: after a restart the gauges of a
        // policy whose status stays as it was must be there too.
        ctx.metrics
            .policy_conditions(&namespace, &policy.name_any(), &next.conditions);
        return Ok(());
    }
    let api: Api<EcsPowerPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    api.patch_status(
        &policy.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(set_status(&next)),
    )
    .await
    .map_err(|source| Error::StatusPatch {
        policy: key.to_owned(),
        source,
    })?;
    ctx.metrics.status_writes.inc();
    ctx.metrics
        .policy_conditions(&namespace, &policy.name_any(), &next.conditions);
    ctx.recorder
        .status_written(policy, key, previous, &next)
        .await;
    Ok(())
}

/// `add` replaces the member when it exists and creates it when it does not (RFC 6902).
fn set_status(status: &EcsPowerPolicyStatus) -> json_patch::Patch {
    serde_json::from_value(serde_json::json!([
        { "op": "add", "path": "/status", "value": status }
    ]))
    .expect("an add operation with a serialisable value is a valid JSON patch")
}
