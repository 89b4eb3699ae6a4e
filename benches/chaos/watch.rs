//! What the API server saw of a cell's policies, from one watch: every status write
//! (each modification of a policy counted once, spec changes aside since nothing
//! edits a spec during a cell) and when every policy was where the cell wants it
//! (Stopped and Ready; or, after a schedule window, Idle and Ready with nothing
//! left to start).

use anyhow::{Result, bail};
use ecs_power_operator::policy::{EcsPowerPolicy, Phase};
use futures::TryStreamExt;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub status_writes: u64,
    /// Policy name -> where the cell wants it (its goal) in its last status.
    pub ready: HashMap<String, bool>,
    /// When every one of the expected policies was first seen at its goal.
    pub all_ready: Option<Instant>,
}

/// Watches the policies of `ns` in the background until dropped.
pub struct PolicyWatch {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl PolicyWatch {
    pub fn start(
        client: &kube::Client,
        ns: &str,
        expected: usize,
        goal: fn(&EcsPowerPolicy) -> bool,
    ) -> Self {
        let api: Api<EcsPowerPolicy> = Api::namespaced(client.clone(), ns);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let events = watcher::watcher(api, watcher::Config::default());
            let mut events = std::pin::pin!(events);
            let mut versions: HashMap<String, String> = HashMap::new();
            while let Ok(Some(event)) = events.try_next().await {
                let (policy, live) = match event {
                    Event::Apply(policy) => (policy, true),
                    // A (re)list: its objects are the state, not writes seen.
                    Event::InitApply(policy) => (policy, false),
                    _ => continue,
                };
                let name = kube::ResourceExt::name_any(&policy);
                let version = policy.metadata.resource_version.clone().unwrap_or_default();
                let mut seen = shared.lock().unwrap();
                let changed = versions.insert(name.clone(), version.clone()) != Some(version);
                if live && changed {
                    seen.status_writes += 1;
                }
                seen.ready.insert(name, goal(&policy));
                if seen.all_ready.is_none()
                    && seen.ready.values().filter(|r| **r).count() == expected
                {
                    seen.all_ready = Some(Instant::now());
                }
            }
        });
        Self { seen, task }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until every expected policy is at its goal at once.
    pub async fn wait_all_ready(&self, limit: Duration) -> Result<Instant> {
        let t0 = Instant::now();
        loop {
            let seen = self.seen();
            if let Some(at) = seen.all_ready {
                return Ok(at);
            }
            if t0.elapsed() > limit {
                let ready = seen.ready.values().filter(|r| **r).count();
                bail!(
                    "only {ready} of {} policies seen at their goal after {limit:?}",
                    seen.ready.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PolicyWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ready_in(policy: &EcsPowerPolicy, phase: Phase) -> bool {
    let Some(status) = policy.status.as_ref() else {
        return false;
    };
    status.phase == Some(phase)
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The goal of a policy without a schedule.
pub fn stopped_and_ready(policy: &EcsPowerPolicy) -> bool {
    ready_in(policy, Phase::Stopped)
}

/// The goal of a policy after its window with afterWindow Start: Idle and Ready,
/// every server it stopped started again.
pub fn started_again(policy: &EcsPowerPolicy) -> bool {
    ready_in(policy, Phase::Idle)
        && policy
            .status
            .as_ref()
            .and_then(|s| s.stopped_by_policy.as_ref())
            .is_none_or(|record| record.servers.is_empty())
}
