//! Clusters: import (address, bearer token, CA; reachability and version
//! verified, nothing installed in the cluster), health, and read-only views
//! of nodes, namespaces, workloads, pods and events through `kube`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::audit::record;
use super::identity::{resolve_authorized, resolve_id};
use super::{Body, Items, PREFIX};
use crate::Platform;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, check_name, required};
use crate::kube_api::{ClusterApi, Credential, View};
use crate::store::{new_id, now_rfc3339};

/// How long import waits for the API server to answer `/version`.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// A cluster condition.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct Condition {
    /// `Reachable`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True` or `False`.
    pub status: String,
    /// Why.
    pub message: String,
    /// When last checked (RFC 3339).
    pub last_probe_time: String,
}

/// An imported cluster (credentials are never returned).
#[derive(Serialize, ToSchema)]
pub struct Cluster {
    /// Id (also the `cluster_id` label on its metrics, logs and events).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// API server address.
    pub api_server: String,
    /// Kubernetes version (`gitVersion`).
    pub version: String,
    /// `Running`, `Failed` or `Unknown`.
    pub phase: String,
    /// Health conditions.
    pub conditions: Vec<Condition>,
    /// When the API server last answered (RFC 3339).
    pub last_seen: Option<String>,
    /// Import time.
    pub created_at: String,
}

/// Import or update a cluster.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterRequest {
    /// Unique name (create only).
    pub name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// `https://host:port` of the API server.
    pub api_server: Option<String>,
    /// Bearer token of an admin service account.
    pub token: Option<String>,
    /// PEM CA certificate (kubeconfig `certificate-authority-data`, decoded).
    pub ca_cert: Option<String>,
    /// Skip TLS verification (testing only).
    pub insecure_skip_tls_verify: Option<bool>,
}

/// Namespace filter of the read-only views.
#[derive(Deserialize, IntoParams)]
pub struct ViewQuery {
    /// Only this namespace.
    pub namespace: Option<String>,
}

/// Cluster paths for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    list_clusters,
    create_cluster,
    get_cluster,
    update_cluster,
    delete_cluster,
    nodes,
    namespaces,
    workloads,
    pods,
    events
))]
pub struct ClusterDoc;

/// Routes.
pub fn routes() -> Router<Arc<Platform>> {
    let p = |s: &str| format!("{PREFIX}{s}");
    Router::new()
        .route(&p("/clusters"), get(list_clusters).post(create_cluster))
        .route(
            &p("/clusters/{id}"),
            get(get_cluster)
                .put(update_cluster)
                .patch(update_cluster)
                .delete(delete_cluster),
        )
        .route(&p("/clusters/{id}/nodes"), get(nodes))
        .route(&p("/clusters/{id}/namespaces"), get(namespaces))
        .route(&p("/clusters/{id}/workloads"), get(workloads))
        .route(&p("/clusters/{id}/pods"), get(pods))
        .route(&p("/clusters/{id}/events"), get(events))
}

