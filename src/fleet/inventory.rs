//! The project's servers from one paginated listing, shared by every policy, with the
//! results of finished stop jobs folded in between listings: a job that reports its
//! servers stopped needs no 100-page listing to show it.
//!
//! A new listing updates the map in place, page by page, rather than building a second
//! one beside it: at 100,000 servers that second map was the largest allocation of the
//! operator. While it runs, syncs see each server as the last listing or the current
//! one left it, and plan against the last listing's start time, so nothing that ended
//! since counts as settled.

use super::PolicyKey;
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
    /// Each server's power state, and the listing that last saw it.
    servers: HashMap<String, (ObservedPower, u64)>,
    /// Listings begun so far: the number of the current (or last) one.
    listings_begun: u64,
    fetched_at: Option<Instant>,
    /// Set when a stop call's answer was lost: only a new listing tells what happened.
    stale: bool,
    /// Policies that planned with the current listing: one that has not may still use
    /// it past `max_age`, so a sync round of many policies costs one listing.
    seen_by: HashSet<PolicyKey>,
    /// Results learnt from jobs, and when: those newer than a listing's start win
    /// over it, since the listing may have read the server before the job ended.
    confirmed: HashMap<String, (ObservedPower, Instant)>,
}

impl State {
    /// Fresh for `policy`: younger than `max_age`, or not yet seen by it and younger
    /// than `MAX_AGE_PER_ROUND` of them.
    fn is_fresh(&self, policy: &PolicyKey, max_age: Duration) -> bool {
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

    /// Whether there is a listing syncs may plan with.
    pub fn is_usable(&self) -> bool {
        self.lock().is_usable()
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
            if let Some((current, _)) = state.servers.get_mut(id) {
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
        policy: &PolicyKey,
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
        let listing = {
            let mut state = self.lock();
            state.listings_begun += 1;
            state.listings_begun
        };
        api.for_each_server_page(&ServerFilter::default(), &mut |page| {
            let mut state = self.lock();
            let State {
                servers, confirmed, ..
            } = &mut *state;
            for detail in page {
                let listed = ObservedPower::from_ecs(
                    detail.status.as_deref().unwrap_or("UNKNOWN"),
                    detail.task_state.as_deref(),
                    detail.locked.unwrap_or(false),
                );
                // A job result newer than this listing's start wins: the page may
                // have been read before the job ended.
                let power = match confirmed.get(&detail.id) {
                    Some((power, at)) if *at > fetched_at => *power,
                    _ => listed,
                };
                // A known server keeps its key: only the value is replaced.
                servers.insert(detail.id, (power, listing));
            }
        })
        .await?;
        let mut state = self.lock();
        // Servers this listing did not see no longer exist.
        state.servers.retain(|_, (_, seen_in)| *seen_in == listing);
        state.confirmed.retain(|_, (_, at)| *at > fetched_at);
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
            state
                .servers
                .get(id)
                .is_some_and(|(power, _)| *power == ObservedPower::Stopped)
        });
        any && all
    }

    /// The asked-for servers as last listed (or confirmed by a job since). Call
    /// [`Self::refresh`] first.
    pub fn observe(&self, policy: &PolicyKey, ids: &[String]) -> Observation {
        let mut state = self.lock();
        if !state.seen_by.contains(policy) {
            state.seen_by.insert(policy.clone());
        }
        Observation {
            fetched_at: state.fetched_at.unwrap_or_else(Instant::now),
            servers: ids
                .iter()
                .filter_map(|id| state.servers.get(id).map(|(power, _)| (id.clone(), *power)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::fake_listings::Listings;
    use std::sync::Arc;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn key(name: &str) -> PolicyKey {
        PolicyKey::new("ns", name)
    }

    fn seen(cache: &InventoryCache, policy: &str, names: &[&str]) -> Vec<(String, ObservedPower)> {
        let mut servers: Vec<_> = cache
            .observe(&key(policy), &ids(names))
            .servers
            .into_iter()
            .collect();
        servers.sort_by(|a, b| a.0.cmp(&b.0));
        servers
    }

    #[tokio::test]
    async fn a_new_listing_updates_servers_and_drops_those_gone() {
        let cache = Arc::new(InventoryCache::default());
        let api = Listings::new(
            vec![
                vec![
                    vec![("a", "ACTIVE"), ("b", "ACTIVE")],
                    vec![("c", "ACTIVE")],
                ],
                vec![vec![("a", "SHUTOFF")], vec![("d", "ACTIVE")]],
            ],
            Box::new(|| {}),
        );
        cache
            .refresh(&api, &key("p"), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(seen(&cache, "p", &["a", "b", "c"]).len(), 3);
        cache
            .refresh(&api, &key("p"), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            seen(&cache, "p", &["a", "b", "c", "d"]),
            [
                ("a".to_owned(), ObservedPower::Stopped),
                ("d".to_owned(), ObservedPower::Running)
            ]
        );
    }

    #[tokio::test]
    async fn a_job_result_newer_than_the_listing_wins_over_its_pages() {
        let cache = Arc::new(InventoryCache::default());
        let during = Arc::clone(&cache);
        let api = Listings::new(
            vec![vec![
                vec![("a", "ACTIVE")],
                // Read before the job's end was learnt: still ACTIVE on this page.
                vec![("b", "ACTIVE")],
            ]],
            Box::new(move || {
                during.confirm(&ids(&["b"]), ObservedPower::Stopped);
            }),
        );
        cache
            .refresh(&api, &key("p"), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            seen(&cache, "p", &["a", "b"]),
            [
                ("a".to_owned(), ObservedPower::Running),
                ("b".to_owned(), ObservedPower::Stopped)
            ]
        );
        assert!(cache.all_stopped(ids(&["b"]).iter()));
        assert!(!cache.all_stopped(ids(&["a", "b"]).iter()));
    }

    #[tokio::test]
    async fn while_a_listing_runs_syncs_see_the_last_one() {
        let cache = Arc::new(InventoryCache::default());
        let during = Arc::clone(&cache);
        let api = Listings::new(
            vec![
                vec![vec![("a", "ACTIVE"), ("b", "ACTIVE")]],
                vec![vec![("a", "SHUTOFF")], vec![("b", "SHUTOFF")]],
            ],
            Box::new(move || {
                // Half-way: "a" from the new listing, "b" still from the last one, and
                // the time to plan against is the last listing's start.
                let observed = during.observe(&key("q"), &ids(&["a", "b"]));
                assert_eq!(observed.servers["a"], ObservedPower::Stopped);
                assert_eq!(observed.servers["b"], ObservedPower::Running);
            }),
        );
        cache
            .refresh(&api, &key("p"), Duration::ZERO)
            .await
            .unwrap();
        let first = cache.observe(&key("p"), &[]).fetched_at;
        cache
            .refresh(&api, &key("p"), Duration::ZERO)
            .await
            .unwrap();
        assert!(cache.observe(&key("p"), &[]).fetched_at > first);
    }
}
