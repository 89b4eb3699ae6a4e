//! `spec.schedule.startLeadTime`: how long before a window's end its servers begin to
//! be started.

use super::ScheduleError;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLead {
    /// From the project's budget and queue, at each sync (see the fleet's forecast).
    Auto,
    Fixed(Duration),
}

impl StartLead {
    /// `Auto`, or `<n>s`, `<n>m`, `<n>h` (the schema's pattern; checked again here for a
    /// policy written before the schema had it).
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        if text == "Auto" {
            return Ok(StartLead::Auto);
        }
        let invalid = || ScheduleError {
            field: "startLeadTime".into(),
            problem: format!("`{text}` is neither Auto nor a duration such as 90s, 15m or 2h"),
        };
        let unit = match text.chars().last() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            _ => return Err(invalid()),
        };
        let count: u64 = text[..text.len() - 1].parse().map_err(|_| invalid())?;
        Ok(StartLead::Fixed(Duration::from_secs(count * unit)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_and_durations_are_read_and_anything_else_names_the_field() {
        assert_eq!(StartLead::parse("Auto"), Ok(StartLead::Auto));
        assert_eq!(
            StartLead::parse("90s"),
            Ok(StartLead::Fixed(Duration::from_secs(90)))
        );
        assert_eq!(
            StartLead::parse("15m"),
            Ok(StartLead::Fixed(Duration::from_secs(900)))
        );
        assert_eq!(
            StartLead::parse("2h"),
            Ok(StartLead::Fixed(Duration::from_secs(7200)))
        );
        for bad in ["auto", "15", "m", "1.5h", "-1m", ""] {
            let error = StartLead::parse(bad).unwrap_err().to_string();
            assert!(
                error.starts_with("spec.schedule.startLeadTime: "),
                "{error}"
            );
        }
    }
}
