use crate::schedule::spec::ScheduleSpec;
use crate::selector::spec::SelectorSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Keep the listed Open Telekom Cloud / Huawei Cloud ECS servers stopped.
///
/// The operator lists the project's servers, stops those that run through the ECS
/// batch API (at most 1,000 per call), follows the jobs to the end and reports here.
/// It starts servers only with spec.schedule.afterWindow Start, those it stopped, when
/// a window ends: deleting the policy leaves the servers as they are.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// Several printcolumns share `type_ = "integer"`, which clippy mistakes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "ecspower.dev",
    version = "v1alpha1",
    kind = "EcsPowerPolicy",
    namespaced,
    shortname = "epp",
    status = "EcsPowerPolicyStatus",
    derive = "PartialEq",
    doc = "Keeps Open Telekom Cloud / Huawei Cloud ECS servers stopped.",
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.summary.desired",
        description = "Servers the policy names"
    ),
    printcolumn(
        name = "Stopped",
        type_ = "integer",
        json_path = ".status.summary.stopped",
        description = "Servers the cloud reports SHUTOFF"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.summary.failed",
        description = "Servers whose last stop attempt failed"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the policy stands"
    ),
    printcolumn(
        name = "Waiting",
        type_ = "integer",
        json_path = ".status.queue.waiting",
        description = "Servers queued, waiting for the project's budget",
        priority = "1"
    ),
    printcolumn(
        name = "ETA",
        type_ = "string",
        json_path = ".status.queue.estimatedCompletionTime",
        description = "When the waiting servers should all be stopped",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("(has(self.servers) && size(self.servers) > 0) || has(self.selector)")
        .message("a policy needs spec.servers or spec.selector"),
    validation = kube::core::Rule::new("!has(self.selector) || has(self.maxServers)")
        .message("spec.maxServers is required with spec.selector"),
)]
pub struct EcsPowerPolicySpec {
    /// The cloud project that owns the servers, and how to reach and authenticate to it.
    pub cloud: CloudSpec,

    /// The servers to keep stopped, by ECS server id (at most 10,000 entries, each id
    /// once). Same shape as the `servers` list of the ECS batch-stop API. Optional
    /// beside a selector: the policy then wants the union of both. Apply a policy of
    /// more than 5,000 servers with `kubectl apply --server-side`: client-side apply
    /// copies the object into an annotation limited to 256 KiB (about 5,600 servers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["id".into()]))]
    #[schemars(length(max = crate::policy::MAX_SERVERS_PER_POLICY))]
    pub servers: Vec<ServerRef>,

    /// Servers chosen by the cloud's own tags and name, from the project's listing:
    /// every tag must be present with that value, and the name must match namePattern
    /// if given. Requires maxServers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorSpec>,

    /// Servers this policy never stops, whatever servers or selector say (at most
    /// 10,000, each id once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["id".into()]))]
    #[schemars(length(max = crate::policy::MAX_SERVERS_PER_POLICY))]
    pub exclude: Vec<ServerRef>,

    /// The most servers the selector may match (excluded ones not counted). If more
    /// match, the policy stops nothing new and is Stalled with reason
    /// MaxServersExceeded: a selector that suddenly matches production stops nothing.
    /// Required with a selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = crate::policy::MAX_SELECTED_PER_POLICY))]
    pub max_servers: Option<u32>,

    /// How to stop: Soft asks the guest OS to shut down (ACPI), Hard powers off at once.
    /// Sent to the ECS API as SOFT or HARD.
    #[serde(default)]
    pub stop_type: StopType,

    /// When true the operator observes and reports but stops nothing.
    #[serde(default)]
    pub suspend: bool,

    /// When true the operator reports in status.dryRun what it would stop, and stops nothing.
    #[serde(default)]
    pub dry_run: bool,

    /// When the servers are kept stopped: windows of local time in a time zone, with
    /// exception days. Outside every window the policy stops nothing and corrects no
    /// drift; without a schedule the servers are always kept stopped. The annotation
    /// ecspower.dev/keep-running-until (an RFC 3339 time) suspends stopping until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
}

/// The cloud project that owns the servers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudSpec {
    /// The project id (32 lowercase hexadecimal characters) the servers belong to.
    #[schemars(regex(pattern = r"^[0-9a-f]{32}$"))]
    pub project_id: String,

    /// The region, for example eu-de, eu-nl or ap-southeast-1. The ECS endpoint
    /// https://ecs.<region>.otc.t-systems.com is derived from it unless endpoint is set.
    #[schemars(regex(pattern = r"^[a-z]{2,}(-[a-z0-9]+)+$"), length(max = 32))]
    pub region: String,

    /// Overrides the ECS endpoint derived from the region, for another cloud or a
    /// simulator. Must be https; plain http is accepted only for a loopback host
    /// (127.0.0.0/8, localhost, [::1]) so credentials never cross a network unencrypted.
    /// No user:password@, query or fragment: a scheme, a host, a port and a path.
    // Only rule in CEL: a scalar with a bounded length keeps its cost negligible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    #[x_kube(validation = kube::core::Rule::new(ENDPOINT_RULE).message(ENDPOINT_MESSAGE))]
    pub endpoint: Option<String>,

    /// The Secret in this policy's namespace holding the access key pair, under the keys
    /// accessKey and secretKey.
    pub credentials_secret_ref: SecretRef,
}

