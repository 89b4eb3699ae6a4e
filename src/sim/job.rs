//! Jobs of batch actions: one sub-job per server, and what each action asks of a server.

use super::failure::{Failure, JOB_FAILED};
use super::server::{Task, VmState};
use crate::ecs::wire::{
    self, BatchAction, JobEntities, JobStatus, PowerActionType, SubJobEntities,
};

#[derive(Debug)]
pub(super) struct SubJob {
    pub(super) id: String,
    pub(super) server_id: String,
    pub(super) status: JobStatus,
    pub(super) begin: String,
    pub(super) end: Option<String>,
    pub(super) failure: Option<Failure>,
}

#[derive(Debug)]
pub(super) struct Job {
    pub(super) id: String,
    pub(super) kind: ActionKind,
    pub(super) begin: String,
    pub(super) end: Option<String>,
    /// The requested ids while the job is INIT; its sub-jobs do not exist yet.
    pub(super) initialising: Option<Vec<String>>,
    pub(super) subs: Vec<SubJob>,
    pub(super) running: usize,
    pub(super) failed: usize,
}

impl Job {
    pub(super) fn status(&self) -> JobStatus {
        if self.initialising.is_some() {
            return JobStatus::Init;
        }
        match (self.running, self.failed) {
            (0, 0) => JobStatus::Success,
            (0, _) => JobStatus::Fail,
            _ => JobStatus::Running,
        }
    }

    pub(super) fn finish_sub(&mut self, sub: usize, failure: Option<Failure>, at: &str) {
        let sub_job = &mut self.subs[sub];
        sub_job.status = if failure.is_some() {
            self.failed += 1;
            JobStatus::Fail
        } else {
            JobStatus::Success
        };
        sub_job.failure = failure;
        sub_job.end = Some(at.to_owned());
        self.running -= 1;
        if self.running == 0 {
            self.end = Some(at.to_owned());
        }
    }

    pub(super) fn to_wire(&self) -> wire::Job {
        let status = self.status();
        let (error_code, fail_reason) = match status {
            JobStatus::Fail => (Some(JOB_FAILED.0.to_owned()), Some(JOB_FAILED.1.to_owned())),
            _ => (None, None),
        };
        let sub_jobs = self
            .subs
            .iter()
            .map(|s| wire::SubJob {
                status: s.status,
                entities: SubJobEntities {
                    server_id: Some(s.server_id.clone()),
                    nic_id: None,
                    errorcode_message: s.failure.as_ref().map(|f| f.message.clone()),
                },
                job_id: Some(s.id.clone()),
                job_type: Some(self.kind.sub_job_type.to_owned()),
                begin_time: Some(s.begin.clone()),
                end_time: s.end.clone(),
                error_code: s.failure.as_ref().map(|f| f.code.to_owned()),
                fail_reason: s.failure.as_ref().map(|f| f.message.clone()),
            })
            .collect();
        // An INIT job names no servers yet: `entities` is empty.
        let entities = match status {
            JobStatus::Init => JobEntities::default(),
            _ => JobEntities {
                server_id: None,
                sub_jobs_total: Some(self.subs.len() as u32),
                sub_jobs: Some(sub_jobs),
            },
        };
        wire::Job {
            status,
            entities,
            job_id: Some(self.id.clone()),
            job_type: Some(self.kind.job_type.to_owned()),
            begin_time: Some(self.begin.clone()),
            end_time: self.end.clone(),
            error_code,
            fail_reason,
        }
    }
}

/// What one batch action asks of each server.
#[derive(Debug, Clone, Copy)]
pub(super) struct ActionKind {
    pub(super) job_type: &'static str,
    pub(super) sub_job_type: &'static str,
    pub(super) from: VmState,
    pub(super) task: Task,
    pub(super) target: VmState,
}

pub(super) fn action_kind(action: &BatchAction) -> ActionKind {
    match action {
        BatchAction::Stop(_) => ActionKind {
            job_type: "batchStopServers",
            sub_job_type: "stopServer",
            from: VmState::Active,
            task: Task::PoweringOff,
            target: VmState::Stopped,
        },
        BatchAction::Start(_) => ActionKind {
            job_type: "batchStartServers",
            sub_job_type: "startServer",
            from: VmState::Stopped,
            task: Task::PoweringOn,
            target: VmState::Active,
        },
        BatchAction::Reboot(body) => ActionKind {
            job_type: "batchRebootServers",
            sub_job_type: "rebootServer",
            from: VmState::Active,
            task: match body.reboot_type {
                PowerActionType::Soft => Task::Rebooting,
                PowerActionType::Hard => Task::RebootingHard,
            },
            target: VmState::Active,
        },
    }
}

impl ActionKind {
    pub(super) fn is_stop(&self) -> bool {
        self.task == Task::PoweringOff
    }
}
