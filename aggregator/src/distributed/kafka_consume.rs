//! The consumer side of the Kafka ingest bus (consumer mode): joins the
//! consumer group, appends what it reads through [`Store::append`]
//! (durable in the WAL on return) and only then commits the offsets. A
//! replica killed between the two re-reads the batch on restart (or another
//! replica does after the rebalance); appends are idempotent per (series,
//! timestamp), so nothing acknowledged is lost and nothing is doubled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tidewatch_common::remote_write;
use tokio_util::sync::CancellationToken;

use super::config::KafkaConfig;
use super::metrics::DistMetrics;
use crate::ingest;
use crate::store::{IngestError, Store};

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
