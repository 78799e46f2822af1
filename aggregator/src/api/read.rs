//! `POST /api/v1/read`: Prometheus remote-read (snappy-compressed protobuf
//! `ReadRequest`, answered with a `SAMPLES` `ReadResponse`). Serves whatever
//! the process's storage holds (a consumer replica's head and blocks, or a
//! query replica's fan-out), so Prometheus and Tidewatch query replicas can
//! read it.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tidewatch_common::remote_write::{QueryResult, ReadRequest, ReadResponse};
use tidewatch_promql::storage::SelectRequest;

use super::AppState;
use crate::distributed::remote_read::{decode, encode, from_wire, series_to_wire};

fn plain(status: StatusCode, msg: String) -> Response {
    (status, msg + "\n").into_response()
}

/// `POST /api/v1/read`.
pub async fn remote_read(State(app): State<AppState>, body: Body) -> Response {
    let limits = &app.store.config().limits;
    let Ok(body) = axum::body::to_bytes(body, limits.max_body_bytes).await else {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is over the limit aggregator.limits.max_body_bytes={}",
                limits.max_body_bytes
            ),
        );
    };
    let req: ReadRequest = match decode(&body, limits.max_decompressed_bytes) {
        Ok(r) => r,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("malformed ReadRequest: {e}"),
            );
        }
    };
    let mut results = Vec::with_capacity(req.queries.len());
    for (i, q) in req.queries.into_iter().enumerate() {
        let matchers = match q
            .matchers
            .iter()
            .map(from_wire)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(m) => m,
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("queries[{i}]: {e}")),
        };
        if matchers.is_empty() {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("queries[{i}]: at least one matcher is required"),
            );
        }
        let series = match app
            .storage
            .select(SelectRequest {
                matchers,
                start_ms: q.start_timestamp_ms,
                end_ms: q.end_timestamp_ms,
            })
            .await
        {
            Ok(s) => s,
            Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        results.push(QueryResult {
            timeseries: series.into_iter().map(series_to_wire).collect(),
        });
    }
    (
        [
            (header::CONTENT_TYPE, "application/x-protobuf"),
            (header::CONTENT_ENCODING, "snappy"),
        ],
        encode(&ReadResponse { results }),
    )
        .into_response()
}
