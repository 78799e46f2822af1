//! Login, logout and `me`: the dashboards' session cookie.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use super::Body;
use super::audit::record_as;
use crate::Platform;
use crate::auth::{Caller, Credential, Principal, SESSION_COOKIE, credential};
use crate::crypto::{random_token, token_hash, verify_password};
use crate::error::{ApiError, ApiResult, required};
use crate::store::now_ms;

/// Login request.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
}

/// The caller as the dashboards see them.
#[derive(Serialize, ToSchema)]
pub struct UserInfo {
    /// Login name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Platform roles.
    pub roles: Vec<String>,
    /// Platform administrator.
    pub is_admin: bool,
    /// Group names.
    pub groups: Vec<String>,
}

/// `{"user": …}`.
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    /// The caller.
    pub user: UserInfo,
}

fn me_of(p: &Principal) -> Json<MeResponse> {
    Json(MeResponse {
        user: UserInfo {
            name: p.name.clone(),
            display_name: p.display_name.clone(),
            roles: p.roles.clone(),
            is_admin: p.is_admin,
            groups: p.groups.clone(),
        },
    })
}

/// Logs in with a password; sets the HttpOnly `tidewatch_session` cookie.
#[utoipa::path(post, path = "/api/platform/v1/login", tag = "session", request_body = LoginRequest,
    responses((status = 200, body = MeResponse), (status = 401, body = crate::error::ErrorBody)))]
pub async fn login(
    State(p): State<Arc<Platform>>,
    Body(req): Body<LoginRequest>,
) -> ApiResult<Response> {
    let username = required("username", &req.username)?.to_string();
    let password = required("password", &req.password)?.to_string();
    let row = sqlx::query("SELECT id, password_hash, locked FROM users WHERE name = $1")
        .bind(&username)
        .fetch_optional(&p.store.pool)
        .await?;
    let bad = || ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: "invalid username or password".into(),
        field: None,
    };
    let Some(row) = row else {
        // Spend the same time as a real check so names cannot be probed.
        let _ = tokio::task::spawn_blocking(move || {
            verify_password(&password, crate::crypto::DUMMY_HASH)
        })
        .await;
        return Err(bad());
    };
    let user_id: String = row.try_get(0)?;
    let hash: String = row.try_get(1)?;
    let locked: i64 = row.try_get(2)?;
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    if !ok || locked != 0 {
        return Err(bad());
    }
    let principal = p.load_principal(&user_id).await?.ok_or_else(bad)?;
    let token = random_token("s_");
    let ttl = p.config.session_ttl;
    let mut tx = p.store.pool.begin().await?;
    sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO sessions (token_hash, user_id, expires_at_ms) VALUES ($1, $2, $3)")
        .bind(token_hash(&token))
        .bind(&user_id)
        .bind(now_ms() + ttl.as_millis() as i64)
        .execute(&mut *tx)
        .await?;
    record_as(
        &mut tx,
        &username,
        "login",
        "session",
        &user_id,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        ttl.as_secs()
    );
    let mut resp = me_of(&principal).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(resp)
}

/// Ends the session (if any) and clears the cookie.
#[utoipa::path(post, path = "/api/platform/v1/logout", tag = "session",
    responses((status = 204)))]
pub async fn logout(State(p): State<Arc<Platform>>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(Credential::Session(t)) = credential(&headers) {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash(&t))
            .execute(&p.store.pool)
            .await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("tidewatch_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(resp)
}

/// The caller; 401 when not logged in.
#[utoipa::path(get, path = "/api/platform/v1/me", tag = "session",
    responses((status = 200, body = MeResponse), (status = 401, body = crate::error::ErrorBody)))]
pub async fn me(Caller(c): Caller) -> Json<MeResponse> {
    me_of(&c)
}
