//! Businesses (TKEStack projects): a parent/child tree with per-cluster
//! quotas (a child is bounded by what its parent has left), members bound
//! with business roles, namespaces in clusters (each a Kubernetes Namespace
//! plus ResourceQuota created through `kube`), namespace migration between
//! businesses, and quota used versus hard.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::{OpenApi, ToSchema};

use super::audit::record;
use super::identity::resolve_id;
use super::{Body, Items, PREFIX};
use crate::auth::{Caller, Principal};
use crate::error::{ApiError, ApiResult, check_name, required};
use crate::kube_api::BUSINESS_LABEL;
use crate::quantity::{self, Hard};
use crate::store::{new_id, now_rfc3339};
use crate::{Platform, namespace_resource};

/// A business's quota in one cluster.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterQuota {
    /// ResourceQuota keys → quantities.
    #[schema(value_type = BTreeMap<String, String>)]
    pub hard: Hard,
}

/// Quotas by cluster id.
pub type Quotas = BTreeMap<String, ClusterQuota>;

/// A business.
#[derive(Serialize, ToSchema)]
pub struct Business {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// Parent business id.
    pub parent_id: Option<String>,
    /// Quotas by cluster id.
    pub quotas: Quotas,
    /// Child business ids.
    pub children: Vec<String>,
    /// Creation time.
    pub created_at: String,
}

/// Create or update a business.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessRequest {
    /// Unique name (create only).
    pub name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Parent business id or name (create only).
    pub parent_id: Option<String>,
    /// Quotas by cluster id or name.
    pub quotas: Option<Quotas>,
}

/// A business namespace.
#[derive(Serialize, ToSchema)]
pub struct BusinessNamespace {
    /// Id.
    pub id: String,
    /// Owning business.
    pub business_id: String,
    /// Cluster id.
    pub cluster_id: String,
    /// Kubernetes namespace name.
    pub name: String,
    /// Its ResourceQuota.
    #[schema(value_type = BTreeMap<String, String>)]
    pub hard: Hard,
    /// `Available`, `Locked`, `Failed`.
    pub phase: String,
    /// Last problem, if any.
    pub message: String,
    /// Creation time.
    pub created_at: String,
}

/// Create a namespace.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceRequest {
    /// Kubernetes namespace name.
    pub name: Option<String>,
    /// Cluster id or name.
    pub cluster_id: Option<String>,
    /// ResourceQuota; must fit in the business's quota for the cluster.
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub hard: Option<Hard>,
}

/// Move a namespace to another business.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    /// Destination business id or name.
    pub destination: Option<String>,
}

/// A namespace migration and its phases.
#[derive(Serialize, ToSchema)]
pub struct Migration {
    /// Id.
    pub id: String,
    /// Namespace id.
    pub namespace_id: String,
    /// From.
    pub source_business: String,
    /// To.
    pub destination_business: String,
    /// Final phase: `Finished` or `Failed`.
    pub phase: String,
    /// Phases passed, in order (TKEStack's `NsEmigration`).
    pub phases: Vec<String>,
    /// Problem, if failed.
    pub message: String,
}

/// A member: a user or group bound with a business role.
#[derive(Serialize, ToSchema)]
pub struct Member {
    /// Binding id.
    pub id: String,
    /// `user` or `group`.
    pub kind: String,
    /// User or group name.
    pub name: String,
    /// Business role name.
    pub role: String,
}

/// Add a member.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    /// User name (or give `group`).
    pub user: Option<String>,
    /// Group name.
    pub group: Option<String>,
    /// Business role: `business-owner`, `business-member`, `business-viewer` or custom.
    pub role: Option<String>,
}

/// Quota hard, allocated (children plus namespaces) and used, per cluster.
#[derive(Serialize, ToSchema)]
pub struct QuotaUsage {
    /// By cluster id.
    pub clusters: BTreeMap<String, ClusterUsage>,
}

/// One cluster's figures.
#[derive(Serialize, ToSchema)]
pub struct ClusterUsage {
    /// The business's quota (empty: unbounded).
    #[schema(value_type = BTreeMap<String, String>)]
    pub hard: Hard,
    /// Given to child businesses and own namespaces.
    #[schema(value_type = BTreeMap<String, String>)]
    pub allocated: Hard,
    /// ResourceQuota `status.used` summed over the namespaces of the business
    /// and its descendants.
    #[schema(value_type = BTreeMap<String, String>)]
    pub used: Hard,
}

