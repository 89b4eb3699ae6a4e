//! The call journal of a project: every batch call is recorded here before it is
//! sent, and its job id as soon as it is answered, so that a process killed at any
//! moment leaves its successor what it needs: the budget the cloud still counts, the
//! jobs still running, and the calls whose outcome nobody knows. One per (endpoint,
//! project), shared by its fleets like the budget; the registry owns it.
//!
//! Why a journal of its own, not the policies' status: one call carries the servers
//! of up to a thousand policies, and waiting for each of their statuses to be written
//! before the next call held every call for seconds; a status cannot say what was sent
//! before its answer came, either.

mod record;
mod store;

pub use record::{Inherited, InheritedCall, InheritedJob, Retention};
#[cfg(test)]
pub use store::MemoryJournals;
pub use store::{ConfigMapJournals, JournalStore, JournalStores};

use super::PolicyKey;
use super::state::Now;
use crate::ecs::budget::ActionBudget;
use crate::ecs::error::{EcsError, ErrorKind};
use crate::policy::JobAction;
use record::Journal;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "reading the call journal ConfigMap {name} (the operator's namespace, --lease-namespace, must exist, and the operator may get ConfigMaps there): {}",
        said(.source)
    )]
    Read { name: String, source: kube::Error },
    #[error(
        "writing the call journal ConfigMap {name} (the operator's namespace, --lease-namespace, must exist, and the operator may create and patch ConfigMaps there): {}",
        said(.source)
    )]
    Write { name: String, source: kube::Error },
    #[error(
        "the call journal ConfigMap {name} would hold {bytes} bytes, more than a ConfigMap may: too many calls unfinished"
    )]
    TooLarge { name: String, bytes: usize },
    #[error("the call journal does not parse: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("the call journal has not been read yet")]
    NotRead,
}

/// What the API server said, without the whole response it came in.
fn said(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

pub struct CallJournal {
    store: Arc<dyn JournalStore>,
    budget: Arc<ActionBudget>,
    retention: Retention,
    journal: Mutex<Journal>,
    /// One write at a time, each of the whole journal as it is then.
    writing: tokio::sync::Mutex<()>,
    inherited: OnceCell<Inherited>,
}

impl CallJournal {
    pub fn new(
        store: Arc<dyn JournalStore>,
        budget: Arc<ActionBudget>,
        retention: Retention,
    ) -> Self {
        Self {
            store,
            budget,
            retention,
            journal: Mutex::default(),
            writing: tokio::sync::Mutex::new(()),
            inherited: OnceCell::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().expect("call journal lock poisoned")
    }

    /// What the processes before this one left, read once (the budget takes in what
    /// the cloud still counts as it is read). Until it is read, nothing may be
    /// planned or sent in this project; a failed read is tried again by the next
    /// caller.
    pub async fn inherited(&self) -> Result<&Inherited, JournalError> {
        self.inherited
            .get_or_try_init(|| async {
                let mut journal = match self.store.load().await? {
                    Some(text) => Journal::decode(&text)?,
                    None => Journal::default(),
                };
                let now = Now::current();
                let inherited = journal.inherit(self.retention, now.wall);
                for &(from, servers) in &inherited.spent {
                    self.budget.carry(now.instant_of(from), servers);
                }
                if !inherited.spent.is_empty() || !inherited.unknown.is_empty() {
                    tracing::info!(
                        budget_spent = inherited.spent.iter().map(|(_, n)| n).sum::<usize>(),
                        jobs = inherited.jobs.len(),
                        unknown_outcomes = inherited
                            .unknown
                            .iter()
                            .map(|call| call.ids.len())
                            .sum::<usize>(),
                        "call journal taken over from an earlier process"
                    );
                }
                *self.lock() = journal;
                Ok(inherited)
            })
            .await
    }

    /// Records a call about to carry `ids` of `policies`; returns its number. The
    /// call must not be sent unless this succeeded.
    pub async fn begin(
        &self,
        action: JobAction,
        ids: Vec<String>,
        policies: Vec<PolicyKey>,
        now: Now,
    ) -> Result<u64, JournalError> {
        if self.inherited.get().is_none() {
            return Err(JournalError::NotRead);
        }
        let seq = self.lock().begin(action, ids, policies, now.wall);
        if let Err(error) = self.write(now).await {
            self.lock().refused(seq);
            return Err(error);
        }
        Ok(seq)
    }

    /// Records call `seq`'s answer. A job id, or an outcome nobody knows, is written at
    /// once (the next call waits for it); a refusal only in memory: the cloud counts
    /// none of it, and a successor that still sees the call only holds it a while.
    pub async fn answered(
        &self,
        seq: u64,
        answer: Result<&str, &EcsError>,
        now: Now,
    ) -> Result<(), JournalError> {
        match answer {
            Ok(job_id) => self.lock().accepted(seq, job_id, now.wall),
            Err(error) if error.kind() == ErrorKind::OutcomeUnknown => {
                self.lock().outcome_unknown(seq, now.wall)
            }
            Err(_) => {
                self.lock().refused(seq);
                return Ok(());
            }
        }
        self.write(now).await
    }

    /// Job `job_id` finished, and some of its policies have yet to record it;
    /// written with the next call.
    pub fn job_finished(&self, job_id: &str) {
        self.lock().job_finished(job_id);
    }

    /// Job `job_id` finished and all its policies recorded it, or it was given up on;
    /// written with the next call.
    pub fn job_over(&self, job_id: &str) {
        self.lock().job_over(job_id);
    }

    async fn write(&self, now: Now) -> Result<(), JournalError> {
        let _turn = self.writing.lock().await;
        let text = {
            let mut journal = self.lock();
            journal.prune(self.retention, now.wall);
            journal.encode()
        };
        self.store.save(&text).await
    }
}