/// Loads a cluster row.
pub async fn load_cluster(conn: &mut AnyConnection, id: &str) -> ApiResult<Cluster> {
    let r = sqlx::query(
        "SELECT id, name, display_name, api_server, version, phase, conditions, last_seen, \
         created_at FROM clusters WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found("cluster", id))?;
    Ok(Cluster {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        display_name: r.try_get(2)?,
        api_server: r.try_get(3)?,
        version: r.try_get(4)?,
        phase: r.try_get(5)?,
        conditions: serde_json::from_str(&r.try_get::<String, _>(6)?).unwrap_or_default(),
        last_seen: r.try_get(7)?,
        created_at: r.try_get(8)?,
    })
}

impl Platform {
    /// The decrypted credential of a cluster.
    pub async fn cluster_credential(&self, id: &str) -> ApiResult<Credential> {
        let row = sqlx::query("SELECT credential FROM clusters WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.store.pool)
            .await?
            .ok_or_else(|| ApiError::not_found("cluster", id))?;
        let sealed: String = row.try_get(0)?;
        let plain = self.secrets.open(&sealed)?;
        serde_json::from_slice(&plain).map_err(ApiError::internal)
    }

    /// A Kubernetes client for a cluster.
    pub async fn cluster_api(&self, id: &str) -> ApiResult<Arc<dyn ClusterApi>> {
        let cred = self.cluster_credential(id).await?;
        Ok(self.connector.get(id, &cred)?)
    }
}

/// Connects and asks for `/version`; errors name the field at fault.
async fn verify(cred: &Credential) -> ApiResult<String> {
    if !(cred.api_server.starts_with("https://") || cred.api_server.starts_with("http://")) {
        return Err(ApiError::invalid(
            "api_server",
            "api_server must be an https:// URL",
        ));
    }
    let api = crate::kube_api::KubeCluster::connect(cred).map_err(|e| {
        let msg = format!("{e:#}");
        let field = if msg.starts_with("ca_cert") {
            "ca_cert"
        } else {
            "api_server"
        };
        ApiError::invalid(field, msg)
    })?;
    match tokio::time::timeout(VERIFY_TIMEOUT, api.version()).await {
        Err(_) => Err(ApiError::invalid(
            "api_server",
            "API server did not answer in time",
        )),
        Ok(Err(e)) => {
            let msg = format!("{e:#}");
            let field =
                if msg.contains("401") || msg.contains("Unauthorized") || msg.contains("403") {
                    "token"
                } else {
                    "api_server"
                };
            Err(ApiError::invalid(
                field,
                format!("cannot verify the cluster: {msg}"),
            ))
        }
        Ok(Ok(v)) => Ok(v),
    }
}

fn reachable(message: &str, ok: bool) -> Vec<Condition> {
    vec![Condition {
        kind: "Reachable".into(),
        status: if ok { "True" } else { "False" }.into(),
        message: message.into(),
        last_probe_time: now_rfc3339(),
    }]
}

/// Lists clusters.
#[utoipa::path(get, path = "/api/platform/v1/clusters", tag = "clusters",
    responses((status = 200, body = Items<Cluster>)))]
pub async fn list_clusters(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
) -> ApiResult<Json<Items<Cluster>>> {
    let mut conn = p.store.pool.acquire().await?;
    let ids: Vec<String> = sqlx::query("SELECT id FROM clusters ORDER BY name")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut items = Vec::new();
    for id in ids {
        if c.can("getCluster", &format!("cluster:{id}")) {
            items.push(load_cluster(&mut conn, &id).await?);
        }
    }
    Ok(Items::of(items))
}

/// Imports a cluster after verifying it answers with its credentials.
#[utoipa::path(post, path = "/api/platform/v1/clusters", tag = "clusters", request_body = ClusterRequest,
    responses((status = 201, body = Cluster), (status = 400, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn create_cluster(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Body(req): Body<ClusterRequest>,
) -> ApiResult<(StatusCode, Json<Cluster>)> {
    c.require("createCluster", "cluster:*")?;
    let name = required("name", &req.name)?.to_string();
    check_name("name", &name)?;
    let cred = Credential {
        api_server: required("api_server", &req.api_server)?
            .trim_end_matches('/')
            .to_string(),
        token: required("token", &req.token)?.to_string(),
        ca_cert: req.ca_cert.clone(),
        insecure_skip_tls_verify: req.insecure_skip_tls_verify.unwrap_or(false),
        token_file: None,
    };
    if sqlx::query("SELECT 1 FROM clusters WHERE name = $1")
        .bind(&name)
        .fetch_optional(&p.store.pool)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "name",
            format!("cluster {name:?} already exists"),
        ));
    }
    let version = verify(&cred).await?;
    let id = new_id();
    let sealed = p
        .secrets
        .seal(&serde_json::to_vec(&cred).map_err(ApiError::internal)?);
    let mut tx = p.store.pool.begin().await?;
    sqlx::query(
        "INSERT INTO clusters (id, name, display_name, api_server, credential, version, phase, \
         conditions, last_seen, created_at) VALUES ($1,$2,$3,$4,$5,$6,'Running',$7,$8,$9)",
    )
    .bind(&id)
    .bind(&name)
    .bind(req.display_name.clone().unwrap_or_else(|| name.clone()))
    .bind(&cred.api_server)
    .bind(sealed)
    .bind(&version)
    .bind(
        serde_json::to_string(&reachable("verified on import", true))
            .map_err(ApiError::internal)?,
    )
    .bind(now_rfc3339())
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        &c,
        "createCluster",
        "cluster",
        &id,
        serde_json::json!({"name": name, "api_server": cred.api_server, "version": version}),
    )
    .await?;
    let out = load_cluster(&mut tx, &id).await?;
    tx.commit().await?;
    p.clusters_changed();
    Ok((StatusCode::CREATED, Json(out)))
}