/// Business paths for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    list_businesses,
    create_business,
    get_business,
    update_business,
    delete_business,
    list_namespaces,
    create_namespace,
    delete_namespace,
    migrate_namespace,
    list_members,
    add_member,
    remove_member,
    quota_usage
))]
pub struct BusinessDoc;

/// Routes.
pub fn routes() -> Router<Arc<Platform>> {
    let p = |s: &str| format!("{PREFIX}{s}");
    Router::new()
        .route(
            &p("/businesses"),
            get(list_businesses).post(create_business),
        )
        .route(
            &p("/businesses/{id}"),
            get(get_business)
                .put(update_business)
                .patch(update_business)
                .delete(delete_business),
        )
        .route(
            &p("/businesses/{id}/namespaces"),
            get(list_namespaces).post(create_namespace),
        )
        .route(
            &p("/businesses/{id}/namespaces/{ns}"),
            delete(delete_namespace),
        )
        .route(
            &p("/businesses/{id}/namespaces/{ns}/migrate"),
            post(migrate_namespace),
        )
        .route(
            &p("/businesses/{id}/members"),
            get(list_members).post(add_member),
        )
        .route(
            &p("/businesses/{id}/members/{member}"),
            delete(remove_member),
        )
        .route(&p("/businesses/{id}/quota"), get(quota_usage))
}

fn biz(id: &str) -> String {
    format!("business:{id}")
}

/// Resolves business `key` (id or name) and requires `action` on
/// `business:{id}{sub}` (`sub`: empty for the business itself,
/// `/namespace`, `/member`); returns the id.
async fn authorized_business(
    conn: &mut AnyConnection,
    c: &Principal,
    action: &str,
    key: &str,
    sub: &str,
) -> ApiResult<String> {
    let id = resolve_id(conn, "businesses", "business", key).await?;
    c.require(action, &format!("{}{sub}", biz(&id)))?;
    Ok(id)
}

async fn load_business(conn: &mut AnyConnection, id: &str) -> ApiResult<Business> {
    let r = sqlx::query(
        "SELECT id, name, display_name, description, parent_id, quotas, created_at \
         FROM businesses WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::not_found("business", id))?;
    let children = sqlx::query("SELECT id FROM businesses WHERE parent_id = $1 ORDER BY name")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Business {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        display_name: r.try_get(2)?,
        description: r.try_get(3)?,
        parent_id: r.try_get(4)?,
        quotas: serde_json::from_str(&r.try_get::<String, _>(5)?).map_err(ApiError::internal)?,
        children,
        created_at: r.try_get(6)?,
    })
}

/// Cluster id → the key the request used for it (id or name), so errors
/// name the field as the caller wrote it.
type KeyNames = BTreeMap<String, String>;

/// Quotas keyed by cluster id or name → by id, validated.
async fn normalise_quotas(
    conn: &mut AnyConnection,
    quotas: &Quotas,
) -> ApiResult<(Quotas, KeyNames)> {
    let mut out = Quotas::new();
    let mut names = KeyNames::new();
    for (key, q) in quotas {
        let field = format!("quotas.{key}");
        let id = match resolve_id(conn, "clusters", "cluster", key).await {
            Ok(id) => id,
            Err(_) => {
                return Err(ApiError::invalid(
                    &field,
                    format!("unknown cluster {key:?}"),
                ));
            }
        };
        quantity::validate(&format!("{field}.hard"), &q.hard)
            .map_err(|(f, m)| ApiError::invalid(&f, m))?;
        names.insert(id.clone(), key.clone());
        out.insert(id, q.clone());
    }
    Ok((out, names))
}

/// Sum of the quotas of `parent`'s children (except `skip`) and of its own
/// namespaces, per cluster, in milli-units.
async fn allocated(
    conn: &mut AnyConnection,
    parent: &str,
    skip_child: Option<&str>,
    skip_ns: Option<&str>,
) -> ApiResult<HashMap<String, BTreeMap<String, i128>>> {
    let mut out: HashMap<String, BTreeMap<String, i128>> = HashMap::new();
    let rows = sqlx::query("SELECT id, quotas FROM businesses WHERE parent_id = $1")
        .bind(parent)
        .fetch_all(&mut *conn)
        .await?;
    for r in rows {
        let id: String = r.try_get(0)?;
        if Some(id.as_str()) == skip_child {
            continue;
        }
        let q: Quotas =
            serde_json::from_str(&r.try_get::<String, _>(1)?).map_err(ApiError::internal)?;
        for (cid, cq) in q {
            quantity::add_into(out.entry(cid).or_default(), &cq.hard);
        }
    }
    let rows = sqlx::query("SELECT id, cluster_id, hard FROM namespaces WHERE business_id = $1")
        .bind(parent)
        .fetch_all(&mut *conn)
        .await?;
    for r in rows {
        let id: String = r.try_get(0)?;
        if Some(id.as_str()) == skip_ns {
            continue;
        }
        let hard: Hard =
            serde_json::from_str(&r.try_get::<String, _>(2)?).map_err(ApiError::internal)?;
        quantity::add_into(out.entry(r.try_get(1)?).or_default(), &hard);
    }
    Ok(out)
}

