//! Jobs of batch actions: one sub-job per server, and what each action asks of a server.

use super::failure::{Failure, JOB_FAILED};
use super::server::{Task, VmState, canonical_uuid};
use crate::ecs::wire::{
    self, BatchAction, JobEntities, JobStatus, PowerActionType, SubJobEntities,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The server a sub-job names, as the request spelled it: kept as a UUID (16 bytes)
/// when that spelling is the canonical one, which every known server's is.
#[derive(Debug)]
pub(super) enum SubServer {
    Canonical(Uuid),
    Spelled(Box<str>),
}

impl SubServer {
    pub(super) fn new(id: &str) -> Self {
        match canonical_uuid(id) {
            Some(uuid) => SubServer::Canonical(uuid),
            None => SubServer::Spelled(id.into()),
        }
    }

    fn to_wire(&self) -> String {
        match self {
            SubServer::Canonical(uuid) => uuid.to_string(),
            SubServer::Spelled(id) => id.to_string(),
        }
    }
}

/// One server's part of a job, kept small (a 1000-server stop keeps 1000 of them for
/// the simulator's lifetime): times as milliseconds, the failure boxed.
#[derive(Debug)]
pub(super) struct SubJob {
    pub(super) id: [u8; 16],
    pub(super) server: SubServer,
    pub(super) status: JobStatus,
    /// Unix milliseconds.
    pub(super) end: Option<i64>,
    pub(super) failure: Option<Box<Failure>>,
}

#[derive(Debug)]
pub(super) struct Job {
    pub(super) id: String,
    pub(super) kind: ActionKind,
    /// Unix milliseconds: submission, when its sub-jobs began (INIT ended), the end.
    pub(super) begin: i64,
    pub(super) started: i64,
    pub(super) end: Option<i64>,
    /// The requested ids while the job is INIT; its sub-jobs do not exist yet.
    pub(super) initialising: Option<Vec<String>>,
    /// The client never got the answer (504 or reset connection).
    pub(super) answer_lost: bool,
    pub(super) subs: Vec<SubJob>,
    pub(super) running: usize,
    pub(super) failed: usize,
}

/// One job as `GET /_sim/jobs` lists it: what the cloud's audit trail shows of a
/// batch action (when it was accepted, its kind and size), so a benchmark can time
/// each call from the cloud's side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    /// `batchStopServers`, `batchStartServers`, `batchRebootServers`.
    pub job_type: String,
    /// When the action was accepted, Unix milliseconds (the job's `begin_time`).
    pub begin_ms: i64,
    /// Servers the action named.
    pub servers: usize,
    pub status: JobStatus,
}

/// Job times: `2016-04-25T20:04:47.591Z`.
fn job_time(unix_milliseconds: i64) -> String {
    jiff::Timestamp::from_millisecond(unix_milliseconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
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

    pub(super) fn record(&self) -> JobRecord {
        JobRecord {
            job_id: self.id.clone(),
            job_type: self.kind.job_type.to_owned(),
            begin_ms: self.begin,
            servers: self.initialising.as_ref().map_or(self.subs.len(), Vec::len),
            status: self.status(),
        }
    }

    pub(super) fn finish_sub(&mut self, sub: usize, failure: Option<Failure>, at: i64) {
        let sub_job = &mut self.subs[sub];
        sub_job.status = if failure.is_some() {
            self.failed += 1;
            JobStatus::Fail
        } else {
            JobStatus::Success
        };
        sub_job.failure = failure.map(Box::new);
        sub_job.end = Some(at);
        self.running -= 1;
        if self.running == 0 {
            self.end = Some(at);
        }
    }

    pub(super) fn to_wire(&self) -> wire::Job {
        let status = self.status();
        let (error_code, fail_reason) = match status {
            JobStatus::Fail => (Some(JOB_FAILED.0.to_owned()), Some(JOB_FAILED.1.to_owned())),
            _ => (None, None),
        };
        let started = job_time(self.started);
        let sub_jobs = self
            .subs
            .iter()
            .map(|s| wire::SubJob {
                status: s.status,
                entities: SubJobEntities {
                    server_id: Some(s.server.to_wire()),
                    nic_id: None,
                    errorcode_message: s.failure.as_ref().map(|f| f.message.clone()),
                },
                job_id: Some(hex::encode(s.id)),
                job_type: Some(self.kind.sub_job_type.to_owned()),
                begin_time: Some(started.clone()),
                end_time: s.end.map(job_time),
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
            begin_time: Some(job_time(self.begin)),
            end_time: self.end.map(job_time),
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
