//! The `EcsPowerPolicy` custom resource (`ecspower.dev/v1alpha1`) and its CRD.
//!
//! Validation lives in the schema wherever OpenAPI can express it (patterns, enums,
//! list sizes, `x-kubernetes-list-type: map` for unique ids) and in CEL only for the
//! endpoint rule, a single bounded string, so the API server's CEL cost budget is never
//! a concern, not even with 10,000 servers in one policy.

pub mod conditions;
mod types;

pub use types::*;

use kube::CustomResourceExt;

/// Most servers one policy may name. One policy is one etcd object, and 10,000 entries
/// of `{"id": "<uuid>"}` (~50 bytes each) plus the status keep it far below the
/// 1.5 MiB request limit, with room for managed fields written by GitOps tools.
pub const MAX_SERVERS_PER_POLICY: usize = 10_000;
/// Stop jobs kept in `status.jobs`. A policy has at most 10 jobs in flight
/// (10,000 servers / 1,000 per call), so this also holds every job still being polled.
pub const MAX_JOBS_IN_STATUS: usize = 20;
/// Failures kept in `status.failures`; the count of all of them is `summary.failed`.
pub const MAX_FAILURES_IN_STATUS: usize = 50;
/// Server ids shown in `status.dryRun.sample`; the count of all of them is `wouldStop`.
pub const DRY_RUN_SAMPLE_SIZE: usize = 20;

/// The CRD of [`EcsPowerPolicy`] as YAML, exactly as checked in under `crds/`.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&EcsPowerPolicy::crd())
        .expect("a CustomResourceDefinition always serializes to YAML")
}
