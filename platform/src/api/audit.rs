//! The audit log: who changed what, written in the changing transaction.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::{IntoParams, ToSchema};

use super::Items;
use crate::Platform;
use crate::auth::{Caller, Principal};
use crate::error::{ApiError, ApiResult};
use crate::store::{new_id, now_ms, now_rfc3339};

/// Records one change.
pub async fn record(
    conn: &mut AnyConnection,
    actor: &Principal,
    action: &str,
    resource: &str,
    resource_id: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    record_as(conn, &actor.name, action, resource, resource_id, detail).await
}

/// Records one change by a named actor (`login` before a principal exists).
pub async fn record_as(
    conn: &mut AnyConnection,
    actor: &str,
    action: &str,
    resource: &str,
    resource_id: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (id, ts_ms, ts, actor, action, resource, resource_id, detail) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
    )
    .bind(new_id())
    .bind(now_ms())
    .bind(now_rfc3339())
    .bind(actor)
    .bind(action)
    .bind(resource)
    .bind(resource_id)
    .bind(detail.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// One audit record.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    /// Id.
    pub id: String,
    /// When (RFC 3339).
    pub time: String,
    /// User name.
    pub actor: String,
    /// Action, e.g. `createBusiness`.
    pub action: String,
    /// Resource kind.
    pub resource: String,
    /// Resource id.
    pub resource_id: String,
    /// The change.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// Filters for `GET /audit`.
#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Most records (newest first).
    pub limit: Option<usize>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this resource kind.
    pub resource: Option<String>,
}

/// Lists audit records, newest first.
#[utoipa::path(get, path = "/api/platform/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Items<AuditEntry>)))]
pub async fn list_audit(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Items<AuditEntry>>> {
    c.require("listAudit", "audit")?;
    let max = p.config.limits.max_audit_page;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > max {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be 1..={max}"),
        ));
    }
    let rows = sqlx::query(
        "SELECT id, ts, actor, action, resource, resource_id, detail FROM audit_log \
         WHERE ($1 = '' OR actor = $1) AND ($2 = '' OR resource = $2) \
         ORDER BY ts_ms DESC, id LIMIT $3",
    )
    .bind(q.actor.unwrap_or_default())
    .bind(q.resource.unwrap_or_default())
    .bind(limit as i64)
    .fetch_all(&p.store.pool)
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        items.push(AuditEntry {
            id: r.try_get(0)?,
            time: r.try_get(1)?,
            actor: r.try_get(2)?,
            action: r.try_get(3)?,
            resource: r.try_get(4)?,
            resource_id: r.try_get(5)?,
            detail: serde_json::from_str(&r.try_get::<String, _>(6)?).unwrap_or_default(),
        });
    }
    Ok(Items::of(items))
}
