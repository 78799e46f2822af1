//! `POST /api/v1/sql`: DataFusion SQL, JSON rows out.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use datafusion::arrow::json::ArrayWriter;
use serde_json::{Value as Json, json};

use super::AppState;
use super::response::{bad_data, error, success};

/// Body `{"query": "..."}` (JSON) or the SQL text itself. Answers
/// `{"status":"success","data":{"columns":[{"name","type"}],"rows":[{…}]}}`.
pub async fn sql(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let query = if is_json {
        match serde_json::from_slice::<Json>(&body) {
            Ok(v) => match v.get("query").and_then(|q| q.as_str()) {
                Some(q) => q.to_string(),
                None => return bad_data("body: missing string field \"query\""),
            },
            Err(e) => return bad_data(format!("body: invalid JSON: {e}")),
        }
    } else {
        match std::str::from_utf8(&body) {
            Ok(s) => s.to_string(),
            Err(_) => return bad_data("body: not valid UTF-8"),
        }
    };
    if query.trim().is_empty() {
        return bad_data("query: empty SQL statement");
    }
    let ctx = app.sql.clone();
    let df = match ctx.sql(&query).await {
        Ok(df) => df,
        Err(e) => return bad_data(format!("query: {e}")),
    };
    let schema = df.schema().as_arrow().clone();
    let run = tokio::time::timeout(app.config.query.timeout, df.collect()).await;
    let batches = match run {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return error(StatusCode::UNPROCESSABLE_ENTITY, "execution", e.to_string()),
        Err(_) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "query timed out in SQL execution",
            );
        }
    };
    let mut w = ArrayWriter::new(Vec::new());
    let refs: Vec<_> = batches.iter().collect();
    if let Err(e) = w.write_batches(&refs).and_then(|()| w.finish()) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "execution", e.to_string());
    }
    let buf = w.into_inner();
    let rows: Json = if buf.is_empty() {
        json!([])
    } else {
        serde_json::from_slice(&buf).unwrap_or_else(|_| json!([]))
    };
    let columns: Vec<Json> = schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    success(json!({"columns": columns, "rows": rows}), &[], &[])
}
