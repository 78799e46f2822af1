//! Prometheus text exposition (0.0.4) and OpenMetrics 1.0 parser.
//!
//! Used by the collector's scraper and by the aggregator's
//! `/api/v1/import/prometheus` endpoint.

mod family;
mod line;

use std::collections::HashMap;

use crate::labels::{Label, Labels, METRIC_NAME};
use family::{Kind, Validator};
use line::Syntax;

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
///
/// Prometheus text 0.0.4 is parsed the way Prometheus does (blank lines and
/// free comments allowed, `untyped`, integer millisecond timestamps).
/// OpenMetrics 1.0 is validated fully: `# EOF`, metadata placement, family
/// grouping, per-type value rules, exemplars, float-second timestamps.
/// The only allocations are the output's strings and vectors.
pub fn parse(body: &str, format: Format) -> Result<Exposition, ParseError> {
    parse_with(body, format, ParseOptions { strict: true })
}

/// Parser options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    /// OpenMetrics only: check the per-type semantics (counter and bucket
    /// values non-negative, histogram shape, `_count` equal to the `+Inf`
    /// bucket, no `_sum` with negative buckets, info/stateset values, metric
    /// point grouping). Scrapers turn it off, as Prometheus does, so one odd
    /// family does not fail a whole scrape; syntax is always checked.
    pub strict: bool,
}

/// [`parse`] with explicit options.
pub fn parse_with(
    body: &str,
    format: Format,
    options: ParseOptions,
) -> Result<Exposition, ParseError> {
    let mut p = Parser {
        syn: Syntax {
            om: format == Format::OpenMetrics,
        },
        out: Exposition::default(),
        validator: Validator::new(options.strict),
        prom_meta: HashMap::new(),
        scratch: Vec::new(),
    };
    let mut rest = body;
    let mut line_no = 0usize;
    let mut eof = false;
    while !rest.is_empty() {
        let (line, next) = match rest.as_bytes().iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = next;
        line_no += 1;
        let err = |message: String| ParseError {
            line: line_no,
            message,
        };
        if p.syn.om {
            if eof {
                return Err(err("text after '# EOF'".into()));
            }
            if line == "# EOF" {
                eof = true;
                continue;
            }
            if line.is_empty() {
                return Err(err("blank lines are not allowed in OpenMetrics".into()));
            }
            if line.starts_with('#') {
                p.om_metadata(line).map_err(err)?;
            } else {
                p.sample(line).map_err(err)?;
            }
        } else {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let t = line.trim_start_matches([' ', '\t']);
            if t.is_empty() {
                continue;
            }
            if let Some(c) = t.strip_prefix('#') {
                p.prom_comment(c).map_err(err)?;
            } else {
                p.sample(line).map_err(err)?;
            }
        }
    }
    if p.syn.om {
        if !eof {
            return Err(ParseError {
                line: line_no + 1,
                message: "missing '# EOF' at the end of an OpenMetrics body".into(),
            });
        }
        p.validator.end_family().map_err(|message| ParseError {
            line: line_no,
            message,
        })?;
    }
    Ok(p.out)
}

/// Parser state over one body.
struct Parser<'a> {
    syn: Syntax,
    out: Exposition,
    validator: Validator<'a>,
    /// Prometheus dialect: family name → (index in `out.metadata`, TYPE
    /// seen, HELP seen).
    prom_meta: HashMap<&'a str, (usize, bool, bool)>,
    scratch: Vec<Label>,
}

