//! The producer side of the Kafka ingest bus (ingester mode):
//! `POST /api/v1/write` is validated like the single-node endpoint, split by
//! series onto the topic's partitions ([`super::partition`]) and produced
//! with an idempotent producer and `acks=all`; the request is answered 204
//! only once every part was acknowledged by the broker. The consumer side
//! is [`super::kafka_consume`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tidewatch_common::remote_write::{self, DecodeError};
use tokio_util::sync::CancellationToken;

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
    /// The topic's partition count; 0 until the broker reported it.
    partitions: Arc<AtomicUsize>,
    ack_timeout: Duration,
    store: Arc<Store>,
    metrics: DistMetrics,
}

impl Publisher {
    /// Creates the producer and starts learning (and refreshing) the
    /// topic's partition count in the background until `shutdown`; writes
    /// are answered 503 until it is known, so an ingester starts even while
    /// the broker is unreachable.
    pub fn connect(
        cfg: &KafkaConfig,
        store: Arc<Store>,
        metrics: DistMetrics,
        shutdown: CancellationToken,
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
        let partitions = Arc::new(AtomicUsize::new(0));
        tokio::spawn(refresh_partitions(
            producer.clone(),
            cfg.topic.clone(),
            partitions.clone(),
            shutdown,
        ));
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
        let n = self.partitions.load(Ordering::Relaxed);
        if n == 0 {
            return Err(format!(
                "the partitions of topic {:?} are not known yet (is the broker reachable?)",
                self.topic
            ));
        }
        let parts = partition::split(batch, meta, n);
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

/// Polls the topic's metadata every 200 ms until it has partitions (an
/// auto-created topic appears after the first metadata request), then every
/// 30 s to follow added partitions.
async fn refresh_partitions(
    producer: FutureProducer,
    topic: String,
    partitions: Arc<AtomicUsize>,
    shutdown: CancellationToken,
) {
    loop {
        let (p, t) = (producer.clone(), topic.clone());
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
        .await;
        let n = match md {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!("kafka metadata for {topic}: {e}");
                0
            }
            Err(_) => 0,
        };
        if n > 0 && partitions.swap(n, Ordering::Relaxed) != n {
            tracing::info!(topic = %topic, partitions = n, "kafka topic partitions");
        }
        let wait = if partitions.load(Ordering::Relaxed) == 0 {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(30)
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
