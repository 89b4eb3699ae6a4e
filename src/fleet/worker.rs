//! The fleet's worker, the only caller of the batch stop and start API: thin I/O around
//! the state's decisions. It takes the call that is due ([`FleetState::take_due`]),
//! records it in the project's call journal, sends it, records the answer in the
//! journal and the state ([`FleetState::record_call`]), and only then takes the next;
//! when a batch is due and what an answer means is decided in the state.
//!
//! [`FleetState::take_due`]: super::state::FleetState::take_due
//! [`FleetState::record_call`]: super::state::FleetState::record_call

use super::Fleet;
use super::state::{Due, DueCall, Lane, Now};
use crate::policy::JobAction;
use crate::server_id::ServerId;
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
        for lane in Lane::ALL {
            loop {
                let gate = fleet.first_round.gate();
                let due = fleet
                    .lock()
                    .take_due(lane, gate, &fleet.budget, Instant::now());
                match due {
                    // Stopped (leadership lost) while calls were due: none goes out.
                    Due::Call(_) if fleet.shutdown.is_cancelled() => return,
                    Due::Call(call) => send(&fleet, call).await,
                    // On the dot, not at the next tick: over 100 calls, ticks would
                    // add up to seconds.
                    Due::BudgetAt(at) => {
                        wake_at = wake_at.min(at);
                        break;
                    }
                    Due::Nothing => break,
                }
            }
        }
    }
}

async fn send(fleet: &Fleet, call: DueCall) {
    let action = call.lane.action();
    let ids: Vec<String> = call.ids.iter().map(ServerId::to_string).collect();
    // Written before it goes: a process killed from here on leaves its successor
    // this call's budget and servers, whatever happens to the answer.
    let recording = Instant::now();
    let seq = match fleet
        .journal
        .begin(
            call.lane.job_action(),
            ids.clone(),
            call.policies.clone(),
            Now::current(),
        )
        .await
    {
        Ok(seq) => {
            fleet.lock().journal_written(Ok(()));
            seq
        }
        Err(error) => {
            fleet.metrics.error("journal");
            tracing::warn!(%error, servers = call.ids.len(), "call held back: its journal record was not written");
            let mut state = fleet.lock();
            state.journal_written(Err(error.to_string()));
            state.not_sent(call.id, Instant::now());
            return;
        }
    };
    // Leadership may have been lost while the record was written.
    if fleet.shutdown.is_cancelled() {
        fleet.lock().not_sent(call.id, Instant::now());
        return;
    }
    let journal_ms = u64::try_from(recording.elapsed().as_millis()).unwrap_or(u64::MAX);
    let answer = fleet.api.power(&ids, action).await;
    let answered_at = Now::current();
    let answered = answer.as_ref().map(String::as_str);
    // The job id is durable before the next call goes: a kill loses at most this
    // one round trip. Not written, it goes with the next call's record.
    if let Err(error) = fleet.journal.answered(seq, answered, answered_at).await {
        fleet.metrics.error("journal");
        tracing::warn!(%error, "a call's answer was not written to its journal");
    }
    // As of the answer: the budget counts the call from then, and the write of the
    // answer overlaps the wait for the next call's budget.
    let recorded = fleet.lock().record_call(call.id, answered, answered_at);
    // The worker's wake-up for the budget, its journal record and the request: what
    // holds the next call back beyond the budget's window.
    let took_ms = u64::try_from(recorded.took.as_millis()).unwrap_or(u64::MAX);
    match &answer {
        Ok(job_id) => {
            if call.lane.job_action() == JobAction::Stop {
                fleet.metrics.stop_calls.inc();
            }
            tracing::info!(%job_id, servers = call.ids.len(), ?action, took_ms, journal_ms, "job submitted");
        }
        Err(error) => {
            fleet.metrics.error(error.kind().as_str());
            tracing::warn!(%error, servers = call.ids.len(), ?action, kind = %error.kind(), took_ms, journal_ms, "call failed");
        }
    }
    if recorded.relist {
        fleet.inventory.invalidate();
    }
    // Whatever the answer, these policies' status has news: a job, or a failure.
    for policy in recorded.policies {
        // Nobody listening (no controller, or it stopped): nothing to tell.
        let _ = fleet.to_sync.send(policy);
    }
}

/// Follows the fleet's unfinished jobs to the end, whether policies sync with it or
/// not (all of them moved or were deleted: it is retired only after that). Beside the
/// worker and the syncs, so a slow poll holds neither a call nor a sync slot.
pub(super) async fn follow_jobs(fleet: Arc<Fleet>) {
    let interval = fleet.config.job_poll_interval;
    loop {
        tokio::select! {
            _ = fleet.shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if fleet.lock().unfinished_count() > 0 {
            fleet.poll_jobs(interval).await;
        }
    }
}
