//! Prometheus text exposition (0.0.4) and OpenMetrics 1.0 parser.
//!
//! Used by the collector's scraper and by the aggregator's
//! `/api/v1/import/prometheus` endpoint.

use crate::labels::Labels;

/// One parsed sample.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSample {
    /// Series labels including `__name__`.
    pub labels: Labels,
    /// Value.
    pub value: f64,
    /// Timestamp in milliseconds, when the line carried one.
    pub timestamp_ms: Option<i64>,
}

/// Metadata of one metric family.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FamilyMetadata {
    /// Family name.
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `summary`, `untyped`/`unknown`, …
    pub kind: String,
    /// HELP text.
    pub help: String,
    /// UNIT text (OpenMetrics).
    pub unit: String,
}

/// Result of parsing one exposition body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    /// Samples in input order.
    pub samples: Vec<ParsedSample>,
    /// Families' metadata in input order.
    pub metadata: Vec<FamilyMetadata>,
}

/// Which dialect to parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    PrometheusText,
    /// OpenMetrics 1.0 text (requires `# EOF`).
    OpenMetrics,
}

impl Format {
    /// Picks the dialect from a `Content-Type` header value.
    pub fn from_content_type(ct: &str) -> Format {
        if ct.contains("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

/// A parse error with the 1-based line where it happened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses an exposition body.
pub fn parse(body: &str, format: Format) -> Result<Exposition, ParseError> {
    let _ = format;
    let mut out = Exposition::default();
    for (i, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |m: &str| ParseError {
            line: i + 1,
            message: m.to_string(),
        };
        // Minimal placeholder until the full parser lands: `name value [ts]`.
        let mut parts = line.split_whitespace();
        let name = parts.next().ok_or_else(|| err("missing metric name"))?;
        let value: f64 = parts
            .next()
            .ok_or_else(|| err("missing value"))?
            .parse()
            .map_err(|_| err("invalid value"))?;
        let timestamp_ms = parts.next().and_then(|t| t.parse().ok());
        out.samples.push(ParsedSample {
            labels: Labels::from_pairs([("__name__", name)]),
            value,
            timestamp_ms,
        });
    }
    Ok(out)
}
