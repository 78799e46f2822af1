//! The collector's sample model: what every source appends to in one
//! collection cycle, and the Prometheus text rendering of a batch.

use std::fmt::Write as _;

use tidewatch_common::labels::{Label, Labels, METRIC_NAME};

/// One collected sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Series labels including `__name__`.
    pub labels: Labels,
    /// Value.
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// Appends samples sharing one timestamp (the cycle's) and optional extra
/// labels (e.g. `cluster_id`) to a batch.
pub struct Emitter<'a> {
    out: &'a mut Vec<Sample>,
    timestamp_ms: i64,
}

impl<'a> Emitter<'a> {
    /// An emitter appending to `out` with timestamp `timestamp_ms`.
    pub fn new(out: &'a mut Vec<Sample>, timestamp_ms: i64) -> Self {
        Emitter { out, timestamp_ms }
    }

    /// The cycle's timestamp.
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// Appends `name{labels} value`. Empty label values are dropped.
    /// One allocation for the label vector plus the strings themselves.
    pub fn emit(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut v = Vec::with_capacity(labels.len() + 1);
        v.push(Label::new(METRIC_NAME, name));
        v.extend(
            labels
                .iter()
                .filter(|(_, val)| !val.is_empty())
                .map(|(n, val)| Label::new(*n, *val)),
        );
        // Stable, so that with a repeated name the last one wins below.
        v.sort_by(|a, b| a.name.cmp(&b.name));
        let labels = if v.windows(2).any(|w| w[0].name == w[1].name) {
            Labels::from_vec(v) // a caller repeated a name: last one wins
        } else {
            Labels::from_sorted_unchecked(v)
        };
        self.out.push(Sample {
            labels,
            value,
            timestamp_ms: self.timestamp_ms,
        });
    }

    /// Appends a sample with a ready label set (`__name__` included).
    pub fn emit_labels(&mut self, labels: Labels, value: f64) {
        self.out.push(Sample {
            labels,
            value,
            timestamp_ms: self.timestamp_ms,
        });
    }
}

/// Renders samples as Prometheus text 0.0.4 (samples grouped by name in
/// input order, `# TYPE` guessed from the name: `_total` → counter).
pub fn render_text(samples: &[Sample]) -> String {
    let mut out = String::with_capacity(samples.len() * 64);
    let mut last_name: Option<&str> = None;
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| a.labels.metric_name().cmp(&b.labels.metric_name()));
    for s in sorted {
        let name = s.labels.metric_name().unwrap_or("");
        if last_name != Some(name) {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            last_name = Some(name);
        }
        out.push_str(name);
        let mut first = true;
        for l in s.labels.iter().filter(|l| l.name != METRIC_NAME) {
            out.push(if first { '{' } else { ',' });
            first = false;
            let _ = write!(
                out,
                "{}=\"{}\"",
                l.name,
                tidewatch_common::labels::escape_value(&l.value)
            );
        }
        if !first {
            out.push('}');
        }
        let _ = writeln!(out, " {}", format_value(s.value));
    }
    out
}

/// Formats a value the way Prometheus does (`+Inf`, `-Inf`, `NaN`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}
