//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::Value as Json;
use tidewatch_promql::QueryError;

use super::AppState;
use super::params::{Params, now_ms, parse_duration_ms, parse_time, time_or};
use super::response::{bad_data, query_error, success, value_json};

/// Most points per series a range query may return (Prometheus: 11,000).
const MAX_POINTS: i64 = 11_000;

fn timeout(app: &AppState, p: &Params) -> Result<Duration, String> {
    let max = app.config.query.timeout;
    match p.get("timeout") {
        Some(s) if !s.is_empty() => {
            let ms = parse_duration_ms("timeout", s)?;
            Ok(Duration::from_millis(ms.max(0) as u64).min(max))
        }
        _ => Ok(max),
    }
}

async fn run<F>(limit: Duration, fut: F) -> Response
where
    F: std::future::Future<Output = Result<tidewatch_promql::QueryResult, QueryError>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(r)) => success(value_json(&r.value), &r.warnings, &r.infos),
        Ok(Err(e)) => query_error(&e),
        Err(_) => query_error(&QueryError::Timeout("expression evaluation".into())),
    }
}

/// `GET|POST /api/v1/query`.
pub async fn instant(
    State(app): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = match Params::from_request(&method, &headers, q.as_deref(), &body) {
        Ok(p) => p,
        Err(e) => return bad_data(e),
    };
    let t = match time_or(&p, "time", now_ms()) {
        Ok(t) => t,
        Err(e) => return bad_data(e),
    };
    let limit = match timeout(&app, &p) {
        Ok(l) => l,
        Err(e) => return bad_data(e),
    };
    let query = p.get("query").unwrap_or("").to_string();
    run(
        limit,
        app.engine.instant_query(app.storage.as_ref(), &query, t),
    )
    .await
}

/// `GET|POST /api/v1/query_range`.
pub async fn range(
    State(app): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = match Params::from_request(&method, &headers, q.as_deref(), &body) {
        Ok(p) => p,
        Err(e) => return bad_data(e),
    };
    let parsed = (|| {
        let start = parse_time("start", p.get("start").unwrap_or(""))?;
        let end = parse_time("end", p.get("end").unwrap_or(""))?;
        if end < start {
            return Err("end timestamp must not be before start time".to_string());
        }
        let step = parse_duration_ms("step", p.get("step").unwrap_or(""))?;
        if step <= 0 {
            return Err(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .to_string(),
            );
        }
        if (end - start) / step > MAX_POINTS {
            return Err(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                    .to_string(),
            );
        }
        Ok((start, end, step, timeout(&app, &p)?))
    })();
    let (start, end, step, limit) = match parsed {
        Ok(v) => v,
        Err(e) => return bad_data(e),
    };
    let query = p.get("query").unwrap_or("").to_string();
    run(
        limit,
        app.engine
            .range_query(app.storage.as_ref(), &query, start, end, step),
    )
    .await
}

/// `GET|POST /api/v1/format_query`.
pub async fn format_query(
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = match Params::from_request(&method, &headers, q.as_deref(), &body) {
        Ok(p) => p,
        Err(e) => return bad_data(e),
    };
    match promql_parser::parser::parse(p.get("query").unwrap_or("")) {
        Ok(expr) => success(Json::String(expr.prettify()), &[], &[]),
        Err(e) => bad_data(e),
    }
}