/// One cluster by id or name.
#[utoipa::path(get, path = "/api/platform/v1/clusters/{id}", tag = "clusters",
    responses((status = 200, body = Cluster), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_cluster(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Cluster>> {
    let mut conn = p.store.pool.acquire().await?;
    let id = resolve_authorized(&mut conn, &c, "getCluster", "clusters", "cluster", &key).await?;
    Ok(Json(load_cluster(&mut conn, &id).await?))
}

/// Updates display name or credentials (re-verified).
#[utoipa::path(put, path = "/api/platform/v1/clusters/{id}", tag = "clusters", request_body = ClusterRequest,
    responses((status = 200, body = Cluster), (status = 400, body = crate::error::ErrorBody)))]
pub async fn update_cluster(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
    Body(req): Body<ClusterRequest>,
) -> ApiResult<Json<Cluster>> {
    let id = {
        let mut conn = p.store.pool.acquire().await?;
        resolve_id(&mut conn, "clusters", "cluster", &key).await?
    };
    c.require("updateCluster", &format!("cluster:{id}"))?;
    let mut cred = p.cluster_credential(&id).await?;
    let current = load_cluster(&mut *p.store.pool.acquire().await?, &id).await?;
    if req.name.as_ref().is_some_and(|n| *n != current.name) {
        return Err(ApiError::invalid(
            "name",
            "a cluster's name cannot be changed",
        ));
    }
    let cred_changed = req.api_server.is_some()
        || req.token.is_some()
        || req.ca_cert.is_some()
        || req.insecure_skip_tls_verify.is_some();
    if let Some(a) = &req.api_server {
        cred.api_server = a.trim_end_matches('/').to_string();
    }
    if let Some(t) = &req.token {
        cred.token = t.clone();
        cred.token_file = None;
    }
    if let Some(ca) = &req.ca_cert {
        cred.ca_cert = Some(ca.clone());
    }
    if let Some(i) = req.insecure_skip_tls_verify {
        cred.insecure_skip_tls_verify = i;
    }
    let version = if cred_changed {
        verify(&cred).await?
    } else {
        current.version.clone()
    };
    let mut tx = p.store.pool.begin().await?;
    sqlx::query(
        "UPDATE clusters SET display_name = $2, api_server = $3, credential = $4, version = $5 \
         WHERE id = $1",
    )
    .bind(&id)
    .bind(req.display_name.clone().unwrap_or(current.display_name))
    .bind(&cred.api_server)
    .bind(
        p.secrets
            .seal(&serde_json::to_vec(&cred).map_err(ApiError::internal)?),
    )
    .bind(&version)
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        &c,
        "updateCluster",
        "cluster",
        &id,
        serde_json::json!({"credentials_changed": cred_changed, "display_name": req.display_name}),
    )
    .await?;
    let out = load_cluster(&mut tx, &id).await?;
    tx.commit().await?;
    p.connector.remove(&id);
    p.clusters_changed();
    Ok(Json(out))
}

/// Removes a cluster from the platform (nothing changes in the cluster).
/// Refused while businesses have namespaces in it.
#[utoipa::path(delete, path = "/api/platform/v1/clusters/{id}", tag = "clusters",
    responses((status = 204), (status = 409, body = crate::error::ErrorBody)))]
pub async fn delete_cluster(
    State(p): State<Arc<Platform>>,
    Caller(c): Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = p.store.pool.begin().await?;
    let id = resolve_authorized(&mut tx, &c, "deleteCluster", "clusters", "cluster", &key).await?;
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM namespaces WHERE cluster_id = $1")
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    if n > 0 {
        return Err(ApiError::conflict(
            "id",
            format!("cluster has {n} business namespaces; delete or migrate them first"),
        ));
    }
    sqlx::query("DELETE FROM clusters WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        &c,
        "deleteCluster",
        "cluster",
        &id,
        serde_json::json!({"key": key}),
    )
    .await?;
    tx.commit().await?;
    p.connector.remove(&id);
    p.clusters_changed();
    Ok(StatusCode::NO_CONTENT)
}

