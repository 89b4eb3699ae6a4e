//! What the call journal holds: every batch call this operator sent to one project
//! that the cloud may still count in its budget window, or whose servers may still be
//! acted on. Plain data and pure decisions: no I/O, no clock (each call takes `now`).

use super::super::PolicyKey;
use crate::policy::JobAction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Nodes' clocks differ by milliseconds under NTP; the cloud's window is held this much
/// longer than the journal's times say, so a process on another node never frees the
/// budget before the cloud does.
const CLOCK_MARGIN: Duration = Duration::from_secs(1);

/// One call, written before it is sent and again when its answer comes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// What the call asks of its servers (absent in a record of a stop).
    #[serde(default, skip_serializing_if = "is_stop")]
    pub action: JobAction,
    pub servers: usize,
    pub sent_at: jiff::Timestamp,
    /// When the answer came (a job, or an error after which nobody knows whether the
    /// cloud took the call); `None` while it is under way, or if its process ended
    /// before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The servers that may still be acted on under this call: kept while its job
    /// runs, or while an unknown outcome may still show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// The policies whose servers it carried, for their status to show its job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyKey>,
    /// Its job finished and some of its policies have not yet written a status that
    /// shows it: a process taking over reads what it did from its sub-jobs. Its ids
    /// are dropped then (none is in flight any more), so that the jobs of a fleet
    /// whose policies write their statuses slowly cost the journal ~100 bytes each, not
    /// ~37 KB.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unrecorded: bool,
}

fn is_stop(action: &JobAction) -> bool {
    *action == JobAction::Stop
}

impl CallRecord {
    /// Until when the cloud may count this call in its window: one window after the
    /// latest instant it can have arrived (its answer, or `gone` for a call whose
    /// process ended before the answer: it cannot have arrived after that).
    fn held_until(&self, gone: jiff::Timestamp, window: Duration) -> jiff::Timestamp {
        self.answered_at.unwrap_or(gone) + CLOCK_MARGIN + window
    }

    /// Whether a process taking over is handed the call: its servers may still be
    /// acted on under it, or its job's policies have yet to record it.
    fn handed_over(&self) -> bool {
        !self.ids.is_empty() || self.unrecorded
    }
}

/// A call an earlier process sent whose servers may still be acted on under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InheritedCall {
    pub action: JobAction,
    pub ids: Vec<String>,
    pub policies: Vec<PolicyKey>,
    pub sent_at: jiff::Timestamp,
}

/// A job an earlier process submitted and did not see finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InheritedJob {
    pub job_id: String,
    pub call: InheritedCall,
}

/// What a new process takes over from the journal of the ones before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inherited {
    /// Servers the cloud still counts: each from the instant it counts them.
    pub spent: Vec<(jiff::Timestamp, usize)>,
    pub jobs: Vec<InheritedJob>,
    /// Calls whose outcome nobody knows: their servers are in flight until a listing
    /// shows them.
    pub unknown: Vec<InheritedCall>,
}

/// How long the journal keeps what.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// The project's budget window.
    pub window: Duration,
    /// How long an unknown outcome's servers are held before a listing decides.
    pub unknown_settle: Duration,
    /// How long a job is followed at most.
    pub job_deadline: Duration,
}

/// The journal of one project, by sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    calls: BTreeMap<u64, CallRecord>,
}

impl Journal {
    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a journal always serialises")
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// A call about to be sent; returns its sequence number.
    pub fn begin(
        &mut self,
        action: JobAction,
        ids: Vec<String>,
        policies: Vec<PolicyKey>,
        now: jiff::Timestamp,
    ) -> u64 {
        let seq = self.calls.last_key_value().map_or(0, |(seq, _)| seq + 1);
        self.calls.insert(
            seq,
            CallRecord {
                action,
                servers: ids.len(),
                sent_at: now,
                answered_at: None,
                job_id: None,
                ids,
                policies,
                unrecorded: false,
            },
        );
        seq
    }

    /// The cloud accepted call `seq` as job `job_id`.
    pub fn accepted(&mut self, seq: u64, job_id: &str, now: jiff::Timestamp) {
        if let Some(call) = self.calls.get_mut(&seq) {
            call.answered_at = Some(now);
            call.job_id = Some(job_id.to_owned());
        }
    }

    /// Call `seq` ended in an error after which it may or may not have been taken.
    pub fn outcome_unknown(&mut self, seq: u64, now: jiff::Timestamp) {
        if let Some(call) = self.calls.get_mut(&seq) {
            call.answered_at = Some(now);
        }
    }

    /// Call `seq` was refused (or never sent): the cloud counts none of it.
    pub fn refused(&mut self, seq: u64) {
        self.calls.remove(&seq);
    }

