//! Prometheus remote-read (`POST /api/v1/read`, snappy-compressed protobuf
//! `ReadRequest`/`ReadResponse`, `SAMPLES` response type): the wire
//! conversions and the client the query replica uses to read the
//! consumers' heads.

use std::time::Duration;

use promql_parser::label::{MatchOp, Matcher};
use prost::Message;
use tidewatch_common::Labels;
use tidewatch_common::remote_write::{
    Label, LabelMatcher, Query, QueryResult, ReadRequest, ReadResponse, Sample, TimeSeries,
};
use tidewatch_promql::storage::Series;

/// A PromQL matcher as a remote-read `LabelMatcher`.
pub fn to_wire(m: &Matcher) -> LabelMatcher {
    let t = match m.op {
        MatchOp::Equal => 0,
        MatchOp::NotEqual => 1,
        MatchOp::Re(_) => 2,
        MatchOp::NotRe(_) => 3,
    };
    LabelMatcher {
        r#type: t,
        name: m.name.clone(),
        value: m.value.clone(),
    }
}

/// A remote-read `LabelMatcher` as a PromQL matcher (regexes fully
/// anchored, as in PromQL).
pub fn from_wire(m: &LabelMatcher) -> Result<Matcher, String> {
    let re = || {
        regex::Regex::new(&format!("^(?:{})$", m.value))
            .map_err(|e| format!("matcher {}: invalid regular expression: {e}", m.name))
    };
    let op = match m.r#type {
        0 => MatchOp::Equal,
        1 => MatchOp::NotEqual,
        2 => MatchOp::Re(re()?),
        3 => MatchOp::NotRe(re()?),
        t => return Err(format!("matcher {}: unknown type {t}", m.name)),
    };
    Ok(Matcher::new(op, &m.name, &m.value))
}

/// A selected series as a remote-read `TimeSeries`.
pub fn series_to_wire(s: Series) -> TimeSeries {
    TimeSeries {
        labels: s
            .labels
            .into_vec()
            .into_iter()
            .map(|l| Label {
                name: l.name,
                value: l.value,
            })
            .collect(),
        samples: s
            .timestamps
            .iter()
            .zip(&s.values)
            .map(|(&timestamp, &value)| Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn series_from_wire(ts: TimeSeries) -> Series {
    Series {
        labels: Labels::from_pairs(ts.labels.into_iter().map(|l| (l.name, l.value))),
        timestamps: ts.samples.iter().map(|s| s.timestamp).collect(),
        values: ts.samples.iter().map(|s| s.value).collect(),
    }
}

/// Snappy-compresses an encoded message (remote-read bodies, both ways).
pub fn encode<M: Message>(m: &M) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&m.encode_to_vec())
        .expect("snappy compression of an in-memory buffer cannot fail")
}

/// Decodes a snappy-compressed message, refusing more than `limit` bytes
/// decompressed.
pub fn decode<M: Message + Default>(body: &[u8], limit: usize) -> Result<M, String> {
    let n = snap::raw::decompress_len(body).map_err(|e| format!("snappy: {e}"))?;
    if n > limit {
        return Err(format!(
            "decompressed body is {n} bytes, over the limit of {limit} bytes"
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    M::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

/// A remote-read client of one replica.
#[derive(Clone)]
pub struct RemoteReadClient {
    http: reqwest::Client,
    base: String,
    url: String,
}

impl RemoteReadClient {
    /// A client of `base` (`http://host:port`).
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        Ok(RemoteReadClient {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            url: format!("{base}/api/v1/read"),
            base,
        })
    }

    /// Reads the series matching `matchers` in `[start, end]`.
    pub async fn read(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Series>, String> {
        let req = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: start,
                end_timestamp_ms: end,
                matchers: matchers.iter().map(to_wire).collect(),
            }],
        };
        let resp = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .body(encode(&req))
            .send()
            .await
            .map_err(|e| format!("remote-read {}: {e}", self.url))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("remote-read {}: {e}", self.url))?;
        if !status.is_success() {
            return Err(format!(
                "remote-read {}: {status}: {}",
                self.url,
                String::from_utf8_lossy(&body).trim()
            ));
        }
        let resp: ReadResponse =
            decode(&body, usize::MAX).map_err(|e| format!("remote-read {}: {e}", self.url))?;
        Ok(resp
            .results
            .into_iter()
            .flat_map(|r: QueryResult| r.timeseries)
            .map(series_from_wire)
            .collect())
    }
}

impl RemoteReadClient {
    /// The replica's series matching any of `selectors` (`match[]`) with
    /// `start`/`end` as given to the Prometheus API, read from its index
    /// with `POST /api/v1/series` (labels only, no samples).
    pub async fn series(
        &self,
        selectors: &[&str],
        start: Option<&str>,
        end: Option<&str>,
    ) -> Result<Vec<Labels>, String> {
        let url = format!("{}/api/v1/series", self.base);
        let mut form: Vec<(&str, &str)> = selectors.iter().map(|s| ("match[]", *s)).collect();
        form.extend(start.map(|s| ("start", s)));
        form.extend(end.map(|e| ("end", e)));
        let resp = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("series {url}: {e}"))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("series {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "series {url}: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            data: Vec<std::collections::BTreeMap<String, String>>,
        }
        let a: Answer = serde_json::from_slice(&body).map_err(|e| format!("series {url}: {e}"))?;
        Ok(a.data.into_iter().map(Labels::from_pairs).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_roundtrip_anchored() {
        let m = from_wire(&LabelMatcher {
            r#type: 2,
            name: "job".into(),
            value: "a|b".into(),
        })
        .unwrap();
        assert!(m.is_match("a") && !m.is_match("ab"));
        assert_eq!(to_wire(&m).r#type, 2);
        assert!(
            from_wire(&LabelMatcher {
                r#type: 9,
                name: "x".into(),
                value: String::new()
            })
            .is_err()
        );
    }
}
