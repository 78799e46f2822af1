//! API errors: `{"error": "message", "field": "name"}` with a status code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error returned by a handler.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message.
    pub message: String,
    /// Offending field.
    pub field: Option<String>,
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: field.map(str::to_string),
        }
    }

    /// 400 naming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message, Some(field))
    }

    /// 400 without a field.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message, None)
    }

    /// 401.
    pub fn unauthenticated() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "authentication required", None)
    }

    /// 403 for `action` on `resource`.
    pub fn forbidden(action: &str, resource: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("not allowed to {action} on {resource}"),
            None,
        )
    }

    /// 404.
    pub fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{what} {id:?} not found"),
            None,
        )
    }

    /// 409 naming `field`.
    pub fn conflict(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message, Some(field))
    }

    /// 502: a cluster's API server failed.
    pub fn upstream(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, message, None)
    }

    /// 500; the cause is logged, not returned.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "platform internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return ApiError::conflict("name", "already exists");
        }
        ApiError::internal(e)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::internal(format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
                field: self.field,
            }),
        )
            .into_response()
    }
}

/// Requires a non-empty string field.
pub fn required<'a>(field: &str, value: &'a Option<String>) -> ApiResult<&'a str> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::invalid(field, format!("{field} is required"))),
    }
}

/// Checks a DNS-1123 label style name (`a-z0-9-`, 1–63 characters).
pub fn check_name(field: &str, value: &str) -> ApiResult<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "{field} must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'"
            ),
        ))
    }
}
