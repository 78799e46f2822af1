//! An event output: a durable disk buffer (`<data dir>/events/<name>`, the
//! shared [`tidewatch_common::buffer::DiskBuffer`]) drained into one sink.
//! A batch is acknowledged in the buffer only after the sink accepted it;
//! failures are retried with back-off, so the buffer holds everything not
//! yet delivered across outages and restarts.

use std::sync::Arc;
use std::time::Duration;

use tidewatch_common::buffer::{BufferOptions, DiskBuffer, OverflowPolicy};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::record::EventRecord;
use super::{OutputLabel, aggregator, elasticsearch, kafka};
use crate::Platform;

/// Where an output delivers.
pub enum Sink {
    /// The aggregator's `POST /api/v1/events`.
    Aggregator(aggregator::AggregatorSink),
    /// Elasticsearch / OpenSearch bulk API.
    Elasticsearch(elasticsearch::EsSink),
    /// A Kafka topic.
    Kafka(kafka::KafkaSink),
}

impl Sink {
    /// Delivers `events`; `Err` means retry the whole batch (every sink is
    /// idempotent for re-sent events or documented as at-least-once).
    pub async fn send(&mut self, events: &[EventRecord]) -> Result<(), String> {
        match self {
            Sink::Aggregator(s) => s.send(events).await,
            Sink::Elasticsearch(s) => s.send(events).await,
            Sink::Kafka(s) => s.send(events).await,
        }
    }
}

/// One output: its buffer and sink.
pub struct Output {
    /// `aggregator`, `elasticsearch` or `kafka` (also the buffer directory).
    pub name: &'static str,
    /// Events not yet acknowledged by the sink.
    pub buffer: DiskBuffer,
    sink: Mutex<Sink>,
}

/// Opens the buffers of every configured output.
pub fn open_all(p: &Platform) -> anyhow::Result<Vec<Arc<Output>>> {
    let cfg = &p.config.events;
    let mut outputs = Vec::new();
    if let Some(url) = &p.config.aggregator_url {
        outputs.push((
            "aggregator",
            Sink::Aggregator(aggregator::AggregatorSink::new(url)?),
        ));
    }
    if let Some(es) = &cfg.elasticsearch {
        outputs.push((
            "elasticsearch",
            Sink::Elasticsearch(elasticsearch::EsSink::new(es)?),
        ));
    }
    if let Some(k) = &cfg.kafka {
        outputs.push(("kafka", Sink::Kafka(kafka::KafkaSink::new(k)?)));
    }
    outputs
        .into_iter()
        .map(|(name, sink)| {
            let dir = p.data_dir.join("events").join(name);
            let buffer = DiskBuffer::open(
                &dir,
                BufferOptions {
                    max_bytes: cfg.buffer_max_bytes,
                    segment_bytes: (cfg.buffer_max_bytes / 8).max(1 << 20),
                    overflow: OverflowPolicy::Block,
                },
            )
            .map_err(|e| anyhow::anyhow!("event buffer {}: {e}", dir.display()))?;
            Ok(Arc::new(Output {
                name,
                buffer,
                sink: Mutex::new(sink),
            }))
        })
        .collect()
}

impl Output {
    /// Drains the buffer into the sink until `stop`.
    pub async fn drain(self: Arc<Self>, p: Arc<Platform>, stop: CancellationToken) {
        let label = OutputLabel {
            output: self.name.to_string(),
        };
        let max = p.config.events.batch_size;
        let mut sink = self.sink.lock().await;
        loop {
            let batch = tokio::select! {
                _ = stop.cancelled() => return,
                b = self.buffer.read_batch(max, 8 << 20) => b,
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(output = self.name, error = %e, "platform: cannot read the event buffer");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    self.buffer.rewind();
                    continue;
                }
            };
            let events: Vec<EventRecord> = batch
                .records
                .iter()
                .filter_map(|r| match serde_json::from_slice(r) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        tracing::error!(output = self.name, error = %e, "platform: skipping an undecodable buffered event");
                        None
                    }
                })
                .collect();
            let mut backoff = Duration::from_millis(100);
            loop {
                match sink.send(&events).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(output = self.name, error = %e, "platform: event delivery failed; retrying");
                        p.metrics.failures.get_or_create(&label).inc();
                        if self.name == "aggregator" {
                            p.metrics.post_failures.inc();
                        }
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            if let Err(e) = self.buffer.ack(&batch) {
                tracing::error!(output = self.name, error = %e, "platform: cannot acknowledge in the event buffer");
            }
            p.metrics
                .sent
                .get_or_create(&label)
                .inc_by(events.len() as u64);
            if self.name == "aggregator" {
                p.metrics.forwarded.inc_by(events.len() as u64);
            }
        }
    }
}
