//! The collector: runs on every node, collects metrics at five levels and
//! tails logs, and ships both through durable buffers.

/// The durable disk buffer, shared with the platform through `tidewatch-common`.
pub use tidewatch_common::buffer;
pub mod config;
pub mod logs;
pub mod metrics;

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
    /// The YAML file the config came from; watched (and re-read on SIGHUP)
    /// to reload the `collector:` section.
    pub config_file: Option<std::path::PathBuf>,
}

/// A running collector.
pub struct Collector {
    config: Config,
    metrics: metrics::MetricsRuntime,
    /// Log tailing and shipping; `None` without inputs/outputs.
    logs: Option<logs::LogShipper>,
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
        std::fs::create_dir_all(data_dir)?;
        // Checkpoints and output buffers of the log pipeline live under
        // `data_dir/logs`.
        let logs = logs::LogShipper::start(
            config.logs.clone(),
            &defaults.aggregator_url,
            &data_dir.join("logs"),
            registry,
            shutdown.clone(),
        )
        .await?;
        let metrics =
            metrics::MetricsRuntime::start(&config, &defaults, data_dir, registry, shutdown)
                .await?;
        Ok(Arc::new(Collector {
            config,
            metrics,
            logs,
        }))
    }

    /// HTTP routes of the collector (none besides the shared ops routes yet).
    pub fn router(self: &Arc<Self>) -> Router {
        let _ = &self.config;
        Router::new().merge(self.metrics.router())
    }

    /// Flushes buffers and checkpoints; called on shutdown.
    pub async fn close(&self) -> anyhow::Result<()> {
        if let Some(l) = &self.logs {
            l.close().await;
        }
        self.metrics.close().await;
        Ok(())
    }
}
