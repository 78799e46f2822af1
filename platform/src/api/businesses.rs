//! Businesses.

use std::sync::Arc;

use axum::Router;
use utoipa::OpenApi;

use crate::Platform;

/// Business paths.
#[derive(OpenApi)]
#[openapi(paths())]
pub struct BusinessDoc;

/// Routes.
pub fn routes() -> Router<Arc<Platform>> {
    Router::new()
}
