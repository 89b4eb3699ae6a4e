//! Kubernetes Events for what a person watching `kubectl describe` wants to know:
//! a stop job submitted, finished or failed, everything stopped, a new problem.

use crate::policy::conditions::{self, ConditionType};
use crate::policy::{EcsPowerPolicyStatus, JobState, Phase};
use kube::runtime::events::EventType;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub type_: EventType,
    pub reason: String,
    pub action: &'static str,
    pub note: String,
}

fn notice(
    type_: EventType,
    reason: impl Into<String>,
    action: &'static str,
    note: String,
) -> Notice {
    Notice {
        type_,
        reason: reason.into(),
        action,
        note,
    }
}

/// The transitions between two statuses, in the order they happened.
pub fn transitions(old: &EcsPowerPolicyStatus, new: &EcsPowerPolicyStatus) -> Vec<Notice> {
    let before: HashMap<&str, JobState> = old
        .jobs
        .iter()
        .map(|job| (job.job_id.as_str(), job.status))
        .collect();
    let mut notices = Vec::new();
    for job in new.jobs.iter().rev() {
        let previous = before.get(job.job_id.as_str()).copied();
        if previous.is_none() {
            notices.push(notice(
                EventType::Normal,
                "StopSubmitted",
                "Stop",
                format!(
                    "stop job {} submitted for {} servers",
                    job.job_id, job.servers
                ),
            ));
        }
        if previous == Some(job.status) || job.status.in_flight() {
            continue;
        }
        notices.push(match job.status {
            JobState::Success => notice(
                EventType::Normal,
                "StopSucceeded",
                "Stop",
                format!(
                    "stop job {} finished: {} servers stopped",
                    job.job_id, job.succeeded
                ),
            ),
            _ => notice(
                EventType::Warning,
                "StopFailed",
                "Stop",
                format!(
                    "stop job {} failed for {} of {} servers; see status.failures",
                    job.job_id, job.failed, job.servers
                ),
            ),
        });
    }
    let degraded = |status: &EcsPowerPolicyStatus| {
        conditions::find(&status.conditions, ConditionType::Degraded)
            .filter(|c| c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, message)) = degraded(new)
        && degraded(old).map(|(r, _)| r) != Some(reason.clone())
    {
        notices.push(notice(EventType::Warning, reason, "Sync", message));
    }
    if new.phase == Some(Phase::Stopped) && old.phase != Some(Phase::Stopped) {
        notices.push(notice(
            EventType::Normal,
            "AllStopped",
            "Sync",
            format!("all {} servers are stopped", new.summary.stopped),
        ));
    }
    notices
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::JobRecord;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn job(id: &str, status: JobState) -> JobRecord {
        JobRecord {
            job_id: id.into(),
            servers: 10,
            status,
            succeeded: if status == JobState::Success { 10 } else { 0 },
            failed: if status == JobState::Fail { 2 } else { 0 },
            submitted_at: Time(jiff::Timestamp::UNIX_EPOCH),
            completed_at: None,
        }
    }

    fn with_jobs(jobs: Vec<JobRecord>) -> EcsPowerPolicyStatus {
        EcsPowerPolicyStatus {
            jobs,
            ..Default::default()
        }
    }

    #[test]
    fn a_new_job_and_its_end_are_announced_once() {
        let empty = EcsPowerPolicyStatus::default();
        let running = with_jobs(vec![job("j1", JobState::Running)]);
        let done = with_jobs(vec![job("j1", JobState::Success)]);
        let reasons = |n: Vec<Notice>| n.into_iter().map(|n| n.reason).collect::<Vec<_>>();
        assert_eq!(reasons(transitions(&empty, &running)), ["StopSubmitted"]);
        assert_eq!(
            reasons(transitions(&running, &running)),
            Vec::<String>::new()
        );
        assert_eq!(reasons(transitions(&running, &done)), ["StopSucceeded"]);
        assert_eq!(reasons(transitions(&done, &done)), Vec::<String>::new());
    }

    #[test]
    fn a_failed_job_is_a_warning() {
        let running = with_jobs(vec![job("j1", JobState::Running)]);
        let failed = with_jobs(vec![job("j1", JobState::Fail)]);
        let notices = transitions(&running, &failed);
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].type_, EventType::Warning);
        assert!(notices[0].note.contains("2 of 10"));
    }
}
