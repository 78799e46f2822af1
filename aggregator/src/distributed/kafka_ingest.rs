//! Kafka as the ingest bus.
//!
//! - [`Publisher`] (ingester mode): `POST /api/v1/write` is validated like
//!   the single-node endpoint, split by series onto the topic's partitions
//!   ([`super::partition`]) and produced with an idempotent producer and
//!   `acks=all`; the request is answered 204 only once every part was
//!   acknowledged by the broker.
//! - [`run_consumer`] (consumer mode): joins the consumer group, appends
//!   what it reads through [`Store::append`] (durable in the WAL on return)
//!   and only then commits the offsets. A replica killed between the two
//!   re-reads the batch on restart (or another replica does after the
//!   rebalance); appends are idempotent per (series, timestamp), so nothing
//!   acknowledged is lost and nothing is doubled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tidewatch_common::remote_write::{self, DecodeError};
use tokio_util::sync::CancellationToken;

use super::config::KafkaConfig;
use super::partition;
use crate::ingest;
use crate::store::{IngestError, Store};

fn plain(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m.push('\n');
    (status, m).into_response()
}

/// The ingester's Kafka producer.
pub struct Publisher {
    producer: FutureProducer,
    topic: String,
    partitions: usize,
    ack_timeout: Duration,
    store: Arc<Store>,
    metrics: DistMetrics,
}

impl Publisher {
    /// Connects to the brokers and learns the topic's partition count
    /// (waiting up to `ack_timeout` for an auto-created topic to appear).
    pub async fn connect(
        cfg: &KafkaConfig,
        store: Arc<Store>,
        metrics: DistMetrics,
    ) -> anyhow::Result<Publisher> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", cfg.brokers.join(","))
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .set(
                "message.timeout.ms",
                cfg.ack_timeout.as_millis().to_string(),
            )
            .create()?;
        let partitions = partition_count(&producer, &cfg.topic, cfg.ack_timeout).await?;
        tracing::info!(topic = %cfg.topic, partitions, "kafka ingester connected");
        Ok(Publisher {
            producer,
            topic: cfg.topic.clone(),
            partitions,
            ack_timeout: cfg.ack_timeout,
            store,
            metrics,
        })
    }

    /// Handles `POST /api/v1/write` in ingester mode.
    pub async fn remote_write(&self, headers: &HeaderMap, body: Body) -> Response {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if ct.split(';').next().unwrap_or("").trim() != "application/x-protobuf" {
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported Content-Type {ct:?}: expected application/x-protobuf (remote-write 1.0)"
                ),
            );
        }
        if let Some(enc) = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            && !enc.eq_ignore_ascii_case("snappy")
        {
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding {enc:?}: expected snappy"),
            );
        }
        let limits = &self.store.config().limits;
        let Ok(body) = axum::body::to_bytes(body, limits.max_body_bytes).await else {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is over the limit aggregator.limits.max_body_bytes={}",
                    limits.max_body_bytes
                ),
            );
        };
        let req = match remote_write::decode_write_request(&body, limits.max_decompressed_bytes) {
            Ok(r) => r,
            Err(e @ DecodeError::TooLarge { .. }) => {
                return plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("{e} (aggregator.limits.max_decompressed_bytes)"),
                );
            }
            Err(e) => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!("malformed remote-write body: {e}"),
                );
            }
        };
        let (batch, meta) = match ingest::from_remote_write(req)
            .and_then(|(b, m)| self.store.check_limits(&b).map(|_| (b, m)))
        {
            Ok(x) => x,
            Err(e) => {
                let status = match e {
                    IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    IngestError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
                    IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    IngestError::BadData(_) => StatusCode::BAD_REQUEST,
                };
                return plain(status, e.to_string());
            }
        };
        match self.publish(batch, &meta).await {
            Ok(()) => {
                self.metrics.requests_published.inc();
                StatusCode::NO_CONTENT.into_response()
            }
            Err(e) => {
                self.metrics.requests_unacknowledged.inc();
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the Kafka ingest bus did not acknowledge the write: {e}"),
                )
            }
        }
    }

    /// Produces one message per partition touched and waits for every
    /// acknowledgement.
    pub async fn publish(
        &self,
        batch: Vec<crate::IngestSeries>,
        meta: &[(String, crate::MetricMeta)],
    ) -> Result<(), String> {
        let parts = partition::split(batch, meta, self.partitions);
        let keys: Vec<[u8; 4]> = parts.iter().map(|(p, _)| p.to_be_bytes()).collect();
        let sends = parts.iter().zip(&keys).map(|((p, payload), key)| {
            let record = FutureRecord::to(&self.topic)
                .partition(*p)
                .key(&key[..])
                .payload(payload.as_slice());
            self.producer.send(record, self.ack_timeout)
        });
        for r in futures::future::join_all(sends).await {
            r.map_err(|(e, _)| e.to_string())?;
        }
        Ok(())
    }
}

