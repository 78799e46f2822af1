//! The Loki push sink (the aggregator, or any Loki): snappy protobuf
//! `POST /loki/api/v1/push`. Re-sent records are harmless: Loki and the
//! aggregator drop entries with the same stream, timestamp and line.

use std::collections::BTreeMap;
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
        })
    }

    /// Sends one request with every record.
    pub async fn send(&mut self, records: &[Record]) -> Result<(), String> {
        let mut streams: BTreeMap<&Labels, Vec<EntryAdapter>> = BTreeMap::new();
        for r in records {
            streams.entry(&*r.labels).or_default().push(EntryAdapter {
                timestamp: Some(Timestamp::from_nanos(r.ts)),
                line: r.line.clone(),
                structured_metadata: Vec::new(),
            });
        }
        let req = PushRequest {
            streams: streams
                .into_iter()
                .map(|(l, entries)| StreamAdapter {
                    labels: format_labels(l),
                    entries,
                    hash: 0,
                })
                .collect(),
        };
        let body = encode_push_request(&req);
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
            self.metrics.sent.inc_by(records.len() as u64);
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        if status.as_u16() == 400 || status.as_u16() == 413 {
            // The receiver will never take these: keep them aside.
            for r in records {
                self.dead.write(r, &format!("{status}: {text}"));
            }
            return Ok(());
        }
        self.metrics.failures.inc();
        Err(format!("POST {}: {status}: {text}", self.url))
    }
}
