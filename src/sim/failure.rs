//! Errors as the API reports them, with the codes and messages of the OTC error-code
//! appendix (`otc-ecs-error-codes.rst`).

use crate::ecs::wire::MAX_SERVERS_PER_ACTION;
use std::time::Duration;

/// An error as the API reports it: HTTP status, ECS code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub http: u16,
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(http: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            http,
            code,
            message: message.into(),
        }
    }
}

pub(super) fn invalid_parameter(why: impl std::fmt::Display) -> Failure {
    Failure::new(
        400,
        "Ecs.0005",
        format!("Invalid parameter values. Contact customer service. ({why})"),
    )
}
pub(super) fn not_found() -> Failure {
    Failure::new(404, "Ecs.0114", "The ECS does not exist.")
}
pub(super) fn wrong_status() -> Failure {
    Failure::new(
        400,
        "Ecs.0100",
        "The ECS status does not meet requirements. Make the ECS in the required status and try again.",
    )
}
pub(super) fn locked() -> Failure {
    Failure::new(400, "Ecs.0605", "ECS locked.")
}
pub(super) fn busy() -> Failure {
    Failure::new(
        501,
        "Ecs.0603",
        "The commands are being executed. Try again later.",
    )
}
pub(super) fn injected_subjob_failure() -> Failure {
    Failure::new(
        400,
        "Ecs.0002",
        "A system exception occurred. Try again later or contact customer service.",
    )
}
pub(super) fn interrupted() -> Failure {
    Failure::new(
        400,
        "Ecs.0100",
        "The ECS status was changed by another operation while the job ran.",
    )
}
pub(super) fn too_many_servers(n: usize) -> Failure {
    Failure::new(
        400,
        "Ecs.0118",
        format!(
            "The number of ECSs exceeds the maximum allowed limit. ({n} > {MAX_SERVERS_PER_ACTION})"
        ),
    )
}
pub(super) fn budget_exceeded(limit: usize, window: Duration) -> Failure {
    Failure::new(
        429,
        "Common.1503",
        format!(
            "Api flow control Error because more than {limit} ECSs were acted on within {} s in this project.",
            window.as_secs_f64()
        ),
    )
}
/// Top-level code of a job that has a failed sub-job.
pub(super) const JOB_FAILED: (&str, &str) = ("Common.0021", "Subjob fails.");
