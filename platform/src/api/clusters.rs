//! Clusters.

use std::sync::Arc;

use axum::Router;
use utoipa::OpenApi;

use crate::Platform;

/// Cluster paths.
#[derive(OpenApi)]
#[openapi(paths())]
pub struct ClusterDoc;

/// Routes.
pub fn routes() -> Router<Arc<Platform>> {
    Router::new()
}
