//! Prometheus remote-write 1.0 wire types and codec.
//!
//! The messages mirror `prompb/types.proto` and `prompb/remote.proto` of
//! Prometheus field for field (the schemas are in `shared/remotewrite/proto/`);
//! they are declared with `prost`'s derive so no `protoc` is needed at build
//! time. Bodies travel snappy-compressed (block format), as the spec requires.

use prost::Message;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    /// The series in this request.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric metadata (type, help, unit) sent alongside.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    /// Labels, `__name__` included, sorted by name by well-behaved senders.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Float samples in timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars (accepted and ignored by the store).
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histograms (not stored yet; counted and rejected per sample).
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct Sample {
    /// Sample value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, Message)]
pub struct Exemplar {
    /// Exemplar labels (trace id, …).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Observed value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.Histogram` (native histogram); only its timestamp is read.
#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    /// Sum of observations.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct MetricMetadata {
    /// Metric type, see [`MetricType`].
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    /// Family name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// HELP text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// UNIT text.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `prometheus.MetricMetadata.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// Unknown.
    Unknown = 0,
    /// Counter.
    Counter = 1,
    /// Gauge.
    Gauge = 2,
    /// Histogram.
    Histogram = 3,
    /// Gauge histogram.
    Gaugehistogram = 4,
    /// Summary.
    Summary = 5,
    /// Info.
    Info = 6,
    /// State set.
    Stateset = 7,
}

impl MetricType {
    /// Prometheus API name of the type (`counter`, `gauge`, …).
    pub fn api_name(self) -> &'static str {
        match self {
            MetricType::Unknown => "unknown",
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Gaugehistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::Stateset => "stateset",
        }
    }
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, Message)]
pub struct LabelMatcher {
    /// 0 `=`, 1 `!=`, 2 `=~`, 3 `!~`.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Label name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Value or regular expression.
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `prometheus.Query` of remote-read.
#[derive(Clone, PartialEq, Message)]
pub struct Query {
    /// Inclusive start, ms.
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    /// Inclusive end, ms.
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    /// Matchers, ANDed.
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
}

/// `prometheus.ReadRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct ReadRequest {
    /// Queries to run.
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
}

/// `prometheus.QueryResult`.
#[derive(Clone, PartialEq, Message)]
pub struct QueryResult {
    /// Matching series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.ReadResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct ReadResponse {
    /// One result per query.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

/// Errors decoding a remote-write body.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is not valid snappy (block format).
    #[error("snappy decompression failed: {0}")]
    Snappy(#[from] snap::Error),
    /// The decompressed bytes are not a valid protobuf message.
    #[error("protobuf decoding failed: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The decompressed size exceeds the configured limit.
    #[error("decompressed body is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Decompressed size announced by the snappy header.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
}

/// Encodes a protobuf message and snappy-compresses it (block format), as
/// Prometheus remote-write and Loki push bodies travel.
pub fn encode_snappy_proto<M: Message>(msg: &M) -> Vec<u8> {
    let raw = msg.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compression of an in-memory buffer cannot fail")
}

/// Decodes a snappy-compressed protobuf message, refusing bodies that would
/// decompress to more than `max_decompressed` bytes.
pub fn decode_snappy_proto<M: Message + Default>(
    body: &[u8],
    max_decompressed: usize,
) -> Result<M, DecodeError> {
    let size = snap::raw::decompress_len(body)?;
    if size > max_decompressed {
        return Err(DecodeError::TooLarge {
            size,
            limit: max_decompressed,
        });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    Ok(M::decode(raw.as_slice())?)
}

/// Snappy-compresses and encodes a write request (what a sender POSTs).
pub fn encode_write_request(req: &WriteRequest) -> Vec<u8> {
    encode_snappy_proto(req)
}

/// Decodes a snappy-compressed write request, refusing bodies that would
/// decompress to more than `max_decompressed` bytes.
pub fn decode_write_request(
    body: &[u8],
    max_decompressed: usize,
) -> Result<WriteRequest, DecodeError> {
    decode_snappy_proto(body, max_decompressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1000,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        };
        let body = encode_write_request(&req);
        assert_eq!(decode_write_request(&body, 1 << 20).unwrap(), req);
        assert!(matches!(
            decode_write_request(&body, 4),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(decode_write_request(b"not snappy at all", 1 << 20).is_err());
    }
}