/// Checks that `want` (a child's or namespace's hard in `cluster`) fits in
/// what `owner` has left there. `field` prefixes the error's field.
async fn check_fits(
    conn: &mut AnyConnection,
    owner: &Business,
    cluster: &str,
    want: &Hard,
    skip_child: Option<&str>,
    skip_ns: Option<&str>,
    field: &str,
) -> ApiResult<()> {
    let Some(limit) = owner.quotas.get(cluster) else {
        if owner.parent_id.is_none() && owner.quotas.is_empty() {
            // A root business without quotas may use every cluster freely.
            return Ok(());
        }
        return Err(ApiError::invalid(
            field,
            format!(
                "business {:?} has no quota in cluster {cluster}",
                owner.name
            ),
        ));
    };
    let used = allocated(conn, &owner.id, skip_child, skip_ns).await?;
    let used = used.get(cluster).cloned().unwrap_or_default();
    for (k, v) in want {
        let Some(cap) = limit.hard.get(k) else {
            continue;
        };
        let cap = quantity::parse(cap).map_err(ApiError::internal)?;
        let v = quantity::parse(v).map_err(|e| ApiError::invalid(&format!("{field}.{k}"), e))?;
        let already = used.get(k).copied().unwrap_or(0);
        if already + v > cap {
            return Err(ApiError::invalid(
                &format!("{field}.{k}"),
                format!(
                    "{k} {} exceeds what business {:?} has left in cluster {cluster}: hard {}, already allocated {}",
                    quantity::format(v),
                    owner.name,
                    quantity::format(cap),
                    quantity::format(already)
                ),
            ));
        }
    }
    Ok(())
}

