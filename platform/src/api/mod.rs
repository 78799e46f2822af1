//! The REST API under `/api/platform/v1/`. Every handler authenticates the
//! caller ([`crate::auth::Caller`]) and checks one action on one resource
//! before touching the store; every change is written to the audit log in
//! the same transaction.

pub mod access;
pub mod audit;
pub mod businesses;
pub mod clusters;
pub mod identity;
pub mod session;
pub mod tokens;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::Platform;
use crate::error::ApiError;

/// API prefix.
pub const PREFIX: &str = "/api/platform/v1";

/// `{"items": [...]}`.
#[derive(Serialize, ToSchema)]
pub struct Items<T> {
    /// The objects.
    pub items: Vec<T>,
}

impl<T> Items<T> {
    /// Wraps a list.
    pub fn of(items: Vec<T>) -> Json<Items<T>> {
        Json(Items { items })
    }
}

/// A JSON body whose parse errors become `400 {"error", "field"}`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(json_error(e)),
        }
    }
}

fn json_error(e: JsonRejection) -> ApiError {
    let text = e.body_text();
    let mut err = ApiError::bad_request(format!("invalid JSON body: {text}"));
    err.field = field_of(&text);
    err
}

/// The field a serde error is about: axum reports data errors as
/// `…target type: <path>: <message>` (serde_path_to_error).
fn field_of(text: &str) -> Option<String> {
    let detail = text.split_once("target type: ").map(|(_, d)| d)?;
    let (path, message) = detail.split_once(": ").unwrap_or((".", detail));
    let is_path = !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.[]-/".contains(c));
    let path = if is_path && path != "." {
        Some(path)
    } else {
        None
    };
    let named = regex::Regex::new(r"(?:missing|unknown) field `([^`]+)`")
        .ok()
        .and_then(|re| re.captures(message).map(|c| c[1].to_string()));
    match (path, named) {
        // serde_path_to_error puts an unknown field in the path already.
        (Some(p), Some(n)) if p == n || p.ends_with(&format!(".{n}")) => Some(p.to_string()),
        (Some(p), Some(n)) => Some(format!("{p}.{n}")),
        (None, Some(n)) => Some(n),
        (Some(p), None) => Some(p.to_string()),
        (None, None) => None,
    }
}

/// All `/api/platform/v1` routes.
pub fn router() -> Router<Arc<Platform>> {
    let p = |s: &str| format!("{PREFIX}{s}");
    Router::new()
        .route(&p("/login"), post(session::login))
        .route(&p("/logout"), post(session::logout))
        .route(&p("/me"), get(session::me))
        .route(
            &p("/users"),
            get(identity::list_users).post(identity::create_user),
        )
        .route(
            &p("/users/{id}"),
            get(identity::get_user)
                .put(identity::update_user)
                .patch(identity::update_user)
                .delete(identity::delete_user),
        )
        .route(
            &p("/groups"),
            get(identity::list_groups).post(identity::create_group),
        )
        .route(
            &p("/groups/{id}"),
            get(identity::get_group)
                .put(identity::update_group)
                .patch(identity::update_group)
                .delete(identity::delete_group),
        )
        .route(
            &p("/roles"),
            get(access::list_roles).post(access::create_role),
        )
        .route(
            &p("/roles/{id}"),
            get(access::get_role)
                .put(access::update_role)
                .patch(access::update_role)
                .delete(access::delete_role),
        )
        .route(
            &p("/policies"),
            get(access::list_policies).post(access::create_policy),
        )
        .route(
            &p("/policies/{id}"),
            get(access::get_policy)
                .put(access::update_policy)
                .patch(access::update_policy)
                .delete(access::delete_policy),
        )
        .route(
            &p("/tokens"),
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route(
            &p("/tokens/{id}"),
            get(tokens::get_token).delete(tokens::delete_token),
        )
        .route(&p("/audit"), get(audit::list_audit))
        .merge(businesses::routes())
        .merge(clusters::routes())
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn serde_errors_name_the_field() {
        let pre = "Failed to deserialize the JSON body into the target type: ";
        assert_eq!(
            field_of(&format!("{pre}missing field `name` at line 1 column 2")).as_deref(),
            Some("name")
        );
        assert_eq!(
            field_of(&format!(
                "{pre}colour: unknown field `colour`, expected one of `name`"
            ))
            .as_deref(),
            Some("colour")
        );
        assert_eq!(
            field_of(&format!(
                "{pre}roles: invalid type: string \"x\", expected a sequence"
            ))
            .as_deref(),
            Some("roles")
        );
        assert_eq!(
            field_of(&format!("{pre}quotas.c1: missing field `hard`")).as_deref(),
            Some("quotas.c1.hard")
        );
        assert_eq!(
            field_of("Failed to parse the request body as JSON: EOF"),
            None
        );
    }
}
