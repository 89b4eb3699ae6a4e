//! One sync of one policy: observe, plan, act, report.

use super::Context;
use super::credentials::{self, CredentialsError};
use super::status::{self, Problem, SyncReport};
use super::stopped_record;
use super::timing::{Timing, timing_of};
use crate::ecs::endpoint;
use crate::ecs::error::{EcsError, ErrorKind, NoAnswer};
use crate::ecs::wire::PowerActionType;
use crate::fleet::{
    CloudTarget, Fleet, FleetRequest, FleetView, Lane, PolicyKey, SyncError, Synced,
};
use crate::plan::Mode;
use crate::policy::{
    EcsPowerPolicy, EcsPowerPolicyStatus, ScheduleStatus, StopType, StoppedByPolicy, status_time,
};
use crate::schedule::StartLead;
use crate::selector::{CappedSelector, Selection};
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
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

/// Syncs `policy` once one of the sync slots is free, as the store holds it then.
/// Gives up the wait, syncing nothing, when `stopping` resolves.
pub async fn reconcile(
    policy: Arc<EcsPowerPolicy>,
    ctx: Arc<Context>,
    store: Store<EcsPowerPolicy>,
    stopping: impl std::future::Future<Output = ()>,
) -> Result<Action, Error> {
    // The first round may be planning this very policy: one plan at a time.
    ctx.fleets.first_round_done().await;
    let _slot = tokio::select! {
        slot = ctx.sync_slots.acquire() => slot.expect("the sync slots are never closed"),
        // Stopping (SIGTERM, leadership lost) waits for the syncs under way, not for
        // every policy that waits for a slot.
        () = stopping => return Ok(Action::await_change()),
    };
    // The runner handed over the policy as it was when the sync was asked for; a
    // suspend or a new spec may have come since. Deleted meanwhile: its watch event
    // withdrew what it had queued.
    let Some(policy) = store.get(&ObjectRef::from_obj(&*policy)) else {
        return Ok(Action::await_change());
    };
    let key = PolicyKey::of(&policy);
    let started = Instant::now();
    let span = tracing::info_span!("reconcile", policy = %key);
    let result = sync(&policy, &ctx, &key).instrument(span).await;
    let label = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciled(label, started.elapsed());
    result
}

/// Why a policy cannot be synced, for the cases a person has to fix (or that last
/// until the cloud is reachable again): Degraded with a reason of its own.
fn problem_of(error: &EcsError) -> Option<Problem> {
    // Those without an answer last until the endpoint is reachable: retried with
    // backoff, shown meanwhile.
    let reason = match error {
        EcsError::UnknownRegion { .. } => "UnknownRegion",
        EcsError::TooLarge { .. } => "ResponseTooLarge",
        EcsError::EndpointNotAllowed { .. } => "EndpointNotAllowed",
        EcsError::Unreachable { cause, .. } => match cause {
            NoAnswer::Unresolved => "EndpointNotResolved",
            NoAnswer::Tls => "TlsHandshakeFailed",
            NoAnswer::Refused | NoAnswer::TimedOut | NoAnswer::Other => "EndpointUnreachable",
        },
        _ => match error.kind() {
            ErrorKind::Auth if error.failure().and_then(|f| f.status) == Some(403) => "Forbidden",
            ErrorKind::Auth => "AuthenticationFailed",
            ErrorKind::Config => "InvalidCloudConfig",
            _ => return None,
        },
    };
    Some(Problem {
        reason,
        message: error.to_string(),
    })
}

fn target_of(
    policy: &EcsPowerPolicy,
    creds: credentials::CloudCredentials,
    allowed_endpoints: &[String],
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
    endpoint::check_allowed(&endpoint, allowed_endpoints)?;
    Ok(CloudTarget {
        endpoint,
        project_id: cloud.project_id.clone(),
        access_key: creds.access_key,
        secret_key: creds.secret_key,
    })
}