async fn view(
    p: Arc<Platform>,
    c: crate::auth::Principal,
    key: String,
    ns: Option<String>,
    v: View,
    action: &str,
) -> ApiResult<Json<Items<serde_json::Value>>> {
    let id = {
        let mut conn = p.store.pool.acquire().await?;
        resolve_id(&mut conn, "clusters", "cluster", &key).await?
    };
    let whole = c.can(action, &format!("cluster:{id}"));
    if !whole {
        // Business members may look inside their own namespaces.
        let Some(n) = ns.as_deref() else {
            return Err(ApiError::forbidden(action, &format!("cluster:{id}")));
        };
        let res = p
            .namespace_resource(&id, n)
            .await?
            .ok_or_else(|| ApiError::forbidden(action, &format!("cluster:{id}")))?;
        c.require(action, &res)?;
    }
    let api = p.cluster_api(&id).await?;
    let items = api
        .list(v, ns.as_deref())
        .await
        .map_err(|e| ApiError::upstream(format!("cluster {key}: {e:#}")))?;
    Ok(Items::of(items))
}

macro_rules! view_handler {
    ($name:ident, $path:literal, $view:expr, $action:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(get, path = $path, tag = "clusters", params(ViewQuery),
                                    responses((status = 200, body = Items<serde_json::Value>)))]
        pub async fn $name(
            State(p): State<Arc<Platform>>,
            Caller(c): Caller,
            Path(key): Path<String>,
            Query(q): Query<ViewQuery>,
        ) -> ApiResult<Json<Items<serde_json::Value>>> {
            view(p, c, key, q.namespace, $view, $action).await
        }
    };
}

view_handler!(
    nodes,
    "/api/platform/v1/clusters/{id}/nodes",
    View::Nodes,
    "listNode",
    "The cluster's Nodes."
);
view_handler!(
    namespaces,
    "/api/platform/v1/clusters/{id}/namespaces",
    View::Namespaces,
    "listNamespace",
    "The cluster's Namespaces."
);
view_handler!(
    workloads,
    "/api/platform/v1/clusters/{id}/workloads",
    View::Workloads,
    "listWorkload",
    "Deployments, StatefulSets and DaemonSets."
);
view_handler!(
    pods,
    "/api/platform/v1/clusters/{id}/pods",
    View::Pods,
    "listPod",
    "Pods."
);
view_handler!(
    events,
    "/api/platform/v1/clusters/{id}/events",
    View::Events,
    "listEvent",
    "Core v1 Events."
);

/// Service-account files of a pod.
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

impl Platform {
    /// Registers the cluster the platform runs in as `local` (name and id,
    /// once), from
    /// the pod's service account, when running inside Kubernetes.
    pub async fn register_local_cluster(&self) -> anyhow::Result<()> {
        let Ok(host) = std::env::var("KUBERNETES_SERVICE_HOST") else {
            return Ok(());
        };
        let token_file = format!("{SA_DIR}/token");
        if !std::path::Path::new(&token_file).exists() {
            return Ok(());
        }
        if sqlx::query("SELECT 1 FROM clusters WHERE name = 'local'")
            .fetch_optional(&self.store.pool)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let cred = Credential {
            api_server: format!("https://{host}:{port}"),
            token: String::new(),
            ca_cert: std::fs::read_to_string(format!("{SA_DIR}/ca.crt")).ok(),
            insecure_skip_tls_verify: false,
            token_file: Some(token_file),
        };
        let (phase, version, ok, message) = match verify(&cred).await {
            Ok(v) => ("Running", v, true, "in-cluster service account".to_string()),
            Err(e) => ("Failed", String::new(), false, e.message),
        };
        // Id `local` too: the collectors in this cluster label their data
        // `cluster_id="local"` by default, which tenant scoping matches.
        let id = "local".to_string();
        let mut tx = self.store.pool.begin().await?;
        sqlx::query(
            "INSERT INTO clusters (id, name, display_name, api_server, credential, version, phase, \
             conditions, last_seen, created_at) VALUES ($1,'local','Local cluster',$2,$3,$4,$5,$6,$7,$8)",
        )
        .bind(&id)
        .bind(&cred.api_server)
        .bind(self.secrets.seal(&serde_json::to_vec(&cred)?))
        .bind(version)
        .bind(phase)
        .bind(serde_json::to_string(&reachable(&message, ok))?)
        .bind(ok.then(now_rfc3339))
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
        super::audit::record_as(
            &mut tx,
            "system",
            "createCluster",
            "cluster",
            &id,
            serde_json::json!({"name": "local", "api_server": cred.api_server}),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(api_server = %cred.api_server, "platform: registered the local cluster");
        Ok(())
    }
}
