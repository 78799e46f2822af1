//! `POST /api/v1/write` (remote-write 1.0) and
//! `POST /api/v1/import/prometheus` (text exposition).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tidewatch_common::exposition::{self, Format};

use super::AppState;
use crate::batch::IngestSeries;
use crate::ingest;
use crate::store::{IngestError, IngestOutcome, MetricMeta};

fn plain(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m.push('\n');
    (status, m).into_response()
}

fn ingest_error(e: IngestError) -> Response {
    let status = match &e {
        IngestError::BadData(_) => StatusCode::BAD_REQUEST,
        IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        IngestError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
        IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    plain(status, e.to_string())
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is over the limit aggregator.limits.max_body_bytes={limit}"),
        )
    })
}

async fn store(
    app: &AppState,
    batch: Vec<IngestSeries>,
    meta: Vec<(String, MetricMeta)>,
) -> Response {
    outcome(app, app.store.append(batch).await, meta)
}

fn outcome(
    app: &AppState,
    res: Result<IngestOutcome, IngestError>,
    meta: Vec<(String, MetricMeta)>,
) -> Response {
    match res {
        Ok(outcome) => {
            app.store.record_metadata(meta);
            app.metrics.samples_ingested.inc_by(outcome.accepted as u64);
            if outcome.too_old > 0 {
                app.metrics.samples_rejected.inc_by(outcome.too_old as u64);
                plain(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{} samples are older than the out-of-order window (aggregator.out_of_order_window) and were dropped; {} samples stored",
                        outcome.too_old, outcome.accepted
                    ),
                )
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
        Err(e) => {
            app.metrics.requests_rejected.inc();
            ingest_error(e)
        }
    }
}

/// Snappy-decompresses a body within `aggregator.limits.max_decompressed_bytes`.
fn decompress(app: &AppState, body: &[u8]) -> Result<Vec<u8>, Box<Response>> {
    let limit = app.store.config().limits.max_decompressed_bytes;
    let raw = match snap::raw::decompress_len(body) {
        Ok(n) if n > limit => {
            app.metrics.requests_rejected.inc();
            return Err(Box::new(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "decompressed body is {n} bytes, over the limit aggregator.limits.max_decompressed_bytes={limit}"
                ),
            )));
        }
        Ok(_) => snap::raw::Decoder::new().decompress_vec(body),
        Err(e) => Err(e),
    };
    raw.map_err(|e| {
        app.metrics.requests_rejected.inc();
        Box::new(plain(
            StatusCode::BAD_REQUEST,
            format!("malformed remote-write body: snappy decompression failed: {e}"),
        ))
    })
}

/// `POST /api/v1/write`.
pub async fn remote_write(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media != "application/x-protobuf" {
        app.metrics.requests_rejected.inc();
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported Content-Type {ct:?}: expected application/x-protobuf (remote-write 1.0)"
            ),
        );
    }
    let proto = ct
        .split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("proto="))
        .map(|p| p.trim_matches('"'))
        .unwrap_or("prometheus.WriteRequest");
    let v2 = match proto {
        "prometheus.WriteRequest" => false,
        crate::rw2::PROTO => true,
        other => {
            app.metrics.requests_rejected.inc();
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported remote-write message {other:?}: expected prometheus.WriteRequest (1.0) or {} (2.0)",
                    crate::rw2::PROTO
                ),
            );
        }
    };
    if let Some(enc) = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        && !enc.eq_ignore_ascii_case("snappy")
    {
        app.metrics.requests_rejected.inc();
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {enc:?}: expected snappy"),
        );
    }
    let body = match read_body(body, app.store.config().limits.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if v2 {
        return remote_write_v2(&app, &body).await;
    }
    let raw = match decompress(&app, &body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let decoded = ingest::decode_remote_write(&raw, |ids| {
        let index = app.store.state.index.read();
        ids.map(|id| index.contains(id)).collect()
    });
    match decoded {
        Ok((batch, meta)) => outcome(&app, app.store.append_batch(batch).await, meta),
        Err(e) => {
            app.metrics.requests_rejected.inc();
            ingest_error(e)
        }
    }
}

/// Remote-write 2.0: answers 204 with the `X-Prometheus-Remote-Write-*-Written`
/// headers.
async fn remote_write_v2(app: &AppState, body: &[u8]) -> Response {
    let raw = match decompress(app, body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let (batch, meta) = match crate::rw2::convert(&raw) {
        Ok(c) => c,
        Err(e) => {
            app.metrics.requests_rejected.inc();
            return ingest_error(e);
        }
    };
    let samples: usize = batch.iter().map(|s| s.timestamps.len()).sum();
    let mut resp = store(app, batch, meta).await;
    if resp.status() == StatusCode::NO_CONTENT {
        let h = resp.headers_mut();
        h.insert("X-Prometheus-Remote-Write-Samples-Written", samples.into());
        h.insert("X-Prometheus-Remote-Write-Histograms-Written", 0.into());
        h.insert("X-Prometheus-Remote-Write-Exemplars-Written", 0.into());
    }
    resp
}

/// `POST /api/v1/import/prometheus`.
pub async fn import_prometheus(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/plain");
    let media = ct.split(';').next().unwrap_or("").trim();
    if !matches!(
        media,
        "" | "text/plain" | "application/openmetrics-text" | "application/octet-stream"
    ) {
        app.metrics.requests_rejected.inc();
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported Content-Type {ct:?}: expected text/plain or application/openmetrics-text"
            ),
        );
    }
    let body = match read_body(body, app.store.config().limits.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        app.metrics.requests_rejected.inc();
        return plain(StatusCode::BAD_REQUEST, "body is not valid UTF-8");
    };
    let exp = match exposition::parse(text, Format::from_content_type(ct)) {
        Ok(e) => e,
        Err(e) => {
            app.metrics.requests_rejected.inc();
            return plain(
                StatusCode::BAD_REQUEST,
                format!("invalid exposition text: {e}"),
            );
        }
    };
    let (batch, meta) = ingest::from_exposition(exp, super::params::now_ms());
    store(&app, batch, meta).await
}
