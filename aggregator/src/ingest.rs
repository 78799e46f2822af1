//! Converting wire payloads (remote-write, text exposition) into ingest
//! batches and metadata.

use std::collections::HashMap;

use tidewatch_common::Labels;
use tidewatch_common::exposition::Exposition;
use tidewatch_common::remote_write::{MetricType, WriteRequest};

use crate::batch::IngestSeries;
use crate::store::{IngestError, MetricMeta};

/// An ingest batch with the metric metadata that came with it.
pub type Converted = (Vec<IngestSeries>, Vec<(String, MetricMeta)>);

/// Remote-write request → batch and metadata. Native histograms are refused
/// (400) since the store holds floats only.
pub fn from_remote_write(req: WriteRequest) -> Result<Converted, IngestError> {
    let mut out = Vec::with_capacity(req.timeseries.len());
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        if !ts.histograms.is_empty() {
            return Err(IngestError::BadData(format!(
                "timeseries[{i}]: native histogram samples are not supported"
            )));
        }
        // Empty values mean "no label" (dropped); a name twice is an error.
        let n = ts.labels.iter().filter(|l| !l.value.is_empty()).count();
        let labels = Labels::from_pairs(ts.labels.into_iter().map(|l| (l.name, l.value)));
        if labels.len() != n {
            return Err(IngestError::BadData(format!(
                "timeseries[{i}] {labels}: duplicate label name"
            )));
        }
        if ts.samples.is_empty() {
            continue;
        }
        let timestamps = ts.samples.iter().map(|s| s.timestamp).collect();
        let values = ts.samples.iter().map(|s| s.value).collect();
        out.push(IngestSeries::new(labels, timestamps, values));
    }
    let meta = req
        .metadata
        .into_iter()
        .map(|m| {
            let kind = MetricType::try_from(m.r#type).unwrap_or(MetricType::Unknown);
            (
                m.metric_family_name,
                MetricMeta {
                    kind: kind.api_name().to_string(),
                    help: m.help,
                    unit: m.unit,
                },
            )
        })
        .collect();
    Ok((out, meta))
}

/// Parsed exposition → batch (samples without a timestamp get `now_ms`) and
/// metadata.
pub fn from_exposition(exp: Exposition, now_ms: i64) -> Converted {
    let mut by_series: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<IngestSeries> = Vec::new();
    for s in exp.samples {
        let t = s.timestamp_ms.unwrap_or(now_ms);
        match by_series.get(&s.labels) {
            Some(&i) => {
                out[i].timestamps.push(t);
                out[i].values.push(s.value);
            }
            None => {
                by_series.insert(s.labels.clone(), out.len());
                out.push(IngestSeries::new(s.labels, vec![t], vec![s.value]));
            }
        }
    }
    let meta = exp
        .metadata
        .into_iter()
        .map(|m| {
            let kind = if m.kind.is_empty() || m.kind == "untyped" {
                "unknown".to_string()
            } else {
                m.kind
            };
            (
                m.name,
                MetricMeta {
                    kind,
                    help: m.help,
                    unit: m.unit,
                },
            )
        })
        .collect();
    (out, meta)
}

#[cfg(test)]
mod tests {
    use tidewatch_common::remote_write::{Histogram, Label, MetricMetadata, Sample, TimeSeries};

    use super::*;

    fn ts(labels: &[(&str, &str)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: vec![Sample {
                value: 1.0,
                timestamp: 5,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn remote_write_conversion() {
        let req = WriteRequest {
            timeseries: vec![ts(&[("__name__", "a"), ("empty", "")])],
            metadata: vec![MetricMetadata {
                r#type: 2,
                metric_family_name: "a".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        };
        let (b, m) = from_remote_write(req).unwrap();
        assert_eq!(b[0].labels.len(), 1);
        assert_eq!(m[0].1.kind, "gauge");
        let dup = WriteRequest {
            timeseries: vec![ts(&[("__name__", "a"), ("x", "1"), ("x", "2")])],
            metadata: vec![],
        };
        assert!(
            from_remote_write(dup)
                .unwrap_err()
                .to_string()
                .contains("duplicate")
        );
        let mut h = ts(&[("__name__", "h")]);
        h.histograms.push(Histogram {
            sum: 1.0,
            timestamp: 1,
        });
        let e = from_remote_write(WriteRequest {
            timeseries: vec![h],
            metadata: vec![],
        })
        .unwrap_err();
        assert!(e.to_string().contains("native histogram"), "{e}");
    }
}
