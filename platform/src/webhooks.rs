//! Kubernetes authentication and authorization webhooks, so imported
//! clusters need no RBAC objects of their own (TKEStack's tke-auth):
//!
//! - `POST /auth/authn`: a `TokenReview` carrying a platform API token is
//!   answered with the token owner's user name, uid and groups.
//! - `POST /auth/authz[/{cluster}]`: a `SubjectAccessReview` is allowed when
//!   the user's policies allow `k8s:{verb}:{group/}{resource}[/{subresource}]`
//!   on the namespace's resource `business:{b}/cluster:{c}/namespace:{ns}`
//!   (cluster-scoped requests: `cluster:{c}`). A refusal has no opinion
//!   (`allowed: false` without `denied`), so RBAC may still allow.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use crate::Platform;
use crate::auth::Credential;

/// Group every platform-authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "tidewatch:authenticated";

/// Routes.
pub fn router() -> Router<Arc<Platform>> {
    Router::new()
        .route("/auth/authn", post(authn))
        .route("/auth/authz", post(authz_any))
        .route("/auth/authz/{cluster}", post(authz_cluster))
}

fn api_version(review: &Value, default: &str) -> String {
    review["apiVersion"]
        .as_str()
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
        .to_string()
}

/// `TokenReview`.
async fn authn(State(p): State<Arc<Platform>>, Json(review): Json<Value>) -> Json<Value> {
    let version = api_version(&review, "authentication.k8s.io/v1");
    let token = review["spec"]["token"].as_str().unwrap_or("");
    let audiences = review["spec"]["audiences"].clone();
    let deny = |error: &str| {
        Json(json!({"apiVersion": version, "kind": "TokenReview",
            "status": {"authenticated": false, "error": error}}))
    };
    if token.is_empty() {
        return deny("no token");
    }
    let principal = match p.authenticate(&Credential::Bearer(token.to_string())).await {
        Ok(Some(pr)) => pr,
        Ok(None) => return deny("unknown, expired or revoked token"),
        Err(e) => {
            tracing::error!(error = %e, "TokenReview failed");
            return deny("internal error");
        }
    };
    let mut groups = vec![AUTHENTICATED_GROUP.to_string()];
    groups.extend(principal.groups.iter().cloned());
    let mut status = json!({"authenticated": true, "user": {
        "username": principal.name, "uid": principal.user_id, "groups": groups,
        "extra": {"tidewatch.io/display-name": [principal.display_name]}}});
    if audiences.is_array() {
        status["audiences"] = audiences;
    }
    Json(json!({"apiVersion": version, "kind": "TokenReview", "status": status}))
}

#[derive(Deserialize)]
struct ClusterQuery {
    cluster: Option<String>,
}

async fn authz_any(
    State(p): State<Arc<Platform>>,
    Query(q): Query<ClusterQuery>,
    Json(review): Json<Value>,
) -> Json<Value> {
    authz(p, q.cluster, review).await
}

async fn authz_cluster(
    State(p): State<Arc<Platform>>,
    Path(cluster): Path<String>,
    Json(review): Json<Value>,
) -> Json<Value> {
    authz(p, Some(cluster), review).await
}

/// The action string for resource attributes.
pub fn k8s_action(attrs: &Value) -> String {
    let verb = attrs["verb"].as_str().unwrap_or("");
    let group = attrs["group"].as_str().unwrap_or("");
    let resource = attrs["resource"].as_str().unwrap_or("");
    let sub = attrs["subresource"].as_str().unwrap_or("");
    let mut a = format!("k8s:{verb}:");
    if !group.is_empty() {
        a.push_str(group);
        a.push('/');
    }
    a.push_str(resource);
    if !sub.is_empty() {
        a.push('/');
        a.push_str(sub);
    }
    a
}

