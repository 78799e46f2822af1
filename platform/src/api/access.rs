//! Roles and policies: built-in ones are read-only; custom ones are CRUD.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use super::audit::record;
use super::identity::resolve_authorized;
use super::{Body, Items};
use crate::Platform;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, check_name, required};
use crate::policy::Effect;
use crate::store::{new_id, now_rfc3339};

/// A policy: actions × resources with an effect.
#[derive(Serialize, ToSchema)]
pub struct Policy {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// `platform` or `business` (may use `${business}`).
    pub scope: String,
    /// Allow or deny.
    pub effect: Effect,
    /// Action patterns (`*` wildcards).
    pub actions: Vec<String>,
    /// Resource patterns (`*` wildcards, `${business}`, `${self}`).
    pub resources: Vec<String>,
    /// Built in (read-only).
    pub builtin: bool,
}

/// Create or update a policy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// Unique name (create only).
    pub name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// `platform` (default) or `business`.
    pub scope: Option<String>,
    /// `allow` (default) or `deny`.
    pub effect: Option<Effect>,
    /// Action patterns.
    pub actions: Option<Vec<String>>,
    /// Resource patterns.
    pub resources: Option<Vec<String>>,
}

/// A role: a named set of policies.
#[derive(Serialize, ToSchema)]
pub struct Role {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// `platform` (bound to users/groups) or `business` (bound as member).
    pub scope: String,
    /// Policy names.
    pub policies: Vec<String>,
    /// Built in (read-only).
    pub builtin: bool,
}

/// Create or update a role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// Unique name (create only).
    pub name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// `platform` (default) or `business`.
    pub scope: Option<String>,
    /// Policy names.
    pub policies: Option<Vec<String>>,
}

fn check_scope(scope: &str) -> ApiResult<()> {
    if scope == "platform" || scope == "business" {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "scope",
            "scope must be platform or business",
        ))
    }
}

fn check_patterns(field: &str, v: &[String]) -> ApiResult<()> {
    if v.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    for (i, s) in v.iter().enumerate() {
        if s.trim().is_empty() {
            return Err(ApiError::invalid(&format!("{field}[{i}]"), "empty pattern"));
        }
    }
    Ok(())
}

