//! Platform REST objects of alerting under `/api/platform/v1/`.

use std::sync::Arc;

use axum::Router;

use crate::AlertEngine;

/// The routes.
pub fn router() -> Router<Arc<AlertEngine>> {
    Router::new()
}