/// Checks `quotas` of business `me` (under `parent`) against the parent and
/// against what `me` has already given out.
async fn check_quotas(
    conn: &mut AnyConnection,
    me: Option<&str>,
    parent: Option<&Business>,
    quotas: &Quotas,
    names: &KeyNames,
) -> ApiResult<()> {
    let name = |cid: &String| names.get(cid).cloned().unwrap_or_else(|| cid.clone());
    if let Some(parent) = parent {
        for (cid, q) in quotas {
            let f = format!("quotas.{}.hard", name(cid));
            check_fits(conn, parent, cid, &q.hard, me, None, &f).await?;
        }
    }
    if let Some(me) = me {
        let given = allocated(conn, me, None, None).await?;
        for (cid, used) in &given {
            let Some(q) = quotas.get(cid) else {
                if !quotas.is_empty() || parent.is_some() {
                    return Err(ApiError::invalid(
                        &format!("quotas.{cid}"),
                        "the business still has children or namespaces using this cluster",
                    ));
                }
                continue;
            };
            for (k, cap) in &q.hard {
                let cap = quantity::parse(cap).map_err(ApiError::internal)?;
                if let Some(u) = used.get(k)
                    && *u > cap
                {
                    return Err(ApiError::invalid(
                        &format!("quotas.{}.hard.{k}", name(cid)),
                        format!(
                            "{k} is below what is already allocated ({})",
                            quantity::format(*u)
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Lists the businesses the caller may see.
#[utoipa::path(get, path = "/api/platform/v1/businesses", tag = "businesses",
    responses((status = 200, body = Items<Business>)))]
pub async fn list_businesses(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
) -> ApiResult<Json<Items<Business>>> {
    let mut conn = p.store.pool.acquire().await?;
    let ids: Vec<String> = sqlx::query("SELECT id FROM businesses ORDER BY name")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut items = Vec::new();
    for id in ids {
        if c.can("getBusiness", &biz(&id)) {
            items.push(load_business(&mut conn, &id).await?);
        }
    }
    Ok(Items::of(items))
}

/// Creates a business (a child when `parent_id` is given).
#[utoipa::path(post, path = "/api/platform/v1/businesses", tag = "businesses", request_body = BusinessRequest,
    responses((status = 201, body = Business), (status = 400, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn create_business(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Body(req): Body<BusinessRequest>,
) -> ApiResult<(StatusCode, Json<Business>)> {
    let name = required("name", &req.name)?.to_string();
    check_name("name", &name)?;
    let mut tx = p.store.pool.begin().await?;
    let parent = match &req.parent_id {
        None => {
            c.require("createBusiness", "business:*")?;
            None
        }
        Some(key) => {
            let pid = resolve_id(&mut tx, "businesses", "business", key)
                .await
                .map_err(|_| ApiError::invalid("parent_id", format!("unknown business {key:?}")))?;
            c.require("createBusiness", &format!("business:{pid}/business"))?;
            Some(load_business(&mut tx, &pid).await?)
        }
    };
    let (quotas, names) =
        normalise_quotas(&mut tx, &req.quotas.clone().unwrap_or_default()).await?;
    if sqlx::query("SELECT 1 FROM businesses WHERE name = $1")
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "name",
            format!("business {name:?} already exists"),
        ));
    }
    check_quotas(&mut tx, None, parent.as_ref(), &quotas, &names).await?;
    let id = new_id();
    sqlx::query(
        "INSERT INTO businesses (id, name, display_name, description, parent_id, quotas, \
         created_at) VALUES ($1,$2,$3,$4,$5,$6,$7)",
    )
    .bind(&id)
    .bind(&name)
    .bind(req.display_name.clone().unwrap_or_else(|| name.clone()))
    .bind(req.description.clone().unwrap_or_default())
    .bind(parent.as_ref().map(|b| b.id.clone()))
    .bind(serde_json::to_string(&quotas).map_err(ApiError::internal)?)
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?;
    record(&mut tx, &c, "createBusiness", "business", &id,
        serde_json::json!({"name": name, "parent_id": parent.as_ref().map(|b| &b.id), "quotas": quotas})).await?;
    let out = load_business(&mut tx, &id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// One business by id or name.
#[utoipa::path(get, path = "/api/platform/v1/businesses/{id}", tag = "businesses",
    responses((status = 200, body = Business), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_business(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Business>> {
    let mut conn = p.store.pool.acquire().await?;
    let id = authorized_business(&mut conn, &c, "getBusiness", &key, "").await?;
    Ok(Json(load_business(&mut conn, &id).await?))
}

/// Updates display name, description or quotas.
#[utoipa::path(put, path = "/api/platform/v1/businesses/{id}", tag = "businesses", request_body = BusinessRequest,
    responses((status = 200, body = Business), (status = 400, body = crate::error::ErrorBody)))]
pub async fn update_business(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
    Body(req): Body<BusinessRequest>,
) -> ApiResult<Json<Business>> {
    let mut tx = p.store.pool.begin().await?;
    let id = authorized_business(&mut tx, &c, "updateBusiness", &key, "").await?;
    let cur = load_business(&mut tx, &id).await?;
    if req.name.as_ref().is_some_and(|n| *n != cur.name) {
        return Err(ApiError::invalid(
            "name",
            "a business's name cannot be changed",
        ));
    }
    if req.parent_id.is_some() && req.parent_id != cur.parent_id {
        return Err(ApiError::invalid(
            "parent_id",
            "a business's parent cannot be changed",
        ));
    }
    let quotas = match &req.quotas {
        Some(q) => {
            let (q, names) = normalise_quotas(&mut tx, q).await?;
            let parent = match &cur.parent_id {
                Some(pid) => Some(load_business(&mut tx, pid).await?),
                None => None,
            };
            check_quotas(&mut tx, Some(&id), parent.as_ref(), &q, &names).await?;
            q
        }
        None => cur.quotas.clone(),
    };
    sqlx::query(
        "UPDATE businesses SET display_name = $2, description = $3, quotas = $4 WHERE id = $1",
    )
    .bind(&id)
    .bind(req.display_name.clone().unwrap_or(cur.display_name))
    .bind(req.description.clone().unwrap_or(cur.description))
    .bind(serde_json::to_string(&quotas).map_err(ApiError::internal)?)
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        &c,
        "updateBusiness",
        "business",
        &id,
        serde_json::json!({"quotas": req.quotas}),
    )
    .await?;
    let out = load_business(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(out))
}

/// Deletes a business without children or namespaces.
#[utoipa::path(delete, path = "/api/platform/v1/businesses/{id}", tag = "businesses",
    responses((status = 204), (status = 409, body = crate::error::ErrorBody)))]
pub async fn delete_business(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = p.store.pool.begin().await?;
    let id = authorized_business(&mut tx, &c, "deleteBusiness", &key, "").await?;
    let b = load_business(&mut tx, &id).await?;
    if !b.children.is_empty() {
        return Err(ApiError::conflict(
            "id",
            "the business has child businesses",
        ));
    }
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM namespaces WHERE business_id = $1")
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    if n > 0 {
        return Err(ApiError::conflict(
            "id",
            format!("the business has {n} namespaces"),
        ));
    }
    sqlx::query("DELETE FROM role_bindings WHERE business_id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM businesses WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        &c,
        "deleteBusiness",
        "business",
        &id,
        serde_json::json!({"name": b.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn load_namespace(conn: &mut AnyConnection, id: &str) -> ApiResult<BusinessNamespace> {
    let r = sqlx::query(
        "SELECT id, business_id, cluster_id, name, hard, phase, message, created_at \
         FROM namespaces WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found("namespace", id))?;
    Ok(BusinessNamespace {
        id: r.try_get(0)?,
        business_id: r.try_get(1)?,
        cluster_id: r.try_get(2)?,
        name: r.try_get(3)?,
        hard: serde_json::from_str(&r.try_get::<String, _>(4)?).map_err(ApiError::internal)?,
        phase: r.try_get(5)?,
        message: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}

async fn namespace_ids(conn: &mut AnyConnection, business: &str) -> ApiResult<Vec<String>> {
    Ok(
        sqlx::query("SELECT id FROM namespaces WHERE business_id = $1 ORDER BY cluster_id, name")
            .bind(business)
            .fetch_all(conn)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?,
    )
}

/// Namespace by id, or by `cluster/name`, within a business.
async fn resolve_namespace(
    conn: &mut AnyConnection,
    business: &str,
    key: &str,
) -> ApiResult<BusinessNamespace> {
    for id in namespace_ids(conn, business).await? {
        let ns = load_namespace(conn, &id).await?;
        if ns.id == key || format!("{}/{}", ns.cluster_id, ns.name) == key || ns.name == key {
            return Ok(ns);
        }
    }
    Err(ApiError::not_found("namespace", key))
}

/// The business's namespaces.
#[utoipa::path(get, path = "/api/platform/v1/businesses/{id}/namespaces", tag = "businesses",
    responses((status = 200, body = Items<BusinessNamespace>)))]
pub async fn list_namespaces(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Items<BusinessNamespace>>> {
    let mut conn = p.store.pool.acquire().await?;
    let id = authorized_business(&mut conn, &c, "listNamespace", &key, "/namespace").await?;
    let mut items = Vec::new();
    for nid in namespace_ids(&mut conn, &id).await? {
        items.push(load_namespace(&mut conn, &nid).await?);
    }
    Ok(Items::of(items))
}

/// Creates a namespace: checks the quota, then creates the Namespace and
/// its ResourceQuota in the cluster, then records it.
#[utoipa::path(post, path = "/api/platform/v1/businesses/{id}/namespaces", tag = "businesses",
    request_body = NamespaceRequest,
    responses((status = 201, body = BusinessNamespace), (status = 400, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 502, body = crate::error::ErrorBody)))]
pub async fn create_namespace(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
    Body(req): Body<NamespaceRequest>,
) -> ApiResult<(StatusCode, Json<BusinessNamespace>)> {
    let name = required("name", &req.name)?.to_string();
    check_name("name", &name)?;
    let cluster_key = required("cluster_id", &req.cluster_id)?.to_string();
    let hard = req.hard.clone().unwrap_or_default();
    quantity::validate("hard", &hard).map_err(|(f, m)| ApiError::invalid(&f, m))?;
    let mut tx = p.store.pool.begin().await?;
    let id = authorized_business(&mut tx, &c, "createNamespace", &key, "/namespace").await?;
    let cluster = resolve_id(&mut tx, "clusters", "cluster", &cluster_key)
        .await
        .map_err(|_| ApiError::invalid("cluster_id", format!("unknown cluster {cluster_key:?}")))?;
    if sqlx::query("SELECT 1 FROM namespaces WHERE cluster_id = $1 AND name = $2")
        .bind(&cluster)
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "name",
            format!("namespace {name:?} already belongs to a business in this cluster"),
        ));
    }
    let business = load_business(&mut tx, &id).await?;
    check_fits(&mut tx, &business, &cluster, &hard, None, None, "hard").await?;
    let api = p.cluster_api(&cluster).await?;
    let labels = BTreeMap::from([(BUSINESS_LABEL.to_string(), id.clone())]);
    api.apply_namespace(&name, labels)
        .await
        .map_err(|e| ApiError::upstream(format!("creating namespace in the cluster: {e:#}")))?;
    if !hard.is_empty() {
        api.apply_quota(&name, &hard)
            .await
            .map_err(|e| ApiError::upstream(format!("creating the ResourceQuota: {e:#}")))?;
    }
    let nid = new_id();
    sqlx::query(
        "INSERT INTO namespaces (id, business_id, cluster_id, name, hard, phase, message, \
         created_at) VALUES ($1,$2,$3,$4,$5,'Available','',$6)",
    )
    .bind(&nid)
    .bind(&id)
    .bind(&cluster)
    .bind(&name)
    .bind(serde_json::to_string(&hard).map_err(ApiError::internal)?)
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        &c,
        "createNamespace",
        "namespace",
        &nid,
        serde_json::json!({"business_id": id, "cluster_id": cluster, "name": name, "hard": hard}),
    )
    .await?;
    let out = load_namespace(&mut tx, &nid).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Deletes a namespace from the cluster and the business.
#[utoipa::path(delete, path = "/api/platform/v1/businesses/{id}/namespaces/{ns}", tag = "businesses",
    responses((status = 204), (status = 502, body = crate::error::ErrorBody)))]
pub async fn delete_namespace(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path((key, ns)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut tx = p.store.pool.begin().await?;
    let id = resolve_id(&mut tx, "businesses", "business", &key).await?;
    let n = resolve_namespace(&mut tx, &id, &ns).await?;
    c.require(
        "deleteNamespace",
        &namespace_resource(&id, &n.cluster_id, &n.name),
    )?;
    let api = p.cluster_api(&n.cluster_id).await?;
    api.delete_namespace(&n.name)
        .await
        .map_err(|e| ApiError::upstream(format!("deleting the namespace: {e:#}")))?;
    sqlx::query("DELETE FROM namespaces WHERE id = $1")
        .bind(&n.id)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        &c,
        "deleteNamespace",
        "namespace",
        &n.id,
        serde_json::json!({"business_id": id, "cluster_id": n.cluster_id, "name": n.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves a namespace to another business through TKEStack's phases:
/// Pending → OldOneLocked → OldOneDetached → NewOneCreated →
/// OldOneTerminating → Finished (or Failed, restoring the namespace).
#[utoipa::path(post, path = "/api/platform/v1/businesses/{id}/namespaces/{ns}/migrate", tag = "businesses",
    request_body = MigrateRequest,
    responses((status = 200, body = Migration), (status = 400, body = crate::error::ErrorBody)))]
pub async fn migrate_namespace(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path((key, ns)): Path<(String, String)>,
    Body(req): Body<MigrateRequest>,
) -> ApiResult<Json<Migration>> {
    let dest_key = required("destination", &req.destination)?.to_string();
    let mut conn = p.store.pool.acquire().await?;
    let id = resolve_id(&mut conn, "businesses", "business", &key).await?;
    let n = resolve_namespace(&mut conn, &id, &ns).await?;
    c.require(
        "updateNamespace",
        &namespace_resource(&id, &n.cluster_id, &n.name),
    )?;
    let dest = resolve_id(&mut conn, "businesses", "business", &dest_key)
        .await
        .map_err(|_| ApiError::invalid("destination", format!("unknown business {dest_key:?}")))?;
    if dest == id {
        return Err(ApiError::invalid(
            "destination",
            "the namespace is already in that business",
        ));
    }
    c.require("createNamespace", &format!("business:{dest}/namespace"))?;
    let dest_b = load_business(&mut conn, &dest).await?;
    check_fits(
        &mut conn,
        &dest_b,
        &n.cluster_id,
        &n.hard,
        None,
        None,
        "destination",
    )
    .await?;
    drop(conn);

    let mid = new_id();
    let mut phases = vec!["Pending".to_string()];
    sqlx::query(
        "INSERT INTO ns_migrations (id, namespace_id, source_business, destination_business, \
         phase, message, created_at, updated_at) VALUES ($1,$2,$3,$4,'Pending','',$5,$5)",
    )
    .bind(&mid)
    .bind(&n.id)
    .bind(&id)
    .bind(&dest)
    .bind(now_rfc3339())
    .execute(&p.store.pool)
    .await?;
    let set_phase = |phase: &'static str, ns_phase: &'static str| {
        let p = p.clone();
        let (mid, nid) = (mid.clone(), n.id.clone());
        async move {
            sqlx::query("UPDATE ns_migrations SET phase = $2, updated_at = $3 WHERE id = $1")
                .bind(&mid)
                .bind(phase)
                .bind(now_rfc3339())
                .execute(&p.store.pool)
                .await?;
            sqlx::query("UPDATE namespaces SET phase = $2 WHERE id = $1")
                .bind(&nid)
                .bind(ns_phase)
                .execute(&p.store.pool)
                .await?;
            Ok::<_, ApiError>(())
        }
    };
    set_phase("OldOneLocked", "Locked").await?;
    phases.push("OldOneLocked".into());
    phases.push("OldOneDetached".into());
    let api = p.cluster_api(&n.cluster_id).await?;
    let labels = BTreeMap::from([(BUSINESS_LABEL.to_string(), dest.clone())]);
    if let Err(e) = api.apply_namespace(&n.name, labels).await {
        let msg = format!("relabelling the namespace: {e:#}");
        sqlx::query("UPDATE ns_migrations SET phase = 'Failed', message = $2 WHERE id = $1")
            .bind(&mid)
            .bind(&msg)
            .execute(&p.store.pool)
            .await?;
        set_phase("Failed", "Available").await?;
        return Err(ApiError::upstream(msg));
    }
    let mut tx = p.store.pool.begin().await?;
    sqlx::query("UPDATE namespaces SET business_id = $2, phase = 'Available' WHERE id = $1")
        .bind(&n.id)
        .bind(&dest)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE ns_migrations SET phase = 'Finished', updated_at = $2 WHERE id = $1")
        .bind(&mid)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        &c,
        "migrateNamespace",
        "namespace",
        &n.id,
        serde_json::json!({"from": id, "to": dest, "cluster_id": n.cluster_id, "name": n.name}),
    )
    .await?;
    tx.commit().await?;
    phases.extend(["NewOneCreated", "OldOneTerminating", "Finished"].map(String::from));
    Ok(Json(Migration {
        id: mid,
        namespace_id: n.id,
        source_business: id,
        destination_business: dest,
        phase: "Finished".into(),
        phases,
        message: String::new(),
    }))
}

/// The business's members (direct bindings).
#[utoipa::path(get, path = "/api/platform/v1/businesses/{id}/members", tag = "businesses",
    responses((status = 200, body = Items<Member>)))]
pub async fn list_members(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Items<Member>>> {
    let mut conn = p.store.pool.acquire().await?;
    let id = authorized_business(&mut conn, &c, "listMember", &key, "/member").await?;
    Ok(Items::of(members(&mut conn, &id).await?))
}

async fn members(conn: &mut AnyConnection, business: &str) -> ApiResult<Vec<Member>> {
    let rows = sqlx::query(
        "SELECT rb.id, rb.subject_kind, COALESCE(u.name, g.name), r.name FROM role_bindings rb \
         JOIN roles r ON r.id = rb.role_id \
         LEFT JOIN users u ON rb.subject_kind = 'user' AND u.id = rb.subject_id \
         LEFT JOIN groups_ g ON rb.subject_kind = 'group' AND g.id = rb.subject_id \
         WHERE rb.business_id = $1 ORDER BY rb.subject_kind, r.name",
    )
    .bind(business)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Member {
                id: r.try_get(0)?,
                kind: r.try_get(1)?,
                name: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                role: r.try_get(3)?,
            })
        })
        .collect()
}

