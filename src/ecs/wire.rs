//! JSON bodies of the ECS v1 API, as spelled on the wire (`shared/ecs-api/README.md`).
//!
//! The same types serve the client (deserialising) and `ecs-sim` (serialising), so the
//! simulator cannot drift from what the client expects without a golden test noticing.
//! Unknown fields are ignored; optional fields may be absent or `null`.

use super::error::cut_cloud_text;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most ids one batch action may carry (`Ecs.0118` above it).
pub const MAX_SERVERS_PER_ACTION: usize = 1000;
/// Largest `limit` of a listing page.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// `SOFT` is a normal stop or reboot, `HARD` forces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PowerActionType {
    Soft,
    Hard,
}

/// What a fleet's batch call does to its servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerAction {
    Stop(PowerActionType),
    Start,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServerRef {
    pub id: String,
}

/// `POST /v1/{project_id}/cloudservers/action`: exactly one action key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchAction {
    #[serde(rename = "os-stop")]
    Stop(StopBody),
    #[serde(rename = "os-start")]
    Start(StartBody),
    #[serde(rename = "reboot")]
    Reboot(RebootBody),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopBody {
    pub servers: Vec<ServerRef>,
    /// Defaults to `SOFT` on the server side when absent.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub stop_type: Option<PowerActionType>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartBody {
    pub servers: Vec<ServerRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootBody {
    pub servers: Vec<ServerRef>,
    #[serde(rename = "type")]
    pub reboot_type: PowerActionType,
}

impl BatchAction {
    /// The request body of `action` on `servers`.
    pub fn of(action: PowerAction, servers: Vec<ServerRef>) -> Self {
        match action {
            PowerAction::Stop(stop_type) => BatchAction::Stop(StopBody {
                servers,
                stop_type: Some(stop_type),
            }),
            PowerAction::Start => BatchAction::Start(StartBody { servers }),
        }
    }

    pub fn servers(&self) -> &[ServerRef] {
        match self {
            BatchAction::Stop(b) => &b.servers,
            BatchAction::Start(b) => &b.servers,
            BatchAction::Reboot(b) => &b.servers,
        }
    }

    /// Name used in metrics and logs.
    pub fn operation(&self) -> &'static str {
        match self {
            BatchAction::Stop(_) => "os-stop",
            BatchAction::Start(_) => "os-start",
            BatchAction::Reboot(_) => "reboot",
        }
    }
}

/// Answer to a batch action. `job_id` is optional on purpose: `Common.0024`
/// ("Flow limit exceeded") arrives as a 2xx without it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobAccepted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Init,
    Running,
    Success,
    Fail,
    /// Huawei Cloud only, for yearly/monthly orders.
    PendingPayment,
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Success | JobStatus::Fail)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Init => "INIT",
            JobStatus::Running => "RUNNING",
            JobStatus::Success => "SUCCESS",
            JobStatus::Fail => "FAIL",
            JobStatus::PendingPayment => "PENDING_PAYMENT",
        }
    }
}

/// `GET /v1/{project_id}/jobs/{job_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub status: JobStatus,
    #[serde(default)]
    pub entities: JobEntities,
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default)]
    pub job_type: Option<String>,
    #[serde(default)]
    pub begin_time: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub fail_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEntities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_jobs_total: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_jobs: Option<Vec<SubJob>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubJob {
    pub status: JobStatus,
    #[serde(default)]
    pub entities: SubJobEntities,
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default)]
    pub job_type: Option<String>,
    #[serde(default)]
    pub begin_time: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub fail_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubJobEntities {
    #[serde(default)]
    pub server_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_id: Option<String>,
    /// The sub-job's failure cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errorcode_message: Option<String>,
}

/// `GET /v1/{project_id}/cloudservers/detail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerList {
    pub count: u64,
    #[serde(default)]
    pub servers: Vec<ServerDetail>,
}

/// `GET /v1/{project_id}/cloudservers/{server_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShowServer {
    pub server: ServerDetail,
}

/// The part of a server's details the operator reads; the rest is ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerDetail {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `ACTIVE`, `SHUTOFF`, `BUILD`, `REBOOT`, ... kept as the cloud spells it.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(rename = "OS-EXT-STS:vm_state", default)]
    pub vm_state: Option<String>,
    /// `powering-off` while a stop runs: there is no distinct stopping status.
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    pub task_state: Option<String>,
    /// 0 NOSTATE, 1 RUNNING, 4 SHUTDOWN.
    #[serde(rename = "OS-EXT-STS:power_state", default)]
    pub power_state: Option<i32>,
    #[serde(default)]
    pub locked: Option<bool>,
    #[serde(default)]
    pub fault: Option<ServerFault>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub updated: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(rename = "OS-EXT-AZ:availability_zone", default)]
    pub availability_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerFault {
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
}

/// ECS service error: `{"error": {"code": "Ecs.0005", "message": "...", "details": [...]}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcsErrorBody {
    pub error: EcsErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcsErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<ErrorDetailItem>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetailItem {
    pub code: String,
    pub message: String,
}

/// API gateway and IAM error: `{"error_code": "APIGW.0301", "error_msg": "...", "request_id": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayErrorBody {
    pub error_code: String,
    pub error_msg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Code and message of any error body, found the way the official SDK finds them:
/// the first of `error_code`/`error_msg`, `errorCode`/`errorMsg`, `code`/`message`
/// at the top, else the same search inside nested objects (`{"error": {...}}`,
/// Nova's `{"itemNotFound": {...}}`). Both are cut to
/// [`MAX_CLOUD_TEXT`](super::error::MAX_CLOUD_TEXT) characters.
pub fn error_code_and_message(body: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    find_code_and_message(&value)
}

fn find_code_and_message(value: &serde_json::Value) -> Option<(String, String)> {
    let object = value.as_object()?;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (code_key, message_key) in [
        ("error_code", "error_msg"),
        ("errorCode", "errorMsg"),
        ("code", "message"),
    ] {
        if let (Some(code), Some(message)) = (object.get(code_key), object.get(message_key)) {
            return Some((cut_cloud_text(&text(code)), cut_cloud_text(&text(message))));
        }
    }
    object.values().find_map(find_code_and_message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_body_serialises_as_the_sdk_does() {
        let body = BatchAction::Stop(StopBody {
            servers: vec![ServerRef { id: "a".into() }],
            stop_type: Some(PowerActionType::Hard),
        });
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"os-stop":{"servers":[{"id":"a"}],"type":"HARD"}}"#
        );
    }

    #[test]
    fn two_action_keys_are_refused() {
        let body = r#"{"os-stop":{"servers":[]},"os-start":{"servers":[]}}"#;
        assert!(serde_json::from_str::<BatchAction>(body).is_err());
    }

    #[test]
    fn error_code_is_found_in_every_shape() {
        let ecs = br#"{"error":{"code":"Ecs.0118","message":"too many"}}"#;
        let gateway = br#"{"error_code":"APIGW.0308","error_msg":"throttled","request_id":"r"}"#;
        let nova = br#"{"itemNotFound":{"message":"gone","code":404}}"#;
        assert_eq!(
            error_code_and_message(ecs),
            Some(("Ecs.0118".into(), "too many".into()))
        );
        assert_eq!(
            error_code_and_message(gateway),
            Some(("APIGW.0308".into(), "throttled".into()))
        );
        assert_eq!(
            error_code_and_message(nova),
            Some(("404".into(), "gone".into()))
        );
        assert_eq!(error_code_and_message(b"<html>"), None);
    }
}