// Regexes on `self` rather than `url(self).getHostname()`: the API server cannot bound
// the length of a function's result, so a regex on it is estimated far over the CEL cost
// budget, while `self` is bounded by maxLength. The loopback host must be followed by a
// port, a path or the end, so `http://localhost@evil.example` and
// `http://127.0.0.1.evil.example` are refused. No `@` in the authority (userinfo would
// be logged and sent), no `?` or `#` anywhere (a query or fragment would give one
// project's endpoint two spellings).
const ENDPOINT_RULE: &str = concat!(
    r"isURL(self) && (self.matches(r'^https://[^/?#@]+(/[^?#]*)?$') || ",
    r"self.matches(r'^http://(localhost|127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|\[::1\])(:[0-9]{1,5})?(/[^?#]*)?$'))"
);
const ENDPOINT_MESSAGE: &str = "spec.cloud.endpoint must be an https:// URL without user:password@, \
    query or fragment; http:// is allowed only for a loopback host (127.0.0.0/8, localhost, [::1])";

/// A Secret in the policy's own namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretRef {
    /// Name of the Secret, in the same namespace as the policy.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
}

/// One ECS server, named by id.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerRef {
    /// The ECS server id, a lowercase UUID as the ECS API reports it.
    // Lowercase only: list-map keys compare exact strings, so accepting both cases
    // would let the same server in twice.
    #[schemars(regex(
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    ))]
    pub id: String,
}

/// How the ECS API stops a server.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StopType {
    /// Ask the guest OS to shut down.
    #[default]
    Soft,
    /// Power off at once.
    Hard,
}

/// What the operator observed and did, written by the operator only.
// The API server fills in this default for a policy the operator has not written yet:
// observedGeneration 0 is below every generation, so kstatus (Flux) and the Argo CD
// health check read a new policy as in progress, not as done before anything happened.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": 0}))]
pub struct EcsPowerPolicyStatus {
    /// The metadata.generation of the spec this status describes (0 until the operator
    /// first writes status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Where the policy stands: Pending, Stopping, Stopped, Degraded, Suspended or Idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// How many of the named servers are in each state.
    #[serde(default)]
    pub summary: Summary,

    /// The most recent stop and start jobs, newest first (at most 20). Jobs still INIT or RUNNING
    /// are polled from here after an operator restart, so nothing is stopped twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::policy::MAX_JOBS_IN_STATUS))]
    pub jobs: Vec<JobRecord>,

    /// Servers whose last stop attempt failed, with the cloud's error (at most 50;
    /// summary.failed counts all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::policy::MAX_FAILURES_IN_STATUS))]
    pub failures: Vec<ServerFailure>,

    /// Ready (in the state the spec asks for: every server stopped, or suspended, or a
    /// dry run reported), Reconciling (stops under way, failures retried), Stalled (a
    /// person must act) and Degraded (failures, unknown servers or configuration
    /// errors), in the metav1.Condition shape, as kstatus reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// When the operator last compared the policy with the cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// What the operator would stop, reported while spec.dryRun is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRunReport>,

    /// What spec.selector matched in the last listing, while it is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorStatus>,

    /// Where the policy stands while some of its servers wait in the project's queue
    /// (for the action budget, shared by every policy of the project); absent when
    /// none waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueStatus>,

    /// Where spec.schedule and the keep-running-until annotation stand, while either
    /// is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleStatus>,

    /// The servers this policy stopped and has not started again, while
    /// spec.schedule.afterWindow is Start: when the window ends, these (and only
    /// these) are started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by_policy: Option<StoppedByPolicy>,
}

/// What a policy with `afterWindow: Start` starts when its window ends. Server ids,
/// not job ids: a restart after the window ended must know them without asking the
/// cloud about jobs it may have forgotten, and a coalesced job names other policies'
/// servers too. Capped at 1000 ids (~37 KB, one start call) so a status write stays
/// small; servers stopped beyond the cap are counted in notRecorded, left stopped at
/// the window's end, and the policy is Degraded with reason StartRecordFull.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoppedByPolicy {
    /// Server ids, sorted (at most 1000).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::policy::MAX_STOPPED_RECORDED))]
    pub servers: Vec<String>,
    /// Servers this policy stopped that did not fit in servers: not started again.
    #[serde(default)]
    pub not_recorded: u32,
    /// While starting early (spec.schedule.startLeadTime): the end of the window it
    /// started early for. Until then it stops nothing, however its lead time moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_until: Option<Time>,
}

