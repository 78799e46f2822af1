//! API tokens: bearer tokens for the REST API, the query APIs and the
//! Kubernetes authentication webhook. Only a SHA-256 digest is stored; the
//! token itself is returned once, on creation.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::{IntoParams, ToSchema};

use super::audit::record;
use super::{Body, Items};
use crate::Platform;
use crate::auth::{Caller, Principal};
use crate::crypto::{random_token, token_hash};
use crate::error::{ApiError, ApiResult, required};
use crate::store::{new_id, now_ms, now_rfc3339};

/// Prefix of every API token.
pub const TOKEN_PREFIX: &str = "tw_";

/// A token's metadata.
#[derive(Serialize, ToSchema)]
pub struct Token {
    /// Id.
    pub id: String,
    /// Owner's user name.
    pub user: String,
    /// Name, unique per user.
    pub name: String,
    /// Description.
    pub description: String,
    /// First characters, to recognise it.
    pub prefix: String,
    /// Expiry (RFC 3339), if any.
    pub expires_at: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// The token itself: only in the creation response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Create a token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Name, unique per user.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Lifetime as a duration (`30d`, `12h`); absent: no expiry.
    pub expires_in: Option<String>,
    /// Owner (user name); default the caller. Others need `createToken`
    /// on their `token:user/{id}`.
    pub user: Option<String>,
}

/// Filter for `GET /tokens`.
#[derive(Deserialize, IntoParams)]
pub struct TokenQuery {
    /// Owner's user name; default the caller.
    pub user: Option<String>,
}

async fn user_id_by_name(conn: &mut AnyConnection, field: &str, name: &str) -> ApiResult<String> {
    match sqlx::query("SELECT id FROM users WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
    {
        Some(r) => Ok(r.try_get(0)?),
        None => Err(ApiError::invalid(field, format!("unknown user {name:?}"))),
    }
}

async fn owner(conn: &mut AnyConnection, c: &Principal, user: Option<&str>) -> ApiResult<String> {
    match user {
        None => Ok(c.user_id.clone()),
        Some(n) => user_id_by_name(conn, "user", n).await,
    }
}

fn token_of(r: &sqlx::any::AnyRow) -> ApiResult<Token> {
    let exp: Option<i64> = r.try_get(5)?;
    Ok(Token {
        id: r.try_get(0)?,
        user: r.try_get(1)?,
        name: r.try_get(2)?,
        description: r.try_get(3)?,
        prefix: r.try_get(4)?,
        expires_at: exp
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        created_at: r.try_get(6)?,
        token: None,
    })
}

const SELECT: &str = "SELECT t.id, u.name, t.name, t.description, t.prefix, t.expires_at_ms, \
                      t.created_at, t.user_id FROM api_tokens t JOIN users u ON u.id = t.user_id";

/// Lists a user's tokens (metadata only).
#[utoipa::path(get, path = "/api/platform/v1/tokens", tag = "tokens", params(TokenQuery),
    responses((status = 200, body = Items<Token>)))]
pub async fn list_tokens(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Query(q): Query<TokenQuery>,
) -> ApiResult<Json<Items<Token>>> {
    let mut conn = p.store.pool.acquire().await?;
    let uid = owner(&mut conn, &c, q.user.as_deref()).await?;
    c.require("listToken", &format!("token:user/{uid}"))?;
    let rows = sqlx::query(&format!("{SELECT} WHERE t.user_id = $1 ORDER BY t.name"))
        .bind(&uid)
        .fetch_all(&mut *conn)
        .await?;
    Ok(Items::of(
        rows.iter().map(token_of).collect::<ApiResult<_>>()?,
    ))
}

/// Creates a token; the response carries it once.
#[utoipa::path(post, path = "/api/platform/v1/tokens", tag = "tokens", request_body = TokenRequest,
    responses((status = 201, body = Token), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create_token(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Body(req): Body<TokenRequest>,
) -> ApiResult<(StatusCode, Json<Token>)> {
    let name = required("name", &req.name)?.to_string();
    let expires = match &req.expires_in {
        None => None,
        Some(s) => {
            let d = tidewatch_common::duration::parse_duration(s)
                .map_err(|e| ApiError::invalid("expires_in", e))?;
            if d.is_zero() {
                return Err(ApiError::invalid(
                    "expires_in",
                    "expires_in must be positive",
                ));
            }
            Some(now_ms() + d.as_millis() as i64)
        }
    };
    let mut tx = p.store.pool.begin().await?;
    let uid = owner(&mut tx, &c, req.user.as_deref()).await?;
    c.require("createToken", &format!("token:user/{uid}"))?;
    if sqlx::query("SELECT 1 FROM api_tokens WHERE user_id = $1 AND name = $2")
        .bind(&uid)
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "name",
            format!("token {name:?} already exists"),
        ));
    }
    let token = random_token(TOKEN_PREFIX);
    let id = new_id();
    sqlx::query(
        "INSERT INTO api_tokens (id, user_id, name, description, token_hash, prefix, \
         expires_at_ms, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
    )
    .bind(&id)
    .bind(&uid)
    .bind(&name)
    .bind(req.description.clone().unwrap_or_default())
    .bind(token_hash(&token))
    .bind(&token[..TOKEN_PREFIX.len() + 6])
    .bind(expires)
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        &c,
        "createToken",
        "token",
        &id,
        serde_json::json!({"name": name, "user_id": uid}),
    )
    .await?;
    let row = sqlx::query(&format!("{SELECT} WHERE t.id = $1"))
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
    let mut out = token_of(&row)?;
    tx.commit().await?;
    out.token = Some(token);
    Ok((StatusCode::CREATED, Json(out)))
}

async fn load(conn: &mut AnyConnection, id: &str) -> ApiResult<(Token, String)> {
    let row = sqlx::query(&format!("{SELECT} WHERE t.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::not_found("token", id))?;
    Ok((token_of(&row)?, row.try_get(7)?))
}

/// One token's metadata.
#[utoipa::path(get, path = "/api/platform/v1/tokens/{id}", tag = "tokens",
    responses((status = 200, body = Token)))]
pub async fn get_token(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Token>> {
    let mut conn = p.store.pool.acquire().await?;
    let (t, uid) = load(&mut conn, &id).await?;
    c.require("getToken", &format!("token:user/{uid}"))?;
    Ok(Json(t))
}

/// Revokes a token.
#[utoipa::path(delete, path = "/api/platform/v1/tokens/{id}", tag = "tokens",
    responses((status = 204)))]
pub async fn delete_token(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = p.store.pool.begin().await?;
    let (t, uid) = load(&mut tx, &id).await?;
    c.require("deleteToken", &format!("token:user/{uid}"))?;
    sqlx::query("DELETE FROM api_tokens WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        &c,
        "deleteToken",
        "token",
        &id,
        serde_json::json!({"name": t.name, "user": t.user}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
