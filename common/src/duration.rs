//! Prometheus-style durations (`90s`, `5m`, `1h30m`, `100ms`, `2d`, `1w`, `1y`)
//! and a serde adapter so config fields read them.

use std::time::Duration;

/// Parses a Prometheus duration. Units: `ms`, `s`, `m`, `h`, `d`, `w`, `y`;
/// several may follow each other in decreasing order (`1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_ms: u128 = 0;
    let mut last_rank = usize::MAX;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("invalid duration {s:?}: expected a number"));
        }
        let n: u128 = s[start..i]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let (mult, rank) = match &s[unit_start..i] {
            "y" => (365 * 24 * 3600 * 1000, 0),
            "w" => (7 * 24 * 3600 * 1000, 1),
            "d" => (24 * 3600 * 1000, 2),
            "h" => (3600 * 1000, 3),
            "m" => (60 * 1000, 4),
            "s" => (1000, 5),
            "ms" => (1, 6),
            "" => return Err(format!("invalid duration {s:?}: missing unit")),
            u => return Err(format!("invalid duration {s:?}: unknown unit {u:?}")),
        };
        if last_rank != usize::MAX && rank <= last_rank {
            return Err(format!("invalid duration {s:?}: units out of order"));
        }
        last_rank = rank;
        total_ms += n * mult;
    }
    Ok(Duration::from_millis(total_ms as u64))
}

/// Formats a duration the way Prometheus prints it (`1h30m`, `15s`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("y", 365 * 24 * 3600 * 1000u64),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{}", ms / size, unit));
            ms %= size;
        }
    }
    out
}

/// Serde adapter: `#[serde(with = "tidewatch_common::duration::serde_duration")]`.
pub mod serde_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as a Prometheus duration string.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    /// Deserialises from a Prometheus duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172800));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("1m1h").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
