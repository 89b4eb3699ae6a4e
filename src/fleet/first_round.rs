//! The controller's first sync round: every policy that exists when it starts gets
//! its first sync, in no particular order and, at 1000 policies, over seconds (each
//! writes its status). Until all of them have had it, a partial batch could still be
//! joined by ids of policies not yet synced, so partial batches wait for the round
//! to end rather than for a quiet spell in the queue, which a slow Kubernetes API
//! produces in the middle of the round. The wait is bounded: a policy whose sync
//! hangs must not hold back every other one.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Longest a round may hold partial batches back.
pub const FIRST_ROUND_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug)]
enum Round {
    /// No controller has begun a round (a fleet used on its own): no gate.
    NotBegun,
    /// The policy list is being read: which policies exist is not known yet.
    Listing {
        since: Instant,
        synced: HashSet<String>,
    },
    /// Waiting for the first sync of these policies.
    Syncing {
        since: Instant,
        pending: HashSet<String>,
    },
    Ended {
        at: Instant,
    },
}

/// Whether partial batches may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Closed,
    /// Open; `round_ended_at` is when the first round ended, if there was one.
    Open {
        round_ended_at: Option<Instant>,
    },
}

#[derive(Debug)]
pub struct FirstRound {
    round: Mutex<Round>,
    limit: Duration,
}

impl Default for FirstRound {
    fn default() -> Self {
        Self::new(FIRST_ROUND_LIMIT)
    }
}

impl FirstRound {
    pub fn new(limit: Duration) -> Self {
        Self {
            round: Mutex::new(Round::NotBegun),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Round> {
        self.round.lock().expect("first round lock poisoned")
    }

    /// A controller starts (or starts again after regaining leadership).
    pub fn begin(&self, now: Instant) {
        *self.lock() = Round::Listing {
            since: now,
            synced: HashSet::new(),
        };
    }

    /// The policy list has been read: these policies exist. Returns whether the round
    /// ended with this (all of them had their sync already).
    pub fn expect<I: IntoIterator<Item = String>>(&self, policies: I, now: Instant) -> bool {
        let mut round = self.lock();
        let Round::Listing { since, synced } = &mut *round else {
            return false;
        };
        let pending: HashSet<String> = policies
            .into_iter()
            .filter(|policy| !synced.contains(policy))
            .collect();
        *round = if pending.is_empty() {
            Round::Ended { at: now }
        } else {
            Round::Syncing {
                since: *since,
                pending,
            }
        };
        matches!(*round, Round::Ended { .. })
    }

    /// `policy` had its first sync (or was deleted before it). Returns whether the
    /// round ended with this.
    pub fn synced(&self, policy: &str, now: Instant) -> bool {
        let mut round = self.lock();
        match &mut *round {
            Round::Listing { synced, .. } => {
                synced.insert(policy.to_owned());
                false
            }
            Round::Syncing { pending, .. } => {
                pending.remove(policy);
                if pending.is_empty() {
                    *round = Round::Ended { at: now };
                    return true;
                }
                false
            }
            Round::NotBegun | Round::Ended { .. } => false,
        }
    }

    pub fn gate(&self, now: Instant) -> Gate {
        let mut round = self.lock();
        let since = match &*round {
            Round::NotBegun => {
                return Gate::Open {
                    round_ended_at: None,
                };
            }
            Round::Ended { at } => {
                return Gate::Open {
                    round_ended_at: Some(*at),
                };
            }
            Round::Listing { since, .. } | Round::Syncing { since, .. } => *since,
        };
        if now.duration_since(since) < self.limit {
            return Gate::Closed;
        }
        let waiting_for = match &*round {
            Round::Syncing { pending, .. } => pending.len(),
            _ => 0,
        };
        tracing::warn!(
            limit = ?self.limit,
            waiting_for,
            "first sync round not done in time; partial stop calls go ahead"
        );
        let at = since + self.limit;
        *round = Round::Ended { at };
        Gate::Open {
            round_ended_at: Some(at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn without_a_round_partial_batches_go() {
        let round = FirstRound::new(LIMIT);
        let gate = round.gate(Instant::now());
        assert_eq!(
            gate,
            Gate::Open {
                round_ended_at: None
            }
        );
    }

    #[test]
    fn the_gate_opens_when_every_listed_policy_has_synced() {
        let round = FirstRound::new(LIMIT);
        let t0 = Instant::now();
        round.begin(t0);
        // A sync that ran while the list was still being read counts.
        assert!(!round.synced("ns/a", t0));
        assert_eq!(round.gate(t0), Gate::Closed);
        assert!(!round.expect(keys(&["ns/a", "ns/b", "ns/c"]), t0));
        assert!(!round.synced("ns/b", t0));
        assert_eq!(round.gate(t0 + Duration::from_secs(1)), Gate::Closed);
        let end = t0 + Duration::from_secs(2);
        assert!(round.synced("ns/c", end));
        assert_eq!(
            round.gate(end + Duration::from_secs(1)),
            Gate::Open {
                round_ended_at: Some(end)
            }
        );
        // Later syncs change nothing.
        assert!(!round.synced("ns/c", end + Duration::from_secs(5)));
    }

    #[test]
    fn a_list_of_policies_that_all_synced_ends_the_round_at_once() {
        let round = FirstRound::new(LIMIT);
        let t0 = Instant::now();
        round.begin(t0);
        round.synced("ns/a", t0);
        assert!(round.expect(keys(&["ns/a"]), t0));
        assert!(matches!(round.gate(t0), Gate::Open { .. }));
        let empty = FirstRound::new(LIMIT);
        empty.begin(t0);
        assert!(empty.expect(Vec::new(), t0));
    }

    #[test]
    fn a_policy_that_never_syncs_holds_the_gate_only_until_the_limit() {
        let round = FirstRound::new(LIMIT);
        let t0 = Instant::now();
        round.begin(t0);
        round.expect(keys(&["ns/a", "ns/stuck"]), t0);
        round.synced("ns/a", t0);
        assert_eq!(
            round.gate(t0 + LIMIT - Duration::from_millis(1)),
            Gate::Closed
        );
        assert_eq!(
            round.gate(t0 + LIMIT),
            Gate::Open {
                round_ended_at: Some(t0 + LIMIT)
            }
        );
        // So does a policy list that never arrives.
        let unlisted = FirstRound::new(LIMIT);
        unlisted.begin(t0);
        assert_eq!(unlisted.gate(t0 + LIMIT / 2), Gate::Closed);
        assert!(matches!(unlisted.gate(t0 + LIMIT), Gate::Open { .. }));
    }

    #[test]
    fn a_new_round_closes_the_gate_again() {
        let round = FirstRound::new(LIMIT);
        let t0 = Instant::now();
        round.begin(t0);
        round.expect(Vec::new(), t0);
        let t1 = t0 + Duration::from_secs(100);
        round.begin(t1);
        assert_eq!(round.gate(t1), Gate::Closed);
    }
}
