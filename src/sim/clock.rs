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
    /// Job times: `2016-04-25T20:04:47.591Z`.
    pub(super) fn job_time(&self, at: Instant) -> String {
        self.wall(at).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
    /// Server times: `2018-05-10T02:48:26Z`.
    pub(super) fn server_time(&self, at: Instant) -> String {
        self.wall(at).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}
