//! The Loki push sink (the aggregator, or any Loki): snappy protobuf
//! `POST /loki/api/v1/push`. Re-sent records are harmless: Loki and the
//! aggregator drop entries with the same stream, timestamp and line.
//! Lines are moved, not copied, into the request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tidewatch_common::Labels;
use tidewatch_common::loki::{
    EntryAdapter, PushRequest, StreamAdapter, Timestamp, encode_push_request, format_labels,
};

use super::record::Record;
use super::sink::{DeadLetter, SinkMetrics};

/// Loki push client.
pub struct LokiSink {
    client: reqwest::Client,
    url: String,
    dead: DeadLetter,
    metrics: SinkMetrics,
    pending: Option<Pending>,
}

impl LokiSink {
    /// A sink posting to `<base>/loki/api/v1/push`.
    pub fn new(base: &str, dead: DeadLetter, metrics: SinkMetrics) -> anyhow::Result<LokiSink> {
        Ok(LokiSink {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            url: format!("{}/loki/api/v1/push", base.trim_end_matches('/')),
            dead,
            metrics,
            pending: None,
        })
    }

    /// Sends one request with every record. The records' lines are moved
    /// into the request, which is kept (encoded) until it is delivered or
    /// refused for good, so a retry of the same records re-sends it as is.
    pub async fn send(&mut self, records: &mut [Record]) -> Result<(), String> {
        let same = self
            .pending
            .as_ref()
            .is_some_and(|p| p.first_rid == records[0].rid && p.len == records.len());
        if !same {
            self.pending = Some(Pending::build(records));
        }
        let body = self.pending.as_ref().expect("built above").body.clone();
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                self.metrics.failures.inc();
                format!("POST {}: {e}", self.url)
            })?;
        let status = resp.status();
        if status.is_success() {
            self.pending = None;
            self.metrics.sent.inc_by(records.len() as u64);
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        if status.as_u16() == 400 || status.as_u16() == 413 {
            // The receiver will never take these: keep them aside.
            if let Some(p) = self.pending.take() {
                p.restore(records);
            }
            for r in records.iter() {
                self.dead.write(r, &format!("{status}: {text}"));
            }
            return Ok(());
        }
        self.metrics.failures.inc();
        Err(format!("POST {}: {status}: {text}", self.url))
    }
}

/// A push request built from records, with what it takes to give the
/// records their lines back.
struct Pending {
    first_rid: u64,
    len: usize,
    req: PushRequest,
    /// Stream index of each record, in order.
    stream_of: Vec<u32>,
    body: bytes::Bytes,
}

impl Pending {
    fn build(records: &mut [Record]) -> Pending {
        // Records of a stream share an `Arc` of labels (one per buffer
        // block): group by pointer, and by value when a pointer is new.
        let mut index: HashMap<usize, usize> = HashMap::new();
        let mut by_value: BTreeMap<Labels, usize> = BTreeMap::new();
        let mut last: Option<(usize, usize)> = None;
        let mut streams: Vec<StreamAdapter> = Vec::new();
        let mut stream_of = Vec::with_capacity(records.len());
        for r in records.iter_mut() {
            let key = Arc::as_ptr(&r.labels) as usize;
            let i = match last {
                Some((k, i)) if k == key => i,
                _ => *index.entry(key).or_insert_with(|| {
                    *by_value.entry((*r.labels).clone()).or_insert_with(|| {
                        streams.push(StreamAdapter {
                            labels: format_labels(&r.labels),
                            entries: Vec::new(),
                            hash: 0,
                        });
                        streams.len() - 1
                    })
                }),
            };
            last = Some((key, i));
            stream_of.push(i as u32);
            streams[i].entries.push(EntryAdapter {
                timestamp: Some(Timestamp::from_nanos(r.ts)),
                line: std::mem::take(&mut r.line),
                structured_metadata: Vec::new(),
            });
        }
        let req = PushRequest { streams };
        let body = encode_push_request(&req).into();
        Pending {
            first_rid: records[0].rid,
            len: records.len(),
            req,
            stream_of,
            body,
        }
    }

    /// Moves the lines back into `records` (the ones it was built from).
    fn restore(mut self, records: &mut [Record]) {
        let mut next = vec![0usize; self.req.streams.len()];
        for (r, &s) in records.iter_mut().zip(&self.stream_of) {
            let s = s as usize;
            r.line = std::mem::take(&mut self.req.streams[s].entries[next[s]].line);
            next[s] += 1;
        }
    }
}
