//! Backoff for reads. Only GETs are retried: they change nothing, so sending one
//! twice is harmless. Jitter spreads the retries of many callers hitting the same
//! throttle so they do not come back in lockstep.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; 1 disables retries.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Largest backoff between two attempts.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not slept through inside one call: the
    /// error is returned and the caller's next round tries again.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Backoff after the `retry`-th failed attempt (0 after the first), before
    /// jitter: `base * 2^retry`, capped.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// How long to wait before the next attempt, or `None` to give up. `unit` in
    /// [0, 1) is the random draw: equal jitter keeps at least half the ceiling so
    /// a retry never comes back immediately.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, unit: f64) -> Option<Duration> {
        if retry + 1 >= self.max_attempts {
            return None;
        }
        if retry_after.is_some_and(|ra| ra > self.max_retry_after) {
            return None;
        }
        let ceiling = self.ceiling(retry);
        let jittered = ceiling / 2 + ceiling.mul_f64(unit.clamp(0.0, 1.0) / 2.0);
        Some(jittered.max(retry_after.unwrap_or_default()))
    }

    pub fn next_delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        self.delay(retry, retry_after, rand::rng().random::<f64>())
    }
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110), relative to `now`.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    Some(at.duration_since(now).try_into().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_ceiling_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(0), Duration::from_millis(200));
        assert_eq!(p.ceiling(1), Duration::from_millis(400));
        assert_eq!(p.ceiling(5), Duration::from_millis(6400));
        assert_eq!(p.ceiling(6), Duration::from_secs(10));
        assert_eq!(p.ceiling(200), Duration::from_secs(10));
    }

    #[test]
    fn equal_jitter_stays_within_half_and_full_ceiling() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, None, 0.0), Some(Duration::from_millis(200)));
        assert_eq!(
            p.delay(1, None, 0.999_999).map(|d| d.as_millis()),
            Some(399)
        );
        for _ in 0..100 {
            let d = p.next_delay(2, None).unwrap();
            assert!(d >= Duration::from_millis(400) && d <= Duration::from_millis(800));
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(p.delay(0, None, 0.5).is_some());
        assert!(p.delay(1, None, 0.5).is_some());
        assert_eq!(p.delay(2, None, 0.5), None);
        let once = RetryPolicy {
            max_attempts: 1,
            ..p
        };
        assert_eq!(once.delay(0, None, 0.5), None);
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_limit() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3)), 0.5),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_millis(1)), 0.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(61)), 0.5), None);
    }

    #[test]
    fn retry_after_formats() {
        let now: jiff::Timestamp = "2024-01-15T08:30:00Z".parse().unwrap();
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Mon, 15 Jan 2024 08:30:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Mon, 15 Jan 2024 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
