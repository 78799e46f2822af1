//! Request parameters: query string and form body, time and duration
//! parsing the way Prometheus does it.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, header};

/// All parameters of a request (query string, then form body).
#[derive(Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Collects parameters from the query string and, for form POSTs, the body.
    pub fn from_request(
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &Bytes,
    ) -> Result<Params, String> {
        let mut out: Vec<(String, String)> = match query {
            Some(q) => {
                serde_urlencoded::from_str(q).map_err(|e| format!("invalid query string: {e}"))?
            }
            None => Vec::new(),
        };
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if method == Method::POST && form && !body.is_empty() {
            let more: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|e| format!("invalid form body: {e}"))?;
            out.extend(more);
        }
        Ok(Params(out))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Parses a time parameter: unix seconds (float) or RFC 3339; ms.
pub fn parse_time(name: &str, s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>()
        && f.is_finite()
    {
        return Ok((f * 1000.0).round() as i64);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    Err(format!(
        "invalid parameter \"{name}\": cannot parse \"{s}\" to a valid timestamp"
    ))
}

/// Parses a duration parameter: float seconds or a Prometheus duration; ms.
pub fn parse_duration_ms(name: &str, s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() || f * 1000.0 > i64::MAX as f64 || f * 1000.0 < i64::MIN as f64 {
            return Err(format!(
                "invalid parameter \"{name}\": cannot parse \"{s}\" to a valid duration. It overflows int64"
            ));
        }
        return Ok((f * 1000.0).round() as i64);
    }
    tidewatch_common::duration::parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(|_| {
            format!("invalid parameter \"{name}\": cannot parse \"{s}\" to a valid duration")
        })
}

/// An optional time parameter with a default.
pub fn time_or(p: &Params, name: &str, default: i64) -> Result<i64, String> {
    match p.get(name) {
        Some(s) if !s.is_empty() => parse_time(name, s),
        _ => Ok(default),
    }
}

/// An optional non-negative `limit` parameter (0 = none).
pub fn limit(p: &Params) -> Result<usize, String> {
    match p.get("limit") {
        Some(s) if !s.is_empty() => s.parse::<usize>().map_err(|_| {
            format!("invalid parameter \"limit\": cannot parse \"{s}\" to a valid limit")
        }),
        _ => Ok(0),
    }
}

/// Now in ms.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time("time", "1.5").unwrap(), 1500);
        assert_eq!(
            parse_time("time", "2015-07-01T20:10:51.781Z").unwrap(),
            1_435_781_451_781
        );
        assert!(parse_time("time", "x").unwrap_err().contains("\"time\""));
        assert_eq!(parse_duration_ms("step", "15").unwrap(), 15_000);
        assert_eq!(parse_duration_ms("step", "1m30s").unwrap(), 90_000);
        assert!(parse_duration_ms("step", "abc").is_err());
    }
}
