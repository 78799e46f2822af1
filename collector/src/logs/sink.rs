//! The sinks behind the output buffers, and what they share: the JSON
//! document a record becomes, and the dead-letter file for records a sink
//! refuses for good.

use std::io::Write;
use std::path::{Path, PathBuf};

use prometheus_client::metrics::counter::Counter;

use super::es::EsSink;
use super::kafka::KafkaSink;
use super::loki::LokiSink;
use super::record::Record;

/// A sink; `send` returns `Err` for failures worth retrying (the whole
/// batch is sent again; every sink is idempotent for re-sent records).
pub enum Sink {
    /// Loki push API.
    Loki(LokiSink),
    /// Kafka topic.
    Kafka(Box<KafkaSink>),
    /// Elasticsearch bulk API.
    Es(Box<EsSink>),
}

impl Sink {
    /// Delivers `records`.
    pub async fn send(&mut self, records: &[Record]) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Loki(s) => s.send(records).await,
            Sink::Kafka(s) => s.send(records).await,
            Sink::Es(s) => s.send(records).await,
        }
    }

    /// Called after a failed `send`, before the retry.
    pub fn note_failure(&mut self) {
        if let Sink::Kafka(s) = self {
            s.needs_resync = true;
        }
    }
}

/// Counters every sink keeps.
#[derive(Clone, Default)]
pub struct SinkMetrics {
    /// Records acknowledged by the sink.
    pub sent: Counter,
    /// Records refused for good and written to the dead-letter file.
    pub dead_lettered: Counter,
    /// Failed requests (retried).
    pub failures: Counter,
    /// Items retried after a per-item failure (Elasticsearch).
    pub item_retries: Counter,
}

/// Appends refused records to `<output dir>/dead-letter.ndjson`.
pub struct DeadLetter {
    path: PathBuf,
    metrics: SinkMetrics,
}

impl DeadLetter {
    /// A dead-letter file in `dir`.
    pub fn new(dir: &Path, metrics: SinkMetrics) -> DeadLetter {
        DeadLetter {
            path: dir.join("dead-letter.ndjson"),
            metrics,
        }
    }

    /// Records `r` as refused with `reason`.
    pub fn write(&self, r: &Record, reason: &str) {
        self.metrics.dead_lettered.inc();
        let line = serde_json::json!({
            "rid": r.rid, "ts": r.ts, "labels": labels_map(r), "line": r.line, "reason": reason,
        });
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| {
                let mut b = line.to_string().into_bytes();
                b.push(b'\n');
                f.write_all(&b)?;
                f.sync_data()
            });
        if let Err(e) = res {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the dead-letter file");
        }
    }
}

fn labels_map(r: &Record) -> serde_json::Map<String, serde_json::Value> {
    r.labels
        .iter()
        .map(|l| (l.name.clone(), serde_json::Value::String(l.value.clone())))
        .collect()
}

/// The JSON document of a record (Elasticsearch and Kafka): `@timestamp`,
/// `message`, the labels as fields, and `rid`.
pub fn document(r: &Record, out: &mut Vec<u8>) {
    let ts = chrono::DateTime::from_timestamp_nanos(r.ts)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut m = labels_map(r);
    m.insert("@timestamp".into(), ts.into());
    m.insert("message".into(), r.line.clone().into());
    m.insert("rid".into(), r.rid.into());
    serde_json::to_writer(out, &m).expect("serialising a JSON map to memory cannot fail");
}