impl<'a> Parser<'a> {
    /// One sample line (both dialects).
    fn sample(&mut self, line: &'a str) -> Result<(), String> {
        let mut labels = Vec::with_capacity(8);
        labels.push(Label::new(METRIC_NAME, ""));
        let s = line::parse_sample(line, self.syn, &mut labels, &mut self.scratch)?;
        labels[0].value = s.name.to_string();
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(format!("duplicate label {:?}", w[0].name));
        }
        if self.syn.om {
            let suffix = match self.validator.member_suffix(s.name) {
                Some(suffix) => suffix,
                None => {
                    self.validator.start_implicit(s.name)?;
                    ""
                }
            };
            self.validator
                .sample(suffix, &labels, s.value, s.timestamp_raw, s.has_exemplar)?;
        }
        labels.retain(|l| !l.value.is_empty());
        self.out.samples.push(ParsedSample {
            labels: Labels::from_sorted_unchecked(labels),
            value: s.value,
            timestamp_ms: s.timestamp_ms,
        });
        Ok(())
    }

    /// An OpenMetrics `# …` line: only `HELP`, `TYPE` and `UNIT` (and `EOF`,
    /// handled by the caller) exist.
    fn om_metadata(&mut self, line: &'a str) -> Result<(), String> {
        let (what, rest) = if let Some(r) = line.strip_prefix("# TYPE ") {
            ("TYPE", r)
        } else if let Some(r) = line.strip_prefix("# HELP ") {
            ("HELP", r)
        } else if let Some(r) = line.strip_prefix("# UNIT ") {
            ("UNIT", r)
        } else {
            return Err(format!(
                "invalid comment {line:?}: OpenMetrics allows only '# TYPE', '# HELP', '# UNIT' and '# EOF'"
            ));
        };
        let (name, rest) = line::metric_name_prefix(rest)
            .ok_or_else(|| format!("# {what}: expected a metric name"))?;
        let arg = rest
            .strip_prefix(' ')
            .ok_or_else(|| format!("# {what} {name}: expected ' ' and a value after the name"))?;
        if self.validator.current().map(|f| f.name) != Some(name) {
            self.validator.start_family(name, Kind::Unknown)?;
        }
        let meta_idx = self.meta_index(name);
        let fam = self.validator.current().expect("family just started");
        if fam.has_samples {
            return Err(format!("# {what} {name} after the family's samples"));
        }
        match what {
            "TYPE" => {
                if fam.has_type {
                    return Err(format!("repeated # TYPE for {name:?}"));
                }
                let kind = Kind::parse(arg, true).ok_or_else(|| {
                    format!("# TYPE {name}: unknown type {arg:?} (counter, gauge, histogram, gaugehistogram, summary, info, stateset, unknown)")
                })?;
                fam.has_type = true;
                if fam.unit_nonempty && matches!(kind, Kind::Info | Kind::StateSet) {
                    return Err(format!(
                        "{name:?}: info and stateset families cannot have a unit"
                    ));
                }
                self.validator.set_kind(kind)?;
                self.out.metadata[meta_idx].kind = kind_name(kind, true).to_string();
            }
            "HELP" => {
                if fam.has_help {
                    return Err(format!("repeated # HELP for {name:?}"));
                }
                fam.has_help = true;
                self.out.metadata[meta_idx].help = line::unescape(arg, true);
            }
            _ => {
                if fam.has_unit {
                    return Err(format!("repeated # UNIT for {name:?}"));
                }
                fam.has_unit = true;
                if !arg.is_empty() {
                    fam.unit_nonempty = true;
                    if matches!(fam.kind, Kind::Info | Kind::StateSet) {
                        return Err(format!(
                            "{name:?}: info and stateset families cannot have a unit"
                        ));
                    }
                    let ok = name.strip_suffix(arg).is_some_and(|b| b.ends_with('_'));
                    if !ok {
                        return Err(format!(
                            "# UNIT {arg:?}: the family name {name:?} must end with '_{arg}'"
                        ));
                    }
                }
                self.out.metadata[meta_idx].unit = arg.to_string();
            }
        }
        Ok(())
    }

    /// Index of `name`'s metadata entry in the output (OpenMetrics: the
    /// current family's, created on first use).
    fn meta_index(&mut self, name: &str) -> usize {
        let fam = self.validator.current().expect("current family");
        if let Some(i) = fam.meta {
            return i;
        }
        let i = self.out.metadata.len();
        fam.meta = Some(i);
        self.out.metadata.push(FamilyMetadata {
            name: name.to_string(),
            kind: "unknown".into(),
            ..FamilyMetadata::default()
        });
        i
    }

    /// A Prometheus text comment (after `#`): `HELP` and `TYPE` are parsed,
    /// anything else is ignored.
    fn prom_comment(&mut self, c: &'a str) -> Result<(), String> {
        let c = c.trim_start_matches([' ', '\t']);
        let (what, rest) = match c.split_once([' ', '\t']) {
            Some((w @ ("HELP" | "TYPE"), r)) => (w, r.trim_start_matches([' ', '\t'])),
            _ => return Ok(()),
        };
        let (name, arg) = line::metric_name_prefix(rest)
            .ok_or_else(|| format!("# {what}: expected a metric name"))?;
        if !arg.is_empty() && !arg.starts_with([' ', '\t']) {
            return Err(format!("# {what}: invalid metric name {rest:?}"));
        }
        let arg = arg.trim_start_matches([' ', '\t']);
        let out = &mut self.out;
        let entry = self.prom_meta.entry(name).or_insert_with(|| {
            out.metadata.push(FamilyMetadata {
                name: name.to_string(),
                kind: "untyped".into(),
                ..FamilyMetadata::default()
            });
            (out.metadata.len() - 1, false, false)
        });
        let m = &mut out.metadata[entry.0];
        if what == "TYPE" {
            let arg = arg.trim_end_matches([' ', '\t']);
            let kind = Kind::parse(arg, false).ok_or_else(|| {
                format!("# TYPE {name}: unknown type {arg:?} (counter, gauge, histogram, summary, untyped)")
            })?;
            if entry.1 {
                return Err(format!("second # TYPE line for {name:?}"));
            }
            entry.1 = true;
            m.kind = kind_name(kind, false).to_string();
        } else {
            if entry.2 {
                return Err(format!("second # HELP line for {name:?}"));
            }
            entry.2 = true;
            m.help = line::unescape(arg, false);
        }
        Ok(())
    }
}

