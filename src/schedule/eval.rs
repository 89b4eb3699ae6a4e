//! What a schedule wants at an instant, and when that changes next: pure functions of
//! the schedule and an explicit time. Calendar and offset arithmetic is jiff's.
//!
//! The desired state is piecewise constant: it can change only at a window's start or
//! end, or at a local midnight (where an exception day begins or ends). The next
//! transition is the first of those boundaries at which the state differs.

use super::compile::{DayTime, Schedule, Window};
use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::AmbiguousOffset;

/// How far ahead a transition is looked for; a schedule that changes nothing within
/// it (windows covering every day, say) reports none.
const HORIZON_WEEKS: usize = 58;

/// What the schedule says at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    /// The servers are kept stopped now.
    pub stopped: bool,
    /// The next instant at which `stopped` flips, within the horizon.
    pub next_transition: Option<Timestamp>,
}

impl Schedule {
    /// The instant a local date and time names. In a repeated hour it is the first of
    /// the two, so a window never runs twice; in a skipped hour it is the instant the
    /// clock jumps to, the next that exists.
    fn instant(&self, local: DateTime) -> Option<Timestamp> {
        match self.zone.to_ambiguous_timestamp(local).offset() {
            AmbiguousOffset::Unambiguous { offset }
            | AmbiguousOffset::Fold { before: offset, .. } => offset.to_timestamp(local).ok(),
            AmbiguousOffset::Gap { before, after } => {
                // Read with the later offset, the wall time falls before the jump: the
                // zone's next transition is the jump itself.
                let inside = after.to_timestamp(local).ok()?;
                match self.zone.following(inside).next() {
                    Some(transition) => Some(transition.timestamp()),
                    None => before.to_timestamp(local).ok(),
                }
            }
        }
    }

    fn midnight(&self, day: Date) -> Option<Timestamp> {
        self.instant(day.to_datetime(Time::midnight()))
    }

    fn local_date(&self, at: Timestamp) -> Date {
        at.to_zoned(self.zone.clone()).date()
    }

    /// `[start, end)` of `window` begun on `day`, if it begins that day. A window that
    /// lies wholly in a skipped hour is empty.
    fn interval(&self, window: &Window, day: Date) -> Option<(Timestamp, Timestamp)> {
        if !window.begins_on(day.weekday()) {
            return None;
        }
        let start = self.instant(day.to_datetime(window.from))?;
        let next_day = day.tomorrow().ok()?;
        let end = match window.to {
            DayTime::EndOfDay => self.midnight(next_day)?,
            DayTime::At(to) if window.crosses_midnight() => {
                self.instant(next_day.to_datetime(to))?
            }
            DayTime::At(to) => self.instant(day.to_datetime(to))?,
        };
        (start < end).then_some((start, end))
    }

    /// The first exception that names `day` decides it.
    fn exception_on(&self, day: Date) -> Option<bool> {
        self.exceptions
            .iter()
            .find(|e| {
                e.ranges
                    .iter()
                    .any(|(first, last)| *first <= day && day <= *last)
            })
            .map(|e| e.stopped)
    }

    /// Whether the schedule keeps the servers stopped at `at`.
    pub fn stopped_at(&self, at: Timestamp) -> bool {
        let day = self.local_date(at);
        if let Some(stopped) = self.exception_on(day) {
            return stopped;
        }
        // A window lasts less than a day and a half, so only those begun today or
        // yesterday can contain `at`.
        let days = [day.yesterday().ok(), Some(day)];
        self.windows.iter().any(|window| {
            days.iter()
                .flatten()
                .filter_map(|d| self.interval(window, *d))
                .any(|(start, end)| start <= at && at < end)
        })
    }

    /// Every instant at which the state may change for windows begun on `days` and
    /// exception days beginning on them.
    fn boundaries(&self, days: impl Iterator<Item = Date>) -> Vec<Timestamp> {
        let mut found = Vec::new();
        for day in days {
            found.extend(self.midnight(day));
            for window in &self.windows {
                if let Some((start, end)) = self.interval(window, day) {
                    found.extend([start, end]);
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// The first instant after `at` at which the state differs from the state at `at`.
    pub fn next_transition(&self, at: Timestamp) -> Option<Timestamp> {
        let current = self.stopped_at(at);
        let mut week_start = self.local_date(at);
        let mut lower = at;
        for _ in 0..HORIZON_WEEKS {
            let week_end = week_start.checked_add(jiff::Span::new().days(7)).ok()?;
            let upper = self.midnight(week_end)?;
            // Windows begun the day before the week can end inside it.
            let first = week_start.yesterday().ok()?;
            let days = first.series(jiff::Span::new().days(1)).take(9);
            let found = self
                .boundaries(days)
                .into_iter()
                .filter(|b| *b > lower && *b <= upper)
                .find(|b| self.stopped_at(*b) != current);
            if found.is_some() {
                return found;
            }
            lower = upper;
            week_start = week_end;
        }
        None
    }

    pub fn evaluate(&self, at: Timestamp) -> Evaluation {
        Evaluation {
            stopped: self.stopped_at(at),
            next_transition: self.next_transition(at),
        }
    }
}
