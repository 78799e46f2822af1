//! The Kafka sink: `rdkafka` with `acks=all` and the idempotent producer,
//! records keyed by stream (the label selector), JSON documents as values,
//! headers `tw-rid` (record id) and `tw-producer` (this collector).
//!
//! Each batch is one transaction (`transactional.id` = the producer id), so
//! a collector killed mid-batch leaves nothing visible to `read_committed`
//! consumers, and a new producer instance fences the old one. Across a
//! restart (or after an error whose outcome is unknown) the sink reads back
//! the committed tail of every partition (`resync_scan` messages each) and
//! skips records whose id is not above the highest id it finds from this
//! producer in the partition the record maps to. The partition is chosen
//! here (hash of the key), so a record always maps to the same one.

use std::collections::HashMap;
use std::sync::Arc;
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
    producer_config: ClientConfig,
    initialized: bool,
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
            .set("transactional.id", producer_id)
            .set("compression.type", compression)
            .set("message.timeout.ms", "60000")
            .set("transaction.timeout.ms", "120000")
            .set("linger.ms", "5");
        let producer: FutureProducer = pc.create()?;
        Ok(KafkaSink {
            producer,
            producer_config: pc,
            initialized: false,
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

    /// (Re)creates the transactional producer, fencing older instances.
    async fn init(&mut self) -> Result<(), String> {
        if self.initialized {
            // After a failure: a fresh instance aborts whatever the old one left open.
            self.producer = self.producer_config.create().map_err(|e| e.to_string())?;
        }
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(TIMEOUT))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("init_transactions: {e}"))?;
        self.initialized = true;
        Ok(())
    }

    async fn blocking(
        &self,
        what: &'static str,
        f: impl FnOnce(&FutureProducer) -> rdkafka::error::KafkaResult<()> + Send + 'static,
    ) -> Result<(), String> {
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || f(&p))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{what}: {e}"))
    }

    /// Reads the partition count and the highest delivered id per partition.
    async fn resync(&mut self) -> Result<(), String> {
        self.init().await?;
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
                .set("isolation.level", "read_committed")
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
                    // Transaction markers take offsets but are never
                    // returned: the position tells when a partition is read.
                    if let Ok(pos) = consumer.position() {
                        for e in pos.elements() {
                            if let Offset::Offset(o) = e.offset()
                                && remaining.get(&e.partition()).is_some_and(|&last| o > last)
                            {
                                remaining.remove(&e.partition());
                            }
                        }
                    }
                    if remaining.is_empty() {
                        break;
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
        tracing::info!(topic = %self.topic, partitions, ?delivered, "read back the Kafka partition tails");
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
        if let Err(e) = self
            .blocking("begin_transaction", |p| p.begin_transaction())
            .await
        {
            self.needs_resync = true;
            return Err(e);
        }
        let mut futures = Vec::with_capacity(records.len());
        let mut payload = Vec::new();
        // Key and partition per stream (records share a stream's labels).
        let mut keys: HashMap<usize, (String, i32)> = HashMap::new();
        for r in records {
            let (key, p) = keys
                .entry(Arc::as_ptr(&r.labels) as usize)
                .or_insert_with(|| {
                    let k = format_labels(&r.labels);
                    let p = self.partition_of(&k);
                    (k, p)
                });
            let (key, p) = (key.as_str(), *p);
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
                .key(key)
                .payload(&payload)
                .partition(p)
                .headers(headers);
            match self.producer.send_result(rec) {
                Ok(f) => futures.push((p, r.rid, f)),
                Err((e, _)) => {
                    self.metrics.failures.inc();
                    self.needs_resync = true;
                    return Err(format!("queueing to {}: {e}", self.topic));
                }
            }
        }
        let mut first_err = None;
        let mut done = Vec::with_capacity(futures.len());
        for (p, rid, f) in futures {
            match f.await {
                Ok(Ok(_)) => done.push((p, rid)),
                Ok(Err((e, _))) => {
                    first_err.get_or_insert_with(|| format!("producing to {}: {e}", self.topic));
                }
                Err(_) => {
                    first_err.get_or_insert_with(|| "producer dropped a delivery".to_string());
                }
            }
        }
        if first_err.is_none()
            && let Err(e) = self
                .blocking("commit_transaction", |p| p.commit_transaction(TIMEOUT))
                .await
        {
            first_err = Some(e);
        }
        match first_err {
            None => {
                self.metrics.sent.inc_by(done.len() as u64);
                for (p, rid) in done {
                    let e = self.delivered.entry(p).or_insert(0);
                    *e = (*e).max(rid);
                }
                Ok(())
            }
            Some(e) => {
                self.metrics.failures.inc();
                self.needs_resync = true;
                Err(e)
            }
        }
    }
}
