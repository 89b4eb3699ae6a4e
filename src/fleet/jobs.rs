//! Stop and start jobs as the fleet tracks them, and what each policy sees of them.

use super::PolicyKey;
use super::journal::InheritedJob;
use super::state::Now;
use crate::ecs::error::cut_cloud_text;
use crate::ecs::wire::{Job, JobStatus, SubJob};
use crate::policy::JobAction;
use crate::server_id::{IdSet, ServerId};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct TrackedJob {
    pub job_id: String,
    pub action: JobAction,
    /// Each server and its sub-job's last status. Known at submission; for a job
    /// adopted from a policy's status, learnt from its sub-jobs. Only this is kept of
    /// the job's answers: a job of 1000 sub-jobs is far bigger.
    servers: Vec<(ServerId, JobStatus)>,
    /// For a job adopted from a policy's status whose sub-jobs do not name its
    /// servers yet (still INIT): every server of its policies that could be in it,
    /// held until the sub-jobs name them or the job is given up on.
    candidates: IdSet,
    pub policies: BTreeSet<PolicyKey>,
    pub submitted_at: jiff::Timestamp,
    status: JobStatus,
    completed: Option<(jiff::Timestamp, Instant)>,
}

/// What a job's first observation as finished taught: processed exactly once.
#[derive(Debug, Default)]
pub struct JobOutcome {
    pub succeeded: Vec<ServerId>,
    /// Server id, the cloud's code and message.
    pub failed: Vec<(ServerId, String, String)>,
}

/// One job as one policy's status shows it: counted over that policy's servers only,
/// since a coalesced job may carry several policies' servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub job_id: String,
    pub action: JobAction,
    pub servers: usize,
    pub status: JobStatus,
    /// Given up on (see [`super::LostJob`]): `status` is the last one seen.
    pub lost: bool,
    pub succeeded: usize,
    pub failed: usize,
    pub submitted_at: jiff::Timestamp,
    pub completed_at: Option<jiff::Timestamp>,
}

fn sub_jobs(job: &Job) -> &[SubJob] {
    job.entities.sub_jobs.as_deref().unwrap_or_default()
}

fn sub_job_server(sub: &SubJob) -> Option<&str> {
    sub.entities.server_id.as_deref()
}

impl TrackedJob {
    /// A job whose call carried `ids`, submitted at `submitted_at`: by this process
    /// (answered then), or by an earlier one (see [`Self::inherited`]).
    pub fn submitted(
        job_id: String,
        ids: Vec<ServerId>,
        policies: BTreeSet<PolicyKey>,
        action: JobAction,
        submitted_at: jiff::Timestamp,
    ) -> Self {
        Self {
            job_id,
            action,
            servers: ids.into_iter().map(|id| (id, JobStatus::Init)).collect(),
            candidates: IdSet::default(),
            policies,
            submitted_at,
            status: JobStatus::Init,
            completed: None,
        }
    }

    /// A job an earlier process submitted, as the project's call journal kept it:
    /// its servers are known from the call.
    pub fn inherited(job: &InheritedJob) -> Self {
        Self::submitted(
            job.job_id.clone(),
            job.call.ids.iter().map(ServerId::from).collect(),
            job.call.policies.iter().cloned().collect(),
            job.call.action,
            job.call.sent_at,
        )
    }

    /// A job a policy's status lists as unfinished (after a restart or a leader
    /// change): its servers are unknown until its sub-jobs name them.
    pub fn adopted(job_id: String, submitted_at: jiff::Timestamp, action: JobAction) -> Self {
        Self {
            job_id,
            action,
            servers: Vec::new(),
            candidates: IdSet::default(),
            policies: BTreeSet::new(),
            submitted_at,
            status: JobStatus::Init,
            completed: None,
        }
    }

    /// `ids` may be in the job as long as its sub-jobs name no server.
    pub fn may_hold(&mut self, ids: &[ServerId]) {
        if self.servers.is_empty() {
            self.candidates.extend(ids.iter().cloned());
        }
    }

