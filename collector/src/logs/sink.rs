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
    Loki(Box<LokiSink>),
    /// Kafka topic.
    Kafka(Box<KafkaSink>),
    /// Elasticsearch bulk API.
    Es(Box<EsSink>),
}

impl Sink {
    /// Delivers `records`. A sink may move the lines out of them (the Loki
    /// sink does); it must then keep what it needs to re-send them when
    /// called again with the same records after a failure.
    pub async fn send(&mut self, records: &mut [Record]) -> Result<(), String> {
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

/// The JSON document of a record (Elasticsearch and Kafka): the labels as
/// fields, then `@timestamp`, `message` and `rid` (a label of one of those
/// names is left out). Written straight into `out`.
pub fn document(r: &Record, out: &mut Vec<u8>) {
    use serde::ser::{SerializeMap, Serializer};
    const FIXED: [&str; 3] = ["@timestamp", "message", "rid"];
    let ts = chrono::DateTime::from_timestamp_nanos(r.ts)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut ser = serde_json::Serializer::new(out);
    let write = |ser: &mut serde_json::Serializer<&mut Vec<u8>>| -> serde_json::Result<()> {
        let mut m = ser.serialize_map(None)?;
        for l in r.labels.iter() {
            if !FIXED.contains(&l.name.as_str()) {
                m.serialize_entry(&l.name, &l.value)?;
            }
        }
        m.serialize_entry("@timestamp", &ts)?;
        m.serialize_entry("message", &r.line)?;
        m.serialize_entry("rid", &r.rid)?;
        m.end()
    };
    write(&mut ser).expect("serialising JSON to memory cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tidewatch_common::Labels;

    #[test]
    fn document_fields() {
        let r = Record {
            rid: 42,
            ts: 1_714_557_600_000_000_001,
            labels: Arc::new(Labels::from_pairs([
                ("pod", "p\"1"),
                ("message", "shadowed"),
            ])),
            line: "hello \n ✓".into(),
        };
        let mut out = Vec::new();
        document(&r, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "pod": "p\"1", "message": "hello \n ✓", "rid": 42,
                "@timestamp": "2024-05-01T10:00:00.000000001Z",
            })
        );
    }
}