/// When the policy stops and stops no more, from spec.schedule and the
/// ecspower.dev/keep-running-until annotation.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// One of spec.schedule's windows (or an exception day) keeps the servers stopped
    /// now, whether or not keepRunningUntil holds stopping off. Always true without a
    /// schedule.
    pub window_active: bool,
    /// When stopping next begins (within 58 weeks); absent while it never will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_stop: Option<Time>,
    /// When stopping next ends (within 58 weeks); absent while it never will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_start: Option<Time>,
    /// The keep-running-until annotation, while it holds: nothing is stopped before
    /// this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_running_until: Option<Time>,
}

/// What a selector matched.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SelectorStatus {
    /// Servers the selector matched, the excluded ones not counted.
    pub matched: u32,
    /// 16 hex digits of SHA-256 over the sorted matched ids: it changes exactly when
    /// the matched set does.
    pub digest: String,
    /// The first matched ids, sorted (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::selector::SAMPLE_SIZE))]
    pub sample: Vec<String>,
}

/// The policy's place in its project's stop queue.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// The policy's servers queued, not yet in a stop call.
    pub waiting: u32,
    /// When the last of them should be stopped: from everything queued ahead of them
    /// (every policy of the project), the budget (servers per window, what the window
    /// already spent, at most 1,000 per call) and how long recent stop jobs took.
    /// Rewritten only when it moves by more than a few seconds.
    pub estimated_completion_time: Time,
}

/// Where a policy stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Not yet compared with the cloud, or (dry run) servers would be stopped.
    Pending,
    /// Stops are submitted or about to be.
    Stopping,
    /// Every named server is stopped.
    Stopped,
    /// Some servers cannot be stopped now: failures, unknown ids or a configuration error.
    Degraded,
    /// spec.suspend is true; nothing is acted on.
    Suspended,
    /// Outside spec.schedule's windows, or held off by the
    /// ecspower.dev/keep-running-until annotation: nothing is stopped, as scheduled.
    Idle,
}

/// How many of the named servers are in each state. The counts other than desired
/// add up to desired.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Distinct servers the policy names.
    pub desired: u32,
    /// Servers the cloud reports SHUTOFF.
    pub stopped: u32,
    /// Servers powering off, or in a stop job not yet finished.
    pub stopping: u32,
    /// Servers still to stop that have not failed yet, including those busy with
    /// another task (reboot, resize, start, ...) that are stopped once it ends.
    pub pending: u32,
    /// Servers not stopped whose last stop attempt failed (retried with backoff), or
    /// that the cloud reports in ERROR.
    pub failed: u32,
    /// Servers the project does not contain (wrong id, or deleted).
    pub not_found: u32,
}

/// One ECS stop or start job.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// The job id the ECS API returned.
    pub job_id: String,
    /// What the call asked for: Stop (os-stop) or Start (os-start, after a window).
    #[serde(default)]
    pub action: JobAction,
    /// How many servers the call named.
    pub servers: u32,
    /// The job's status as the ECS API reports it: INIT, RUNNING, SUCCESS or FAIL;
    /// LOST when the operator gave up following it.
    pub status: JobState,
    /// Sub-jobs (one per server) that succeeded so far.
    #[serde(default)]
    pub succeeded: u32,
    /// Sub-jobs (one per server) that failed so far.
    #[serde(default)]
    pub failed: u32,
    /// When the stop call was accepted.
    pub submitted_at: Time,
    /// When the job reached SUCCESS or FAIL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
}

/// What a job's call asked of its servers.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum JobAction {
    /// os-stop (a record written before starts existed is one).
    #[default]
    Stop,
    /// os-start, when a window with afterWindow Start ended.
    Start,
}

/// ECS job status, spelled as on the wire.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobState {
    /// Accepted, not started.
    Init,
    /// Sub-jobs running.
    Running,
    /// Every sub-job succeeded.
    Success,
    /// At least one sub-job failed.
    Fail,
    /// Given up on by the operator: its poll failed for good, or it stayed
    /// unfinished past --job-deadline. Its servers are re-observed by a listing.
    Lost,
}

impl JobState {
    /// Whether the job may still change, so it must be polled.
    pub fn in_flight(self) -> bool {
        matches!(self, JobState::Init | JobState::Running)
    }
}

/// A server whose last stop attempt failed.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerFailure {
    /// The ECS server id.
    pub server_id: String,
    /// The cloud's error code, for example Ecs.0100.
    pub code: String,
    /// The cloud's error message.
    pub message: String,
    /// Stop attempts so far.
    pub attempts: u32,
    /// When the last attempt failed.
    pub last_attempt_at: Time,
}

/// What the operator would stop if spec.dryRun were false.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DryRunReport {
    /// How many servers would be stopped now.
    pub would_stop: u32,
    /// Some of their ids (at most 20), in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::policy::DRY_RUN_SAMPLE_SIZE))]
    pub sample: Vec<String>,
}
