//! The fleet's stop worker: the only caller of the batch stop API.
//!
//! A batch goes out when it is full (`max_per_call` ids, or the whole budget if that
//! is smaller) or when the queue has stopped growing for a linger (other policies'
//! syncs had their chance to join; during the controller's first round, when that
//! ends), and only when the per-minute budget covers all of it: waiting for a full
//! budget beats splitting a call, since the budget counts servers, not calls.

use super::{Fleet, SubmitFailure, TrackedJob};
use crate::ecs::error::EcsError;
use crate::ecs::wire::PowerActionType;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often the worker looks at its queues when nothing wakes it earlier.
const TICK: Duration = Duration::from_millis(100);

pub(super) async fn run(fleet: Arc<Fleet>) {
    let mut wake_at = Instant::now() + TICK;
    loop {
        tokio::select! {
            _ = fleet.shutdown.cancelled() => return,
            _ = fleet.wake.notified() => {}
            _ = tokio::time::sleep_until(wake_at) => {}
        }
        wake_at = Instant::now() + TICK;
        for stop_type in [PowerActionType::Soft, PowerActionType::Hard] {
            loop {
                match next_due_batch(&fleet, stop_type) {
                    Next::Batch(batch) => submit(&fleet, stop_type, batch).await,
                    // On the dot, not at the next tick: over 100 calls, ticks would
                    // add up to seconds.
                    Next::BudgetAt(at) => {
                        wake_at = wake_at.min(at);
                        break;
                    }
                    Next::Nothing => break,
                }
            }
        }
    }
}

type DueBatch = crate::plan::Batch<super::PolicyKey>;

enum Next {
    Batch(DueBatch),
    /// A batch is due, and the budget covers it from then on.
    BudgetAt(Instant),
    Nothing,
}

fn next_due_batch(fleet: &Fleet, stop_type: PowerActionType) -> Next {
    let mut state = fleet.lock();
    let now = Instant::now();
    if state.throttled_until.is_some_and(|until| until > now) {
        return Next::Nothing;
    }
    let queued = state.queues.get(&stop_type).map_or(0, |q| q.len());
    if queued == 0 {
        return Next::Nothing;
    }
    // A budget smaller than a full call (`--budget-servers` below 1000) makes smaller
    // full calls: a batch the budget can never cover would wait forever.
    let full = fleet
        .config
        .max_per_call
        .min(fleet.budget.limits().servers_per_window);
    let wanted = queued.min(full);
    let gate = fleet.first_round.gate();
    let lingered = state
        .lingering
        .get(&stop_type)
        .is_some_and(|l| l.partial_batch_due(now, fleet.config.linger, gate));
    if wanted < full && !lingered {
        return Next::Nothing;
    }
    let fits_at = fleet.budget.fits_at(wanted, now);
    if fits_at > now {
        return Next::BudgetAt(fits_at);
    }
    let Some(queue) = state.queues.get_mut(&stop_type) else {
        return Next::Nothing;
    };
    let batch = queue.take_batch(wanted);
    if queue.is_empty() {
        state.lingering.remove(&stop_type);
    } else {
        state
            .lingering
            .insert(stop_type, super::Lingering::new(now));
    }
    state.submitting.extend(batch.ids().map(str::to_owned));
    Next::Batch(batch)
}

async fn submit(fleet: &Fleet, stop_type: PowerActionType, batch: DueBatch) {
    let submitted_at = jiff::Timestamp::now();
    let ids: Vec<String> = batch.ids().map(str::to_owned).collect();
    let policies: BTreeSet<super::PolicyKey> = batch
        .entries
        .iter()
        .flat_map(|e| e.policies.iter().cloned())
        .collect();
    let result = fleet.api.stop_servers(&ids, stop_type).await;
    // Whatever the answer, these policies' status has news: a job, or a failure.
    for policy in &policies {
        // Nobody listening (no controller, or it stopped): nothing to tell.
        let _ = fleet.submitted.send(policy.clone());
    }
    match result {
        Ok(job_id) => {
            fleet.metrics.stop_calls.inc();
            tracing::info!(%job_id, servers = ids.len(), ?stop_type, "stop job submitted");
            let mut state = fleet.lock();
            for id in &ids {
                state.submitting.remove(id);
            }
            state.last_submit_failure = None;
            state.jobs.insert(
                job_id.clone(),
                TrackedJob::submitted(job_id, ids, policies, submitted_at),
            );
        }
        Err(error) => handle_submit_error(fleet, stop_type, batch, error),
    }
}

fn handle_submit_error(
    fleet: &Fleet,
    stop_type: PowerActionType,
    batch: DueBatch,
    error: EcsError,
) {
    let kind = error.kind().as_str();
    fleet.metrics.error(kind);
    let now = Instant::now();
    let mut state = fleet.lock();
    for id in batch.ids() {
        state.submitting.remove(id);
    }
    match error.kind() {
        // Not accepted: the same servers go back to the front of the queue.
        crate::ecs::error::ErrorKind::Throttled | crate::ecs::error::ErrorKind::Transient => {
            tracing::warn!(%error, servers = batch.len(), "stop call refused for now; will retry");
            state.throttled_until = Some(now + fleet.config.throttle_backoff);
            // Back in the queue (at its end: order matters less than not losing them).
            let queue = state.queues.entry(stop_type).or_default();
            for entry in batch.entries {
                for policy in entry.policies {
                    queue.push(policy, [entry.id.clone()]);
                }
            }
            state
                .lingering
                .entry(stop_type)
                .or_insert_with(|| super::Lingering::new(now));
        }
        // Maybe accepted: never re-send blindly; the servers' own state decides.
        crate::ecs::error::ErrorKind::OutcomeUnknown => {
            tracing::warn!(%error, servers = batch.len(), "stop call outcome unknown; re-observing before any retry");
            let until = now + fleet.config.outcome_unknown_grace;
            for entry in batch.entries {
                state.outcome_unknown.insert(entry.id, until);
            }
            drop(state);
            fleet.inventory.invalidate();
        }
        _ => {
            tracing::warn!(%error, servers = batch.len(), "stop call failed");
            let at = jiff::Timestamp::now();
            let (code, message) = (
                error
                    .failure()
                    .and_then(|f| f.code.clone())
                    .unwrap_or_else(|| kind.to_owned()),
                error.to_string(),
            );
            for id in batch.ids() {
                let attempts = state.retry.get(id).map_or(0, |r| r.attempts) + 1;
                state.retry.insert(
                    id.to_owned(),
                    crate::plan::RetryState {
                        attempts,
                        last_failure_at: at,
                        code: code.clone(),
                        message: message.clone(),
                    },
                );
            }
            state.last_submit_failure = Some(SubmitFailure { kind, message, at });
        }
    }
}
