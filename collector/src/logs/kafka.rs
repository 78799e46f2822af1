//! The Kafka sink: `rdkafka` with `acks=all` and the idempotent producer,
//! records keyed by stream (the label selector), JSON documents as values,
//! headers `tw-rid` (record id) and `tw-producer` (this collector).
//!
//! The idempotent producer removes duplicates within one producer session.
//! Across a restart (or after an error whose outcome is unknown) the sink
//! reads back the tail of every partition (`resync_scan` messages each)
//! and skips records whose id is not above the highest id it finds from
//! this producer in the partition the record maps to. The partition is
//! chosen here (hash of the key), so a record always maps to the same one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tidewatch_common::loki::format_labels;

use super::record::Record;
use super::sink::{SinkMetrics, document};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka producer and its resync state.
pub struct KafkaSink {
    producer: FutureProducer,
    base: ClientConfig,
    topic: String,
    producer_id: String,
    partitions: i32,
    delivered: HashMap<i32, u64>,
    /// Set after a failure: re-read partition tails before sending.
    pub needs_resync: bool,
    resync_scan: i64,
    metrics: SinkMetrics,
}

impl KafkaSink {
    /// Builds the producer; `producer_id` must be unique per collector.
    pub fn new(
        brokers: &str,
        topic: &str,
        compression: &str,
        properties: &std::collections::BTreeMap<String, String>,
        producer_id: &str,
        metrics: SinkMetrics,
    ) -> anyhow::Result<KafkaSink> {
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", brokers);
        for (k, v) in properties {
            base.set(k, v);
        }
        let mut pc = base.clone();
        pc.set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", compression)
            .set("message.timeout.ms", "120000")
            .set("linger.ms", "5");
        let producer: FutureProducer = pc.create()?;
        Ok(KafkaSink {
            producer,
            base,
            topic: topic.to_string(),
            producer_id: producer_id.to_string(),
            partitions: 0,
            delivered: HashMap::new(),
            needs_resync: true,
            resync_scan: 10_000,
            metrics,
        })
    }

    fn partition_of(&self, key: &str) -> i32 {
        (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % self.partitions as u64) as i32
    }

    /// Reads the partition count and the highest delivered id per partition.
    async fn resync(&mut self) -> Result<(), String> {
        let base = self.base.clone();
        let topic = self.topic.clone();
        let me = self.producer_id.clone();
        let scan = self.resync_scan;
        let producer = self.producer.clone();
        let (partitions, delivered) = tokio::task::spawn_blocking(move || {
            let md = producer
                .client()
                .fetch_metadata(Some(&topic), TIMEOUT)
                .map_err(|e| format!("metadata of {topic}: {e}"))?;
            let n = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .map(|t| t.partitions().len())
                .unwrap_or(0) as i32;
            if n == 0 {
                return Err(format!("topic {topic} has no partitions (yet)"));
            }
            let consumer: BaseConsumer = base
                .clone()
                .set("group.id", format!("tidewatch-resync-{me}"))
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "false")
                .create()
                .map_err(|e| e.to_string())?;
            let mut tpl = TopicPartitionList::new();
            let mut remaining: HashMap<i32, i64> = HashMap::new();
            for p in 0..n {
                let (low, high) = consumer
                    .fetch_watermarks(&topic, p, TIMEOUT)
                    .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
                if high > low {
                    let start = low.max(high - scan);
                    tpl.add_partition_offset(&topic, p, Offset::Offset(start))
                        .map_err(|e| e.to_string())?;
                    remaining.insert(p, high - 1);
                }
            }
            let mut delivered: HashMap<i32, u64> = HashMap::new();
            if !remaining.is_empty() {
                consumer.assign(&tpl).map_err(|e| e.to_string())?;
                let deadline = Instant::now() + Duration::from_secs(60);
                while !remaining.is_empty() {
                    if Instant::now() > deadline {
                        return Err(format!("reading back {topic} timed out"));
                    }
                    let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                        continue;
                    };
                    let m = m.map_err(|e| format!("reading back {topic}: {e}"))?;
                    let mut rid = None;
                    let mut mine = false;
                    if let Some(h) = m.headers() {
                        for hdr in h.iter() {
                            match (hdr.key, hdr.value) {
                                ("tw-producer", Some(v)) => mine = v == me.as_bytes(),
                                ("tw-rid", Some(v)) => {
                                    rid = std::str::from_utf8(v)
                                        .ok()
                                        .and_then(|s| s.parse::<u64>().ok())
                                }
                                _ => {}
                            }
                        }
                    }
                    if mine && let Some(r) = rid {
                        let e = delivered.entry(m.partition()).or_insert(0);
                        *e = (*e).max(r);
                    }
                    if remaining
                        .get(&m.partition())
                        .is_some_and(|&last| m.offset() >= last)
                    {
                        remaining.remove(&m.partition());
                    }
                }
            }
            Ok((n, delivered))
        })
        .await
        .map_err(|e| e.to_string())??;
        self.partitions = partitions;
        self.delivered = delivered;
        self.needs_resync = false;
        Ok(())
    }

    /// Produces every record not yet in the topic and waits for all acks.
    pub async fn send(&mut self, records: &[Record]) -> Result<(), String> {
        if self.needs_resync {
            self.resync().await?;
        }
        let mut futures = Vec::with_capacity(records.len());
        let mut payload = Vec::new();
        for r in records {
            let key = format_labels(&r.labels);
            let p = self.partition_of(&key);
            if self.delivered.get(&p).is_some_and(|&d| r.rid <= d) {
                continue;
            }
            payload.clear();
            document(r, &mut payload);
            let rid = r.rid.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "tw-rid",
                    value: Some(rid.as_bytes()),
                })
                .insert(Header {
                    key: "tw-producer",
                    value: Some(self.producer_id.as_bytes()),
                });
            let rec = FutureRecord::to(&self.topic)
                .key(&key)
                .payload(&payload)
                .partition(p)
                .headers(headers);
            match self.producer.send_result(rec) {
                Ok(f) => futures.push((p, r.rid, f)),
                Err((e, _)) => {
                    self.metrics.failures.inc();
                    return Err(format!("queueing to {}: {e}", self.topic));
                }
            }
        }
        let mut first_err = None;
        for (p, rid, f) in futures {
            match f.await {
                Ok(Ok(_)) => {
                    self.metrics.sent.inc();
                    let e = self.delivered.entry(p).or_insert(0);
                    *e = (*e).max(rid);
                }
                Ok(Err((e, _))) => {
                    first_err.get_or_insert_with(|| format!("producing to {}: {e}", self.topic));
                }
                Err(_) => {
                    first_err.get_or_insert_with(|| "producer dropped a delivery".to_string());
                }
            }
        }
        match first_err {
            None => Ok(()),
            Some(e) => {
                self.metrics.failures.inc();
                self.needs_resync = true;
                Err(e)
            }
        }
    }
}