    /// The servers the job keeps out of planning: those its sub-jobs name, or, while
    /// they name none, every one that could be in it.
    pub fn held_ids(&self) -> Box<dyn Iterator<Item = &ServerId> + '_> {
        if self.servers.is_empty() {
            Box::new(self.candidates.iter())
        } else {
            Box::new(self.server_ids())
        }
    }

    pub fn is_finished(&self) -> bool {
        self.completed.is_some()
    }

    /// From its submission to the poll that saw it finished: how long a policy waits
    /// for its servers after their call went out.
    pub fn took(&self) -> Option<Duration> {
        let (completed, _) = self.completed?;
        Duration::try_from(completed.duration_since(self.submitted_at)).ok()
    }

    /// When a poll first saw it finished.
    pub fn finished_at(&self) -> Option<Instant> {
        self.completed.map(|(_, at)| at)
    }

    /// Finished at least `age` before `now`.
    pub fn finished_before(&self, age: Duration, now: Instant) -> bool {
        self.finished_at()
            .is_some_and(|completed| now.saturating_duration_since(completed) >= age)
    }

    /// Unfinished `deadline` after it was submitted (by the wall clock: an adopted
    /// job's submission time comes from a policy's status).
    pub fn past_deadline(&self, deadline: Duration, now: jiff::Timestamp) -> bool {
        !self.is_finished()
            && Duration::try_from(now.duration_since(self.submitted_at))
                .is_ok_and(|age| age >= deadline)
    }

    /// Whether its servers must still be kept out of planning for an inventory
    /// listed at `observed_at`.
    pub fn in_flight_for(&self, observed_at: Instant) -> bool {
        match self.completed {
            None => true,
            Some((_, completed)) => completed > observed_at,
        }
    }

    pub fn server_ids(&self) -> impl Iterator<Item = &ServerId> {
        self.servers.iter().map(|(id, _)| id)
    }

    /// Each server the job names, with its sub-job's last status.
    pub fn sub_job_statuses(&self) -> impl Iterator<Item = (&ServerId, JobStatus)> {
        self.servers.iter().map(|(id, status)| (id, *status))
    }

    /// Takes in a poll's answer; the outcome comes once, with the first answer that
    /// shows the job finished.
    pub fn update(&mut self, job: Job, now: Now) -> Option<JobOutcome> {
        let by_server: HashMap<&str, &SubJob> = sub_jobs(&job)
            .iter()
            .filter_map(|sub| sub_job_server(sub).map(|id| (id, sub)))
            .collect();
        if self.servers.is_empty() && !by_server.is_empty() {
            self.servers = by_server
                .keys()
                .map(|id| ((*id).into(), JobStatus::Init))
                .collect();
            self.candidates = IdSet::default();
        }
        for (id, status) in &mut self.servers {
            if let Some(sub) = by_server.get(id.as_str()) {
                *status = sub.status;
            }
        }
        self.status = job.status;
        if !job.status.is_terminal() || self.completed.is_some() {
            return None;
        }
        self.completed = Some((now.wall, now.at));
        // The ids the fleet already holds, shared rather than copied.
        let held: HashMap<&str, &ServerId> = self
            .servers
            .iter()
            .map(|(id, _)| (id.as_str(), id))
            .collect();
        let id_of = |id: &str| held.get(id).map_or_else(|| id.into(), |id| (*id).clone());
        let mut outcome = JobOutcome::default();
        for (id, sub) in &by_server {
            match sub.status {
                JobStatus::Success => outcome.succeeded.push(id_of(id)),
                _ => outcome.failed.push((
                    id_of(id),
                    sub.error_code
                        .as_deref()
                        .map_or_else(|| "unknown".into(), cut_cloud_text),
                    sub.entities
                        .errorcode_message
                        .as_deref()
                        .or(sub.fail_reason.as_deref())
                        .map_or_else(
                            || "the sub-job failed without a reason".into(),
                            cut_cloud_text,
                        ),
                )),
            }
        }
        // A failed job without sub-jobs still failed for every server it carried.
        if by_server.is_empty() && job.status == JobStatus::Fail {
            let code = job
                .error_code
                .as_deref()
                .map_or_else(|| "unknown".into(), cut_cloud_text);
            let message = job
                .fail_reason
                .as_deref()
                .map_or_else(|| "the job failed without a reason".into(), cut_cloud_text);
            outcome.failed = self
                .server_ids()
                .map(|id| (id.clone(), code.clone(), message.clone()))
                .collect();
        }
        Some(outcome)
    }

    pub fn view(&self, desired: &IdSet) -> Option<JobView> {
        let mine = self.servers.iter().filter(|(id, _)| desired.contains(id));
        let (mut servers, mut succeeded, mut failed) = (0, 0, 0);
        for (_, status) in mine {
            servers += 1;
            match status {
                JobStatus::Success => succeeded += 1,
                JobStatus::Fail => failed += 1,
                _ => {}
            }
        }
        if servers == 0 && !self.servers.is_empty() {
            return None;
        }
        // Still naming no server: shown with the servers of the policy it may hold.
        if self.servers.is_empty() {
            servers = self
                .candidates
                .iter()
                .filter(|id| desired.contains(*id))
                .count();
        }
        Some(JobView {
            job_id: self.job_id.clone(),
            action: self.action,
            servers,
            status: self.status,
            lost: false,
            succeeded,
            failed,
            submitted_at: self.submitted_at,
            completed_at: self.completed.map(|(at, _)| at),
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ecs::wire::{JobEntities, SubJobEntities};

    fn now() -> Now {
        Now {
            at: Instant::now(),
            wall: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    pub fn sub(server: &str, status: JobStatus, code: Option<&str>) -> SubJob {
        SubJob {
            status,
            entities: SubJobEntities {
                server_id: Some(server.into()),
                nic_id: None,
                errorcode_message: code.map(|c| format!("{c} message")),
            },
            job_id: None,
            job_type: None,
            begin_time: None,
            end_time: None,
            error_code: code.map(str::to_owned),
            fail_reason: None,
        }
    }

    pub fn job(status: JobStatus, subs: Vec<SubJob>) -> Job {
        Job {
            status,
            entities: JobEntities {
                server_id: None,
                sub_jobs_total: Some(subs.len() as u32),
                sub_jobs: Some(subs),
            },
            job_id: Some("j".into()),
            job_type: None,
            begin_time: None,
            end_time: None,
            error_code: None,
            fail_reason: None,
        }
    }

    #[test]
    fn outcome_is_reported_once_when_the_job_finishes() {
        let ids = vec!["a".into(), "b".into()];
        let mut tracked = TrackedJob::submitted(
            "j".into(),
            ids,
            BTreeSet::new(),
            JobAction::Stop,
            now().wall,
        );
        let running = job(
            JobStatus::Running,
            vec![
                sub("a", JobStatus::Success, None),
                sub("b", JobStatus::Running, None),
            ],
        );
        assert!(tracked.update(running, now()).is_none());
        let failed = job(
            JobStatus::Fail,
            vec![
                sub("a", JobStatus::Success, None),
                sub("b", JobStatus::Fail, Some("Ecs.0605")),
            ],
        );
        let outcome = tracked.update(failed.clone(), now()).unwrap();
        assert_eq!(outcome.succeeded, vec!["a".to_string()]);
        assert_eq!(outcome.failed[0].0, "b");
        assert_eq!(outcome.failed[0].1, "Ecs.0605");
        assert!(tracked.update(failed, now()).is_none());
    }

    #[test]
    fn adopted_job_holds_every_candidate_until_its_sub_jobs_name_its_servers() {
        let mut tracked =
            TrackedJob::adopted("j".into(), jiff::Timestamp::UNIX_EPOCH, JobAction::Stop);
        tracked.may_hold(&["a".into(), "b".into()]);
        tracked.update(job(JobStatus::Init, Vec::new()), now());
        let mut held: Vec<&ServerId> = tracked.held_ids().collect();
        held.sort();
        assert_eq!(held, ["a", "b"], "INIT without sub-jobs: both may be in it");
        let all: IdSet = ["a", "b"].map(ServerId::from).into_iter().collect();
        assert_eq!(tracked.view(&all).unwrap().servers, 2);
        tracked.update(
            job(JobStatus::Running, vec![sub("a", JobStatus::Running, None)]),
            now(),
        );
        assert_eq!(tracked.server_ids().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(
            tracked.held_ids().collect::<Vec<_>>(),
            vec!["a"],
            "named: only a"
        );
        tracked.may_hold(&["c".into()]);
        assert_eq!(
            tracked.held_ids().count(),
            1,
            "named servers are not widened"
        );
        assert!(tracked.in_flight_for(Instant::now()));
    }

    #[test]
    fn view_counts_only_the_policys_servers() {
        let ids = vec!["a".into(), "b".into(), "c".into()];
        let mut tracked = TrackedJob::submitted(
            "j".into(),
            ids,
            BTreeSet::new(),
            JobAction::Stop,
            now().wall,
        );
        tracked.update(
            job(
                JobStatus::Running,
                vec![
                    sub("a", JobStatus::Success, None),
                    sub("b", JobStatus::Fail, Some("Ecs.0100")),
                    sub("c", JobStatus::Success, None),
                ],
            ),
            now(),
        );
        let mine: IdSet = ["a", "b"].map(ServerId::from).into_iter().collect();
        let view = tracked.view(&mine).unwrap();
        assert_eq!((view.servers, view.succeeded, view.failed), (2, 1, 1));
        let none: IdSet = ["z"].map(ServerId::from).into_iter().collect();
        assert!(tracked.view(&none).is_none());
    }
}
