//! Loki push API wire types and codec, shared by the collector's Loki sink and
//! the aggregator's `POST /loki/api/v1/push`.
//!
//! The protobuf messages mirror `pkg/push/push.proto` of Grafana Loki
//! (`logproto.PushRequest`), declared with `prost`'s derive so no `protoc` is
//! needed. Protobuf bodies travel snappy-compressed (block format); JSON
//! bodies use [`JsonPushRequest`]. Stream labels travel as a LogQL selector
//! string (`{app="api", env="prod"}`), handled by [`format_labels`] and
//! [`parse_labels`].

use prost::Message;
use serde::{Deserialize, Serialize};

use crate::labels::{Label, Labels};

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct PushRequest {
    /// One entry list per stream.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct StreamAdapter {
    /// Stream labels as a selector string, `{a="b", c="d"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// Entries, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Hash of the labels (ignored on receipt).
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct EntryAdapter {
    /// When the line was written.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The log line.
    #[prost(string, tag = "2")]
    pub line: String,
    /// Structured metadata (non-indexed key/values).
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct LabelPairAdapter {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// From nanoseconds since the epoch.
    pub fn from_nanos(ns: i64) -> Self {
        Timestamp {
            seconds: ns.div_euclid(1_000_000_000),
            nanos: ns.rem_euclid(1_000_000_000) as i32,
        }
    }
    /// To nanoseconds since the epoch.
    pub fn to_nanos(self) -> i64 {
        self.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(self.nanos as i64)
    }
}

/// JSON push body: `{"streams":[{"stream":{..},"values":[["<ns>","line"]]}]}`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct JsonPushRequest {
    /// Streams.
    pub streams: Vec<JsonStream>,
}

/// One stream of a JSON push body.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct JsonStream {
    /// Stream labels.
    pub stream: std::collections::BTreeMap<String, String>,
    /// `[timestamp_ns_string, line]` or `[ts, line, {metadata}]` tuples.
    pub values: Vec<Vec<serde_json::Value>>,
}

/// Errors decoding a push body (the same as remote-write's).
pub use crate::remote_write::DecodeError;

/// Snappy-compresses and encodes a push request (what a sender POSTs with
/// `Content-Type: application/x-protobuf`).
pub fn encode_push_request(req: &PushRequest) -> Vec<u8> {
    crate::remote_write::encode_snappy_proto(req)
}

/// Decodes a snappy-compressed push request, refusing bodies that would
/// decompress to more than `max_decompressed` bytes.
pub fn decode_push_request(
    body: &[u8],
    max_decompressed: usize,
) -> Result<PushRequest, DecodeError> {
    crate::remote_write::decode_snappy_proto(body, max_decompressed)
}

/// Formats labels as a Loki stream selector: `{a="b", c="d"}` (values
/// escaped like Go's `strconv.Quote` for `"` and `\`).
pub fn format_labels(labels: &Labels) -> String {
    let mut s = String::with_capacity(2 + labels.len() * 16);
    s.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&l.name);
        s.push_str("=\"");
        for c in l.value.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// Parses a stream label string `{a="b", c="d"}` (only `=` matchers).
pub fn parse_labels(s: &str) -> Result<Labels, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| format!("labels {s:?} must be enclosed in braces"))?;
    let mut out = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("labels {s:?}: expected name=\"value\""))?;
        let name = rest[..eq].trim();
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!("labels {s:?}: invalid label name {name:?}"));
        }
        let after = rest[eq + 1..].trim_start();
        let body = after
            .strip_prefix('"')
            .ok_or_else(|| format!("labels {s:?}: value of {name} must be quoted"))?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, c)) => value.push(c),
                    None => break,
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("labels {s:?}: unterminated value of {name}"))?;
        out.push(Label::new(name, value));
        rest = body[end + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(format!("labels {s:?}: expected ',' after {name}"));
        }
    }
    Ok(Labels::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_roundtrip() {
        let req = PushRequest {
            streams: vec![StreamAdapter {
                labels: "{app=\"api\"}".into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp::from_nanos(1_700_000_000_123_456_789)),
                    line: "hello".into(),
                    structured_metadata: vec![],
                }],
                hash: 0,
            }],
        };
        let body = encode_push_request(&req);
        assert_eq!(decode_push_request(&body, 1 << 20).unwrap(), req);
        assert!(matches!(
            decode_push_request(&body, 4),
            Err(DecodeError::TooLarge { .. })
        ));
        assert_eq!(
            req.streams[0].entries[0].timestamp.unwrap().to_nanos(),
            1_700_000_000_123_456_789
        );
    }

    #[test]
    fn labels_roundtrip() {
        let l = Labels::from_pairs([("b", "x\"y\\z"), ("a", "1")]);
        let s = format_labels(&l);
        assert_eq!(s, r#"{a="1", b="x\"y\\z"}"#);
        assert_eq!(parse_labels(&s).unwrap(), l);
        assert_eq!(parse_labels("{}").unwrap(), Labels::empty());
        assert!(parse_labels("a=\"b\"").is_err());
        assert!(parse_labels("{a=b}").is_err());
        assert!(parse_labels("{1a=\"b\"}").is_err());
    }
}
