//! Stop calls whose outcome nobody knows (the answer lost, or the process that sent
//! them gone), remembered with the policies they were sent for. There is no job to
//! read sub-jobs from, so the listing that settles such a server decides: shut off
//! then, it counts as stopped by those policies, and `afterWindow: Start` starts it
//! again. The planner only queued it while it was running, so a server found shut
//! off right after the call was stopped by that call (or, in the rare race, by a
//! person in the same seconds: the one case where the policy starts a server it did
//! not stop, as the README's `afterWindow: Start` says). Pure.

use crate::fleet::PolicyKey;
use crate::plan::ObservedPower;
use crate::server_id::{IdMap, ServerId};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
struct Pending {
    policies: Vec<PolicyKey>,
    sent_at: jiff::Timestamp,
    /// A listing that began after this may show the call's effect.
    settles_at: Instant,
}

#[derive(Debug)]
struct Presumed {
    policies: Vec<PolicyKey>,
    sent_at: jiff::Timestamp,
    since: Instant,
}

#[derive(Debug, Default)]
pub(super) struct UnknownStops {
    pending: IdMap<Pending>,
    presumed: IdMap<Presumed>,
}

impl UnknownStops {
    /// Server `id` was in a stop call of `policies`, sent at `sent_at`, whose outcome
    /// a listing that begins after `settles_at` decides.
    pub(super) fn add(
        &mut self,
        id: ServerId,
        policies: Vec<PolicyKey>,
        sent_at: jiff::Timestamp,
        settles_at: Instant,
    ) {
        self.presumed.remove(&id);
        self.pending.insert(
            id,
            Pending {
                policies,
                sent_at,
                settles_at,
            },
        );
    }

    /// Decides the pending servers that a listing begun at `listed_at` shows in
    /// `observed` and could show the call's effect for.
    pub(super) fn settle(&mut self, observed: &IdMap<ObservedPower>, listed_at: Instant) {
        let presumed = &mut self.presumed;
        self.pending.retain(|id, pending| {
            let Some(power) = observed.get(id) else {
                return true;
            };
            // Powering off is most likely the call at work: the next listing decides.
            if listed_at <= pending.settles_at || *power == ObservedPower::Stopping {
                return true;
            }
            if *power == ObservedPower::Stopped {
                presumed.insert(
                    id.clone(),
                    Presumed {
                        policies: std::mem::take(&mut pending.policies),
                        sent_at: pending.sent_at,
                        since: listed_at,
                    },
                );
            }
            false
        });
    }

    /// The servers presumed stopped by `policy`'s calls, each with its call's time.
    pub(super) fn stopped_by<'a>(
        &'a self,
        policy: &'a PolicyKey,
    ) -> impl Iterator<Item = (&'a ServerId, jiff::Timestamp)> + 'a {
        self.presumed
            .iter()
            .filter(move |(_, presumed)| presumed.policies.contains(policy))
            .map(|(id, presumed)| (id, presumed.sent_at))
    }

    /// Forgets, `retention` later, what no policy's listing looked at and what was
    /// presumed (long since in `status.stoppedByPolicy`, the durable record).
    pub(super) fn expire(&mut self, retention: Duration, now: Instant) {
        self.pending
            .retain(|_, pending| now.saturating_duration_since(pending.settles_at) < retention);
        self.presumed
            .retain(|_, presumed| now.saturating_duration_since(presumed.since) < retention);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> PolicyKey {
        PolicyKey::new("ns", name)
    }

    fn observed(power: &[(&str, ObservedPower)]) -> IdMap<ObservedPower> {
        power.iter().map(|(id, p)| ((*id).into(), *p)).collect()
    }

    fn stopped_by(stops: &UnknownStops, policy: &str) -> Vec<String> {
        let policy = key(policy);
        let mut ids: Vec<String> = stops
            .stopped_by(&policy)
            .map(|(id, _)| id.to_string())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_server_shut_off_in_a_listing_after_the_settle_time_counts_as_its_policies_stop() {
        let t0 = Instant::now();
        let wall = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let settles = t0 + Duration::from_secs(10);
        let mut stops = UnknownStops::default();
        for id in ["a", "b", "c"] {
            stops.add(id.into(), vec![key("p"), key("q")], wall, settles);
        }
        let listing = observed(&[
            ("a", ObservedPower::Stopped),
            ("b", ObservedPower::Running),
            ("c", ObservedPower::Stopped),
        ]);
        // Begun before the cloud may have acted: nothing is decided.
        stops.settle(&listing, settles);
        assert!(stopped_by(&stops, "p").is_empty());
        // A listing that shows only a and b (c is another policy's server).
        let later = settles + Duration::from_millis(1);
        stops.settle(
            &observed(&[("a", ObservedPower::Stopped), ("b", ObservedPower::Running)]),
            later,
        );
        assert_eq!(stopped_by(&stops, "p"), vec!["a".to_owned()]);
        assert_eq!(stopped_by(&stops, "q"), vec!["a".to_owned()]);
        assert!(stopped_by(&stops, "r").is_empty(), "not r's call");
        // b was running after all: decided, never presumed; c waits for its listing.
        stops.settle(&listing, later);
        assert_eq!(
            stopped_by(&stops, "p"),
            vec!["a".to_owned(), "c".to_owned()]
        );
        // A new unknown stop of a takes it back to pending.
        stops.add(
            "a".into(),
            vec![key("p")],
            wall,
            later + Duration::from_secs(10),
        );
        assert_eq!(stopped_by(&stops, "p"), vec!["c".to_owned()]);
    }

    #[test]
    fn a_server_still_powering_off_waits_for_the_next_listing() {
        let t0 = Instant::now();
        let wall = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let mut stops = UnknownStops::default();
        stops.add("a".into(), vec![key("p")], wall, t0);
        let later = t0 + Duration::from_secs(1);
        stops.settle(&observed(&[("a", ObservedPower::Stopping)]), later);
        assert!(
            stopped_by(&stops, "p").is_empty(),
            "powering off decides nothing"
        );
        stops.settle(&observed(&[("a", ObservedPower::Stopped)]), later);
        assert_eq!(stopped_by(&stops, "p"), vec!["a".to_owned()]);
    }

    #[test]
    fn what_nobody_looked_at_and_what_was_presumed_are_forgotten_after_the_retention() {
        let t0 = Instant::now();
        let wall = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let retention = Duration::from_secs(600);
        let mut stops = UnknownStops::default();
        stops.add("a".into(), vec![key("p")], wall, t0);
        stops.add("b".into(), vec![key("p")], wall, t0);
        stops.settle(
            &observed(&[("a", ObservedPower::Stopped)]),
            t0 + Duration::from_secs(1),
        );
        stops.expire(retention, t0 + Duration::from_secs(599));
        assert_eq!(stopped_by(&stops, "p"), vec!["a".to_owned()]);
        stops.expire(retention, t0 + Duration::from_secs(601));
        assert!(stopped_by(&stops, "p").is_empty());
        // b, never looked at, is gone too: a listing now decides nothing about it.
        stops.settle(
            &observed(&[("b", ObservedPower::Stopped)]),
            t0 + Duration::from_secs(602),
        );
        assert!(stopped_by(&stops, "p").is_empty());
    }
}
