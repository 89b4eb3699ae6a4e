//! The project's servers from one paginated listing, shared by every policy, with the
//! results of finished stop jobs folded in between listings: a job that reports its
//! servers stopped needs no 100-page listing to show it.

use crate::ecs::client::{EcsApi, ServerFilter};
use crate::ecs::error::EcsError;
use crate::plan::ObservedPower;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What one policy sees of the inventory.
#[derive(Debug)]
pub struct Observation {
    /// When the listing behind it started: anything that finished later may be missing.
    pub fetched_at: Instant,
    /// The asked-for servers that exist; an id absent here does not exist.
    pub servers: HashMap<String, ObservedPower>,
}

#[derive(Default)]
struct State {
    servers: HashMap<String, ObservedPower>,
    fetched_at: Option<Instant>,
    /// Set when a stop call's answer was lost: only a new listing tells what happened.
    stale: bool,
    /// Policies that planned with the current listing: one that has not may still use
    /// it past `max_age`, so a sync round of many policies costs one listing.
    seen_by: HashSet<String>,
    /// Results learnt from jobs, and when: those newer than a listing's start win
    /// over it, since the listing may have read the server before the job ended.
    confirmed: HashMap<String, (ObservedPower, Instant)>,
}

impl State {
    /// Fresh for `policy`: younger than `max_age`, or not yet seen by it and younger
    /// than `MAX_AGE_PER_ROUND` of them.
    fn is_fresh(&self, policy: &str, max_age: Duration) -> bool {
        let limit = if self.seen_by.contains(policy) {
            max_age
        } else {
            max_age * MAX_AGE_PER_ROUND
        };
        self.is_usable() && self.fetched_at.is_some_and(|at| at.elapsed() < limit)
    }

    /// Good enough to plan with while a newer listing is under way: jobs that end in
    /// the meantime count as in flight against its start time.
    fn is_usable(&self) -> bool {
        !self.stale && self.fetched_at.is_some()
    }
}

/// However slow a sync round, a policy never plans with a listing older than this many
/// `max_age`s.
const MAX_AGE_PER_ROUND: u32 = 10;

/// Single-flight cache: concurrent callers wait for the one listing under way.
#[derive(Default)]
pub struct InventoryCache {
    listing: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

impl InventoryCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("inventory lock poisoned")
    }

    /// The next caller lists again, whatever the listing's age.
    pub fn invalidate(&self) {
        self.lock().stale = true;
    }

    /// What a finished job reported for its servers, effective at once.
    pub fn confirm<'a>(&self, ids: impl IntoIterator<Item = &'a String>, power: ObservedPower) {
        let now = Instant::now();
        let mut state = self.lock();
        for id in ids {
            state.confirmed.insert(id.clone(), (power, now));
            if let Some(current) = state.servers.get_mut(id) {
                *current = power;
            }
        }
    }

    /// Lists the project again unless the current listing is fresh for `policy`.
    /// While another caller lists, the current listing serves (a 100-page listing must
    /// not stall every sync); only a caller with no usable listing waits for it.
    pub async fn refresh(
        &self,
        api: &dyn EcsApi,
        policy: &str,
        max_age: Duration,
    ) -> Result<(), EcsError> {
        if self.lock().is_fresh(policy, max_age) {
            return Ok(());
        }
        let _single_flight = match self.listing.try_lock() {
            Ok(guard) => guard,
            Err(_) if self.lock().is_usable() => return Ok(()),
            Err(_) => self.listing.lock().await,
        };
        if self.lock().is_fresh(policy, max_age) {
            return Ok(());
        }
        let fetched_at = Instant::now();
        let mut servers = HashMap::with_capacity(self.lock().servers.len());
        api.for_each_server_page(&ServerFilter::default(), &mut |page| {
            for detail in page {
                let power = ObservedPower::from_ecs(
                    detail.status.as_deref().unwrap_or("UNKNOWN"),
                    detail.task_state.as_deref(),
                );
                servers.insert(detail.id, power);
            }
        })
        .await?;
        let mut state = self.lock();
        state.confirmed.retain(|_, (_, at)| *at > fetched_at);
        for (id, (power, _)) in &state.confirmed {
            if let Some(current) = servers.get_mut(id) {
                *current = *power;
            }
        }
        state.servers = servers;
        state.fetched_at = Some(fetched_at);
        state.stale = false;
        state.seen_by.clear();
        Ok(())
    }

    /// Whether every one of `ids` (at least one) is listed as stopped.
    pub fn all_stopped<'a>(&self, mut ids: impl Iterator<Item = &'a String>) -> bool {
        let state = self.lock();
        let mut any = false;
        let all = ids.all(|id| {
            any = true;
            state.servers.get(id) == Some(&ObservedPower::Stopped)
        });
        any && all
    }

    /// The asked-for servers as last listed (or confirmed by a job since). Call
    /// [`Self::refresh`] first.
    pub fn observe(&self, policy: &str, ids: &[String]) -> Observation {
        let mut state = self.lock();
        state.seen_by.insert(policy.to_owned());
        Observation {
            fetched_at: state.fetched_at.unwrap_or_else(Instant::now),
            servers: ids
                .iter()
                .filter_map(|id| state.servers.get(id).map(|power| (id.clone(), *power)))
                .collect(),
        }
    }
}
