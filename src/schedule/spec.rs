//! The schedule as a policy writes it, with the schema and CEL rules the API server
//! checks on `kubectl apply`; [`super::Schedule::compile`] checks what they cannot (the
//! time zone against the tz database, real calendar dates such as 2026-02-30).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// Every string a CEL rule reads has a maxLength: without one the API server estimates
// the rule's cost over the largest string a request could hold, far over its budget.

/// `HH:MM` or `HH:MM:SS` (seconds let a test put a window a few seconds ahead).
const TIME_PATTERN: &str = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$";
/// The same, or `24:00` (the end of the day).
const END_TIME_PATTERN: &str = r"^(([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?|24:00(:00)?)$";
/// `YYYY-MM-DD`; whether the day exists (February 30) is the operator's check.
const DATE_PATTERN: &str = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
/// The shape of an IANA name (`Europe/Berlin`, `UTC`, `Etc/GMT+1`); whether the zone
/// exists is the operator's check, against jiff's bundled tz database.
const ZONE_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$";

/// When the policy's servers are kept stopped. Without a schedule they always are.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// IANA time zone the windows and dates are written in, e.g. `Europe/Berlin`. An
    /// unknown zone makes the policy Stalled with reason InvalidSchedule.
    #[schemars(regex(pattern = ZONE_PATTERN), length(min = 1, max = 64))]
    pub time_zone: String,
    /// Inside a window the servers are kept stopped; outside every window the policy
    /// stops nothing and corrects no drift (at least 1, at most 32 windows).
    #[schemars(length(min = 1, max = 32))]
    pub windows: Vec<WindowSpec>,
    /// Dates that override the windows for the whole local day: holidays on which the
    /// servers stay stopped, or days (a release week) on which nothing is stopped. The
    /// first exception that names a date decides it (at most 64).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub exceptions: Vec<ExceptionSpec>,
    /// When a window ends: Leave the servers stopped (the default), or Start again
    /// the servers this policy stopped (status.stoppedByPolicy), with os-start calls
    /// under the project's budget. Servers someone else stopped are never started.
    #[serde(default)]
    pub after_window: AfterWindow,
    /// With afterWindow Start: begin starting this long before the window ends, so
    /// that all run by its end. `Auto` works it out from the project's budget and
    /// what else is queued (the last start call is sent by the window's end); or a
    /// duration in seconds, minutes or hours (`90s`, `15m`, `2h`). Absent: starting
    /// begins when the window ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = START_LEAD_PATTERN), length(max = 8))]
    pub start_lead_time: Option<String>,
}

/// `Auto`, or a whole number of seconds, minutes or hours.
const START_LEAD_PATTERN: &str = r"^(Auto|[0-9]{1,5}[smh])$";

/// What a policy does when its window ends.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AfterWindow {
    /// Leave the servers as they are.
    #[default]
    Leave,
    /// Start the servers this policy stopped.
    Start,
}

/// A stopped window that begins on each of `days` at `from` and ends at `to`.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.from) || !has(self.to) || self.from != self.to")
        .message("from and to are the same time: the window would be empty")
)]
pub struct WindowSpec {
    /// The days the window begins on: Mon, Tue, Wed, Thu, Fri, Sat, Sun (each once).
    #[schemars(length(min = 1, max = 7), extend("x-kubernetes-list-type" = "set"))]
    pub days: Vec<Day>,
    /// Local time `HH:MM` (or `HH:MM:SS`) the window begins at; the start of the day
    /// if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TIME_PATTERN), length(max = 8))]
    pub from: Option<String>,
    /// Local time `HH:MM` (or `HH:MM:SS`) the window ends at (`24:00` is the end of
    /// the day); the end of the day if absent. A `to` at or before `from` ends on the
    /// next day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = END_TIME_PATTERN), length(max = 8))]
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

/// Whole local days on which the windows do not apply: a list of `dates`, a range
/// `from`..=`to` (both `YYYY-MM-DD`), or both.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[x_kube(
    validation = kube::core::Rule::new("has(self.from) == has(self.to)")
        .message("a date range needs both from and to"),
    validation = kube::core::Rule::new("(has(self.dates) && size(self.dates) > 0) || has(self.from)")
        .message("an exception names dates, or a range with from and to"),
    validation = kube::core::Rule::new("!has(self.from) || !has(self.to) || self.from <= self.to")
        .message("the range's to is before its from"),
)]
pub struct ExceptionSpec {
    /// Local dates, `YYYY-MM-DD` (at most 400).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 400), inner(regex(pattern = DATE_PATTERN), length(max = 10)))]
    pub dates: Vec<String>,
    /// First day of the range, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DATE_PATTERN), length(max = 10))]
    pub from: Option<String>,
    /// Last day of the range, included, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DATE_PATTERN), length(max = 10))]
    pub to: Option<String>,
    /// `true`: stopped all day; `false`: nothing stopped that day.
    pub stopped: bool,
}