async fn authz(p: Arc<Platform>, cluster: Option<String>, review: Value) -> Json<Value> {
    let version = api_version(&review, "authorization.k8s.io/v1");
    let answer = |allowed: bool, reason: String| {
        Json(json!({"apiVersion": version, "kind": "SubjectAccessReview",
            "status": {"allowed": allowed, "reason": reason}}))
    };
    match decide(&p, cluster, &review["spec"]).await {
        Ok((allowed, reason)) => answer(allowed, reason),
        Err(e) => {
            tracing::error!(error = %e, "SubjectAccessReview failed");
            answer(false, "tidewatch: internal error".into())
        }
    }
}

async fn resolve_cluster(p: &Platform, key: &str) -> anyhow::Result<Option<String>> {
    Ok(
        sqlx::query("SELECT id FROM clusters WHERE id = $1 OR name = $1")
            .bind(key)
            .fetch_optional(&p.store.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?,
    )
}

async fn decide(
    p: &Platform,
    cluster: Option<String>,
    spec: &Value,
) -> anyhow::Result<(bool, String)> {
    let user = spec["user"].as_str().unwrap_or("");
    let Some(uid) = sqlx::query("SELECT id FROM users WHERE name = $1")
        .bind(user)
        .fetch_optional(&p.store.pool)
        .await?
        .map(|r| r.try_get::<String, _>(0))
        .transpose()?
    else {
        return Ok((false, format!("tidewatch: no platform user {user:?}")));
    };
    if let Some(u) = spec["uid"].as_str()
        && !u.is_empty()
        && u != uid
    {
        return Ok((
            false,
            "tidewatch: uid does not match the platform user".into(),
        ));
    }
    let Some(principal) = p.load_principal(&uid).await? else {
        return Ok((false, "tidewatch: user is locked".into()));
    };
    let cluster_id = match &cluster {
        Some(key) => match resolve_cluster(p, key).await? {
            Some(id) => Some(id),
            None => return Ok((false, format!("tidewatch: unknown cluster {key:?}"))),
        },
        None => None,
    };
    if let Some(attrs) = spec.get("resourceAttributes").filter(|a| a.is_object()) {
        let action = k8s_action(attrs);
        let ns = attrs["namespace"].as_str().unwrap_or("");
        let resource = if ns.is_empty() {
            match &cluster_id {
                Some(c) => format!("cluster:{c}"),
                None => "cluster:*".to_string(),
            }
        } else {
            let index = p.namespace_index().await?;
            let owners: Vec<_> = index
                .iter()
                .filter(|e| e.name == ns && cluster_id.as_ref().is_none_or(|c| *c == e.cluster_id))
                .collect();
            match (owners.as_slice(), &cluster_id) {
                ([one], _) => one.resource(),
                ([], Some(c)) => format!("cluster:{c}/namespace:{ns}"),
                ([], None) => format!("cluster:*/namespace:{ns}"),
                (_, _) => {
                    return Ok((
                        false,
                        format!(
                            "tidewatch: namespace {ns:?} exists in several clusters; point the \
                             webhook at /auth/authz/{{cluster}}"
                        ),
                    ));
                }
            }
        };
        let allowed = principal.can(&action, &resource);
        let reason = if allowed {
            format!("tidewatch: {action} allowed on {resource}")
        } else {
            format!("tidewatch: no policy allows {action} on {resource}")
        };
        return Ok((allowed, reason));
    }
    if let Some(attrs) = spec.get("nonResourceAttributes").filter(|a| a.is_object()) {
        let action = format!(
            "k8s:{}:nonresource{}",
            attrs["verb"].as_str().unwrap_or(""),
            attrs["path"].as_str().unwrap_or("")
        );
        let resource = match &cluster_id {
            Some(c) => format!("cluster:{c}"),
            None => "cluster:*".into(),
        };
        let allowed = principal.can(&action, &resource);
        return Ok((allowed, format!("tidewatch: {action} on {resource}")));
    }
    Ok((
        false,
        "tidewatch: no resource or non-resource attributes".into(),
    ))
}
