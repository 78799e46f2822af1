//! HTTP routes: Loki push and query API, Elasticsearch-style bulk ingest,
//! and event ingest.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::LogStore;
use super::events::EventBatch;
use super::ingest;
use super::logql::{self, Direction, Expr, Limits, Params, QueryResult};
use super::model::Stream;

type Shared = Arc<LogStore>;

/// All routes of the log store.
pub fn router(s: Shared) -> Router {
    let limit = DefaultBodyLimit::max(s.store.config().max_push_bytes);
    Router::new()
        .route("/loki/api/v1/push", post(push))
        .route("/api/v1/logs/_bulk", post(bulk))
        .route("/api/v1/events", post(events).delete(delete_events))
        .layer(limit)
        .route(
            "/loki/api/v1/query_range",
            get(query_range_get).post(query_range_post),
        )
        .route("/loki/api/v1/query", get(query_get).post(query_post))
        .route("/loki/api/v1/labels", get(labels))
        .route("/loki/api/v1/label/{name}/values", get(label_values))
        .route("/loki/api/v1/tail", get(tail))
        .with_state(s)
}

fn bad(msg: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_data", msg)
}

fn error(code: StatusCode, kind: &str, msg: impl Into<String>) -> Response {
    (
        code,
        axum::Json(json!({"status": "error", "errorType": kind, "error": msg.into()})),
    )
        .into_response()
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

async fn push(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let max = s.store.config().max_push_bytes;
    let batch = if json {
        ingest::from_json(&body)
    } else {
        ingest::from_protobuf(&body, max)
    };
    let batch = match batch {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.append(batch)).await {
        Ok(Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(super::store::AppendError::Invalid(m))) => bad(m),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn bulk(State(s): State<Shared>, body: Bytes) -> Response {
    let started = std::time::Instant::now();
    let (batch, items) =
        match ingest::from_bulk(&body, &s.store.config().bulk_label_fields, now_ns()) {
            Ok(x) => x,
            Err(e) => return bad(e),
        };
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.append(batch)).await {
        Ok(Ok(_)) => {}
        Ok(Err(super::store::AppendError::Invalid(m))) => return bad(m),
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
    let errors = items.iter().any(|i| i.status >= 300);
    let items: Vec<Value> = items
        .into_iter()
        .map(|i| {
            let mut body = json!({"_index": i.index, "_id": i.id, "status": i.status});
            match i.error {
                Some(reason) => {
                    body["error"] = json!({"type": "mapper_parsing_exception", "reason": reason})
                }
                None => body["result"] = json!("created"),
            }
            json!({ i.action: body })
        })
        .collect();
    axum::Json(json!({
        "took": started.elapsed().as_millis() as u64,
        "errors": errors,
        "items": items,
    }))
    .into_response()
}

async fn events(State(s): State<Shared>, body: Bytes) -> Response {
    let batch: EventBatch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad(format!("invalid events body: {e}")),
    };
    let store = s.events.clone();
    match tokio::task::spawn_blocking(move || store.append(batch.events)).await {
        Ok(Ok(n)) => {
            axum::Json(json!({"status": "success", "data": {"stored": n}})).into_response()
        }
        Ok(Err(m)) => bad(m),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// `DELETE /api/v1/events?cluster_id=C&before=T`: drops cluster `C`'s
/// events last seen before `T` (RFC 3339 or a Loki timestamp); the
/// platform's per-cluster event retention.
async fn delete_events(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(cluster) = q.get("cluster_id").filter(|c| !c.is_empty()).cloned() else {
        return bad("cluster_id: required");
    };
    let before = match q.get("before").map(|v| parse_time(v)) {
        Some(Ok(ns)) => chrono::DateTime::from_timestamp_nanos(ns),
        Some(Err(e)) => return bad(format!("before: {e}")),
        None => return bad("before: required"),
    };
    let store = s.events.clone();
    match tokio::task::spawn_blocking(move || store.delete_cluster_before(&cluster, before)).await {
        Ok(Ok(n)) => {
            axum::Json(json!({"status": "success", "data": {"deleted": n}})).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// Parses a Loki timestamp: float seconds, integer seconds (≤ 10 digits),
/// integer nanoseconds, or RFC 3339.
pub fn parse_time(v: &str) -> Result<i64, String> {
    if v.contains('.')
        && let Ok(f) = v.parse::<f64>()
    {
        return Ok((f * 1e9) as i64);
    }
    match v.parse::<i64>() {
        Ok(n) if v.trim_start_matches('-').len() <= 10 => Ok(n.saturating_mul(1_000_000_000)),
        Ok(n) => Ok(n),
        Err(_) => chrono::DateTime::parse_from_rfc3339(v)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .ok_or_else(|| format!("cannot parse {v:?} as a timestamp")),
    }
}

fn parse_step(v: &str) -> Result<i64, String> {
    if let Ok(f) = v.parse::<f64>() {
        return Ok((f * 1e9) as i64);
    }
    tidewatch_common::duration::parse_duration(v)
        .map(|d| d.as_nanos() as i64)
        .map_err(|e| format!("step: {e}"))
}

struct Request {
    expr: Expr,
    params: Params,
}

fn parse_request(
    s: &LogStore,
    q: &HashMap<String, String>,
    range: bool,
) -> Result<Request, String> {
    let query = q.get("query").ok_or("query: missing parameter")?;
    let expr = logql::parse(query).map_err(|e| format!("parse error: {e}"))?;
    let cfg = s.store.config();
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| format!("limit: invalid value {l:?}"))?,
        None => 100,
    };
    if limit > cfg.max_entries_per_query {
        return Err(format!(
            "limit: {limit} is over max_entries_per_query {}",
            cfg.max_entries_per_query
        ));
    }
    let direction = match q.get("direction").map(String::as_str) {
        None | Some("backward") | Some("BACKWARD") => Direction::Backward,
        Some("forward") | Some("FORWARD") => Direction::Forward,
        Some(d) => return Err(format!("direction: invalid value {d:?}")),
    };
    let time = |k: &str| {
        q.get(k)
            .map(|v| parse_time(v).map_err(|e| format!("{k}: {e}")))
    };
    let params = if range {
        let end = time("end").transpose()?.unwrap_or_else(now_ns);
        let start = time("start")
            .transpose()?
            .unwrap_or(end - 3600 * 1_000_000_000);
        if end < start {
            return Err("end: must not be before start".into());
        }
        let step = match q.get("step") {
            Some(v) => parse_step(v)?,
            None => (((end - start) / 250 / 1_000_000_000).max(1)) * 1_000_000_000,
        };
        if step <= 0 {
            return Err("step: must be positive".into());
        }
        Params {
            start,
            end,
            step,
            limit,
            direction,
        }
    } else {
        let t = time("time").transpose()?.unwrap_or_else(now_ns);
        Params {
            start: t - 3600 * 1_000_000_000,
            end: t,
            step: 0,
            limit,
            direction,
        }
    };
    Ok(Request { expr, params })
}

fn ts_json(ns: i64) -> Value {
    if ns % 1_000_000_000 == 0 {
        json!(ns / 1_000_000_000)
    } else {
        json!(ns as f64 / 1e9)
    }
}

fn value_str(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        v.to_string()
    }
}

/// The Loki JSON body of a result.
pub fn result_json(r: &QueryResult, entries: usize) -> Value {
    let (kind, result): (&str, Vec<Value>) = match r {
        QueryResult::Streams(streams) => (
            "streams",
            streams
                .iter()
                .map(|s| {
                    json!({
                        "stream": s.labels,
                        "values": s.entries.iter().map(|(t, l)| json!([t.to_string(), l])).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ),
        QueryResult::Matrix(series) => (
            "matrix",
            series
                .iter()
                .map(|s| {
                    json!({
                        "metric": s.labels,
                        "values": s.points.iter().map(|(t, v)| json!([ts_json(*t), value_str(*v)])).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ),
        QueryResult::Vector(series) => (
            "vector",
            series
                .iter()
                .filter_map(|s| {
                    let (t, v) = s.points.last()?;
                    Some(json!({"metric": s.labels, "value": [ts_json(*t), value_str(*v)]}))
                })
                .collect(),
        ),
    };
    json!({
        "status": "success",
        "data": {
            "resultType": kind,
            "result": result,
            "stats": {"summary": {"totalEntriesReturned": entries}},
        }
    })
}

async fn run_query(s: Shared, q: HashMap<String, String>, range: bool) -> Response {
    let req = match parse_request(&s, &q, range) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let cfg = s.store.config();
    let limits = Limits {
        max_series: cfg.max_query_series,
        max_steps: cfg.max_query_steps,
    };
    let store = s.store.clone();
    let res =
        tokio::task::spawn_blocking(move || logql::evaluate(&store, &req.expr, req.params, limits))
            .await;
    match res {
        Ok(Ok(r)) => {
            let n = match &r {
                QueryResult::Streams(s) => s.iter().map(|s| s.entries.len()).sum(),
                _ => 0,
            };
            axum::Json(result_json(&r, n)).into_response()
        }
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, "execution", e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn query_range_get(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    run_query(s, q, true).await
}
async fn query_range_post(
    State(s): State<Shared>,
    Form(q): Form<HashMap<String, String>>,
) -> Response {
    run_query(s, q, true).await
}
async fn query_get(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    run_query(s, q, false).await
}
async fn query_post(State(s): State<Shared>, Form(q): Form<HashMap<String, String>>) -> Response {
    run_query(s, q, false).await
}

/// `start` and `end` of the label endpoints (Loki: `end` defaults to now,
/// `start` to six hours before `end`).
fn label_range(q: &HashMap<String, String>) -> Result<(i64, i64), String> {
    let t = |k: &str, d: i64| {
        q.get(k)
            .map(|v| parse_time(v))
            .transpose()
            .map(|o| o.unwrap_or(d))
            .map_err(|e| format!("{k}: {e}"))
    };
    let end = t("end", now_ns())?;
    let start = t("start", end.saturating_sub(6 * 3600 * 1_000_000_000))?;
    if end < start {
        return Err("end: must not be before start".into());
    }
    Ok((start, end))
}

/// The optional `query` of the label endpoints: only streams it selects
/// count (Loki's semantics; the platform scopes tenants through it).
fn label_query(q: &HashMap<String, String>) -> Result<Option<Expr>, String> {
    match q.get("query").filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => logql::parse(v).map(Some).map_err(|e| format!("query: {e}")),
    }
}

/// Runs `collect` over the streams with rows in the request's time range
/// (and selected by its `query`, if any) and answers the sorted, distinct
/// strings it gathers.
async fn label_listing(
    s: Shared,
    q: HashMap<String, String>,
    collect: impl Fn(&Stream, &mut BTreeSet<String>) + Send + 'static,
) -> Response {
    let (start, end) = match label_range(&q) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let query = match label_query(&q) {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    let store = s.store.clone();
    let res = tokio::task::spawn_blocking(move || {
        let mut out = BTreeSet::new();
        store
            .streams_in(start, end, &mut |st| {
                if query
                    .as_ref()
                    .is_none_or(|q| logql::stream_selected(q, &st.labels))
                {
                    collect(st, &mut out)
                }
            })
            .map(|_| out)
    })
    .await;
    match res {
        Ok(Ok(v)) => axum::Json(json!({"status": "success", "data": v})).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn labels(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    label_listing(s, q, |st, out| {
        for l in st.labels.iter() {
            if !out.contains(&l.name) {
                out.insert(l.name.clone());
            }
        }
    })
    .await
}

async fn label_values(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    label_listing(s, q, move |st, out| {
        if let Some(v) = st.labels.get(&name)
            && !out.contains(v)
        {
            out.insert(v.to_string());
        }
    })
    .await
}

async fn tail(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(query) = q.get("query") else {
        return bad("query: missing parameter");
    };
    let expr = match logql::parse(query) {
        Ok(Expr::Log(l)) => l,
        Ok(Expr::Metric(_)) => return bad("query: tail needs a log query, not a metric query"),
        Err(e) => return bad(format!("parse error: {e}")),
    };
    let limit = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100usize);
    let start = match q.get("start").map(|v| parse_time(v)).transpose() {
        Ok(v) => v.unwrap_or_else(|| now_ns() - 3600 * 1_000_000_000),
        Err(e) => return bad(format!("start: {e}")),
    };
    ws.on_upgrade(move |socket| tail_session(s, expr, start, limit, socket))
}

fn tail_message(streams: &[logql::eval::StreamResult], dropped: u64) -> String {
    let streams: Vec<Value> = streams
        .iter()
        .map(|s| {
            json!({
                "stream": s.labels,
                "values": s.entries.iter().map(|(t, l)| json!([t.to_string(), l])).collect::<Vec<_>>(),
            })
        })
        .collect();
    let dropped = if dropped > 0 {
        json!([{"labels": {}, "timestamp": now_ns().to_string(), "count": dropped}])
    } else {
        Value::Null
    };
    json!({"streams": streams, "dropped_entries": dropped}).to_string()
}

async fn tail_session(
    s: Shared,
    expr: logql::ast::LogExpr,
    start: i64,
    limit: usize,
    mut socket: WebSocket,
) {
    let mut rx = s.store.subscribe();
    // History first (oldest first, at most `limit` lines), then live rows.
    let store = s.store.clone();
    let hist_expr = Expr::Log(expr.clone());
    let until = now_ns();
    let history = tokio::task::spawn_blocking(move || {
        logql::evaluate(
            &store,
            &hist_expr,
            Params {
                start,
                end: until,
                step: 0,
                limit,
                direction: Direction::Forward,
            },
            Limits {
                max_series: usize::MAX,
                max_steps: 1,
            },
        )
    })
    .await;
    if let Ok(Ok(QueryResult::Streams(h))) = history
        && !h.is_empty()
        && socket
            .send(Message::Text(tail_message(&h, 0).into()))
            .await
            .is_err()
    {
        return;
    }
    let mut dropped = 0u64;
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
            rows = rx.recv() => match rows {
                Ok(rows) => {
                    let out = logql::filter_rows(&expr, &rows);
                    if out.is_empty() && dropped == 0 {
                        continue;
                    }
                    if socket.send(Message::Text(tail_message(&out, dropped).into())).await.is_err() {
                        return;
                    }
                    dropped = 0;
                }
                Err(RecvError::Lagged(n)) => dropped += n,
                Err(RecvError::Closed) => return,
            }
        }
    }
}
