//! Writes the Events of [`super::events`] to the events.k8s.io/v1 API, each notice its
//! own Event, within the per-policy [`EventBudget`].
//!
//! Not kube-rs's `Recorder`: it keys its cache on type, reason, action and object, not
//! on the note, so three jobs submitted within its six-minute cache became one Event
//! "x3" showing the first job's id. A job's Event must name that job.

use super::events::{Announced, EventBudget, Notice};
use crate::fleet::PolicyKey;
use crate::policy::{EcsPowerPolicy, EcsPowerPolicyStatus};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::runtime::events::EventType;
use kube::{Api, Client, Resource, ResourceExt};
use std::sync::Mutex;
use std::time::Instant;

pub struct EventRecorder {
    client: Client,
    /// `reportingController` of every Event.
    controller: String,
    /// `reportingInstance`: the pod, or the controller's name when unknown.
    instance: String,
    budget: Mutex<EventBudget>,
    announced: Mutex<Announced>,
}

impl EventRecorder {
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance: instance.unwrap_or_else(|| controller.to_owned()),
            budget: Mutex::default(),
            announced: Mutex::default(),
        }
    }

    /// Publishes the Events of a status write: what changed between the status this
    /// process last wrote for the policy (or, the first time, `previous` as the watch
    /// cache had it) and `next`.
    pub async fn status_written(
        &self,
        policy: &EcsPowerPolicy,
        key: &PolicyKey,
        previous: &EcsPowerPolicyStatus,
        next: &EcsPowerPolicyStatus,
    ) {
        let notices = self
            .announced
            .lock()
            .expect("announced lock poisoned")
            .written(key, previous, next);
        self.publish(policy, key, notices).await;
    }

    /// Publishes what the budget lets through. An Event is a courtesy: failing to
    /// record one is logged and does not fail the sync.
    async fn publish(&self, policy: &EcsPowerPolicy, key: &PolicyKey, notices: Vec<Notice>) {
        if notices.is_empty() {
            return;
        }
        let offered = notices.len();
        let admitted = self
            .budget
            .lock()
            .expect("event budget lock poisoned")
            .admit(key, notices, Instant::now());
        if admitted.len() < offered {
            tracing::debug!(
                policy = %key,
                dropped = offered - admitted.len(),
                "Events over the per-policy budget dropped"
            );
        }
        let namespace = policy.namespace().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        for notice in admitted {
            let event = self.event(policy, &namespace, notice);
            if let Err(error) = api.create(&PostParams::default(), &event).await {
                tracing::warn!(policy = %key, %error, "could not record an Event");
            }
        }
    }

    /// Forgets a deleted policy's budget and last status.
    pub fn forget(&self, key: &PolicyKey) {
        self.budget
            .lock()
            .expect("event budget lock poisoned")
            .forget(key);
        self.announced
            .lock()
            .expect("announced lock poisoned")
            .forget(key);
    }

    fn event(&self, policy: &EcsPowerPolicy, namespace: &str, notice: Notice) -> Event {
        Event {
            metadata: ObjectMeta {
                // The API server adds a unique suffix: Events of one sync never collide.
                generate_name: Some(format!("{}-", policy.name_any())),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(jiff::Timestamp::now())),
            type_: Some(
                match notice.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            reason: Some(notice.reason),
            action: Some(notice.action.to_owned()),
            note: Some(notice.note),
            regarding: Some(policy.object_ref(&())),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        }
    }
}