/// How far a [`prepare`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Only tell the policy's fleet what it asks about, so that the next listing
    /// covers it.
    Register,
    /// Plan and queue, waiting at most `listing_wait` for the fleet's listing.
    Plan { listing_wait: std::time::Duration },
}

/// What a sync found before reporting it.
enum Prepared {
    /// Its fleet knows what it asks about (see [`Step::Register`]).
    Registered,
    Planned {
        synced: Box<Synced>,
        mode: Mode,
        /// With its start lead time, if it has one.
        timing: Timing,
        fleet: Arc<Fleet>,
    },
    /// The fleet's listing is still under way (a slow endpoint): nothing to report
    /// yet, and the sync slot is given back until it is done.
    Listing,
    /// Nothing could be planned until a person fixes this; `kind` is the ECS error
    /// kind behind it, if it came from the API.
    Problem {
        problem: Problem,
        kind: Option<ErrorKind>,
    },
}

/// A policy that cannot be synced: nothing is stopped in its name meanwhile, with
/// credentials or a project it may no longer have.
fn problem(ctx: &Context, key: &PolicyKey, problem: Problem, kind: Option<ErrorKind>) -> Prepared {
    ctx.fleets.leave(key);
    Prepared::Problem { problem, kind }
}

/// The problem behind `error`, or the error to retry with backoff.
fn prepared_from(ctx: &Context, key: &PolicyKey, error: EcsError) -> Result<Prepared, Error> {
    match problem_of(&error) {
        Some(found) => Ok(problem(ctx, key, found, Some(error.kind()))),
        None => Err(Error::Ecs(error)),
    }
}