    /// Job `job_id` finished: its servers are no longer in flight under it, and it
    /// is handed over until its policies have recorded it ([`Self::job_over`]).
    pub fn job_finished(&mut self, job_id: &str) {
        for call in self.job_calls(job_id) {
            call.ids = Vec::new();
            call.unrecorded = true;
        }
    }

    /// Job `job_id` finished and its policies recorded it, or it was given up on:
    /// only the budget it spent is kept.
    pub fn job_over(&mut self, job_id: &str) {
        for call in self.job_calls(job_id) {
            call.ids = Vec::new();
            call.unrecorded = false;
        }
    }

    fn job_calls<'a>(&'a mut self, job_id: &'a str) -> impl Iterator<Item = &'a mut CallRecord> {
        self.calls
            .values_mut()
            .filter(move |call| call.job_id.as_deref() == Some(job_id))
    }

    /// Forgets what no longer matters at `now`: the servers of an unknown outcome
    /// once it has had time to show, of a job once it is past the deadline, and a call
    /// with no servers left once the cloud no longer counts it.
    pub fn prune(&mut self, retention: Retention, now: jiff::Timestamp) {
        self.calls.retain(|_, call| {
            let settled = match (&call.job_id, call.answered_at) {
                (None, Some(answered)) => answered + retention.unknown_settle <= now,
                (Some(_), _) => call.sent_at + retention.job_deadline <= now,
                // Under way: its answer decides.
                (None, None) => false,
            };
            if settled {
                call.ids = Vec::new();
                call.unrecorded = false;
            }
            call.handed_over() || call.held_until(now, retention.window) > now
        });
    }