/// Binds a user or group to the business with a business role.
#[utoipa::path(post, path = "/api/platform/v1/businesses/{id}/members", tag = "businesses",
    request_body = MemberRequest,
    responses((status = 201, body = Member), (status = 400, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn add_member(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
    Body(req): Body<MemberRequest>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    let role = required("role", &req.role)?.to_string();
    let (kind, subject_name, table, field) = match (&req.user, &req.group) {
        (Some(u), None) => ("user", u.clone(), "users", "user"),
        (None, Some(g)) => ("group", g.clone(), "groups_", "group"),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "group",
                "give either user or group, not both",
            ));
        }
        (None, None) => return Err(ApiError::invalid("user", "user (or group) is required")),
    };
    let mut tx = p.store.pool.begin().await?;
    let id = authorized_business(&mut tx, &c, "createMember", &key, "/member").await?;
    let sql = format!("SELECT id FROM {table} WHERE name = $1");
    let subject: String = sqlx::query(&sql)
        .bind(&subject_name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::invalid(field, format!("unknown {field} {subject_name:?}")))?
        .try_get(0)?;
    let r = sqlx::query("SELECT id, scope FROM roles WHERE name = $1")
        .bind(&role)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::invalid("role", format!("unknown role {role:?}")))?;
    if r.try_get::<String, _>(1)? != "business" {
        return Err(ApiError::invalid(
            "role",
            format!("role {role:?} is not a business role"),
        ));
    }
    let role_id: String = r.try_get(0)?;
    if sqlx::query(
        "SELECT 1 FROM role_bindings WHERE business_id = $1 AND subject_kind = $2 \
         AND subject_id = $3 AND role_id = $4",
    )
    .bind(&id)
    .bind(kind)
    .bind(&subject)
    .bind(&role_id)
    .fetch_optional(&mut *tx)
    .await?
    .is_some()
    {
        return Err(ApiError::conflict(
            field,
            format!("{subject_name:?} already has role {role:?}"),
        ));
    }
    let bid = new_id();
    sqlx::query(
        "INSERT INTO role_bindings (id, role_id, subject_kind, subject_id, business_id, \
         created_at) VALUES ($1,$2,$3,$4,$5,$6)",
    )
    .bind(&bid)
    .bind(&role_id)
    .bind(kind)
    .bind(&subject)
    .bind(&id)
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        &c,
        "createMember",
        "business",
        &id,
        serde_json::json!({"kind": kind, "name": subject_name, "role": role}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Member {
            id: bid,
            kind: kind.into(),
            name: subject_name,
            role,
        }),
    ))
}

