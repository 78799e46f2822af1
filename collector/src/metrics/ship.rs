//! Shipping: remote-write 1.0 to the aggregator or any remote-write
//! endpoint, through one durable bounded disk queue per endpoint.
//!
//! Each collection cycle is pushed (fdatasync'd) to every endpoint's queue;
//! a sender per endpoint reads batches of records, merges them into one
//! snappy-compressed `WriteRequest`, and acknowledges them only after a 2xx.
//! 5xx, 429 and network errors are retried with exponential backoff; other
//! 4xx are logged, counted and dropped (retrying cannot help). When the
//! queue's bound is reached the oldest records are dropped and counted.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate, join};
use tidewatch_common::duration::serde_duration;
use tokio_util::sync::CancellationToken;

use crate::buffer::{BufferOptions, DiskBuffer, OverflowPolicy};

/// One remote-write endpoint (`collector.remote_write[]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Endpoint URL, e.g. `http://aggregator:9800/api/v1/write`.
    pub url: String,
    /// Name used in self-metrics and as the queue directory (default: index).
    pub name: String,
    /// Per-request timeout.
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
    /// Queue records (one per up to `series_per_record` series) per request.
    pub max_records_per_request: usize,
    /// Series per queued record.
    pub series_per_record: usize,
    /// First retry delay.
    #[serde(with = "serde_duration")]
    pub min_backoff: Duration,
    /// Largest retry delay.
    #[serde(with = "serde_duration")]
    pub max_backoff: Duration,
    /// Extra HTTP headers (e.g. `Authorization`).
    pub headers: std::collections::BTreeMap<String, String>,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: String::new(),
            name: String::new(),
            timeout: Duration::from_secs(30),
            max_records_per_request: 10,
            series_per_record: 500,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            headers: Default::default(),
        }
    }
}

impl Validate for RemoteWriteConfig {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        let mut err = |f: &str, m: String| {
            errors.push(FieldError {
                path: join(path, f),
                message: m,
                line: None,
            })
        };
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            err("url", format!("must be an http(s) URL, got {:?}", self.url));
        }
        if self.max_records_per_request == 0 {
            err("max_records_per_request", "must be at least 1".into());
        }
        if self.series_per_record == 0 {
            err("series_per_record", "must be at least 1".into());
        }
        if self.min_backoff > self.max_backoff {
            err("min_backoff", "must not exceed max_backoff".into());
        }
        if self.name.contains(['/', '\\']) || self.name == ".." {
            err("name", "must not contain path separators".into());
        }
    }
}

/// On-disk queue bound (`collector.queue`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Upper bound of the bytes on disk, per endpoint.
    pub max_bytes: u64,
    /// Segment file size.
    pub segment_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_bytes: 512 << 20,
            segment_bytes: 8 << 20,
        }
    }
}

impl Validate for QueueConfig {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        if self.max_bytes < 64 << 10 {
            errors.push(FieldError {
                path: join(path, "max_bytes"),
                message: "must be at least 65536".into(),
                line: None,
            });
        }
    }
}

/// Shipping self-metrics, labelled by endpoint name.
#[derive(Clone, Default)]
pub struct ShipMetrics {
    sent_records: Family<Vec<(String, String)>, Counter>,
    sent_bytes: Family<Vec<(String, String)>, Counter>,
    retries: Family<Vec<(String, String)>, Counter>,
    rejected_records: Family<Vec<(String, String)>, Counter>,
    dropped_records: Family<Vec<(String, String)>, Counter>,
    queue_records: Family<Vec<(String, String)>, Gauge>,
    queue_bytes: Family<Vec<(String, String)>, Gauge>,
}

impl ShipMetrics {
    /// Registers the families under `registry`.
    pub fn register(registry: &mut Registry) -> ShipMetrics {
        let m = ShipMetrics::default();
        let r = registry.sub_registry_with_prefix("remote_write");
        r.register(
            "sent_records",
            "Queue records acknowledged by the endpoint",
            m.sent_records.clone(),
        );
        r.register(
            "sent_bytes",
            "Compressed bytes acknowledged by the endpoint",
            m.sent_bytes.clone(),
        );
        r.register(
            "retries",
            "Requests retried after 5xx, 429 or a network error",
            m.retries.clone(),
        );
        r.register(
            "rejected_records",
            "Queue records dropped after a non-retryable 4xx",
            m.rejected_records.clone(),
        );
        r.register(
            "dropped_records",
            "Oldest queue records dropped because the queue bound was hit",
            m.dropped_records.clone(),
        );
        r.register(
            "queue_records",
            "Records waiting in the disk queue",
            m.queue_records.clone(),
        );
        r.register(
            "queue_bytes",
            "Bytes of the disk queue",
            m.queue_bytes.clone(),
        );
        m
    }
}

/// One endpoint: its queue and its sender task.
pub struct Endpoint {
    name: String,
    /// Replaced on reload (URL, timeouts, backoff, batch sizes, headers).
    cfg: parking_lot::RwLock<RemoteWriteConfig>,
    queue: Arc<DiskBuffer>,
    metrics: ShipMetrics,
}

impl Endpoint {
    /// Opens (or resumes) the endpoint's queue under `dir`.
    pub fn open(
        dir: &Path,
        cfg: RemoteWriteConfig,
        queue: &QueueConfig,
        metrics: ShipMetrics,
    ) -> anyhow::Result<Arc<Endpoint>> {
        let name = cfg.name.clone();
        let q = DiskBuffer::open(
            &dir.join(&name),
            BufferOptions {
                max_bytes: queue.max_bytes,
                segment_bytes: queue.segment_bytes,
                overflow: OverflowPolicy::DropOldest,
            },
        )
        .map_err(|e| anyhow::anyhow!("remote-write queue {}: {e}", dir.join(&name).display()))?;
        let ep = Arc::new(Endpoint {
            name,
            cfg: parking_lot::RwLock::new(cfg),
            queue: Arc::new(q),
            metrics,
        });
        ep.update_gauges();
        Ok(ep)
    }

