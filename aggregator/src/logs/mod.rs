//! The log store of the aggregator: Loki push and Elasticsearch bulk
//! ingest, a WAL, time-partitioned Parquet files with labels as columns,
//! retention, the Loki query API with a LogQL subset, and cluster events.
//! `logs` and `events` are also DataFusion tables ([`LogStore::table_provider`],
//! [`LogStore::events_table_provider`]).

pub mod api;
pub mod config;
pub mod dedupe;
pub mod events;
pub mod ingest;
pub mod logql;
pub mod model;
pub mod parquet;
pub mod store;
pub mod table;
pub mod wal;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use datafusion::catalog::TableProvider;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

pub use config::LogsConfig;
use events::EventStore;
use store::Store;

/// The running log store.
pub struct LogStore {
    /// Lines.
    pub store: Arc<Store>,
    /// Cluster events.
    pub events: Arc<EventStore>,
    background: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl LogStore {
    /// Opens the store under `dir` (WAL replay included) and starts the
    /// flush and retention loop, which stops when `shutdown` is cancelled.
    pub async fn open(
        config: LogsConfig,
        dir: &Path,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<LogStore>> {
        let d = dir.to_path_buf();
        let cfg = config.clone();
        let store = Arc::new(tokio::task::spawn_blocking(move || Store::open(&d, cfg)).await??);
        let events = Arc::new(EventStore::open(&dir.join("events"))?);
        let m = &store.metrics;
        registry.register("log_lines_ingested", "Log lines stored", m.lines.clone());
        registry.register(
            "log_bytes_ingested",
            "Bytes of log lines stored",
            m.bytes.clone(),
        );
        registry.register(
            "log_lines_deduplicated",
            "Log lines dropped as exact re-deliveries",
            m.duplicates.clone(),
        );
        registry.register(
            "log_head_flushes",
            "Log head flushes to Parquet",
            m.flushes.clone(),
        );
        let task = tokio::spawn(background(store.clone(), events.clone(), config, shutdown));
        Ok(Arc::new(LogStore {
            store,
            events,
            background: parking_lot::Mutex::new(Some(task)),
        }))
    }

    /// HTTP routes (`/loki/api/v1/*`, `/api/v1/logs/_bulk`, `/api/v1/events`).
    pub fn router(self: &Arc<Self>) -> Router {
        api::router(self.clone())
    }

    /// The `logs` table for DataFusion.
    pub fn table_provider(&self) -> Arc<dyn TableProvider> {
        Arc::new(table::LogsTable::new(self.store.clone()))
    }

    /// The `events` table for DataFusion.
    pub fn events_table_provider(&self) -> Arc<dyn TableProvider> {
        Arc::new(table::EventsTable::new(self.events.clone()))
    }

    /// Stops the background loop and flushes the head to Parquet.
    pub async fn close(&self) -> anyhow::Result<()> {
        let task = self.background.lock().take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush()).await??;
        Ok(())
    }
}

async fn background(
    store: Arc<Store>,
    events: Arc<EventStore>,
    config: LogsConfig,
    shutdown: CancellationToken,
) {
    let tick = config.flush_interval.min(Duration::from_secs(1));
    let mut last_flush = Instant::now();
    let mut last_retention = Instant::now() - Duration::from_secs(3600);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        if last_flush.elapsed() >= config.flush_interval || store.head_full() {
            last_flush = Instant::now();
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.flush()).await {
                Ok(Err(e)) => tracing::error!(error = %e, "log head flush failed"),
                Err(e) => tracing::error!(error = %e, "log head flush panicked"),
                Ok(Ok(())) => {}
            }
        }
        if last_retention.elapsed() >= Duration::from_secs(60) {
            last_retention = Instant::now();
            let now = chrono::Utc::now();
            let s = store.clone();
            let ev = events.clone();
            let retention = config.retention;
            let res = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                s.apply_retention(now.timestamp_nanos_opt().unwrap_or(i64::MAX))?;
                ev.apply_retention(now - chrono::Duration::from_std(retention)?)?;
                Ok(())
            })
            .await;
            if let Ok(Err(e)) = res {
                tracing::error!(error = %e, "log retention failed");
            }
        }
    }
}
