//! Alertmanager time intervals (`times`, `weekdays`, `days_of_month`,
//! `months`, `years`) for mute/active time intervals of routes. Times are
//! evaluated in UTC (or the process's local zone with `location: Local`).

use chrono::{DateTime, Datelike, Local, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// One time interval; every non-empty field must match.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeInterval {
    /// Times of day, `HH:MM` start inclusive, end exclusive.
    pub times: Vec<TimeRange>,
    /// `monday`, `monday:friday`.
    pub weekdays: Vec<String>,
    /// `1`, `1:5`, `-1` (last day).
    pub days_of_month: Vec<String>,
    /// `january`, `1:3`.
    pub months: Vec<String>,
    /// `2024`, `2024:2026`.
    pub years: Vec<String>,
    /// `UTC` (default) or `Local`.
    pub location: Option<String>,
}

/// A time-of-day range.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// `HH:MM`.
    pub start_time: String,
    /// `HH:MM` (`24:00` allowed).
    pub end_time: String,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn minutes(s: &str) -> Result<u32, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("invalid time {s:?} (HH:MM)"))?;
    let h: u32 = h.parse().map_err(|_| format!("invalid time {s:?}"))?;
    let m: u32 = m.parse().map_err(|_| format!("invalid time {s:?}"))?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(format!("invalid time {s:?}"));
    }
    Ok(h * 60 + m)
}

fn named_or_number(s: &str, names: &[&str], base: i64) -> Result<i64, String> {
    let l = s.trim().to_lowercase();
    if let Some(i) = names.iter().position(|n| *n == l) {
        return Ok(i as i64 + base);
    }
    l.parse::<i64>().map_err(|_| format!("invalid value {s:?}"))
}

fn range(s: &str, names: &[&str], base: i64) -> Result<(i64, i64), String> {
    match s.split_once(':') {
        Some((a, b)) => Ok((
            named_or_number(a, names, base)?,
            named_or_number(b, names, base)?,
        )),
        None => {
            let v = named_or_number(s, names, base)?;
            Ok((v, v))
        }
    }
}

impl TimeInterval {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), String> {
        for t in &self.times {
            let (a, b) = (minutes(&t.start_time)?, minutes(&t.end_time)?);
            if a >= b {
                return Err(format!(
                    "start_time {} must be before end_time {}",
                    t.start_time, t.end_time
                ));
            }
        }
        for w in &self.weekdays {
            range(w, &WEEKDAYS, 0)?;
        }
        for d in &self.days_of_month {
            range(d, &[], 0)?;
        }
        for m in &self.months {
            range(m, &MONTHS, 1)?;
        }
        for y in &self.years {
            range(y, &[], 0)?;
        }
        match self.location.as_deref() {
            None | Some("UTC") | Some("Local") => Ok(()),
            Some(l) => Err(format!("unsupported location {l:?} (UTC or Local)")),
        }
    }

    /// Whether `t` falls in the interval.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        if self.location.as_deref() == Some("Local") {
            self.contains_in(&t.with_timezone(&Local))
        } else {
            self.contains_in(&t)
        }
    }

    fn contains_in<T: Datelike + Timelike>(&self, t: &T) -> bool {
        let in_ranges = |items: &[String], names: &[&str], base: i64, v: i64| {
            items.is_empty()
                || items
                    .iter()
                    .any(|s| range(s, names, base).is_ok_and(|(a, b)| a <= v && v <= b))
        };
        let mins = t.hour() * 60 + t.minute();
        let times_ok = self.times.is_empty()
            || self.times.iter().any(|r| {
                matches!((minutes(&r.start_time), minutes(&r.end_time)), (Ok(a), Ok(b)) if a <= mins && mins < b)
            });
        let days_in_month = days_in_month(t.year(), t.month());
        let dom_ok = self.days_of_month.is_empty()
            || self.days_of_month.iter().any(|s| {
                range(s, &[], 0).is_ok_and(|(a, b)| {
                    let fix = |x: i64| if x < 0 { days_in_month + 1 + x } else { x };
                    let d = t.day() as i64;
                    fix(a) <= d && d <= fix(b)
                })
            });
        times_ok
            && in_ranges(
                &self.weekdays,
                &WEEKDAYS,
                0,
                t.weekday().num_days_from_sunday() as i64,
            )
            && dom_ok
            && in_ranges(&self.months, &MONTHS, 1, t.month() as i64)
            && in_ranges(&self.years, &[], 0, t.year() as i64)
    }
}

fn days_in_month(y: i32, m: u32) -> i64 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let first_next = chrono::NaiveDate::from_ymd_opt(ny, nm, 1).expect("valid date");
    let first = chrono::NaiveDate::from_ymd_opt(y, m, 1).expect("valid date");
    (first_next - first).num_days()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_and_time() {
        let ti = TimeInterval {
            times: vec![TimeRange {
                start_time: "09:00".into(),
                end_time: "17:00".into(),
            }],
            weekdays: vec!["monday:friday".into()],
            days_of_month: vec!["-7:-1".into()],
            ..Default::default()
        };
        ti.validate().unwrap();
        // Friday 2026-11-27 10:00 UTC, in the last week of the month.
        let t = "2026-11-27T10:00:00Z".parse().unwrap();
        assert!(ti.contains(t));
        assert!(!ti.contains("2026-11-27T18:00:00Z".parse().unwrap()));
        assert!(!ti.contains("2026-11-28T10:00:00Z".parse().unwrap()));
        assert!(!ti.contains("2026-11-13T10:00:00Z".parse().unwrap()));
    }
}
