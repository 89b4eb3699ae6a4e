//! The two limits a project meets: the per-project action budget (servers acted on
//! per sliding window) and the gateway's request-rate token bucket.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Sliding window over the servers acted on, per project.
#[derive(Debug, Default)]
pub(super) struct Budget {
    events: VecDeque<(Instant, usize)>,
    used: usize,
}

impl Budget {
    pub(super) fn try_take(
        &mut self,
        now: Instant,
        n: usize,
        limit: usize,
        window: Duration,
    ) -> bool {
        while let Some(&(at, count)) = self.events.front() {
            if now.duration_since(at) < window {
                break;
            }
            self.used -= count;
            self.events.pop_front();
        }
        if self.used + n > limit {
            return false;
        }
        self.used += n;
        self.events.push_back((now, n));
        true
    }
}

/// Token bucket for `throttle_rps`; holds one second's worth of tokens.
#[derive(Debug)]
pub(super) struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub(super) fn new(rps: Option<f64>, now: Instant) -> Self {
        Self {
            tokens: rps.unwrap_or(0.0).max(1.0),
            last: now,
        }
    }

    /// False when a request at `now` is over `rps`.
    pub(super) fn take(&mut self, rps: f64, now: Instant) -> bool {
        let burst = rps.max(1.0);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rps).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_window_slides() {
        let mut budget = Budget::default();
        let (t0, w) = (Instant::now(), Duration::from_secs(60));
        assert!(budget.try_take(t0, 1000, 1000, w));
        assert!(!budget.try_take(t0 + Duration::from_secs(59), 1, 1000, w));
        assert!(budget.try_take(t0 + w, 1000, 1000, w));
    }
}
