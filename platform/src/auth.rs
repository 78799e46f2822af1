//! Who is calling: session cookies and bearer tokens resolved to a
//! [`Principal`] carrying the grants of every role bound to the user or to
//! one of their groups.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use sqlx::Row;

use crate::Platform;
use crate::crypto::token_hash;
use crate::error::{ApiError, ApiResult};
use crate::policy::{self, Effect, Grant};
use crate::store::now_ms;

/// Name of the dashboards session cookie.
pub const SESSION_COOKIE: &str = "tidewatch_session";

/// An authenticated user and what they may do.
#[derive(Clone, Debug)]
pub struct Principal {
    /// User id.
    pub user_id: String,
    /// Login name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Names of the user's groups.
    pub groups: Vec<String>,
    /// Names of platform-scoped roles bound to the user or their groups.
    pub roles: Vec<String>,
    /// Bound to `platform-admin`.
    pub is_admin: bool,
    grants: Vec<Grant>,
}

impl Principal {
    /// Whether the principal may do `action` on `resource`.
    pub fn can(&self, action: &str, resource: &str) -> bool {
        policy::evaluate(&self.grants, action, resource)
    }

    /// 403 unless [`Principal::can`].
    pub fn require(&self, action: &str, resource: &str) -> ApiResult<()> {
        if self.can(action, resource) {
            Ok(())
        } else {
            Err(ApiError::forbidden(action, resource))
        }
    }
}

/// The bearer token or session cookie of a request, if any.
pub fn credential(headers: &HeaderMap) -> Option<Credential> {
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    {
        return Some(Credential::Bearer(t.trim().to_string()));
    }
    for cookie in headers.get_all(axum::http::header::COOKIE) {
        let Ok(s) = cookie.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, v)) = part.trim().split_once('=')
                && k == SESSION_COOKIE
            {
                return Some(Credential::Session(v.to_string()));
            }
        }
    }
    None
}

/// A presented credential.
#[derive(Clone, Debug)]
pub enum Credential {
    /// `Authorization: Bearer` API token.
    Bearer(String),
    /// Session cookie value.
    Session(String),
}