/// The topic's partition count, polling metadata until the broker reports
/// it (an auto-created topic appears after the first metadata request).
async fn partition_count(
    producer: &FutureProducer,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (p, t) = (producer.clone(), topic.to_string());
        let md = tokio::task::spawn_blocking(move || {
            p.client()
                .fetch_metadata(Some(&t), Duration::from_secs(5))
                .map(|md| {
                    md.topics()
                        .iter()
                        .find(|x| x.name() == t)
                        .map(|x| x.partitions().len())
                        .unwrap_or(0)
                })
        })
        .await?;
        match md {
            Ok(n) if n > 0 => return Ok(n),
            Ok(_) => {}
            Err(e) => tracing::warn!("kafka metadata for {topic}: {e}"),
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "kafka topic {topic:?} has no partitions after {timeout:?} (aggregator.distributed.kafka.topic)"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates the consumer of a replica (manual commits, earliest offset for
/// partitions without a committed offset).
pub fn consumer(cfg: &KafkaConfig, replica: &str) -> anyhow::Result<StreamConsumer> {
    let session = cfg.session_timeout.as_millis();
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", cfg.brokers.join(","))
        .set("group.id", &cfg.group)
        .set("client.id", replica)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", session.to_string())
        .set("heartbeat.interval.ms", (session / 4).max(100).to_string())
        .set("enable.partition.eof", "false")
        .create()?;
    c.subscribe(&[&cfg.topic])?;
    Ok(c)
}

/// Self-metrics of the distributed parts (registered under the
/// aggregator's `/metrics` prefix).
#[derive(Clone, Default)]
pub struct DistMetrics {
    /// Kafka messages appended durably and committed (consumer).
    pub messages_consumed: Counter,
    /// Kafka messages dropped as undecodable or refused by the store.
    pub messages_dropped: Counter,
    /// Series dropped by the consumer's limits (stricter than the
    /// ingester's).
    pub series_dropped: Counter,
    /// Remote-write requests published and acknowledged (ingester).
    pub requests_published: Counter,
    /// Remote-write requests the broker did not acknowledge (503).
    pub requests_unacknowledged: Counter,
    /// Blocks uploaded to object storage.
    pub blocks_uploaded: Counter,
}

impl DistMetrics {
    /// Registers the counters.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kafka_messages_consumed",
            "Kafka messages appended durably, offsets committed",
            self.messages_consumed.clone(),
        );
        registry.register(
            "kafka_messages_dropped",
            "Kafka messages dropped as undecodable or refused by the store",
            self.messages_dropped.clone(),
        );
        registry.register(
            "kafka_series_dropped",
            "Series from Kafka refused by this replica's limits",
            self.series_dropped.clone(),
        );
        registry.register(
            "kafka_requests_published",
            "Remote-write requests published to Kafka and acknowledged",
            self.requests_published.clone(),
        );
        registry.register(
            "kafka_requests_unacknowledged",
            "Remote-write requests answered 503: the broker did not acknowledge",
            self.requests_unacknowledged.clone(),
        );
        registry.register(
            "blocks_uploaded",
            "Blocks uploaded to object storage",
            self.blocks_uploaded.clone(),
        );
    }
}

/// Consumes until `shutdown`: reads a batch of messages, appends them in
/// one durable WAL commit, then commits the next offsets.
pub async fn run_consumer(
    consumer: StreamConsumer,
    cfg: KafkaConfig,
    store: Arc<Store>,
    stats: DistMetrics,
    shutdown: CancellationToken,
) {
    let max_decompressed = store.config().limits.max_decompressed_bytes;
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let mut msgs = Vec::new();
        match first {
            Ok(m) => msgs.push(m),
            Err(e) => {
                tracing::warn!("kafka consumer: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        // Drain what is already fetched, up to the batch size.
        while msgs.len() < cfg.max_batch_messages {
            match tokio::time::timeout(Duration::from_millis(2), consumer.recv()).await {
                Ok(Ok(m)) => msgs.push(m),
                _ => break,
            }
        }
        let mut parts: Vec<Vec<crate::IngestSeries>> = Vec::with_capacity(msgs.len());
        let mut meta = Vec::new();
        let mut next: HashMap<(String, i32), i64> = HashMap::new();
        for m in &msgs {
            next.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
            let decoded =
                remote_write::decode_write_request(m.payload().unwrap_or(&[]), max_decompressed)
                    .map_err(|e| e.to_string())
                    .and_then(|r| ingest::from_remote_write(r).map_err(|e| e.to_string()));
            match decoded {
                Ok((b, md)) => {
                    parts.push(b);
                    meta.extend(md);
                }
                Err(e) => {
                    stats.messages_dropped.inc();
                    tracing::error!(
                        partition = m.partition(),
                        offset = m.offset(),
                        "dropping undecodable kafka message: {e}"
                    );
                }
            }
        }
        // Commit only what is durable: on an internal (disk) error, rewind
        // to the batch's first offsets and read it again later.
        if let Err(e) = append_all(&store, parts, &stats).await {
            tracing::error!("append from kafka failed, will re-read: {e}");
            seek_back(&consumer, &msgs);
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        store.record_metadata(meta);
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), off) in next {
            if tpl
                .add_partition_offset(&topic, p, Offset::Offset(off))
                .is_err()
            {
                continue;
            }
        }
        let n = msgs.len() as u64;
        drop(msgs);
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            // Not fatal: the batch is durable; it is re-read and re-applied
            // idempotently if this replica dies before the next commit.
            tracing::warn!("kafka offset commit failed: {e}");
        } else {
            stats.messages_consumed.inc_by(n);
        }
    }
    tracing::info!("kafka consumer stopped");
}

/// Appends the messages' series in as few WAL commits as the
/// `max_series_per_request` limit allows. A series the store's limits
/// refuse (limits that differ from the ingester's) is dropped alone, and
/// counted. Returns an error only for internal (disk) failures, where
/// nothing may be committed.
async fn append_all(
    store: &Store,
    parts: Vec<Vec<crate::IngestSeries>>,
    stats: &DistMetrics,
) -> Result<(), String> {
    let limit = store.config().limits.max_series_per_request.max(1);
    let mut chunk: Vec<crate::IngestSeries> = Vec::new();
    for mut p in parts {
        if store.check_limits(&p).is_err() {
            // Keep the series the limits accept; drop and count the rest.
            let before = p.len();
            p.retain(|s| match store.check_limits(std::slice::from_ref(s)) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!("dropping series from kafka refused by the store: {e}");
                    false
                }
            });
            stats.series_dropped.inc_by((before - p.len()) as u64);
        }
        if !chunk.is_empty() && chunk.len() + p.len() > limit {
            append_chunk(store, std::mem::take(&mut chunk), stats).await?;
        }
        chunk.extend(p);
    }
    if !chunk.is_empty() {
        append_chunk(store, chunk, stats).await?;
    }
    Ok(())
}

async fn append_chunk(
    store: &Store,
    chunk: Vec<crate::IngestSeries>,
    stats: &DistMetrics,
) -> Result<(), String> {
    match store.append(chunk).await {
        Ok(_) => Ok(()),
        Err(IngestError::Internal(e)) => Err(e),
        // Only `max_active_series` can refuse a chunk of accepted messages.
        Err(e) => {
            stats.messages_dropped.inc();
            tracing::error!("dropping kafka batch refused by the store: {e}");
            Ok(())
        }
    }
}

fn seek_back(consumer: &StreamConsumer, msgs: &[rdkafka::message::BorrowedMessage<'_>]) {
    let mut first: HashMap<(String, i32), i64> = HashMap::new();
    for m in msgs {
        first
            .entry((m.topic().to_string(), m.partition()))
            .or_insert(m.offset());
    }
    for ((topic, p), off) in first {
        if let Err(e) = consumer.seek(&topic, p, Offset::Offset(off), Duration::from_secs(5)) {
            tracing::error!("kafka seek back failed: {e}");
        }
    }
}
