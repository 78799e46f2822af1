//! Prometheus API envelopes and value encoding.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};
use tidewatch_common::Labels;
use tidewatch_promql::{QueryError, Value};

/// `{"status":"success","data":…}` with optional warnings and infos.
pub fn success(data: Json, warnings: &[String], infos: &[String]) -> Response {
    let mut body = json!({"status": "success", "data": data});
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    if !infos.is_empty() {
        body["infos"] = json!(infos);
    }
    json_response(StatusCode::OK, &body)
}

/// A Prometheus API error: `{"status":"error","errorType":…,"error":…}`.
pub fn error(status: StatusCode, error_type: &str, message: impl Into<String>) -> Response {
    json_response(
        status,
        &json!({"status": "error", "errorType": error_type, "error": message.into()}),
    )
}

/// `bad_data` (400).
pub fn bad_data(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_data", message)
}

/// Maps an engine error to its Prometheus status and type.
pub fn query_error(e: &QueryError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
    error(status, e.error_type(), e.to_string())
}

fn json_response(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A timestamp in seconds as Prometheus prints it (`1435781451.781`).
pub fn ts_json(ms: i64) -> Json {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// A sample value as Prometheus prints it (`"1.5"`, `"NaN"`, `"+Inf"`).
pub fn value_string(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Labels as a JSON object.
pub fn labels_object(labels: &Labels) -> Json {
    let m: Map<String, Json> = labels
        .iter()
        .map(|l| (l.name.clone(), Json::String(l.value.clone())))
        .collect();
    Json::Object(m)
}

/// The `data` of a query result.
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Scalar { timestamp, value } => json!({
            "resultType": "scalar",
            "result": [ts_json(*timestamp), value_string(*value)],
        }),
        Value::String { timestamp, value } => json!({
            "resultType": "string",
            "result": [ts_json(*timestamp), value],
        }),
        Value::Vector(samples) => json!({
            "resultType": "vector",
            "result": samples.iter().map(|s| json!({
                "metric": labels_object(&s.labels),
                "value": [ts_json(s.timestamp), value_string(s.value)],
            })).collect::<Vec<_>>(),
        }),
        Value::Matrix(series) => json!({
            "resultType": "matrix",
            "result": series.iter().map(|s| json!({
                "metric": labels_object(&s.labels),
                "values": s.timestamps.iter().zip(&s.values)
                    .map(|(t, v)| json!([ts_json(*t), value_string(*v)]))
                    .collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_number_formats() {
        assert_eq!(ts_json(1_435_781_451_781).to_string(), "1435781451.781");
        assert_eq!(ts_json(1_000).to_string(), "1");
        assert_eq!(value_string(1.5), "1.5");
        assert_eq!(value_string(1e21), "1000000000000000000000");
        assert_eq!(value_string(f64::NEG_INFINITY), "-Inf");
        assert_eq!(value_string(f64::NAN), "NaN");
    }
}