impl Platform {
    /// Resolves a credential to a principal; `None` when unknown, expired or
    /// the user is locked.
    pub async fn authenticate(&self, cred: &Credential) -> anyhow::Result<Option<Principal>> {
        let (sql, token) = match cred {
            Credential::Bearer(t) => (
                "SELECT user_id, expires_at_ms FROM api_tokens WHERE token_hash = $1",
                t,
            ),
            Credential::Session(t) => (
                "SELECT user_id, expires_at_ms FROM sessions WHERE token_hash = $1",
                t,
            ),
        };
        let row = sqlx::query(sql)
            .bind(token_hash(token))
            .fetch_optional(&self.store.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let user_id: String = row.try_get(0)?;
        let expires: Option<i64> = row.try_get(1)?;
        if expires.is_some_and(|e| e <= now_ms()) {
            return Ok(None);
        }
        self.load_principal(&user_id).await
    }

    /// Authenticates a request's headers.
    pub async fn principal_from_headers(
        &self,
        headers: &HeaderMap,
    ) -> ApiResult<Option<Principal>> {
        match credential(headers) {
            None => Ok(None),
            Some(c) => Ok(self.authenticate(&c).await?),
        }
    }

    /// Loads a user's principal with all grants; `None` if missing or locked.
    pub async fn load_principal(&self, user_id: &str) -> anyhow::Result<Option<Principal>> {
        let pool = &self.store.pool;
        let Some(user) = sqlx::query("SELECT name, display_name, locked FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?
        else {
            return Ok(None);
        };
        if user.try_get::<i64, _>(2)? != 0 {
            return Ok(None);
        }
        let groups = sqlx::query(
            "SELECT g.id, g.name FROM groups_ g JOIN group_members m ON m.group_id = g.id \
             WHERE m.user_id = $1 ORDER BY g.name",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?;
        let mut subjects = vec![("user".to_string(), user_id.to_string())];
        let mut group_names = Vec::new();
        for g in &groups {
            subjects.push(("group".into(), g.try_get(0)?));
            group_names.push(g.try_get::<String, _>(1)?);
        }
        // Bindings of the user and of each of their groups.
        let mut bindings = Vec::new();
        for (kind, subject) in &subjects {
            bindings.extend(
                sqlx::query(
                    "SELECT rb.subject_kind, rb.subject_id, rb.business_id, r.name, r.scope, \
                     r.policies FROM role_bindings rb JOIN roles r ON r.id = rb.role_id \
                     WHERE rb.subject_kind = $1 AND rb.subject_id = $2",
                )
                .bind(kind)
                .bind(subject)
                .fetch_all(pool)
                .await?,
            );
        }
        let policies = self.policy_map().await?;
        let tree = self.business_tree().await?;
        let mut grants = Vec::new();
        let mut roles = Vec::new();
        for b in bindings {
            let business: Option<String> = b.try_get(2)?;
            let role: String = b.try_get(3)?;
            let names: Vec<String> = serde_json::from_str(&b.try_get::<String, _>(5)?)?;
            let scope: Vec<Option<String>> = match &business {
                None => {
                    roles.push(role);
                    vec![None]
                }
                Some(id) => tree
                    .self_and_descendants(id)
                    .into_iter()
                    .map(Some)
                    .collect(),
            };
            for name in &names {
                let Some(p) = policies.get(name) else {
                    continue;
                };
                for b in &scope {
                    grants.push(Grant {
                        effect: p.effect,
                        actions: p.actions.clone(),
                        resources: policy::substitute(&p.resources, b.as_deref(), user_id),
                    });
                }
            }
        }
        roles.sort();
        roles.dedup();
        Ok(Some(Principal {
            user_id: user_id.to_string(),
            name: user.try_get(0)?,
            display_name: user.try_get(1)?,
            groups: group_names,
            is_admin: roles.iter().any(|r| r == "platform-admin"),
            roles,
            grants,
        }))
    }

    async fn policy_map(&self) -> anyhow::Result<HashMap<String, StoredPolicy>> {
        let rows = sqlx::query("SELECT name, effect, actions, resources FROM policies")
            .fetch_all(&self.store.pool)
            .await?;
        let mut map = HashMap::new();
        for r in rows {
            let effect: String = r.try_get(1)?;
            map.insert(
                r.try_get(0)?,
                StoredPolicy {
                    effect: if effect == "deny" {
                        Effect::Deny
                    } else {
                        Effect::Allow
                    },
                    actions: serde_json::from_str(&r.try_get::<String, _>(2)?)?,
                    resources: serde_json::from_str(&r.try_get::<String, _>(3)?)?,
                },
            );
        }
        Ok(map)
    }

    /// The business parent/child tree.
    pub async fn business_tree(&self) -> anyhow::Result<BusinessTree> {
        let rows = sqlx::query("SELECT id, parent_id FROM businesses")
            .fetch_all(&self.store.pool)
            .await?;
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        let mut parent = HashMap::new();
        for r in rows {
            let id: String = r.try_get(0)?;
            let p: Option<String> = r.try_get(1)?;
            if let Some(p) = p {
                children.entry(p.clone()).or_default().push(id.clone());
                parent.insert(id, p);
            }
        }
        Ok(BusinessTree { children, parent })
    }
}

struct StoredPolicy {
    effect: Effect,
    actions: Vec<String>,
    resources: Vec<String>,
}

/// Parent/child links between businesses.
pub struct BusinessTree {
    children: HashMap<String, Vec<String>>,
    parent: HashMap<String, String>,
}

impl BusinessTree {
    /// `id` followed by every descendant.
    pub fn self_and_descendants(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_string()];
        let mut i = 0;
        while i < out.len() {
            if let Some(c) = self.children.get(&out[i]) {
                out.extend(c.iter().cloned());
            }
            i += 1;
        }
        out
    }

    /// Whether `ancestor` is `id` or above it.
    pub fn is_ancestor_or_self(&self, ancestor: &str, id: &str) -> bool {
        let mut cur = Some(id.to_string());
        while let Some(c) = cur {
            if c == ancestor {
                return true;
            }
            cur = self.parent.get(&c).cloned();
        }
        false
    }
}

/// Extractor: the authenticated caller, or 401.
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<Platform>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Platform>,
    ) -> Result<Self, Self::Rejection> {
        match state.principal_from_headers(&parts.headers).await? {
            Some(p) => Ok(Caller(p)),
            None => Err(ApiError::unauthenticated()),
        }
    }
}
