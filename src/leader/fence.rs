//! The leader's fence: it may submit only while its last confirmed renewal of the
//! Lease is younger than the renew deadline, which is shorter than the lease duration
//! a follower waits. So a leader that cannot renew (the API server unreachable, a
//! renewal that hangs) is quiet before anyone else can take over.
//!
//! Why a fence of its own: `kube-lease-manager`'s `watch()` logs a failed renewal and
//! retries with backoff without ever reporting the lock as lost, and a renewal that
//! hangs blocks it without a word; its state channel only changes when a renewal or
//! a read succeeds. The fence reads the Lease itself (a GET, bounded by a timeout)
//! and decides from what it saw, with an explicit clock.

use std::time::Duration;

/// What one read of the Lease showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSeen {
    pub holder: Option<String>,
    /// `spec.renewTime`: written by the holder from its own clock when it renewed.
    pub renewed_at: Option<jiff::Timestamp>,
}

#[derive(Debug, Clone)]
pub struct Fence {
    identity: String,
    renew_deadline: Duration,
    /// The latest renewal of ours a read confirmed.
    confirmed: Option<jiff::Timestamp>,
    /// Another holder was seen: closed for good (a new term starts a new process).
    superseded: bool,
}

impl Fence {
    /// `renew_deadline` must be shorter than the lease duration and longer than the
    /// renewal period (see [`renew_deadline`]).
    pub fn new(identity: impl Into<String>, renew_deadline: Duration) -> Self {
        Self {
            identity: identity.into(),
            renew_deadline,
            confirmed: None,
            superseded: false,
        }
    }

    /// Takes in a successful read of the Lease.
    pub fn observe(&mut self, seen: &LeaseSeen) {
        if seen.holder.as_deref() != Some(self.identity.as_str()) {
            self.superseded = true;
            return;
        }
        if let Some(at) = seen.renewed_at {
            self.confirmed = Some(self.confirmed.map_or(at, |known| known.max(at)));
        }
    }

    /// Until when submitting is allowed: `None` once closed or never confirmed.
    pub fn open_until(&self) -> Option<jiff::Timestamp> {
        if self.superseded {
            return None;
        }
        self.confirmed.map(|at| at + self.renew_deadline)
    }

    pub fn is_open(&self, now: jiff::Timestamp) -> bool {
        self.open_until().is_some_and(|until| now < until)
    }
}

/// The renew deadline for a Lease of `duration` renewed `grace` before it expires
/// (every `duration - grace`): halfway between the renewal and the expiry, so one
/// renewal may take up to `grace / 2` and the leader is still quiet `grace / 2`
/// before a follower may take over.
pub fn renew_deadline(duration: Duration, grace: Duration) -> Duration {
    duration.saturating_sub(grace / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn seen(holder: &str, renewed: i64) -> LeaseSeen {
        LeaseSeen {
            holder: Some(holder.to_owned()),
            renewed_at: Some(at(renewed)),
        }
    }

    #[test]
    fn the_leader_is_fenced_before_a_follower_may_take_over() {
        let (duration, grace) = (Duration::from_secs(15), Duration::from_secs(5));
        let deadline = renew_deadline(duration, grace);
        assert!(
            deadline > duration - grace,
            "longer than the renewal period"
        );
        assert!(deadline < duration, "shorter than what a follower waits");
        let mut fence = Fence::new("me", deadline);
        assert!(!fence.is_open(at(0)), "no renewal confirmed yet");
        fence.observe(&seen("me", 0));
        assert!(fence.is_open(at(12)));
        // Renewals fail from here on (no read succeeds): closed at 12.5 s, while the
        // follower waits until 15 s.
        assert!(!fence.is_open(at(0) + Duration::from_millis(12_500)));
        assert!(!fence.is_open(at(15)));
        // A renewal confirmed later opens it again; an older read does not move it back.
        fence.observe(&seen("me", 10));
        fence.observe(&seen("me", 5));
        assert_eq!(fence.open_until(), Some(at(10) + deadline));
    }

    #[test]
    fn another_holder_closes_it_for_good() {
        let mut fence = Fence::new("me", Duration::from_secs(12));
        fence.observe(&seen("me", 0));
        fence.observe(&seen("other", 1));
        assert!(!fence.is_open(at(1)));
        fence.observe(&seen("me", 2));
        assert!(!fence.is_open(at(2)), "a new term needs a new process");
        let mut released = Fence::new("me", Duration::from_secs(12));
        released.observe(&seen("me", 0));
        released.observe(&LeaseSeen {
            holder: None,
            renewed_at: None,
        });
        assert!(!released.is_open(at(1)));
    }
}
