//! Converting wire payloads (remote-write, text exposition) into ingest
//! batches and metadata.

use std::collections::HashMap;

use tidewatch_common::Labels;
use tidewatch_common::exposition::Exposition;
use tidewatch_common::remote_write::{MetricType, WriteRequest};

use crate::batch::IngestSeries;
use crate::store::{IngestError, MetricMeta};

/// Remote-write request → batch and metadata. Native histograms are refused
/// (400) since the store holds floats only.
pub fn from_remote_write(
    req: WriteRequest,
) -> Result<(Vec<IngestSeries>, Vec<(String, MetricMeta)>), IngestError> {
    let mut out = Vec::with_capacity(req.timeseries.len());
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        if !ts.histograms.is_empty() {
            return Err(IngestError::BadData(format!(
                "timeseries[{i}]: native histogram samples are not supported"
            )));
        }
        let n = ts.labels.len();
        let labels = Labels::from_pairs(ts.labels.into_iter().map(|l| (l.name, l.value)));
        if labels.len() != n {
            return Err(IngestError::BadData(format!(
                "timeseries[{i}] {labels}: duplicate or empty label"
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
pub fn from_exposition(
    exp: Exposition,
    now_ms: i64,
) -> (Vec<IngestSeries>, Vec<(String, MetricMeta)>) {
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
