//! HTTP APIs: Alertmanager API v2 (`/api/v2/*`) and the platform REST
//! objects of alerting (`/api/platform/v1/*`).

pub mod platform;
pub mod v2;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// The error shape of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Alertmanager API v2: a JSON string.
    Alertmanager,
    /// Platform API: `{"error": "...", "field": "..."}`.
    Platform,
}

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
    /// Response shape.
    pub style: Style,
}

impl ApiError {
    /// 400 naming a field.
    pub fn bad(style: Style, field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let field = field.into();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: (!field.is_empty()).then_some(field),
            style,
        }
    }

    /// 404.
    pub fn not_found(style: Style, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            field: None,
            style,
        }
    }

    /// 409.
    pub fn conflict(style: Style, field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            message: message.into(),
            field: Some(field.to_string()),
            style,
        }
    }

    /// 500 (storage failures).
    pub fn internal(style: Style, message: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.to_string(),
            field: None,
            style,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.style {
            Style::Alertmanager => serde_json::Value::String(self.message),
            Style::Platform => match self.field {
                Some(f) => serde_json::json!({"error": self.message, "field": f}),
                None => serde_json::json!({"error": self.message}),
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// Parses a JSON body, naming the failing field in the error.
pub fn parse_json<T: DeserializeOwned>(style: Style, body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::bad(
            style,
            if path == "." { String::new() } else { path },
            format!("invalid JSON body: {inner}"),
        )
    })
}

/// Repeated query parameters (`filter=a&filter=b`).
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = raw else { return Vec::new() };
    reqwest::Url::parse(&format!("http://x/?{q}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}