    /// Takes over the journal of processes that ended: calls they sent without an
    /// answer count as unknown outcomes known at `now` (their process is gone, so the
    /// cloud took them before now or never), and what the cloud still counts, the
    /// jobs still running and the unknown outcomes are handed over.
    pub fn inherit(&mut self, retention: Retention, now: jiff::Timestamp) -> Inherited {
        self.prune(retention, now);
        let mut inherited = Inherited::default();
        for call in self.calls.values_mut() {
            if call.answered_at.is_none() {
                call.answered_at = Some(now);
            }
            let held_until = call.held_until(now, retention.window);
            if held_until > now && call.servers > 0 {
                inherited
                    .spent
                    .push((held_until - retention.window, call.servers));
            }
            if !call.handed_over() {
                continue;
            }
            let inherited_call = InheritedCall {
                action: call.action,
                ids: call.ids.clone(),
                policies: call.policies.clone(),
                sent_at: call.sent_at,
            };
            match &call.job_id {
                Some(job_id) => inherited.jobs.push(InheritedJob {
                    job_id: job_id.clone(),
                    call: inherited_call,
                }),
                None => inherited.unknown.push(inherited_call),
            }
        }
        inherited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETENTION: Retention = Retention {
        window: Duration::from_secs(60),
        unknown_settle: Duration::from_secs(10),
        job_deadline: Duration::from_secs(1800),
    };

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn policy() -> Vec<PolicyKey> {
        vec![PolicyKey::new("ns", "p")]
    }

    fn unknown_ids(inherited: &Inherited) -> Vec<String> {
        inherited
            .unknown
            .iter()
            .flat_map(|call| call.ids.iter().cloned())
            .collect()
    }

    #[test]
    fn an_accepted_call_is_inherited_as_its_job_and_its_budget_from_the_answer() {
        let mut journal = Journal::default();
        let seq = journal.begin(JobAction::Stop, ids(&["a", "b"]), policy(), at(0));
        journal.accepted(seq, "job-1", at(2));
        let text = journal.encode();
        let mut read = Journal::decode(&text).unwrap();
        let inherited = read.inherit(RETENTION, at(30));
        assert_eq!(inherited.spent, vec![(at(2) + CLOCK_MARGIN, 2)]);
        assert_eq!(inherited.jobs, vec![stop_job_1(ids(&["a", "b"]))]);
        assert!(inherited.unknown.is_empty());
    }

    #[test]
    fn a_call_whose_process_ended_before_the_answer_is_an_unknown_outcome_held_from_then() {
        let mut journal = Journal::default();
        journal.begin(JobAction::Stop, ids(&["a"]), policy(), at(0));
        let inherited = journal.inherit(RETENTION, at(5));
        assert_eq!(inherited.spent, vec![(at(5) + CLOCK_MARGIN, 1)]);
        assert_eq!(
            inherited.unknown,
            vec![InheritedCall {
                action: JobAction::Stop,
                ids: ids(&["a"]),
                policies: policy(),
                sent_at: at(0),
            }],
            "with the policies it was for, to know whose stop it was"
        );
        assert!(inherited.jobs.is_empty());
        // A second restart soon after still holds it, from the first restart.
        let again = journal.inherit(RETENTION, at(8));
        assert_eq!(again.spent, vec![(at(5) + CLOCK_MARGIN, 1)]);
        assert_eq!(unknown_ids(&again), ids(&["a"]));
    }

    #[test]
    fn a_refused_call_counts_nothing() {
        let mut journal = Journal::default();
        let seq = journal.begin(JobAction::Stop, ids(&["a"]), policy(), at(0));
        journal.refused(seq);
        assert_eq!(journal.inherit(RETENTION, at(1)), Inherited::default());
        assert_eq!(journal.len(), 0);
    }

    /// Stop job "job-1" of `policy()`, sent at 0 s, as taken over with `ids`.
    fn stop_job_1(ids: Vec<String>) -> InheritedJob {
        InheritedJob {
            job_id: "job-1".into(),
            call: InheritedCall {
                action: JobAction::Stop,
                ids,
                policies: policy(),
                sent_at: at(0),
            },
        }
    }

    /// Job "job-1" of server "a", sent at 0 s, answered at 1 s, seen finished.
    fn finished_job() -> Journal {
        let mut journal = Journal::default();
        let seq = journal.begin(JobAction::Stop, ids(&["a"]), policy(), at(0));
        journal.accepted(seq, "job-1", at(1));
        journal.job_finished("job-1");
        journal
    }

    #[test]
    fn a_finished_job_is_handed_over_without_its_ids_until_it_is_over() {
        let mut journal = finished_job();
        let text = journal.encode();
        assert!(!text.contains("\"a\""), "no ids once finished: {text}");
        // Past the budget's window it is still handed over, to be recorded.
        journal.prune(RETENTION, at(600));
        let inherited = Journal::decode(&text).unwrap().inherit(RETENTION, at(600));
        assert_eq!(inherited.jobs, vec![stop_job_1(Vec::new())]);
        assert!(inherited.spent.is_empty());
        journal.job_over("job-1");
        journal.prune(RETENTION, at(600));
        assert_eq!(journal.len(), 0);
    }

    #[test]
    fn an_unrecorded_job_past_the_deadline_is_handed_over_no_more() {
        let mut journal = finished_job();
        journal.prune(RETENTION, at(1800));
        assert_eq!(journal.len(), 0);
    }

    #[test]
    fn a_job_over_keeps_only_its_budget_and_then_nothing() {
        let mut journal = finished_job();
        journal.job_over("job-1");
        journal.prune(RETENTION, at(30));
        let inherited = journal.clone().inherit(RETENTION, at(30));
        assert!(inherited.jobs.is_empty());
        assert_eq!(inherited.spent.len(), 1);
        // A window and the margin after the answer the cloud counts it no more.
        journal.prune(RETENTION, at(62));
        assert_eq!(journal.len(), 0);
    }

    #[test]
    fn an_unknown_outcome_is_held_for_its_settle_time_and_its_budget_for_the_window() {
        let mut journal = Journal::default();
        let seq = journal.begin(JobAction::Stop, ids(&["a"]), policy(), at(0));
        journal.outcome_unknown(seq, at(1));
        assert_eq!(
            unknown_ids(&journal.clone().inherit(RETENTION, at(10))),
            ids(&["a"])
        );
        let later = journal.clone().inherit(RETENTION, at(11));
        assert!(later.unknown.is_empty());
        assert_eq!(later.spent.len(), 1);
        journal.prune(RETENTION, at(62));
        assert_eq!(journal.len(), 0);
    }

    #[test]
    fn a_job_past_the_deadline_holds_nothing_and_a_call_under_way_is_kept() {
        let mut journal = Journal::default();
        let seq = journal.begin(JobAction::Stop, ids(&["a"]), policy(), at(0));
        journal.accepted(seq, "job-1", at(1));
        journal.begin(JobAction::Stop, ids(&["b"]), policy(), at(1799));
        journal.prune(RETENTION, at(1800));
        assert_eq!(journal.len(), 1, "the call under way stays");
        let inherited = journal.inherit(RETENTION, at(1800));
        assert!(inherited.jobs.is_empty());
        assert_eq!(unknown_ids(&inherited), ids(&["b"]));
    }

    #[test]
    fn sequence_numbers_follow_the_last_one_kept() {
        let mut journal = Journal::default();
        assert_eq!(
            journal.begin(JobAction::Stop, ids(&["a"]), policy(), at(0)),
            0
        );
        assert_eq!(
            journal.begin(JobAction::Stop, ids(&["b"]), policy(), at(0)),
            1
        );
        journal.refused(1);
        assert_eq!(
            journal.begin(JobAction::Stop, ids(&["c"]), policy(), at(0)),
            1
        );
    }
}