async fn load_policy(conn: &mut AnyConnection, id: &str) -> ApiResult<Policy> {
    let r = sqlx::query(
        "SELECT id, name, display_name, description, scope, effect, actions, resources, builtin \
         FROM policies WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found("policy", id))?;
    Ok(Policy {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        display_name: r.try_get(2)?,
        description: r.try_get(3)?,
        scope: r.try_get(4)?,
        effect: if r.try_get::<String, _>(5)? == "deny" {
            Effect::Deny
        } else {
            Effect::Allow
        },
        actions: serde_json::from_str(&r.try_get::<String, _>(6)?).map_err(ApiError::internal)?,
        resources: serde_json::from_str(&r.try_get::<String, _>(7)?).map_err(ApiError::internal)?,
        builtin: r.try_get::<i64, _>(8)? != 0,
    })
}

async fn load_role(conn: &mut AnyConnection, id: &str) -> ApiResult<Role> {
    let r = sqlx::query(
        "SELECT id, name, display_name, description, scope, policies, builtin FROM roles WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found("role", id))?;
    Ok(Role {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        display_name: r.try_get(2)?,
        description: r.try_get(3)?,
        scope: r.try_get(4)?,
        policies: serde_json::from_str(&r.try_get::<String, _>(5)?).map_err(ApiError::internal)?,
        builtin: r.try_get::<i64, _>(6)? != 0,
    })
}

async fn ids_of(conn: &mut AnyConnection, table: &str) -> ApiResult<Vec<String>> {
    let sql = format!("SELECT id FROM {table} ORDER BY name");
    Ok(sqlx::query(&sql)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

async fn is_builtin(conn: &mut AnyConnection, table: &str, id: &str) -> ApiResult<bool> {
    let sql = format!("SELECT builtin FROM {table} WHERE id = $1");
    Ok(sqlx::query(&sql)
        .bind(id)
        .fetch_one(conn)
        .await?
        .try_get::<i64, _>(0)?
        != 0)
}

/// Lists policies.
#[utoipa::path(get, path = "/api/platform/v1/policies", tag = "access",
    responses((status = 200, body = Items<Policy>)))]
pub async fn list_policies(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
) -> ApiResult<Json<Items<Policy>>> {
    c.require("listPolicy", "policy:*")?;
    let mut conn = p.store.pool.acquire().await?;
    let mut items = Vec::new();
    for id in ids_of(&mut conn, "policies").await? {
        items.push(load_policy(&mut conn, &id).await?);
    }
    Ok(Items::of(items))
}

/// Creates a custom policy.
#[utoipa::path(post, path = "/api/platform/v1/policies", tag = "access", request_body = PolicyRequest,
    responses((status = 201, body = Policy), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create_policy(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Body(req): Body<PolicyRequest>,
) -> ApiResult<(StatusCode, Json<Policy>)> {
    c.require("createPolicy", "policy:*")?;
    let name = required("name", &req.name)?.to_string();
    check_name("name", &name)?;
    let scope = req.scope.clone().unwrap_or_else(|| "platform".into());
    check_scope(&scope)?;
    let actions = req.actions.clone().unwrap_or_default();
    check_patterns("actions", &actions)?;
    let resources = req.resources.clone().unwrap_or_default();
    check_patterns("resources", &resources)?;
    let mut tx = p.store.pool.begin().await?;
    if sqlx::query("SELECT 1 FROM policies WHERE name = $1")
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "name",
            format!("policy {name:?} already exists"),
        ));
    }
    let id = new_id();
    let effect = match req.effect.unwrap_or(Effect::Allow) {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    };
    sqlx::query(
        "INSERT INTO policies (id, name, display_name, description, scope, effect, actions, \
         resources, builtin, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,0,$9)",
    )
    .bind(&id)
    .bind(&name)
    .bind(req.display_name.clone().unwrap_or_else(|| name.clone()))
    .bind(req.description.clone().unwrap_or_default())
    .bind(&scope)
    .bind(effect)
    .bind(serde_json::to_string(&actions).map_err(ApiError::internal)?)
    .bind(serde_json::to_string(&resources).map_err(ApiError::internal)?)
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?;
    record(&mut tx, &c, "createPolicy", "policy", &id, serde_json::json!({"name": name, "effect": effect, "actions": actions, "resources": resources})).await?;
    let out = load_policy(&mut tx, &id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// One policy by id or name.
#[utoipa::path(get, path = "/api/platform/v1/policies/{id}", tag = "access",
    responses((status = 200, body = Policy)))]
pub async fn get_policy(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Policy>> {
    let mut conn = p.store.pool.acquire().await?;
    let id = resolve_authorized(&mut conn, &c, "getPolicy", "policies", "policy", &key).await?;
    Ok(Json(load_policy(&mut conn, &id).await?))
}

/// Updates a custom policy.
#[utoipa::path(put, path = "/api/platform/v1/policies/{id}", tag = "access", request_body = PolicyRequest,
    responses((status = 200, body = Policy)))]
