//! Users and groups, with their platform roles.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use super::audit::record;
use super::{Body, Items};
use crate::Platform;
use crate::auth::{Caller, Principal};
use crate::crypto::hash_password;
use crate::error::{ApiError, ApiResult, check_name, required};
use crate::store::{new_id, now_rfc3339};

/// Shortest password accepted for new users.
pub const MIN_PASSWORD_LEN: usize = 8;

/// A user as the API shows it (never the password hash).
#[derive(Serialize, ToSchema)]
pub struct User {
    /// Id.
    pub id: String,
    /// Login name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Email.
    pub email: String,
    /// Locked users cannot log in or use tokens.
    pub locked: bool,
    /// Platform roles.
    pub roles: Vec<String>,
    /// Group names.
    pub groups: Vec<String>,
    /// Creation time.
    pub created_at: String,
}

/// Create or update a user (absent fields unchanged on update).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    /// Login name (create only).
    pub name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Password (at least 8 characters).
    pub password: Option<String>,
    /// Platform role names; default `["platform-user"]` on create.
    pub roles: Option<Vec<String>>,
    /// Lock or unlock.
    pub locked: Option<bool>,
}

/// Looks up a row id by id or name in `table`.
pub async fn resolve_id(
    conn: &mut AnyConnection,
    table: &str,
    what: &str,
    key: &str,
) -> ApiResult<String> {
    let sql = format!("SELECT id FROM {table} WHERE id = $1 OR name = $1");
    match sqlx::query(&sql).bind(key).fetch_optional(conn).await? {
        Some(r) => Ok(r.try_get(0)?),
        None => Err(ApiError::not_found(what, key)),
    }
}

/// Resolves `key` (id or name) in `table` like [`resolve_id`] and checks
/// that `caller` may `action` on `{what}:{id}` (404 before 403, as every
/// handler did); returns the id.
pub async fn resolve_authorized(
    conn: &mut AnyConnection,
    caller: &Principal,
    action: &str,
    table: &str,
    what: &str,
    key: &str,
) -> ApiResult<String> {
    let id = resolve_id(conn, table, what, key).await?;
    caller.require(action, &format!("{what}:{id}"))?;
    Ok(id)
}

/// Platform role names → ids, rejecting unknown or business-scoped roles.
async fn platform_role_ids(conn: &mut AnyConnection, names: &[String]) -> ApiResult<Vec<String>> {
    let mut ids = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let row = sqlx::query("SELECT id, scope FROM roles WHERE name = $1")
            .bind(n)
            .fetch_optional(&mut *conn)
            .await?;
        let field = format!("roles[{i}]");
        let Some(row) = row else {
            return Err(ApiError::invalid(&field, format!("unknown role {n:?}")));
        };
        if row.try_get::<String, _>(1)? != "platform" {
            return Err(ApiError::invalid(
                &field,
                format!("role {n:?} is business-scoped: add it as a business member instead"),
            ));
        }
        ids.push(row.try_get(0)?);
    }
    Ok(ids)
}

