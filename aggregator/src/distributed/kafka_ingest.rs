//! The producer side of the Kafka ingest bus (ingester mode):
//! `POST /api/v1/write` is validated like the single-node endpoint, split by
//! series onto the topic's partitions ([`super::partition`]) and produced
//! with an idempotent producer and `acks=all`; the request is answered 204
//! only once every part was acknowledged by the broker. The consumer side
//! is [`super::kafka_consume`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tidewatch_common::remote_write::{self, DecodeError};

use super::config::KafkaConfig;
use super::metrics::DistMetrics;
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