pub async fn update_policy(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
    Body(req): Body<PolicyRequest>,
) -> ApiResult<Json<Policy>> {
    let mut tx = p.store.pool.begin().await?;
    let id = resolve_authorized(&mut tx, &c, "updatePolicy", "policies", "policy", &key).await?;
    if is_builtin(&mut tx, "policies", &id).await? {
        return Err(ApiError::invalid(
            "name",
            "built-in policies cannot be changed",
        ));
    }
    let cur = load_policy(&mut tx, &id).await?;
    if req.name.as_ref().is_some_and(|n| *n != cur.name) {
        return Err(ApiError::invalid(
            "name",
            "a policy's name cannot be changed",
        ));
    }
    let scope = req.scope.clone().unwrap_or(cur.scope);
    check_scope(&scope)?;
    let actions = req.actions.clone().unwrap_or(cur.actions);
    check_patterns("actions", &actions)?;
    let resources = req.resources.clone().unwrap_or(cur.resources);
    check_patterns("resources", &resources)?;
    let effect = match req.effect.unwrap_or(cur.effect) {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    };
    sqlx::query(
        "UPDATE policies SET display_name = $2, description = $3, scope = $4, effect = $5, \
         actions = $6, resources = $7 WHERE id = $1",
    )
    .bind(&id)
    .bind(req.display_name.clone().unwrap_or(cur.display_name))
    .bind(req.description.clone().unwrap_or(cur.description))
    .bind(&scope)
    .bind(effect)
    .bind(serde_json::to_string(&actions).map_err(ApiError::internal)?)
    .bind(serde_json::to_string(&resources).map_err(ApiError::internal)?)
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        &c,
        "updatePolicy",
        "policy",
        &id,
        serde_json::json!({"effect": effect, "actions": actions, "resources": resources}),
    )
    .await?;
    let out = load_policy(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(out))
}

/// Deletes a custom policy that no role uses.
#[utoipa::path(delete, path = "/api/platform/v1/policies/{id}", tag = "access",
    responses((status = 204), (status = 409, body = crate::error::ErrorBody)))]
