//! The `EcsPowerPolicy` custom resource (`ecspower.dev/v1alpha1`) and its CRD.
//!
//! Validation lives in the schema wherever OpenAPI can express it (patterns, enums,
//! list sizes, `x-kubernetes-list-type: map` for unique ids) and in CEL for the
//! endpoint rule, the selector's tag keys (at most 10 of bounded length) and the rules
//! between fields (`has`/`size` only), each bounded, so the API server's CEL cost budget
//! is never a concern, not even with 10,000 servers in one policy.

pub mod conditions;
mod types;

pub use types::*;

use kube::CustomResourceExt;

/// Most servers one policy may name. One policy is one etcd object, and 10,000 entries
/// of `{"id": "<uuid>"}` (~50 bytes each) plus the status keep it far below the
/// 1.5 MiB request limit, with room for managed fields written by GitOps tools.
pub const MAX_SERVERS_PER_POLICY: usize = 10_000;
/// Most servers `spec.maxServers` may allow a selector to match: a whole project of
/// the size the operator is measured at.
pub const MAX_SELECTED_PER_POLICY: u32 = 100_000;
/// Stop jobs kept in `status.jobs`. A policy has at most 10 jobs in flight
/// (10,000 servers / 1,000 per call), so this also holds every job still being polled.
pub const MAX_JOBS_IN_STATUS: usize = 20;
/// Failures kept in `status.failures`; the count of all of them is `summary.failed`.
pub const MAX_FAILURES_IN_STATUS: usize = 50;
/// Servers `status.stoppedByPolicy` records by id: as many as a policy may name
/// (10,000 ids, ~370 KB beside a spec of about as much, well under etcd's 1.5 MiB
/// object limit), so every policy that names its servers is started again whole; a
/// selector matching more is counted beyond it, and those are not started again (see
/// [`StoppedByPolicy`]).
pub const MAX_STOPPED_RECORDED: usize = MAX_SERVERS_PER_POLICY;
/// Server ids shown in `status.dryRun.sample`; the count of all of them is `wouldStop`.
pub const DRY_RUN_SAMPLE_SIZE: usize = 20;

/// A status time as the API server stores it: whole seconds (`metav1.Time` has no
/// fraction). A finer time would differ from the stored status on every comparison,
/// and every sync would write status.
pub fn status_time(at: jiff::Timestamp) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(at.as_second()).expect("a whole second of a valid time"),
    )
}

/// The CRD of [`EcsPowerPolicy`] as YAML, exactly as checked in under `crds/`.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&EcsPowerPolicy::crd())
        .expect("a CustomResourceDefinition always serializes to YAML")
}

#[cfg(test)]
mod status_time_tests {
    use super::*;

    #[test]
    fn status_time_survives_the_api_servers_round_trip() {
        let at: jiff::Timestamp = "2026-11-29T10:15:42.987654321Z".parse().unwrap();
        let time = status_time(at);
        let stored: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time =
            serde_json::from_value(serde_json::to_value(&time).unwrap()).unwrap();
        assert_eq!(stored, time);
        assert_eq!(serde_json::to_value(&time).unwrap(), "2026-11-29T10:15:42Z");
    }
}