/// Removes a member binding (by binding id, or user/group name: all its roles).
#[utoipa::path(delete, path = "/api/platform/v1/businesses/{id}/members/{member}", tag = "businesses",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove_member(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path((key, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut tx = p.store.pool.begin().await?;
    let id = authorized_business(&mut tx, &c, "deleteMember", &key, "/member").await?;
    let ids: Vec<String> = members(&mut tx, &id)
        .await?
        .into_iter()
        .filter(|m| m.id == member || m.name == member)
        .map(|m| m.id)
        .collect();
    if ids.is_empty() {
        return Err(ApiError::not_found("member", &member));
    }
    for b in &ids {
        sqlx::query("DELETE FROM role_bindings WHERE id = $1")
            .bind(b)
            .execute(&mut *tx)
            .await?;
    }
    record(
        &mut tx,
        &c,
        "deleteMember",
        "business",
        &id,
        serde_json::json!({"member": member}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Quota hard, allocated and used per cluster.
#[utoipa::path(get, path = "/api/platform/v1/businesses/{id}/quota", tag = "businesses",
    responses((status = 200, body = QuotaUsage)))]
pub async fn quota_usage(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<QuotaUsage>> {
    let mut conn = p.store.pool.acquire().await?;
    let id = authorized_business(&mut conn, &c, "getBusiness", &key, "").await?;
    let b = load_business(&mut conn, &id).await?;
    let alloc = allocated(&mut conn, &id, None, None).await?;
    drop(conn);
    let tree = p.business_tree().await?;
    let scope = tree.self_and_descendants(&id);
    let mut used: HashMap<String, BTreeMap<String, i128>> = HashMap::new();
    for ns in p.namespace_index().await? {
        if !scope.contains(&ns.business_id) {
            continue;
        }
        let api = p.cluster_api(&ns.cluster_id).await?;
        match api.quota_used(&ns.name).await {
            Ok(u) => quantity::add_into(used.entry(ns.cluster_id.clone()).or_default(), &u),
            Err(e) => {
                tracing::warn!(cluster = %ns.cluster_id, namespace = %ns.name, error = %e, "quota usage unavailable")
            }
        }
    }
    let fmt = |m: Option<&BTreeMap<String, i128>>| -> Hard {
        m.map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), quantity::format(*v)))
                .collect()
        })
        .unwrap_or_default()
    };
    let mut clusters: Vec<String> = b.quotas.keys().cloned().collect();
    clusters.extend(alloc.keys().cloned());
    clusters.extend(used.keys().cloned());
    clusters.sort();
    clusters.dedup();
    let out = clusters
        .into_iter()
        .map(|cid| {
            let u = ClusterUsage {
                hard: b
                    .quotas
                    .get(&cid)
                    .map(|q| q.hard.clone())
                    .unwrap_or_default(),
                allocated: fmt(alloc.get(&cid)),
                used: fmt(used.get(&cid)),
            };
            (cid, u)
        })
        .collect();
    Ok(Json(QuotaUsage { clusters: out }))
}

/// Used by handlers elsewhere: whether `c` may see business `id`.
pub fn can_see(c: &Principal, id: &str) -> bool {
    c.can("getBusiness", &biz(id))
}