pub async fn delete_policy(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = p.store.pool.begin().await?;
    let id = resolve_authorized(&mut tx, &c, "deletePolicy", "policies", "policy", &key).await?;
    if is_builtin(&mut tx, "policies", &id).await? {
        return Err(ApiError::invalid(
            "name",
            "built-in policies cannot be deleted",
        ));
    }
    let name = load_policy(&mut tx, &id).await?.name;
    for rid in ids_of(&mut tx, "roles").await? {
        let role = load_role(&mut tx, &rid).await?;
        if role.policies.contains(&name) {
            return Err(ApiError::conflict(
                "name",
                format!("policy {name:?} is used by role {:?}", role.name),
            ));
        }
    }
    sqlx::query("DELETE FROM policies WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        &c,
        "deletePolicy",
        "policy",
        &id,
        serde_json::json!({"name": name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn check_role_policies(
    conn: &mut AnyConnection,
    scope: &str,
    names: &[String],
) -> ApiResult<()> {
    if names.is_empty() {
        return Err(ApiError::invalid("policies", "policies must not be empty"));
    }
    for (i, n) in names.iter().enumerate() {
        let r = sqlx::query("SELECT scope FROM policies WHERE name = $1")
            .bind(n)
            .fetch_optional(&mut *conn)
            .await?;
        let field = format!("policies[{i}]");
        match r {
            None => return Err(ApiError::invalid(&field, format!("unknown policy {n:?}"))),
            Some(r) if scope == "platform" && r.try_get::<String, _>(0)? == "business" => {
                return Err(ApiError::invalid(
                    &field,
                    format!("policy {n:?} is business-scoped; the role is platform-scoped"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Lists roles.
#[utoipa::path(get, path = "/api/platform/v1/roles", tag = "access",
    responses((status = 200, body = Items<Role>)))]
pub async fn list_roles(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
) -> ApiResult<Json<Items<Role>>> {
    c.require("listRole", "role:*")?;
    let mut conn = p.store.pool.acquire().await?;
    let mut items = Vec::new();
    for id in ids_of(&mut conn, "roles").await? {
        items.push(load_role(&mut conn, &id).await?);
    }
    Ok(Items::of(items))
}

/// Creates a custom role.
#[utoipa::path(post, path = "/api/platform/v1/roles", tag = "access", request_body = RoleRequest,
    responses((status = 201, body = Role), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create_role(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Body(req): Body<RoleRequest>,
) -> ApiResult<(StatusCode, Json<Role>)> {
    c.require("createRole", "role:*")?;
    let name = required("name", &req.name)?.to_string();
    check_name("name", &name)?;
    let scope = req.scope.clone().unwrap_or_else(|| "platform".into());
    check_scope(&scope)?;
    let policies = req.policies.clone().unwrap_or_default();
    let mut tx = p.store.pool.begin().await?;
    check_role_policies(&mut tx, &scope, &policies).await?;
    if sqlx::query("SELECT 1 FROM roles WHERE name = $1")
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "name",
            format!("role {name:?} already exists"),
        ));
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO roles (id, name, display_name, description, scope, policies, builtin, \
         created_at) VALUES ($1,$2,$3,$4,$5,$6,0,$7)",
    )
    .bind(&id)
    .bind(&name)
    .bind(req.display_name.clone().unwrap_or_else(|| name.clone()))
    .bind(req.description.clone().unwrap_or_default())
    .bind(&scope)
    .bind(serde_json::to_string(&policies).map_err(ApiError::internal)?)
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        &c,
        "createRole",
        "role",
        &id,
        serde_json::json!({"name": name, "scope": scope, "policies": policies}),
    )
    .await?;
    let out = load_role(&mut tx, &id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// One role by id or name.
#[utoipa::path(get, path = "/api/platform/v1/roles/{id}", tag = "access",
    responses((status = 200, body = Role)))]
pub async fn get_role(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Role>> {
    let mut conn = p.store.pool.acquire().await?;
    let id = resolve_authorized(&mut conn, &c, "getRole", "roles", "role", &key).await?;
    Ok(Json(load_role(&mut conn, &id).await?))
}

/// Updates a custom role.
#[utoipa::path(put, path = "/api/platform/v1/roles/{id}", tag = "access", request_body = RoleRequest,
    responses((status = 200, body = Role)))]
pub async fn update_role(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
    Body(req): Body<RoleRequest>,
) -> ApiResult<Json<Role>> {
    let mut tx = p.store.pool.begin().await?;
    let id = resolve_authorized(&mut tx, &c, "updateRole", "roles", "role", &key).await?;
    if is_builtin(&mut tx, "roles", &id).await? {
        return Err(ApiError::invalid(
            "name",
            "built-in roles cannot be changed",
        ));
    }
    let cur = load_role(&mut tx, &id).await?;
    if req.name.as_ref().is_some_and(|n| *n != cur.name) {
        return Err(ApiError::invalid("name", "a role's name cannot be changed"));
    }
    if req.scope.as_ref().is_some_and(|s| *s != cur.scope) {
        return Err(ApiError::invalid(
            "scope",
            "a role's scope cannot be changed",
        ));
    }
    let policies = req.policies.clone().unwrap_or(cur.policies);
    check_role_policies(&mut tx, &cur.scope, &policies).await?;
    sqlx::query(
        "UPDATE roles SET display_name = $2, description = $3, policies = $4 WHERE id = $1",
    )
    .bind(&id)
    .bind(req.display_name.clone().unwrap_or(cur.display_name))
    .bind(req.description.clone().unwrap_or(cur.description))
    .bind(serde_json::to_string(&policies).map_err(ApiError::internal)?)
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        &c,
        "updateRole",
        "role",
        &id,
        serde_json::json!({"policies": policies}),
    )
    .await?;
    let out = load_role(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(out))
}

/// Deletes a custom role (and its bindings).
#[utoipa::path(delete, path = "/api/platform/v1/roles/{id}", tag = "access",
    responses((status = 204)))]
pub async fn delete_role(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = p.store.pool.begin().await?;
    let id = resolve_authorized(&mut tx, &c, "deleteRole", "roles", "role", &key).await?;
    if is_builtin(&mut tx, "roles", &id).await? {
        return Err(ApiError::invalid(
            "name",
            "built-in roles cannot be deleted",
        ));
    }
    sqlx::query("DELETE FROM role_bindings WHERE role_id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM roles WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        &c,
        "deleteRole",
        "role",
        &id,
        serde_json::json!({"key": key}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
