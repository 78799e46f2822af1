//! Distributed mode (`aggregator.distributed`, see `docs/scaling.md`):
//! scale-out on existing engines, no home-grown clustering.
//!
//! - Kafka is the ingest bus ([`kafka_ingest`], [`kafka_consume`]): stateless ingesters publish
//!   remote-write payloads split by series hash ([`partition`]); consumer
//!   replicas share the partitions through a consumer group and commit
//!   offsets only after the WAL made the data durable.
//! - Blocks go to S3-compatible object storage through the `object_store`
//!   crate ([`bucket`], [`upload`]); one process in `compactor` mode
//!   ([`compactor`]) owns compaction and retention in the bucket.
//! - Query replicas ([`fanout`]) merge the consumers' data read with
//!   Prometheus remote-read ([`remote_read`]) and the bucket's blocks
//!   ([`block_cache`]).
//!
//! The aggregator calls [`start`] from `Aggregator::open`,
//! [`Distributed::wrap_router`] from `Aggregator::router` and
//! [`Distributed::close`] from `Aggregator::close`.

pub mod block_cache;
pub mod bucket;
pub mod compactor;
pub mod config;
pub mod fanout;
pub mod kafka_consume;
pub mod kafka_ingest;
pub mod meta_fanout;
pub mod metrics;
pub mod partition;
pub mod remote_read;
pub mod upload;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tidewatch_promql::Storage;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{DistributedConfig, Mode};

use crate::store::Store;

/// The running distributed parts of one aggregator process.
pub struct Distributed {
    publisher: Option<Arc<kafka_ingest::Publisher>>,
    meta: Option<Arc<meta_fanout::MetaFanout>>,
    uploader: Option<Arc<upload::Uploader>>,
    stop: CancellationToken,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

/// Starts what `config.distributed` asks for. Returns the storage queries
/// should use (the fan-out in query mode, else `local`) and the handle, if
/// anything distributed runs.
pub async fn start(
    config: &crate::Config,
    data_dir: &Path,
    store: Arc<Store>,
    local: Arc<dyn Storage>,
    registry: &mut prometheus_client::registry::Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<(Arc<dyn Storage>, Option<Arc<Distributed>>)> {
    let d = &config.distributed;
    if d.mode == Mode::Standalone && d.object_store.is_none() {
        return Ok((local, None));
    }
    let stop = shutdown.child_token();
    let mut tasks = Vec::new();
    let mut storage = local;
    let mut publisher = None;
    let mut uploader = None;
    let mut meta = None;
    let metrics = metrics::DistMetrics::default();
    metrics.register(registry);
    let replica = d.replica_name().unwrap_or_else(|| "standalone".into());
    // Ingesters publish remote-write to Kafka; so does a query replica with
    // brokers (the alert engine's ALERTS, collectors behind one Service).
    let publishes = match d.mode {
        Mode::Ingester => true,
        Mode::Query => !d.kafka.brokers.is_empty(),
        _ => false,
    };
    if publishes {
        publisher = Some(Arc::new(kafka_ingest::Publisher::connect(
            &d.kafka,
            store.clone(),
            metrics.clone(),
            stop.clone(),
        )?));
    }
    match d.mode {
        Mode::Ingester => {}
        Mode::Consumer => {
            let consumer = kafka_consume::consumer(&d.kafka, &replica)?;
            tasks.push(tokio::spawn(kafka_consume::run_consumer(
                consumer,
                d.kafka.clone(),
                store.clone(),
                metrics.clone(),
                stop.clone(),
            )));
        }
        Mode::Query => {
            let blocks = match &d.object_store {
                Some(o) => {
                    let dir = o
                        .cache_dir
                        .clone()
                        .unwrap_or_else(|| data_dir.join("object-cache"));
                    let cache = Arc::new(block_cache::BlockCache::new(
                        bucket::BlockBucket::new(o)?,
                        dir,
                    ));
                    tasks.push(tokio::spawn(
                        cache.clone().run(o.sync_interval, stop.clone()),
                    ));
                    Some(cache)
                }
                None => None,
            };
            let replicas = d
                .query
                .replicas
                .iter()
                .map(|r| remote_read::RemoteReadClient::new(r, d.query.timeout))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let fan = Arc::new(fanout::FanoutStorage::new(
                replicas,
                blocks,
                config.query.max_samples,
            ));
            storage = fan.clone();
            meta = Some(Arc::new(meta_fanout::MetaFanout {
                storage: fan,
                max_body_bytes: config.limits.max_body_bytes,
            }));
        }
        Mode::Compactor => {
            let o = d.object_store.as_ref().ok_or_else(|| {
                anyhow::anyhow!("aggregator.distributed.object_store: required in compactor mode")
            })?;
            let c = config;
            let cm = compactor::CompactorMetrics::default();
            cm.register(registry);
            let comp = compactor::Compactor::new(
                bucket::BlockBucket::new(o)?,
                compactor::CompactorSettings {
                    name: d.replica_name().unwrap_or_else(|| "compactor".into()),
                    work_dir: data_dir.join("compactor"),
                    retention_ms: c.retention_time.as_millis() as i64,
                    block_ms: c.block_duration.as_millis() as i64,
                    out_of_order_ms: c.out_of_order_window.as_millis() as i64,
                    min_blocks: c.compact_min_blocks.max(2),
                },
                cm,
            );
            tasks.push(tokio::spawn(comp.run(o.sync_interval, stop.clone())));
        }
        Mode::Standalone => {}
    }
    if let (Some(o), Mode::Standalone | Mode::Consumer) = (&d.object_store, d.mode) {
        let up = Arc::new(upload::Uploader::new(
            bucket::BlockBucket::new(o)?,
            replica,
            store,
            metrics.blocks_uploaded.clone(),
        ));
        tasks.push(tokio::spawn(up.clone().run(o.sync_interval, stop.clone())));
        uploader = Some(up);
    }
    tracing::info!(mode = ?d.mode, "aggregator distributed mode started");
    Ok((
        storage,
        Some(Arc::new(Distributed {
            publisher,
            meta,
            uploader,
            stop,
            tasks: parking_lot::Mutex::new(tasks),
        })),
    ))
}

async fn intercept_write(
    State(p): State<Arc<kafka_ingest::Publisher>>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() == Method::POST && req.uri().path() == "/api/v1/write" {
        let (parts, body) = req.into_parts();
        return p.remote_write(&parts.headers, body).await;
    }
    next.run(req).await
}

impl Distributed {
    /// In ingester mode, routes `POST /api/v1/write` to Kafka; in query
    /// mode, answers series, label names and label values from the
    /// fan-out; otherwise returns `routes` unchanged.
    pub fn wrap_router(&self, routes: Router) -> Router {
        let routes = match &self.meta {
            Some(m) => routes.layer(axum::middleware::from_fn_with_state(
                m.clone(),
                meta_fanout::intercept,
            )),
            None => routes,
        };
        match &self.publisher {
            Some(p) => routes.layer(axum::middleware::from_fn_with_state(
                p.clone(),
                intercept_write,
            )),
            None => routes,
        }
    }

    /// Stops consuming (before the store closes).
    pub async fn stop(&self) {
        self.stop.cancel();
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Uploads blocks written by the final flush (after the store closed).
    pub async fn close(&self) {
        if let Some(up) = &self.uploader
            && let Err(e) = up.sync_once().await
        {
            tracing::warn!("final block upload: {e:#}");
        }
    }
}
