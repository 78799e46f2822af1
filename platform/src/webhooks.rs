//! Kubernetes webhooks.

use std::sync::Arc;

use axum::Router;

use crate::Platform;

/// Routes.
pub fn router() -> Router<Arc<Platform>> {
    Router::new()
}