    fn labels(&self) -> Vec<(String, String)> {
        vec![("endpoint".to_string(), self.name.clone())]
    }

    fn update_gauges(&self) {
        let st = self.queue.stats();
        let l = self.labels();
        self.metrics
            .queue_records
            .get_or_create(&l)
            .set(st.records as i64);
        self.metrics
            .queue_bytes
            .get_or_create(&l)
            .set(st.bytes as i64);
    }

    /// Series per queued record.
    pub fn series_per_record(&self) -> usize {
        self.cfg.read().series_per_record
    }

    /// The endpoint's name (its queue directory).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint's current settings.
    pub fn config(&self) -> RemoteWriteConfig {
        self.cfg.read().clone()
    }

    /// Applies new settings from the next request on (the queue stays).
    pub fn update(&self, cfg: RemoteWriteConfig) {
        *self.cfg.write() = cfg;
    }

    /// Durably enqueues encoded records (drops the oldest at the bound).
    pub async fn push(&self, records: &[Vec<u8>]) -> std::io::Result<()> {
        let dropped = self.queue.push_batch(records).await?;
        if dropped > 0 {
            tracing::warn!(endpoint = %self.name, dropped, "remote-write queue full: dropped the oldest records");
            self.metrics
                .dropped_records
                .get_or_create(&self.labels())
                .inc_by(dropped);
        }
        self.update_gauges();
        Ok(())
    }

    /// Records waiting in the queue.
    pub fn pending(&self) -> u64 {
        self.queue.stats().records
    }

    /// Sends until `stop` is cancelled; unacknowledged records stay queued.
    pub async fn run(self: Arc<Self>, client: reqwest::Client, stop: CancellationToken) {
        let labels = self.labels();
        loop {
            let max_records = self.cfg.read().max_records_per_request;
            let batch = tokio::select! {
                _ = stop.cancelled() => return,
                b = self.queue.read_batch(max_records, 8 << 20) => b,
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(endpoint = %self.name, error = %e, "reading remote-write queue failed");
                    let wait = self.cfg.read().max_backoff;
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            };
            let raw = batch.records.concat();
            let body = match snap::raw::Encoder::new().compress_vec(&raw) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "snappy compression failed");
                    continue;
                }
            };
            let mut backoff = self.cfg.read().min_backoff;
            loop {
                match self.send(&client, body.clone()).await {
                    Outcome::Sent => {
                        self.metrics
                            .sent_records
                            .get_or_create(&labels)
                            .inc_by(batch.records.len() as u64);
                        self.metrics
                            .sent_bytes
                            .get_or_create(&labels)
                            .inc_by(body.len() as u64);
                        break;
                    }
                    Outcome::Rejected(msg) => {
                        tracing::warn!(endpoint = %self.name, %msg, records = batch.records.len(), "remote-write rejected the batch (4xx); dropping it");
                        self.metrics
                            .rejected_records
                            .get_or_create(&labels)
                            .inc_by(batch.records.len() as u64);
                        break;
                    }
                    Outcome::Retry(msg) => {
                        tracing::debug!(endpoint = %self.name, %msg, ?backoff, "remote-write failed; retrying");
                        self.metrics.retries.get_or_create(&labels).inc();
                        tokio::select! {
                            _ = stop.cancelled() => { self.queue.rewind(); return; }
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(self.cfg.read().max_backoff);
                    }
                }
            }
            if let Err(e) = self.queue.ack(&batch) {
                tracing::error!(endpoint = %self.name, error = %e, "acknowledging remote-write queue failed");
            }
            self.update_gauges();
        }
    }

    async fn send(&self, client: &reqwest::Client, body: Vec<u8>) -> Outcome {
        let cfg = self.config();
        let mut req = client
            .post(&cfg.url)
            .timeout(cfg.timeout)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .header(
                "User-Agent",
                concat!("tidewatch-collector/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in &cfg.headers {
            req = req.header(k, v);
        }
        match req.body(body).send().await {
            Err(e) => Outcome::Retry(e.to_string()),
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    Outcome::Sent
                } else {
                    let text = resp.text().await.unwrap_or_default();
                    let msg = format!("{status}: {}", text.trim());
                    if status.is_server_error() || status.as_u16() == 429 {
                        Outcome::Retry(msg)
                    } else {
                        Outcome::Rejected(msg)
                    }
                }
            }
        }
    }
}

/// Result of one request.
enum Outcome {
    Sent,
    Rejected(String),
    Retry(String),
}

/// Enqueues scraped batches for every endpoint.
pub(crate) async fn forward(
    mut rx: tokio::sync::mpsc::Receiver<Vec<super::sample::Sample>>,
    live: Arc<super::live::Shared>,
    stop: CancellationToken,
) {
    loop {
        let batch = tokio::select! {
            b = rx.recv() => match b { Some(b) => b, None => return },
            _ = stop.cancelled() => return,
        };
        let (extra, endpoints) = (live.extra(), live.endpoints());
        for ep in endpoints.iter() {
            let records = super::encode::encode_records(&batch, &extra, ep.series_per_record());
            if let Err(e) = ep.push(&records).await {
                tracing::error!(error = %e, "writing scraped samples to the queue failed");
            }
        }
    }
}