/// Name of a type as written in each dialect.
fn kind_name(k: Kind, om: bool) -> &'static str {
    match k {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
        Kind::GaugeHistogram => "gaugehistogram",
        Kind::Summary => "summary",
        Kind::Info => "info",
        Kind::StateSet => "stateset",
        Kind::Unknown if om => "unknown",
        Kind::Unknown => "untyped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_basics() {
        let body = "# HELP a_total Total.\n# TYPE a_total counter\na_total{b=\"x\\\"y\",c=\"\"} 1.5 1700000000000\n\n# free comment\nb{ z = \"1\" , } +Inf\n";
        let e = parse(body, Format::PrometheusText).unwrap();
        assert_eq!(e.samples.len(), 2);
        assert_eq!(e.samples[0].labels.to_string(), "a_total{b=\"x\\\"y\"}");
        assert_eq!(e.samples[0].timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(e.samples[1].value, f64::INFINITY);
        assert_eq!(e.metadata[0].kind, "counter");
        assert_eq!(e.metadata[0].help, "Total.");
    }

    #[test]
    fn openmetrics_separators_are_single_spaces() {
        let e = parse("a 1\t5\n# EOF\n", Format::OpenMetrics).unwrap_err();
        assert!(e.message.contains("expected ' ' after the value"), "{e}");
        // Prometheus text accepts tabs and CRLF line ends.
        let p = parse("a\t1\t5\r\nb 2\r\n", Format::PrometheusText).unwrap();
        assert_eq!(p.samples[0].timestamp_ms, Some(5));
        assert_eq!(p.samples[1].value, 2.0);
    }

    #[test]
    fn openmetrics_timestamps_are_seconds() {
        let e = parse("# TYPE a gauge\na 1 1.5\n# EOF\n", Format::OpenMetrics).unwrap();
        assert_eq!(e.samples[0].timestamp_ms, Some(1500));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("a 1\nb{x=1} 2\n", Format::PrometheusText).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("label \"x\""), "{e}");
        let e = parse("a 1\n", Format::OpenMetrics).unwrap_err();
        assert!(e.message.contains("# EOF"), "{e}");
        let e = parse("# TYPE a gauge\n# TYPE a gauge\n", Format::PrometheusText).unwrap_err();
        assert!(e.message.contains("second # TYPE"), "{e}");
    }
}
