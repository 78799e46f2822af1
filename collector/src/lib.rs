//! The collector: runs on every node, collects metrics at five levels and
//! tails logs, and ships both through durable buffers.

pub mod buffer;
pub mod config;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Where the collector ships by default when run inside `tidewatch up`.
#[derive(Clone, Debug)]
pub struct Defaults {
    /// Base URL of the aggregator (`http://127.0.0.1:9800`).
    pub aggregator_url: String,
}

/// A running collector.
pub struct Collector {
    config: Config,
}

impl Collector {
    /// Starts collection and shipping; stops when `shutdown` is cancelled.
    pub async fn start(
        config: Config,
        defaults: Defaults,
        data_dir: &Path,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Collector>> {
        let _ = (defaults, registry, shutdown);
        std::fs::create_dir_all(data_dir)?;
        Ok(Arc::new(Collector { config }))
    }

    /// HTTP routes of the collector (none besides the shared ops routes yet).
    pub fn router(self: &Arc<Self>) -> Router {
        let _ = &self.config;
        Router::new()
    }

    /// Flushes buffers and checkpoints; called on shutdown.
    pub async fn close(&self) -> anyhow::Result<()> {
        Ok(())
    }
}
