//! Simulated wall-clock times.

use std::time::Instant;

/// Wall-clock times of monotonic instants, so a lazily applied transition carries
/// the time it was due, not the time somebody looked.
#[derive(Debug)]
pub(super) struct Clock {
    start: Instant,
    start_wall: jiff::Timestamp,
}

impl Clock {
    /// `now` is the present wall-clock time.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            start: now,
            start_wall: jiff::Timestamp::now(),
        }
    }

    fn wall(&self, at: Instant) -> jiff::Timestamp {
        let since = at.saturating_duration_since(self.start);
        self.start_wall
            .checked_add(since)
            .expect("simulated time stays in jiff's range")
    }
    /// Job times in Unix milliseconds; shown as `2016-04-25T20:04:47.591Z`.
    pub(super) fn job_millisecond(&self, at: Instant) -> i64 {
        self.wall(at).as_millisecond()
    }
    /// Server times (`created`, `updated`) in Unix seconds; shown as `2018-05-10T02:48:26Z`.
    pub(super) fn server_second(&self, at: Instant) -> i64 {
        self.wall(at).as_second()
    }
}
