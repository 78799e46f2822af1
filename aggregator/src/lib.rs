//! The aggregator: stores metrics and answers queries.
//!
//! Ingest (remote-write, text import, [`Aggregator::append`]) goes through a
//! write-ahead log with group commit into an in-memory head, which is
//! flushed periodically into time-partitioned Parquet blocks (see
//! `docs/aggregator.md`). Queries (PromQL through
//! [`tidewatch_promql::Engine`], SQL) read the head and the blocks through
//! DataFusion table providers.
//!
//! In-process API for other components:
//! - [`Aggregator::append`]: ingest samples, durable on return;
//! - [`Aggregator::storage`] / [`Aggregator::engine`]: run PromQL;
//! - [`Aggregator::sql_context`] / [`Aggregator::register_table`]: SQL, and
//!   adding tables (logs, events) to it.

pub mod api;
pub mod batch;
pub mod block;
pub mod codec;
pub mod config;
pub mod distributed;
pub mod head;
pub mod index;
pub mod ingest;
pub mod logs;
pub mod rw2;
pub mod storage;
pub mod store;
pub mod table;
pub mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use datafusion::catalog::TableProvider;
use datafusion::prelude::SessionContext;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tidewatch_common::Labels;
use tidewatch_promql::{Engine, EngineOptions, Storage};
use tokio_util::sync::CancellationToken;

pub use batch::IngestSeries;
pub use config::Config;
pub use store::{IngestError, IngestOutcome, MetricMeta, Store};

/// A running aggregator.
pub struct Aggregator {
    config: Arc<Config>,
    data_dir: PathBuf,
    store: Arc<Store>,
    storage: Arc<dyn Storage>,
    engine: Engine,
    sql: SessionContext,
    metrics: api::IngestMetrics,
    // distributed-mode hook: Kafka ingest, block upload, query fan-out.
    distributed: Option<Arc<distributed::Distributed>>,
    background: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Log lines and cluster events (issue 5).
    pub logs: Arc<logs::LogStore>,
}

impl Aggregator {
    /// Opens (or creates) the store under `data_dir`, replays the WAL and
    /// starts background work (flush, compaction, retention), which stops
    /// when `shutdown` is cancelled.
    pub async fn open(
        config: Config,
        data_dir: &Path,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Aggregator>> {
        std::fs::create_dir_all(data_dir)?;
        let dir = data_dir.to_path_buf();
        let cfg = config.clone();
        let store = Arc::new(tokio::task::spawn_blocking(move || Store::open(cfg, &dir)).await??);
        let sql = table::sql_context(store.clone()).await?;
        // logs (issue 5): the log store lives under `data_dir/logs`; its
        // `logs` and `events` tables join the SQL context.
        let logs = logs::LogStore::open(
            config.logs.clone(),
            &data_dir.join("logs"),
            registry,
            shutdown.clone(),
        )
        .await?;
        sql.register_table("logs", logs.table_provider())?;
        sql.register_table("events", logs.events_table_provider())?;
        let storage: Arc<dyn Storage> = Arc::new(storage::StoreStorage::new(
            store.clone(),
            sql.clone(),
            config.query.max_samples,
        ));
        // distributed-mode hook: may replace `storage` with the fan-out.
        let (storage, distributed) = distributed::start(
            &config,
            data_dir,
            store.clone(),
            storage,
            registry,
            shutdown.clone(),
        )
        .await?;
        let engine = Engine::new(EngineOptions {
            lookback_delta: config.query.lookback_delta,
            max_samples: config.query.max_samples,
            timeout: config.query.timeout,
            ..EngineOptions::default()
        });
        let metrics = api::IngestMetrics::default();
        registry.register(
            "samples_ingested",
            "Samples durably stored",
            metrics.samples_ingested.clone(),
        );
        registry.register(
            "samples_rejected",
            "Samples dropped as older than the out-of-order window",
            metrics.samples_rejected.clone(),
        );
        registry.register(
            "write_requests_rejected",
            "Ingest requests refused with an error",
            metrics.requests_rejected.clone(),
        );
        let series_gauge = Gauge::<i64>::default();
        let blocks_gauge = Gauge::<i64>::default();
        registry.register("series", "Series in the index", series_gauge.clone());
        registry.register("blocks", "Parquet blocks on disk", blocks_gauge.clone());

        let bg_store = store.clone();
        let background = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                series_gauge.set(bg_store.state.index.read().len() as i64);
                blocks_gauge.set(bg_store.blocks().len() as i64);
                if bg_store.flush_due()
                    && let Err(e) = bg_store.flush().await
                {
                    tracing::error!("aggregator flush failed: {e:#}");
                }
            }
        });
        Ok(Arc::new(Aggregator {
            config: Arc::new(config),
            data_dir: data_dir.to_path_buf(),
            store,
            storage,
            engine,
            sql,
            metrics,
            distributed,
            background: parking_lot::Mutex::new(Some(background)),
            logs, // logs (issue 5)
        }))
    }

    /// HTTP routes: `/api/v1/*` (Prometheus API, remote-write, import, SQL).
    pub fn router(self: &Arc<Self>) -> Router {
        let routes = api::router(api::AppState {
            store: self.store.clone(),
            engine: self.engine.clone(),
            storage: self.storage.clone(),
            sql: self.sql.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
        });
        // distributed-mode hook: the ingester publishes writes to Kafka.
        let routes = match &self.distributed {
            Some(d) => d.wrap_router(routes),
            None => routes,
        };
        routes.merge(self.logs.router())
    }

    /// Flushes everything acknowledged to durable storage; called on shutdown.
    pub async fn close(&self) -> anyhow::Result<()> {
        let bg = self.background.lock().take();
        if let Some(bg) = bg {
            bg.abort();
            let _ = bg.await;
        }
        self.logs.close().await?;
        // distributed-mode hook: stop consuming, flush, upload the last blocks.
        if let Some(d) = &self.distributed {
            d.stop().await;
        }
        self.store.close().await?;
        if let Some(d) = &self.distributed {
            d.close().await;
        }
        Ok(())
    }

    /// Ingests samples (same validation and limits as remote-write); returns
    /// once they are durable in the WAL and visible to queries.
    pub async fn append(&self, series: Vec<IngestSeries>) -> Result<IngestOutcome, IngestError> {
        let out = self.store.append(series).await?;
        self.metrics.samples_ingested.inc_by(out.accepted as u64);
        Ok(out)
    }

    /// Convenience for [`Aggregator::append`] of one sample.
    pub async fn append_sample(
        &self,
        labels: Labels,
        timestamp_ms: i64,
        value: f64,
    ) -> Result<IngestOutcome, IngestError> {
        self.append(vec![IngestSeries::new(
            labels,
            vec![timestamp_ms],
            vec![value],
        )])
        .await
    }

    /// The store as PromQL storage (head and blocks).
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// The PromQL engine configured with the query limits.
    pub fn engine(&self) -> Engine {
        self.engine.clone()
    }

    /// The SQL context (`metrics`, `samples`, `series` and registered tables).
    pub fn sql_context(&self) -> SessionContext {
        self.sql.clone()
    }

    /// Adds a table to the SQL context (`POST /api/v1/sql` sees it).
    pub fn register_table(&self, name: &str, table: Arc<dyn TableProvider>) -> anyhow::Result<()> {
        self.sql.register_table(name, table)?;
        Ok(())
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Flushes the head into blocks now (tests, benchmarks).
    pub async fn flush(&self) -> anyhow::Result<()> {
        self.store.flush().await
    }
}
