//! From the written schedule to one the evaluator can use, with an error that names the
//! field for everything the schema cannot check (the time zone, real calendar dates).

use super::spec::{Day, ExceptionSpec, ScheduleSpec, WindowSpec};
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;

/// Why a schedule cannot be used; the message names the field as the policy writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.schedule.{field}: {problem}")]
pub struct ScheduleError {
    pub field: String,
    pub problem: String,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> ScheduleError {
    ScheduleError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A local time of day, `24:00` included as the end of a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum DayTime {
    At(Time),
    EndOfDay,
}

#[derive(Debug, Clone)]
pub(super) struct Window {
    pub days: [bool; 7],
    pub from: Time,
    pub to: DayTime,
}

impl Window {
    pub fn begins_on(&self, weekday: Weekday) -> bool {
        self.days[weekday.to_monday_zero_offset() as usize]
    }

    /// Whether the window ends on the day after it begins.
    pub fn crosses_midnight(&self) -> bool {
        match self.to {
            DayTime::At(to) => to <= self.from,
            DayTime::EndOfDay => false,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Exception {
    /// Inclusive ranges of local dates.
    pub ranges: Vec<(Date, Date)>,
    pub stopped: bool,
}

/// A checked schedule: a time zone from the bundled tz database, windows and exceptions.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub(super) zone: TimeZone,
    pub(super) windows: Vec<Window>,
    pub(super) exceptions: Vec<Exception>,
}

impl Schedule {
    pub fn compile(spec: &ScheduleSpec) -> Result<Self, ScheduleError> {
        let zone = TimeZone::get(&spec.time_zone).map_err(|_| {
            invalid(
                "timeZone",
                format!(
                    "unknown time zone `{}` (an IANA name such as Europe/Berlin)",
                    spec.time_zone
                ),
            )
        })?;
        if spec.windows.is_empty() {
            return Err(invalid("windows", "at least one window is needed"));
        }
        let windows = spec
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| window(w, &format!("windows[{i}]")))
            .collect::<Result<_, _>>()?;
        let exceptions = spec
            .exceptions
            .iter()
            .enumerate()
            .map(|(i, e)| exception(e, &format!("exceptions[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            zone,
            windows,
            exceptions,
        })
    }
}

fn weekday(day: Day) -> Weekday {
    match day {
        Day::Mon => Weekday::Monday,
        Day::Tue => Weekday::Tuesday,
        Day::Wed => Weekday::Wednesday,
        Day::Thu => Weekday::Thursday,
        Day::Fri => Weekday::Friday,
        Day::Sat => Weekday::Saturday,
        Day::Sun => Weekday::Sunday,
    }
}

fn window(spec: &WindowSpec, field: &str) -> Result<Window, ScheduleError> {
    if spec.days.is_empty() {
        return Err(invalid(
            format!("{field}.days"),
            "at least one day is needed",
        ));
    }
    let mut days = [false; 7];
    for day in &spec.days {
        days[weekday(*day).to_monday_zero_offset() as usize] = true;
    }
    let from = match &spec.from {
        None => Time::midnight(),
        Some(text) => match day_time(text, &format!("{field}.from"))? {
            DayTime::At(time) => time,
            DayTime::EndOfDay => {
                return Err(invalid(
                    format!("{field}.from"),
                    "a window cannot begin at 24:00",
                ));
            }
        },
    };
    let to = match &spec.to {
        None => DayTime::EndOfDay,
        Some(text) => day_time(text, &format!("{field}.to"))?,
    };
    if to == DayTime::At(from) {
        return Err(invalid(
            field,
            format!(
                "from and to are both {}: the window would be empty",
                from.strftime(if from.second() == 0 {
                    "%H:%M"
                } else {
                    "%H:%M:%S"
                })
            ),
        ));
    }
    Ok(Window { days, from, to })
}

/// `HH:MM` or `HH:MM:SS`, or `24:00` (`24:00:00`).
fn day_time(text: &str, field: &str) -> Result<DayTime, ScheduleError> {
    if text == "24:00" || text == "24:00:00" {
        return Ok(DayTime::EndOfDay);
    }
    let bad = || {
        invalid(
            field,
            format!("`{text}` is not a time of day (HH:MM or HH:MM:SS, 00:00 to 24:00)"),
        )
    };
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|part| part.len() != 2) {
        return Err(bad());
    }
    let number = |part: &str| part.parse::<i8>().map_err(|_| bad());
    let seconds = parts.get(2).map_or(Ok(0), |part| number(part))?;
    Time::new(number(parts[0])?, number(parts[1])?, seconds, 0)
        .map(DayTime::At)
        .map_err(|_| bad())
}

fn date(text: &str, field: &str) -> Result<Date, ScheduleError> {
    let bad = || {
        invalid(
            field,
            format!("`{text}` is not a calendar date (YYYY-MM-DD)"),
        )
    };
    if text.len() != 10 {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

fn exception(spec: &ExceptionSpec, field: &str) -> Result<Exception, ScheduleError> {
    let mut ranges = Vec::with_capacity(spec.dates.len() + 1);
    for (i, text) in spec.dates.iter().enumerate() {
        let day = date(text, &format!("{field}.dates[{i}]"))?;
        ranges.push((day, day));
    }
    match (&spec.from, &spec.to) {
        (None, None) => {}
        (Some(from), Some(to)) => {
            let first = date(from, &format!("{field}.from"))?;
            let last = date(to, &format!("{field}.to"))?;
            if last < first {
                return Err(invalid(
                    format!("{field}.to"),
                    format!("{to} is before from ({from})"),
                ));
            }
            ranges.push((first, last));
        }
        _ => {
            return Err(invalid(field, "a date range needs both from and to"));
        }
    }
    if ranges.is_empty() {
        return Err(invalid(field, "name dates, or a range with from and to"));
    }
    Ok(Exception {
        ranges,
        stopped: spec.stopped,
    })
}
