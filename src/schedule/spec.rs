//! The schedule as a policy writes it: strings in a time zone, checked and compiled by
//! [`super::Schedule::compile`] into instants the evaluator can use.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// When the policy's servers are kept stopped. Without a schedule they always are.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// IANA time zone the windows and dates are written in, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// Inside a window the servers are kept stopped; outside every window the policy
    /// stops nothing and corrects no drift.
    pub windows: Vec<WindowSpec>,
    /// Dates that override the windows for the whole local day: holidays on which the
    /// servers stay stopped, or days (a release week) on which nothing is stopped. The
    /// first exception that names a date decides it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionSpec>,
}

/// A stopped window that begins on each of `days` at `from` and ends at `to`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    /// The days the window begins on.
    pub days: Vec<Day>,
    /// Local time `HH:MM` the window begins at; the start of the day if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Local time `HH:MM` the window ends at (`24:00` is the end of the day); the end
    /// of the day if absent. A `to` at or before `from` ends on the next day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// A day of the week.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// Whole local days on which the windows do not apply: either a list of `dates` or a
/// range `from`..=`to` (both `YYYY-MM-DD`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct ExceptionSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dates: Vec<String>,
    /// First day of the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Last day of the range, included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `true`: stopped all day; `false`: nothing stopped that day.
    pub stopped: bool,
}