async fn set_platform_roles(
    conn: &mut AnyConnection,
    kind: &str,
    subject: &str,
    role_ids: &[String],
) -> ApiResult<()> {
    sqlx::query(
        "DELETE FROM role_bindings WHERE subject_kind = $1 AND subject_id = $2 \
         AND business_id IS NULL",
    )
    .bind(kind)
    .bind(subject)
    .execute(&mut *conn)
    .await?;
    for r in role_ids {
        sqlx::query(
            "INSERT INTO role_bindings (id, role_id, subject_kind, subject_id, business_id, \
             created_at) VALUES ($1,$2,$3,$4,NULL,$5)",
        )
        .bind(new_id())
        .bind(r)
        .bind(kind)
        .bind(subject)
        .bind(now_rfc3339())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn platform_roles_of(
    conn: &mut AnyConnection,
    kind: &str,
    id: &str,
) -> ApiResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT r.name FROM role_bindings rb JOIN roles r ON r.id = rb.role_id \
         WHERE rb.subject_kind = $1 AND rb.subject_id = $2 AND rb.business_id IS NULL \
         ORDER BY r.name",
    )
    .bind(kind)
    .bind(id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

async fn load_user(conn: &mut AnyConnection, id: &str) -> ApiResult<User> {
    let r = sqlx::query(
        "SELECT id, name, display_name, email, locked, created_at FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::not_found("user", id))?;
    let groups = sqlx::query(
        "SELECT g.name FROM groups_ g JOIN group_members m ON m.group_id = g.id \
         WHERE m.user_id = $1 ORDER BY g.name",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<Result<Vec<String>, _>>()?;
    Ok(User {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        display_name: r.try_get(2)?,
        email: r.try_get(3)?,
        locked: r.try_get::<i64, _>(4)? != 0,
        roles: platform_roles_of(conn, "user", id).await?,
        groups,
        created_at: r.try_get(5)?,
    })
}

fn check_password(pw: &str) -> ApiResult<()> {
    if pw.chars().count() < MIN_PASSWORD_LEN {
        return Err(ApiError::invalid(
            "password",
            format!("password must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

/// Lists users.
#[utoipa::path(get, path = "/api/platform/v1/users", tag = "users",
    responses((status = 200, body = Items<User>)))]
pub async fn list_users(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
) -> ApiResult<Json<Items<User>>> {
    c.require("listUser", "user:*")?;
    let mut conn = p.store.pool.acquire().await?;
    let ids: Vec<String> = sqlx::query("SELECT id FROM users ORDER BY name")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        items.push(load_user(&mut conn, &id).await?);
    }
    Ok(Items::of(items))
}

/// Creates a user.
#[utoipa::path(post, path = "/api/platform/v1/users", tag = "users", request_body = UserRequest,
    responses((status = 201, body = User), (status = 400, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn create_user(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Body(req): Body<UserRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    c.require("createUser", "user:*")?;
    let name = required("name", &req.name)?.to_string();
    check_name("name", &name)?;
    let password = required("password", &req.password)?.to_string();
    check_password(&password)?;
    let roles = req
        .roles
        .clone()
        .unwrap_or_else(|| vec!["platform-user".into()]);
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?;
    let mut tx = p.store.pool.begin().await?;
    let role_ids = platform_role_ids(&mut tx, &roles).await?;
    let exists = sqlx::query("SELECT 1 FROM users WHERE name = $1")
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_some() {
        return Err(ApiError::conflict(
            "name",
            format!("user {name:?} already exists"),
        ));
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO users (id, name, display_name, email, password_hash, locked, created_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7)",
    )
    .bind(&id)
    .bind(&name)
    .bind(req.display_name.clone().unwrap_or_else(|| name.clone()))
    .bind(req.email.clone().unwrap_or_default())
    .bind(hash)
    .bind(i64::from(req.locked.unwrap_or(false)))
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?;
    set_platform_roles(&mut tx, "user", &id, &role_ids).await?;
    record(
        &mut tx,
        &c,
        "createUser",
        "user",
        &id,
        serde_json::json!({"name": name, "roles": roles}),
    )
    .await?;
    let user = load_user(&mut tx, &id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// One user by id or name.
#[utoipa::path(get, path = "/api/platform/v1/users/{id}", tag = "users",
    responses((status = 200, body = User), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_user(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<User>> {
    let mut conn = p.store.pool.acquire().await?;
    let id = resolve_id(&mut conn, "users", "user", &key).await?;
    if id != c.user_id {
        c.require("getUser", &format!("user:{id}"))?;
    }
    Ok(Json(load_user(&mut conn, &id).await?))
}

/// Updates a user.
#[utoipa::path(put, path = "/api/platform/v1/users/{id}", tag = "users", request_body = UserRequest,
    responses((status = 200, body = User), (status = 400, body = crate::error::ErrorBody)))]
pub async fn update_user(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
    Body(req): Body<UserRequest>,
) -> ApiResult<Json<User>> {
    let mut tx = p.store.pool.begin().await?;
    let id = resolve_authorized(&mut tx, &c, "updateUser", "users", "user", &key).await?;
    if let Some(n) = &req.name {
        let current: String = sqlx::query("SELECT name FROM users WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if *n != current {
            return Err(ApiError::invalid("name", "a user's name cannot be changed"));
        }
    }
    let role_ids = match &req.roles {
        Some(r) => Some(platform_role_ids(&mut tx, r).await?),
        None => None,
    };
    if id == c.user_id && req.locked == Some(true) {
        return Err(ApiError::invalid("locked", "you cannot lock yourself out"));
    }
    if let Some(pw) = &req.password {
        check_password(pw)?;
        let pw = pw.clone();
        let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
            .await
            .map_err(ApiError::internal)?;
        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(&id)
            .bind(hash)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(v) = &req.display_name {
        sqlx::query("UPDATE users SET display_name = $2 WHERE id = $1")
            .bind(&id)
            .bind(v)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(v) = &req.email {
        sqlx::query("UPDATE users SET email = $2 WHERE id = $1")
            .bind(&id)
            .bind(v)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(v) = req.locked {
        sqlx::query("UPDATE users SET locked = $2 WHERE id = $1")
            .bind(&id)
            .bind(i64::from(v))
            .execute(&mut *tx)
            .await?;
    }
    if let Some(ids) = &role_ids {
        set_platform_roles(&mut tx, "user", &id, ids).await?;
    }
    record(
        &mut tx,
        &c,
        "updateUser",
        "user",
        &id,
        serde_json::json!({"display_name": req.display_name, "email": req.email,
            "password_changed": req.password.is_some(), "roles": req.roles, "locked": req.locked}),
    )
    .await?;
    let user = load_user(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(user))
}

/// Deletes a user (not yourself).
#[utoipa::path(delete, path = "/api/platform/v1/users/{id}", tag = "users",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete_user(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = p.store.pool.begin().await?;
    let id = resolve_authorized(&mut tx, &c, "deleteUser", "users", "user", &key).await?;
    if id == c.user_id {
        return Err(ApiError::invalid("id", "you cannot delete yourself"));
    }
    sqlx::query("DELETE FROM role_bindings WHERE subject_kind = 'user' AND subject_id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        &c,
        "deleteUser",
        "user",
        &id,
        serde_json::json!({"key": key}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A group.
#[derive(Serialize, ToSchema)]
pub struct Group {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// Member user names.
    pub members: Vec<String>,
    /// Platform roles.
    pub roles: Vec<String>,
    /// Creation time.
    pub created_at: String,
}

/// Create or update a group.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRequest {
    /// Unique name (create only).
    pub name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Member user names (replaces the list).
    pub members: Option<Vec<String>>,
    /// Platform role names (replaces the list).
    pub roles: Option<Vec<String>>,
}

async fn load_group(conn: &mut AnyConnection, id: &str) -> ApiResult<Group> {
    let r = sqlx::query(
        "SELECT id, name, display_name, description, created_at FROM groups_ WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::not_found("group", id))?;
    let members = sqlx::query(
        "SELECT u.name FROM users u JOIN group_members m ON m.user_id = u.id \
         WHERE m.group_id = $1 ORDER BY u.name",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<Result<Vec<String>, _>>()?;
    Ok(Group {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        display_name: r.try_get(2)?,
        description: r.try_get(3)?,
        members,
        roles: platform_roles_of(conn, "group", id).await?,
        created_at: r.try_get(4)?,
    })
}

async fn set_members(conn: &mut AnyConnection, group: &str, names: &[String]) -> ApiResult<()> {
    let mut ids = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let r = sqlx::query("SELECT id FROM users WHERE name = $1")
            .bind(n)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| {
                ApiError::invalid(&format!("members[{i}]"), format!("unknown user {n:?}"))
            })?;
        ids.push(r.try_get::<String, _>(0)?);
    }
    sqlx::query("DELETE FROM group_members WHERE group_id = $1")
        .bind(group)
        .execute(&mut *conn)
        .await?;
    ids.sort();
    ids.dedup();
    for u in ids {
        sqlx::query("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)")
            .bind(group)
            .bind(u)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Lists groups.
#[utoipa::path(get, path = "/api/platform/v1/groups", tag = "groups",
    responses((status = 200, body = Items<Group>)))]
pub async fn list_groups(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
) -> ApiResult<Json<Items<Group>>> {
    c.require("listGroup", "group:*")?;
    let mut conn = p.store.pool.acquire().await?;
    let ids: Vec<String> = sqlx::query("SELECT id FROM groups_ ORDER BY name")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut items = Vec::new();
    for id in ids {
        items.push(load_group(&mut conn, &id).await?);
    }
    Ok(Items::of(items))
}

/// Creates a group.
#[utoipa::path(post, path = "/api/platform/v1/groups", tag = "groups", request_body = GroupRequest,
    responses((status = 201, body = Group), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create_group(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Body(req): Body<GroupRequest>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    c.require("createGroup", "group:*")?;
    let name = required("name", &req.name)?.to_string();
    check_name("name", &name)?;
    let mut tx = p.store.pool.begin().await?;
    if sqlx::query("SELECT 1 FROM groups_ WHERE name = $1")
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "name",
            format!("group {name:?} already exists"),
        ));
    }
    let role_ids = platform_role_ids(&mut tx, req.roles.as_deref().unwrap_or_default()).await?;
    let id = new_id();
    sqlx::query(
        "INSERT INTO groups_ (id, name, display_name, description, created_at) VALUES ($1,$2,$3,$4,$5)",
    )
    .bind(&id)
    .bind(&name)
    .bind(req.display_name.clone().unwrap_or_else(|| name.clone()))
    .bind(req.description.clone().unwrap_or_default())
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?;
    set_members(&mut tx, &id, req.members.as_deref().unwrap_or_default()).await?;
    set_platform_roles(&mut tx, "group", &id, &role_ids).await?;
    record(
        &mut tx,
        &c,
        "createGroup",
        "group",
        &id,
        serde_json::json!({"name": name, "members": req.members, "roles": req.roles}),
    )
    .await?;
    let g = load_group(&mut tx, &id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(g)))
}

/// One group by id or name.
#[utoipa::path(get, path = "/api/platform/v1/groups/{id}", tag = "groups",
    responses((status = 200, body = Group), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_group(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Group>> {
    let mut conn = p.store.pool.acquire().await?;
    let id = resolve_authorized(&mut conn, &c, "getGroup", "groups_", "group", &key).await?;
    Ok(Json(load_group(&mut conn, &id).await?))
}

/// Updates a group.
#[utoipa::path(put, path = "/api/platform/v1/groups/{id}", tag = "groups", request_body = GroupRequest,
    responses((status = 200, body = Group)))]
pub async fn update_group(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
    Body(req): Body<GroupRequest>,
) -> ApiResult<Json<Group>> {
    let mut tx = p.store.pool.begin().await?;
    let id = resolve_authorized(&mut tx, &c, "updateGroup", "groups_", "group", &key).await?;
    if req.name.is_some() {
        return Err(ApiError::invalid(
            "name",
            "a group's name cannot be changed",
        ));
    }
    let role_ids = match &req.roles {
        Some(r) => Some(platform_role_ids(&mut tx, r).await?),
        None => None,
    };
    if let Some(v) = &req.display_name {
        sqlx::query("UPDATE groups_ SET display_name = $2 WHERE id = $1")
            .bind(&id)
            .bind(v)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(v) = &req.description {
        sqlx::query("UPDATE groups_ SET description = $2 WHERE id = $1")
            .bind(&id)
            .bind(v)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(m) = &req.members {
        set_members(&mut tx, &id, m).await?;
    }
    if let Some(ids) = &role_ids {
        set_platform_roles(&mut tx, "group", &id, ids).await?;
    }
    record(
        &mut tx,
        &c,
        "updateGroup",
        "group",
        &id,
        serde_json::json!({"members": req.members, "roles": req.roles}),
    )
    .await?;
    let g = load_group(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(g))
}

/// Deletes a group.
#[utoipa::path(delete, path = "/api/platform/v1/groups/{id}", tag = "groups",
    responses((status = 204)))]
pub async fn delete_group(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = p.store.pool.begin().await?;
    let id = resolve_authorized(&mut tx, &c, "deleteGroup", "groups_", "group", &key).await?;
    sqlx::query("DELETE FROM role_bindings WHERE subject_kind = 'group' AND subject_id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM group_members WHERE group_id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM groups_ WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        &c,
        "deleteGroup",
        "group",
        &id,
        serde_json::json!({"key": key}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
