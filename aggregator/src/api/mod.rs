//! The aggregator's HTTP API: Prometheus query API, remote-write, text
//! import and SQL.

pub mod meta;
pub mod params;
pub mod query;
pub mod read;
pub mod response;
pub mod sql;
pub mod write;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use datafusion::prelude::SessionContext;
use prometheus_client::metrics::counter::Counter;
use tidewatch_promql::{Engine, Storage};

use crate::config::Config;
use crate::store::Store;

/// Self-metrics of the ingest path.
#[derive(Clone, Default)]
pub struct IngestMetrics {
    /// Samples durably stored.
    pub samples_ingested: Counter,
    /// Samples dropped (too old).
    pub samples_rejected: Counter,
    /// Requests refused with an error.
    pub requests_rejected: Counter,
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<Store>,
    /// The PromQL engine.
    pub engine: Engine,
    /// The engine's storage view.
    pub storage: Arc<dyn Storage>,
    /// The SQL context.
    pub sql: SessionContext,
    /// Settings.
    pub config: Arc<Config>,
    /// Self-metrics.
    pub metrics: IngestMetrics,
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/v1/write",
            post(write::remote_write).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/import/prometheus",
            post(write::import_prometheus).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/read",
            post(read::remote_read).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route("/api/v1/series", get(meta::series).post(meta::series))
        .route("/api/v1/labels", get(meta::labels).post(meta::labels))
        .route("/api/v1/label/{name}/values", get(meta::label_values))
        .route("/api/v1/metadata", get(meta::metadata))
        .route("/api/v1/status/buildinfo", get(meta::buildinfo))
        .route("/api/v1/sql", post(sql::sql))
        .with_state(state)
}
