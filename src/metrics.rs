//! Prometheus metrics, served as text on `/metrics`.
//!
//! One registry per process. The families are what an on-call engineer asks first:
//! is it reconciling, is the cloud refusing us, how much is waiting on throttling.

use crate::policy::conditions::{self, ConditionType};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: String,
    /// HTTP status code, or the error kind when no answer came.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LostLabels {
    /// `deadline` or `poll_failed`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WaitLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    pub namespace: String,
    pub policy: String,
    pub r#type: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ResultLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub errors: Family<ErrorLabels, Counter>,
    pub ecs_requests: Family<RequestLabels, Counter>,
    pub ecs_request_duration: Histogram,
    pub servers_stopped: Counter,
    pub stop_calls: Counter,
    pub status_writes: Counter,
    pub jobs_in_flight: Gauge,
    pub jobs_lost: Family<LostLabels, Counter>,
    pub wait_seconds: Family<WaitLabels, Counter<f64, AtomicU64>>,
    pub policy_condition: Family<ConditionLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ecs_power_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let errors = Family::<ErrorLabels, Counter>::default();
        let ecs_requests = Family::<RequestLabels, Counter>::default();
        let ecs_request_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let servers_stopped = Counter::default();
        let stop_calls = Counter::default();
        let status_writes = Counter::default();
        let jobs_in_flight = Gauge::default();
        let jobs_lost = Family::<LostLabels, Counter>::default();
        // Every reason from 0, so that the first loss is an increase() and the family
        // is in /metrics before anything was lost (the alert rule uses it).
        for reason in crate::fleet::LostReason::ALL {
            let _ = jobs_lost.get_or_create(&LostLabels {
                reason: reason.as_str(),
            });
        }
        let wait_seconds = Family::<WaitLabels, Counter<f64, AtomicU64>>::default();
        let policy_condition = Family::<ConditionLabels, Gauge>::default();
        registry.register(
            "reconciles",
            "Reconciles of EcsPowerPolicy, by result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            reconcile_duration.clone(),
        );
        registry.register(
            "errors",
            "Reconcile errors by kind (auth, throttled, transient, config, kubernetes, ...)",
            errors.clone(),
        );
        registry.register(
            "ecs_requests",
            "ECS API requests by operation and HTTP status code",
            ecs_requests.clone(),
        );
        registry.register(
            "ecs_request_duration_seconds",
            "Time one ECS API request took",
            ecs_request_duration.clone(),
        );
        registry.register(
            "servers_stopped",
            "Servers whose stop sub-job succeeded",
            servers_stopped.clone(),
        );
        registry.register(
            "stop_calls",
            "Batch stop calls accepted by the ECS API",
            stop_calls.clone(),
        );
        registry.register(
            "status_writes",
            "Status patches sent to the Kubernetes API (only when a status changed)",
            status_writes.clone(),
        );
        registry.register(
            "jobs_in_flight",
            "ECS stop jobs submitted and not yet finished",
            jobs_in_flight.clone(),
        );
        registry.register(
            "jobs_lost",
            "ECS stop jobs given up unfinished, by reason (deadline: not finished by --job-deadline; poll_failed: its status could not be read)",
            jobs_lost.clone(),
        );
        registry.register(
            "wait_seconds",
            "Time spent waiting on the per-minute budget or on throttling",
            wait_seconds.clone(),
        );
        registry.register(
            "policy_condition",
            "1 while the policy's condition of this type is True, else 0",
            policy_condition.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            errors,
            ecs_requests,
            ecs_request_duration,
            servers_stopped,
            stop_calls,
            status_writes,
            jobs_in_flight,
            jobs_lost,
            wait_seconds,
            policy_condition,
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn reconciled(&self, result: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    pub fn error(&self, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Sets the policy's condition gauges from the conditions just written.
    pub fn policy_conditions(&self, namespace: &str, policy: &str, conditions: &[Condition]) {
        for type_ in ConditionType::ALL {
            let holds = conditions::is_true(conditions, type_);
            self.policy_condition
                .get_or_create(&condition_labels(namespace, policy, type_))
                .set(i64::from(holds));
        }
    }

    /// Removes a deleted policy's condition gauges.
    pub fn forget_policy_conditions(&self, namespace: &str, policy: &str) {
        for type_ in ConditionType::ALL {
            self.policy_condition
                .remove(&condition_labels(namespace, policy, type_));
        }
    }

    pub fn job_lost(&self, reason: crate::fleet::LostReason) {
        self.jobs_lost
            .get_or_create(&LostLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    pub fn waited(&self, reason: &'static str, took: Duration) {
        self.wait_seconds
            .get_or_create(&WaitLabels { reason })
            .inc_by(took.as_secs_f64());
    }
}

fn condition_labels(namespace: &str, policy: &str, type_: ConditionType) -> ConditionLabels {
    ConditionLabels {
        namespace: namespace.to_owned(),
        policy: policy.to_owned(),
        r#type: type_.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_names_every_family() {
        let metrics = Metrics::default();
        metrics.reconciled("ok", Duration::from_millis(20));
        metrics.error("auth");
        metrics.waited("budget", Duration::from_millis(1500));
        metrics.job_lost(crate::fleet::LostReason::Deadline);
        let text = metrics.encode();
        for name in [
            "ecs_power_operator_reconciles_total{result=\"ok\"} 1",
            "ecs_power_operator_errors_total{kind=\"auth\"} 1",
            "ecs_power_operator_wait_seconds_total{reason=\"budget\"} 1.5",
            "ecs_power_operator_jobs_in_flight 0",
            "ecs_power_operator_jobs_lost_total{reason=\"deadline\"} 1",
            "ecs_power_operator_status_writes_total 0",
            "ecs_power_operator_jobs_lost_total{reason=\"poll_failed\"} 0",
            "# EOF",
        ] {
            assert!(text.contains(name), "missing `{name}` in:\n{text}");
        }
    }

    #[test]
    fn condition_gauges_follow_the_conditions_and_go_with_the_policy() {
        let metrics = Metrics::default();
        let stalled = Condition {
            type_: "Stalled".into(),
            status: "True".into(),
            reason: "SecretNotFound".into(),
            message: "m".into(),
            observed_generation: Some(1),
            last_transition_time: crate::policy::status_time(jiff::Timestamp::UNIX_EPOCH),
        };
        metrics.policy_conditions("ns", "p", &[stalled]);
        let text = metrics.encode();
        for line in [
            "ecs_power_operator_policy_condition{namespace=\"ns\",policy=\"p\",type=\"Stalled\"} 1",
            "ecs_power_operator_policy_condition{namespace=\"ns\",policy=\"p\",type=\"Ready\"} 0",
        ] {
            assert!(text.contains(line), "missing `{line}` in:\n{text}");
        }
        metrics.forget_policy_conditions("ns", "p");
        assert!(!metrics.encode().contains("policy=\"p\""));
    }
}
