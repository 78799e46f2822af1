//! Prometheus remote-write 2.0 (`io.prometheus.write.v2.Request`) receive
//! side: wire types (field for field from
//! `shared/remotewrite/proto/prompb_io_prometheus_write_v2_types.proto`,
//! native histograms and exemplars reduced to what is read) and conversion
//! into an ingest batch.

use prost::Message;
use tidewatch_common::{Label, Labels};

use crate::batch::IngestSeries;
use crate::ingest::Converted;
use crate::store::{IngestError, MetricMeta};

/// The `proto=` parameter of a 2.0 request's `Content-Type`.
pub const PROTO: &str = "io.prometheus.write.v2.Request";

/// `io.prometheus.write.v2.Request`.
#[derive(Clone, PartialEq, Message)]
pub struct Request {
    /// Symbol table; index 0 must be the empty string.
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    /// Series.
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<TimeSeries>,
}

/// `io.prometheus.write.v2.TimeSeries`.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    /// Name/value symbol references, pairwise.
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    /// Float samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histograms (only counted: refused).
    #[prost(message, repeated, tag = "3")]
    pub histograms: Vec<Histogram>,
    /// Metadata.
    #[prost(message, optional, tag = "5")]
    pub metadata: Option<Metadata>,
}

/// `io.prometheus.write.v2.Sample`.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct Sample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
    /// Created timestamp (ignored).
    #[prost(int64, tag = "3")]
    pub start_timestamp: i64,
}

/// `io.prometheus.write.v2.Histogram` (only the timestamp is read).
#[derive(Clone, Copy, PartialEq, Message)]
pub struct Histogram {
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// `io.prometheus.write.v2.Metadata`.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct Metadata {
    /// Metric type (same numbering as 1.0's `MetricType`).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// HELP symbol.
    #[prost(uint32, tag = "3")]
    pub help_ref: u32,
    /// UNIT symbol.
    #[prost(uint32, tag = "4")]
    pub unit_ref: u32,
}

/// Decodes a (decompressed) 2.0 request into a batch and metadata.
pub fn convert(raw: &[u8]) -> Result<Converted, IngestError> {
    let req = Request::decode(raw).map_err(|e| {
        IngestError::BadData(format!(
            "malformed remote-write 2.0 body: protobuf decoding failed: {e}"
        ))
    })?;
    if req.symbols.first().is_some_and(|s| !s.is_empty()) {
        return Err(IngestError::BadData(
            "symbols[0] must be the empty string (remote-write 2.0)".into(),
        ));
    }
    let sym = |i: usize, r: u32| -> Result<&str, IngestError> {
        req.symbols.get(r as usize).map(String::as_str).ok_or_else(|| {
            IngestError::BadData(format!(
                "timeseries[{i}]: symbol reference {r} is out of range (symbols has {} entries)",
                req.symbols.len()
            ))
        })
    };
    let mut batch = Vec::with_capacity(req.timeseries.len());
    let mut meta = Vec::new();
    for (i, ts) in req.timeseries.iter().enumerate() {
        if !ts.histograms.is_empty() {
            return Err(IngestError::BadData(format!(
                "timeseries[{i}]: native histogram samples are not supported"
            )));
        }
        if ts.labels_refs.len() % 2 != 0 {
            return Err(IngestError::BadData(format!(
                "timeseries[{i}].labels_refs has an odd length {}",
                ts.labels_refs.len()
            )));
        }
        let mut labels = Vec::with_capacity(ts.labels_refs.len() / 2);
        let mut nonempty = 0;
        for pair in ts.labels_refs.chunks_exact(2) {
            let (n, v) = (sym(i, pair[0])?, sym(i, pair[1])?);
            nonempty += usize::from(!v.is_empty());
            labels.push(Label::new(n, v));
        }
        let labels = Labels::from_vec(labels);
        if labels.len() != nonempty {
            return Err(IngestError::BadData(format!(
                "timeseries[{i}] {labels}: duplicate label name"
            )));
        }
        if let (Some(m), Some(name)) = (ts.metadata, labels.metric_name())
            && (m.r#type != 0 || m.help_ref != 0 || m.unit_ref != 0)
        {
            let kind = tidewatch_common::remote_write::MetricType::try_from(m.r#type)
                .unwrap_or(tidewatch_common::remote_write::MetricType::Unknown);
            meta.push((
                name.to_string(),
                MetricMeta {
                    kind: kind.api_name().to_string(),
                    help: sym(i, m.help_ref)?.to_string(),
                    unit: sym(i, m.unit_ref)?.to_string(),
                },
            ));
        }
        if ts.samples.is_empty() {
            continue;
        }
        batch.push(IngestSeries::new(
            labels,
            ts.samples.iter().map(|s| s.timestamp).collect(),
            ts.samples.iter().map(|s| s.value).collect(),
        ));
    }
    Ok((batch, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_resolve_and_errors_name_the_field() {
        let req = Request {
            symbols: ["", "__name__", "up", "job", "a", "help text"]
                .map(String::from)
                .to_vec(),
            timeseries: vec![TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 7,
                    start_timestamp: 0,
                }],
                histograms: vec![],
                metadata: Some(Metadata {
                    r#type: 2,
                    help_ref: 5,
                    unit_ref: 0,
                }),
            }],
        };
        let (b, m) = convert(&req.encode_to_vec()).unwrap();
        assert_eq!(b[0].labels.to_string(), "up{job=\"a\"}");
        assert_eq!(m[0].1.help, "help text");
        assert_eq!(m[0].1.kind, "gauge");
        let mut bad = req.clone();
        bad.timeseries[0].labels_refs = vec![1, 99];
        let e = convert(&bad.encode_to_vec()).unwrap_err();
        assert!(e.to_string().contains("symbol reference 99"), "{e}");
        bad.timeseries[0].labels_refs = vec![1];
        let e = convert(&bad.encode_to_vec()).unwrap_err();
        assert!(e.to_string().contains("labels_refs"), "{e}");
    }
}