/// Observe, plan and queue the stops of one policy, as `timing` wants them now:
/// everything of a sync but the report, in one call of its fleet (or only as far as
/// `step` says). Writes nothing to Kubernetes.
async fn prepare(
    policy: &EcsPowerPolicy,
    ctx: &Context,
    key: &PolicyKey,
    timing: Timing,
    step: Step,
) -> Result<Prepared, Error> {
    let namespace = policy.namespace().unwrap_or_default();
    let secret_name = &policy.spec.cloud.credentials_secret_ref.name;
    let creds = match ctx
        .credentials
        .load(&ctx.client, &namespace, secret_name)
        .await
    {
        Ok(creds) => creds,
        // The API server did not answer as it should: retried with backoff.
        Err(CredentialsError::Kubernetes { source, .. }) if is_transient(&source) => {
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
    let fleet = match target_of(policy, creds, &ctx.config.allowed_endpoints)
        .and_then(|t| ctx.fleets.fleet_for(key, &t))
    {
        Ok(fleet) => fleet,
        Err(error) => return prepared_from(ctx, key, error),
    };
    let adopt = policy
        .status
        .iter()
        .flat_map(|status| &status.jobs)
        .filter(|job| job.status.in_flight())
        .map(|job| (job.job_id.clone(), job.submitted_at.0, job.action))
        .collect();
    let selector = match &policy.spec.selector {
        None => None,
        Some(spec) => match CappedSelector::compile(spec, policy.spec.max_servers) {
            Ok(selector) => Some(selector),
            Err(error) => {
                let found = Problem {
                    reason: "InvalidSelector",
                    message: error.to_string(),
                };
                return Ok(problem(ctx, key, found, None));
            }
        },
    };
    let ids = |refs: &[crate::policy::ServerRef]| refs.iter().map(|s| s.id.clone()).collect();
    let named: Vec<String> = ids(&policy.spec.servers);
    let exclude: Vec<String> = ids(&policy.spec.exclude);
    let stop_type = match policy.spec.stop_type {
        StopType::Soft => PowerActionType::Soft,
        StopType::Hard => PowerActionType::Hard,
    };
    let uid = policy.uid();
    let record = policy
        .status
        .as_ref()
        .and_then(|status| status.stopped_by_policy.as_ref());
    let recorded: &[String] = record.map_or(&[], |record| &record.servers);
    // The status, or this process's memory of the sync that began it: the status
    // read may be older than the one that recorded it.
    let starting_until = record
        .and_then(|r| r.starting_until.as_ref())
        .map(|t| t.0)
        .or_else(|| fleet.starting_until(key));
    // Applied even with nothing left to start: starting that began early goes on
    // until the window's end, so nothing it started is stopped again.
    let lead = match timing.start_lead() {
        Some(StartLead::Fixed(lead)) => lead,
        Some(StartLead::Auto) if !recorded.is_empty() => {
            let pending = timing
                .with_start_lead(std::time::Duration::ZERO, starting_until)
                .starts_pending_until();
            fleet.start_lead(key, recorded.len(), pending)
        }
        _ => std::time::Duration::ZERO,
    };
    let timing = timing.with_start_lead(lead, starting_until);
    if let Some(until) = timing.starting_until() {
        fleet.began_starting(key, until);
    }
    let mode = timing.mode(policy.spec.suspend, policy.spec.dry_run);
    tracing::debug!(
        lead_ms = u64::try_from(lead.as_millis()).unwrap_or(u64::MAX),
        ?starting_until,
        recorded = recorded.len(),
        ?mode,
        "schedule timing"
    );
    let start = if timing.starts_now(policy.spec.suspend, policy.spec.dry_run) {
        recorded
    } else {
        &[]
    };
    let request = FleetRequest {
        policy: key,
        uid: uid.as_deref(),
        named: &named,
        exclude: &exclude,
        selector: selector.as_ref(),
        mode,
        lane: Lane::stop(stop_type),
        backoff: ctx.config.retry_backoff,
        max_age: ctx.config.inventory_max_age,
        listing_wait: match step {
            Step::Register => std::time::Duration::ZERO,
            Step::Plan { listing_wait } => listing_wait,
        },
        adopt,
        start,
    };
    if step == Step::Register {
        fleet.register(&request);
        return Ok(Prepared::Registered);
    }
    match fleet.sync(request).await {
        Ok(Some(synced)) => Ok(Prepared::Planned {
            synced: Box::new(synced),
            mode,
            timing,
            fleet,
        }),
        Ok(None) => Ok(Prepared::Listing),
        Err(SyncError::Ecs(error)) => prepared_from(ctx, key, error),
        Err(SyncError::Journal(error)) => Ok(problem(ctx, key, journal_problem(&error), None)),
    }
}

/// The project's call journal cannot be read or written: nothing is planned (or
/// sent) in the project until it can.
fn journal_problem(error: &impl std::fmt::Display) -> Problem {
    Problem {
        reason: "CallJournalUnavailable",
        message: format!("{error}; nothing is stopped or started in this project until it works"),
    }
}

/// Queues the stops of every policy listed at start, before any sync reports: at
/// 1000 policies the first round of syncs takes seconds of status writes, and the
/// stops need none of them. Problems and errors are left to each policy's sync.
///
/// Every policy first tells its fleet what it asks about, then all are planned: a
/// selector registered while a listing runs needs the next one, and at 100,000
/// servers (seconds a listing) planning 16 at a time would take a listing per turn.
pub async fn plan_ahead(store: &Store<EcsPowerPolicy>, ctx: &Context) {
    let policies = store.state();
    tracing::info!(
        policies = policies.len(),
        "first round: planning every listed policy"
    );
    // The round has a limit of its own: waiting for the listings here lets it queue
    // every policy's stops before any partial call goes out.
    let plan = Step::Plan {
        listing_wait: super::FIRST_ROUND_LIMIT,
    };
    for step in [Step::Register, plan] {
        futures::stream::iter(&policies)
            .for_each_concurrent(usize::from(ctx.config.concurrency), |policy| async move {
                let key = PolicyKey::of(policy);
                // A schedule that cannot be read is the sync's to report; nothing is
                // queued.
                let Ok(timing) = timing_of(policy, jiff::Timestamp::now()) else {
                    return;
                };
                if let Err(error) = prepare(policy, ctx, &key, timing, step).await {
                    tracing::debug!(policy = %key, %error, "planning ahead failed; the sync will report it");
                }
            })
            .await;
    }
}

/// What a deleted policy leaves in the operator's reports: its condition gauges and
/// its Event budget.
pub fn forget_reports(ctx: &Context, key: &PolicyKey) {
    ctx.metrics
        .forget_policy_conditions(&key.namespace, &key.name);
    ctx.recorder.forget(key);
}
/// A selector over its cap stops nothing new until a person looks; a stop-call
/// failure no retry fixes by itself is for every policy of the project; a job given
/// up on, for its policies.
fn fleet_problem(
    view: &FleetView,
    selection: Option<&Selection>,
    max: Option<u32>,
) -> Option<Problem> {
    if let Some(selection) = selection.filter(|s| s.exceeded) {
        return Some(Problem {
            reason: "MaxServersExceeded",
            message: format!(
                "spec.selector matches {} servers, more than spec.maxServers ({}): nothing new is stopped until the selector or maxServers is changed",
                selection.matched,
                max.unwrap_or_default()
            ),
        });
    }
    if let Some(failure) = &view.journal_failure {
        return Some(journal_problem(failure));
    }
    if let Some(failure) = &view.submit_failure {
        return Some(Problem {
            reason: "StopCallRefused",
            message: failure.message.clone(),
        });
    }
    view.lost.first().map(|lost| Problem {
        reason: "JobLost",
        message: format!(
            "stop job {} given up on ({}): {}; its servers are re-observed by the next listing",
            lost.job_id(),
            lost.reason.as_str(),
            lost.detail
        ),
    })
}

async fn sync(policy: &EcsPowerPolicy, ctx: &Context, key: &PolicyKey) -> Result<Action, Error> {
    let previous = policy.status.clone().unwrap_or_default();
    // Before anything else: a schedule that cannot be read stops nothing, and its
    // status shows no times it cannot vouch for.
    let timing = match timing_of(policy, jiff::Timestamp::now()) {
        Ok(timing) => timing,
        Err(found) => {
            ctx.fleets.leave(key);
            return report_problem(policy, ctx, key, &previous, found, None).await;
        }
    };
    let step = Step::Plan {
        listing_wait: ctx.config.listing_wait,
    };
    let prepared = match prepare(policy, ctx, key, timing, step).await {
        Ok(prepared) => prepared,
        Err(error) => return Err(report_error(policy, ctx, key, &previous, error).await),
    };
    let (synced, mode, timing, fleet) = match prepared {
        Prepared::Planned {
            synced,
            mode,
            timing,
            fleet,
        } => (synced, mode, timing, fleet),
        // A sync plans: nothing registers only (it is the first round's first step).
        Prepared::Listing | Prepared::Registered => {
            return Ok(Action::requeue(ctx.config.active_requeue));
        }
        Prepared::Problem { problem, kind } => {
            if let Some(kind) = kind {
                ctx.metrics.error(kind.as_str());
            }
            let schedule = timing.status();
            return report_problem(policy, ctx, key, &previous, problem, schedule).await;
        }
    };
    let Synced {
        view,
        powering_off,
        selection,
        queue,
    } = *synced;
    let now = jiff::Timestamp::now();
    let stopped_by_policy = timing.records_stops().then(|| StoppedByPolicy {
        starting_until: timing.starting_until().map(status_time),
        ..stopped_record::next(
            previous.stopped_by_policy.as_ref(),
            &view.stopped,
            &view.starts.settled,
        )
    });
    let problem = fleet_problem(&view, selection.as_ref(), policy.spec.max_servers)
        .or_else(|| stopped_by_policy.as_ref().and_then(stopped_record::problem));
    let next = status::from_sync(
        &previous,
        &SyncReport {
            generation: policy.meta().generation,
            outcome: &view.outcome,
            jobs: &view.jobs,
            failing: &view.failing,
            intent: timing.intent(mode),
            schedule: timing.status(),
            selection: selection.as_ref(),
            problem,
            queue,
            stopped_by_policy,
            now,
        },
    );
    let recorded = next
        .stopped_by_policy
        .as_ref()
        .map_or(0, |record| record.servers.len());
    let gained = next
        .stopped_by_policy
        .as_ref()
        .is_some_and(|record| stopped_record::gained(previous.stopped_by_policy.as_ref(), record));
    write_status(policy, ctx, key, &previous, next).await?;
    fleet.recorded(key, &view.jobs);
    ctx.synced(key);
    // Its stops all wait for budget: it is synced when they go out (the worker says
    // so), not every few seconds for as long as the budget makes it wait, but often
    // enough that the estimate it shows follows the calls' real pace.
    let waiting = (!powering_off && view.waiting_for_budget).then(|| {
        queue
            .as_ref()
            .map_or(ctx.config.drift_interval, |standing| {
                status::estimate_refresh_in(standing, now)
            })
    });
    let due = next_sync_in(ctx, &view, waiting);
    // Servers recorded after the window's end (a stop call's outcome decided late, a
    // stop job that finished late) are started by the next sync, and nothing else
    // syncs the policy before the drift interval: soon.
    let due = if gained && timing.starts_now(policy.spec.suspend, policy.spec.dry_run) {
        due.min(ctx.config.active_requeue)
    } else {
        due
    };
    // At the next window edge or override expiry, not a drift interval later.
    // The Auto lead the requeue waits for counts what this sync recorded: the record
    // it read may lack the servers of the stop jobs it just took in, and a lead for
    // fewer servers would begin starting too late.
    let timing = match timing.start_lead() {
        Some(StartLead::Auto) if recorded > 0 => timing.with_lead_at_least(fleet.start_lead(
            key,
            recorded,
            timing.starts_pending_until(),
        )),
        _ => timing,
    };
    let edge = timing.next_change_in(jiff::Timestamp::now());
    Ok(Action::requeue(edge.map_or(due, |edge| edge.min(due))))
}

/// Soon while something of the policy's is under way; a drift interval later once
/// all is settled; while all it waits for is budget (`waiting_for_budget`: when its
/// estimate should be reworked), then or a drift interval later, whichever is first.
fn next_sync_in(
    ctx: &Context,
    view: &FleetView,
    waiting_for_budget: Option<std::time::Duration>,
) -> std::time::Duration {
    let outcome = &view.outcome;
    let active = !outcome.to_stop.is_empty()
        || outcome.summary.stopping > 0
        || !view.starts.waiting.is_empty()
        || view.jobs.iter().any(|job| !job.status.is_terminal());
    let base = match waiting_for_budget {
        Some(refresh) => ctx.config.drift_interval.min(refresh),
        None if active => ctx.config.active_requeue,
        None => ctx.config.drift_interval,
    };
    outcome.next_retry_in.map_or(base, |retry| retry.min(base))
}

/// An error reading the Secret that may pass by itself: the API server unreachable
/// or overloaded. A refusal (403) or a missing Secret (404) is for a person to fix.
fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// A problem a person must fix: Degraded status, a Warning Event, and a retry with
/// backoff (a fixed Secret triggers a sync at once through the Secret watch).
async fn report_problem(
    policy: &EcsPowerPolicy,
    ctx: &Context,
    key: &PolicyKey,
    previous: &EcsPowerPolicyStatus,
    problem: Problem,
    schedule: Option<ScheduleStatus>,
) -> Result<Action, Error> {
    tracing::warn!(reason = problem.reason, message = %problem.message, "policy cannot be synced");
    let next = status::from_problem(
        previous,
        policy.meta().generation,
        &problem,
        schedule,
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
    key: &PolicyKey,
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
    key: &PolicyKey,
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
    let _writing = ctx
        .status_write_permit(policy.spec.servers.len() + policy.spec.exclude.len())
        .await;
    let api: Api<EcsPowerPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    api.patch_status(
        &policy.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(set_status(&next)),
    )
    .await
    .map_err(|source| Error::StatusPatch {
        policy: key.to_string(),
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
