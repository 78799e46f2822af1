//! The OpenAPI document, generated with `utoipa` from the handlers'
//! annotations and served at `/api/platform/openapi.json`.

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::Platform;
use crate::api;

/// The platform API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tidewatch platform API", description = "Clusters, businesses, tenants, roles and policies. Authenticate with the `tidewatch_session` cookie from `POST /login` or `Authorization: Bearer <token>`."),
    paths(
        api::session::login, api::session::logout, api::session::me,
        api::identity::list_users, api::identity::create_user, api::identity::get_user,
        api::identity::update_user, api::identity::delete_user,
        api::identity::list_groups, api::identity::create_group, api::identity::get_group,
        api::identity::update_group, api::identity::delete_group,
        api::access::list_roles, api::access::create_role, api::access::get_role,
        api::access::update_role, api::access::delete_role,
        api::access::list_policies, api::access::create_policy, api::access::get_policy,
        api::access::update_policy, api::access::delete_policy,
        api::tokens::list_tokens, api::tokens::create_token, api::tokens::get_token,
        api::tokens::delete_token,
        api::audit::list_audit,
    ),
    tags(
        (name = "session"), (name = "users"), (name = "groups"), (name = "access"),
        (name = "tokens"), (name = "audit"), (name = "businesses"), (name = "clusters"),
    )
)]
pub struct ApiDoc;

/// The document, merged with the business and cluster paths.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(api::businesses::BusinessDoc::openapi());
    doc.merge(api::clusters::ClusterDoc::openapi());
    doc
}

/// `GET /api/platform/openapi.json`.
pub fn router() -> Router<Arc<Platform>> {
    Router::new().route(
        "/api/platform/openapi.json",
        get(|| async { Json(document()) }),
    )
}
