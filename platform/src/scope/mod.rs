//! Data scoping: a middleware for the aggregator's `/api/v1/*` and
//! `/loki/api/v1/*` routes so a business member's PromQL, LogQL and SQL only
//! see their businesses' namespaces (label enforcement built in, like
//! prom-label-proxy).
//!
//! - Anonymous requests: `platform.auth.anonymous_queries` (`allow`, the
//!   default, passes them through for Prometheus/Grafana compatibility;
//!   `deny` answers 401). Presented but invalid credentials always get 401.
//! - Callers allowed `queryData` on everything (platform admins) pass
//!   through untouched.
//! - Everyone else is a tenant: the (cluster, namespace) pairs of every
//!   business where they may `queryData` are enforced — never namespace
//!   names alone, since two clusters may both have a `shop` namespace owned
//!   by different businesses. The pairs are grouped by cluster: clusters
//!   with the same namespace set form one group, enforced as
//!   `cluster_id=~"c1|c2",namespace=~"a|b"`. One group is ANDed into every
//!   PromQL selector (`query`, `match[]`; through promql-parser's AST),
//!   every LogQL stream selector and every scoped SQL table. Several groups
//!   become an `or` of matcher sets in PromQL, `(… AND …) OR (…)` in SQL, and
//!   in LogQL a stream selector over the union plus a label filter
//!   `| cluster_id=~"c1" and namespace=~"a" or …` right after it (stream
//!   labels only, before any user stage). Label-name/value and series
//!   endpoints get a default `match[]`/`query` so other tenants' values do
//!   not leak. Endpoints that cannot be scoped (writes, rules, alerts, TSDB
//!   status) answer 403 to tenants.

// Rejections are complete HTTP responses built once per refused request;
// boxing them would buy nothing.
#![allow(clippy::result_large_err)]

pub mod logql;
pub mod promql;
pub mod sql;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Platform;
use crate::auth::{Principal, credential};
use crate::config::AnonymousQueries;

/// One namespace of one cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScopedNamespace {
    /// Cluster id.
    pub cluster_id: String,
    /// Namespace name.
    pub namespace: String,
}

/// What a caller may query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryScope {
    /// Everything.
    Full,
    /// Only these namespaces of these clusters (sorted, deduplicated; may be
    /// empty).
    Namespaces(Vec<ScopedNamespace>),
}

/// Clusters that share one set of allowed namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeGroup {
    /// Cluster ids (sorted).
    pub clusters: Vec<String>,
    /// Namespaces allowed in each of them (sorted).
    pub namespaces: Vec<String>,
}

/// Groups `pairs` by cluster, merging clusters with equal namespace sets;
/// the union of `clusters × namespaces` over the groups is exactly `pairs`.
pub fn groups(pairs: &[ScopedNamespace]) -> Vec<ScopeGroup> {
    let mut by_cluster: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for p in pairs {
        by_cluster
            .entry(&p.cluster_id)
            .or_default()
            .insert(&p.namespace);
    }
    let mut by_set: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for (c, ns) in by_cluster {
        by_set
            .entry(ns.into_iter().map(String::from).collect())
            .or_default()
            .push(c.to_string());
    }
    by_set
        .into_iter()
        .map(|(namespaces, clusters)| ScopeGroup {
            clusters,
            namespaces,
        })
        .collect()
}

/// Value enforced when a tenant has no namespace: Kubernetes namespace names
/// cannot contain `:`, so no series matches it.
pub const NO_NAMESPACE: &str = "tidewatch:none";

impl Platform {
    /// The query scope of an authenticated caller.
    pub async fn query_scope(&self, p: &Principal) -> anyhow::Result<QueryScope> {
        if p.can("queryData", "data:all") {
            return Ok(QueryScope::Full);
        }
        let mut pairs: Vec<ScopedNamespace> = self
            .namespace_index()
            .await?
            .into_iter()
            .filter(|e| p.can("queryData", &e.resource()))
            .map(|e| ScopedNamespace {
                cluster_id: e.cluster_id,
                namespace: e.name,
            })
            .collect();
        pairs.sort();
        pairs.dedup();
        Ok(QueryScope::Namespaces(pairs))
    }
}

/// How an endpoint is scoped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// PromQL in `query`.
    PromQuery,
    /// Series selectors in `match[]` (one added when absent).
    PromMatch,
    /// LogQL in `query` (required).
    LokiQuery,
    /// LogQL selectors in `match[]`/`match` (one added when absent).
    LokiMatch,
    /// LogQL selector in optional `query` (added when absent).
    LokiLabels,
    /// SQL.
    Sql,
    /// Harmless: passes.
    Pass,
    /// Not available to tenants.
    Forbidden,
}

fn classify(path: &str) -> Kind {
    if let Some(rest) = path.strip_prefix("/loki/api/v1/") {
        return match rest {
            "query" | "query_range" | "tail" | "index/stats" | "index/volume"
            | "index/volume_range" | "patterns" => Kind::LokiQuery,
            "series" => Kind::LokiMatch,
            "labels" | "detected_labels" => Kind::LokiLabels,
            r if r.starts_with("label/") && r.ends_with("/values") => Kind::LokiLabels,
            "status/buildinfo" | "format_query" => Kind::Pass,
            _ => Kind::Forbidden,
        };
    }
    if let Some(rest) = path.strip_prefix("/api/v1/") {
        return match rest {
            "query" | "query_range" | "query_exemplars" => Kind::PromQuery,
            "series" | "labels" => Kind::PromMatch,
            r if r.starts_with("label/") && r.ends_with("/values") => Kind::PromMatch,
            "sql" => Kind::Sql,
            "status/buildinfo" | "status/runtimeinfo" | "format_query" | "parse_query"
            | "metadata" => Kind::Pass,
            _ => Kind::Forbidden,
        };
    }
    Kind::Pass
}

fn error(status: StatusCode, kind: &str, msg: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "errorType": kind, "error": msg.into()})),
    )
        .into_response()
}

/// The middleware; wrap routes with
/// `axum::middleware::from_fn_with_state(platform, scope_queries)` or
/// [`Platform::scope_router`].
pub async fn scope_queries(State(p): State<Arc<Platform>>, req: Request, next: Next) -> Response {
    let principal = match credential(req.headers()) {
        None => None,
        Some(c) => match p.authenticate(&c).await {
            Ok(Some(pr)) => Some(pr),
            Ok(None) => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "invalid or expired credentials",
                );
            }
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("{e:#}"),
                );
            }
        },
    };
    let Some(principal) = principal else {
        return match p.config.auth.anonymous_queries {
            AnonymousQueries::Allow => next.run(req).await,
            AnonymousQueries::Deny => error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication required (platform.auth.anonymous_queries: deny)",
            ),
        };
    };
    let scope = match p.query_scope(&principal).await {
        Ok(s) => s,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("{e:#}"),
            );
        }
    };
    let QueryScope::Namespaces(pairs) = scope else {
        return next.run(req).await;
    };
    match rewrite(&p, req, &groups(&pairs)).await {
        Ok(req) => next.run(req).await,
        Err(resp) => resp,
    }
}

/// Label names the scope is enforced on.
#[derive(Clone, Copy)]
pub struct ScopeLabels<'a> {
    /// Label carrying the cluster id.
    pub cluster: &'a str,
    /// Label carrying the namespace.
    pub namespace: &'a str,
}

/// The PromQL matcher alternatives enforcing `groups` (one per group).
pub fn prom_matchers(
    l: ScopeLabels<'_>,
    groups: &[ScopeGroup],
) -> Result<Vec<Vec<promql_parser::label::Matcher>>, String> {
    if groups.is_empty() {
        return Ok(vec![vec![promql::equal_matcher(l.namespace, NO_NAMESPACE)]]);
    }
    groups
        .iter()
        .map(|g| {
            Ok(vec![
                promql::regex_matcher(l.cluster, &g.clusters)?,
                promql::regex_matcher(l.namespace, &g.namespaces)?,
            ])
        })
        .collect()
}

fn loki_re(name: &str, values: &[String]) -> logql::LabelMatcher {
    logql::LabelMatcher {
        name: name.into(),
        op: "=~",
        value: values
            .iter()
            .map(|n| promql::escape_re(n))
            .collect::<Vec<_>>()
            .join("|"),
    }
}

/// The LogQL stream matchers enforcing `groups`, and with several groups
/// the label filter that keeps each cluster to its own namespaces.
pub fn loki_matchers(
    l: ScopeLabels<'_>,
    groups: &[ScopeGroup],
) -> (Vec<logql::LabelMatcher>, Option<String>) {
    match groups {
        [] => (
            vec![logql::LabelMatcher {
                name: l.namespace.into(),
                op: "=",
                value: NO_NAMESPACE.into(),
            }],
            None,
        ),
        [g] => (
            vec![
                loki_re(l.cluster, &g.clusters),
                loki_re(l.namespace, &g.namespaces),
            ],
            None,
        ),
        gs => {
            let union = |f: fn(&ScopeGroup) -> &Vec<String>| -> Vec<String> {
                gs.iter()
                    .flat_map(|g| f(g).iter().cloned())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            };
            let filter = gs
                .iter()
                .map(|g| {
                    // `and` binds tighter than `or` (in Loki too): no
                    // parentheses, which some parsers refuse after `|`.
                    format!(
                        "{} and {}",
                        loki_re(l.cluster, &g.clusters).render(),
                        loki_re(l.namespace, &g.namespaces).render()
                    )
                })
                .collect::<Vec<_>>()
                .join(" or ");
            (
                vec![
                    loki_re(l.cluster, &union(|g| &g.clusters)),
                    loki_re(l.namespace, &union(|g| &g.namespaces)),
                ],
                Some(filter),
            )
        }
    }
}

/// A series selector matching exactly the enforced alternatives.
fn prom_default_selector(alts: &[Vec<promql_parser::label::Matcher>]) -> String {
    let sets: Vec<String> = alts
        .iter()
        .map(|set| {
            set.iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    format!("{{{}}}", sets.join(" or "))
}

type Params = Vec<(String, String)>;

async fn rewrite(p: &Platform, req: Request, groups: &[ScopeGroup]) -> Result<Request, Response> {
    let kind = classify(req.uri().path());
    let labels = ScopeLabels {
        cluster: &p.config.query_scope.cluster_label,
        namespace: &p.config.query_scope.namespace_label,
    };
    let bad = |e: String| error(StatusCode::BAD_REQUEST, "bad_data", e);
    match kind {
        Kind::Pass => Ok(req),
        Kind::Forbidden => Err(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} is not available to business-scoped users",
                req.uri().path()
            ),
        )),
        Kind::Sql => rewrite_sql(p, req, groups).await,
        _ => {
            let prom = prom_matchers(labels, groups).map_err(bad)?;
            let (loki, filter) = loki_matchers(labels, groups);
            let filter = filter.as_deref();
            let default_prom = prom_default_selector(&prom);
            let default_loki = logql::enforce_with_filter("{}", &loki, filter).map_err(bad)?;
            with_params(p, req, move |params: &mut Params| {
                let mut seen = false;
                for (k, v) in params.iter_mut() {
                    let out = match (kind, k.as_str()) {
                        (Kind::PromQuery, "query") => promql::enforce(v, &prom)?,
                        (Kind::PromMatch, "match[]") => promql::enforce_selector(v, &prom)?,
                        (Kind::LokiQuery | Kind::LokiLabels, "query") => {
                            logql::enforce_with_filter(v, &loki, filter)?
                        }
                        (Kind::LokiMatch, "match[]" | "match") => {
                            logql::enforce_with_filter(v, &loki, filter)?
                        }
                        _ => continue,
                    };
                    *v = out;
                    seen = true;
                }
                if !seen {
                    match kind {
                        Kind::PromMatch => params.push(("match[]".into(), default_prom.clone())),
                        Kind::LokiMatch => params.push(("match[]".into(), default_loki.clone())),
                        Kind::LokiLabels => params.push(("query".into(), default_loki.clone())),
                        Kind::LokiQuery => return Err("query is required".into()),
                        _ => {}
                    }
                }
                Ok(())
            })
            .await
        }
    }
}

fn is_form(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

async fn read_body(p: &Platform, body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, p.config.limits.max_query_body_bytes)
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "bad_data",
                format!(
                    "request body over platform.limits.max_query_body_bytes ({})",
                    p.config.limits.max_query_body_bytes
                ),
            )
        })
}

fn with_query(uri: &Uri, query: &str) -> Result<Uri, Response> {
    let path = uri.path();
    let pq = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "cannot rebuild the request URI",
        )
    })?);
    Uri::from_parts(parts).map_err(|_| error(StatusCode::BAD_REQUEST, "bad_data", "bad URI"))
}

/// Applies `f` to the request's parameters (URL query and, for POST forms,
/// the body, merged like Prometheus does) and rebuilds the request.
async fn with_params(
    p: &Platform,
    req: Request,
    f: impl FnOnce(&mut Params) -> Result<(), String>,
) -> Result<Request, Response> {
    let bad = |e: String| error(StatusCode::BAD_REQUEST, "bad_data", e);
    let form = is_form(&req);
    let (mut parts, body) = req.into_parts();
    let mut params: Params = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| bad(format!("invalid query string: {e}")))?;
    if form {
        let bytes = read_body(p, body).await?;
        let more: Params = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| bad(format!("invalid form body: {e}")))?;
        params.extend(more);
        f(&mut params).map_err(bad)?;
        let encoded = serde_urlencoded::to_string(&params).map_err(|e| bad(e.to_string()))?;
        parts.uri = with_query(&parts.uri, "")?;
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(encoded.len()));
        return Ok(Request::from_parts(parts, Body::from(encoded)));
    }
    f(&mut params).map_err(bad)?;
    let encoded = serde_urlencoded::to_string(&params).map_err(|e| bad(e.to_string()))?;
    parts.uri = with_query(&parts.uri, &encoded)?;
    Ok(Request::from_parts(parts, body))
}

async fn rewrite_sql(
    p: &Platform,
    req: Request,
    groups: &[ScopeGroup],
) -> Result<Request, Response> {
    let cfg = &p.config.query_scope;
    let scope = sql::SqlScope {
        tables: &cfg.sql_tables,
        cluster_column: &cfg.sql_cluster_column,
        namespace_column: &cfg.sql_namespace_column,
        groups,
    };
    let bad = |e: String| error(StatusCode::BAD_REQUEST, "bad_data", e);
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if ct.starts_with("application/json") {
        let (mut parts, body) = req.into_parts();
        let bytes = read_body(p, body).await?;
        let mut v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let mut seen = false;
        for key in ["query", "sql"] {
            if let Some(s) = v.get(key).and_then(|s| s.as_str()) {
                v[key] = json!(sql::enforce(s, &scope).map_err(bad)?);
                seen = true;
            }
        }
        if !seen {
            return Err(bad("query is required".into()));
        }
        let out = serde_json::to_vec(&v).map_err(|e| bad(e.to_string()))?;
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
        return Ok(Request::from_parts(parts, Body::from(out)));
    }
    let raw_body = req.method() == axum::http::Method::POST && !is_form(&req);
    if raw_body {
        let (mut parts, body) = req.into_parts();
        let bytes = read_body(p, body).await?;
        let mut params: Params = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map_err(|e| bad(format!("invalid query string: {e}")))?;
        let mut seen = false;
        for (k, v) in params.iter_mut() {
            if k == "query" || k == "sql" {
                *v = sql::enforce(v, &scope).map_err(bad)?;
                seen = true;
            }
        }
        let text =
            String::from_utf8(bytes.to_vec()).map_err(|_| bad("SQL body is not UTF-8".into()))?;
        let out = if text.trim().is_empty() {
            if !seen {
                return Err(bad("query is required".into()));
            }
            text
        } else {
            sql::enforce(&text, &scope).map_err(bad)?
        };
        let encoded = serde_urlencoded::to_string(&params).map_err(|e| bad(e.to_string()))?;
        parts.uri = with_query(&parts.uri, &encoded)?;
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
        return Ok(Request::from_parts(parts, Body::from(out)));
    }
    with_params(p, req, |params| {
        let mut seen = false;
        for (k, v) in params.iter_mut() {
            if k == "query" || k == "sql" {
                *v = sql::enforce(v, &scope)?;
                seen = true;
            }
        }
        if seen {
            Ok(())
        } else {
            Err("query is required".into())
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_classified() {
        assert_eq!(classify("/api/v1/query"), Kind::PromQuery);
        assert_eq!(classify("/api/v1/label/job/values"), Kind::PromMatch);
        assert_eq!(classify("/api/v1/write"), Kind::Forbidden);
        assert_eq!(classify("/api/v1/rules"), Kind::Forbidden);
        assert_eq!(classify("/api/v1/status/tsdb"), Kind::Forbidden);
        assert_eq!(classify("/loki/api/v1/query_range"), Kind::LokiQuery);
        assert_eq!(classify("/loki/api/v1/label/app/values"), Kind::LokiLabels);
        assert_eq!(classify("/loki/api/v1/push"), Kind::Forbidden);
        assert_eq!(classify("/api/v1/sql"), Kind::Sql);
    }

    const L: ScopeLabels<'static> = ScopeLabels {
        cluster: "cluster_id",
        namespace: "namespace",
    };

    fn pair(c: &str, n: &str) -> ScopedNamespace {
        ScopedNamespace {
            cluster_id: c.into(),
            namespace: n.into(),
        }
    }

    #[test]
    fn empty_scope_matches_nothing() {
        let m = prom_matchers(L, &[]).unwrap();
        assert_eq!(prom_default_selector(&m), r#"{namespace="tidewatch:none"}"#);
        let (l, f) = loki_matchers(L, &[]);
        assert_eq!(
            logql::enforce_with_filter("{app=\"x\"}", &l, f.as_deref()).unwrap(),
            r#"{app="x", namespace="tidewatch:none"}"#
        );
    }

    #[test]
    fn pairs_group_by_cluster_namespace_sets() {
        let g = groups(&[
            pair("c1", "shop"),
            pair("c2", "shop"),
            pair("c3", "shop"),
            pair("c3", "web"),
        ]);
        assert_eq!(
            g,
            vec![
                ScopeGroup {
                    clusters: vec!["c1".into(), "c2".into()],
                    namespaces: vec!["shop".into()],
                },
                ScopeGroup {
                    clusters: vec!["c3".into()],
                    namespaces: vec!["shop".into(), "web".into()],
                },
            ]
        );
        let one = groups(&[pair("c1", "shop")]);
        let (l, f) = loki_matchers(L, &one);
        assert_eq!(f, None);
        assert_eq!(
            logql::enforce_with_filter("{app=\"x\"} |= \"err\"", &l, None).unwrap(),
            r#"{app="x", cluster_id=~"c1", namespace=~"shop"} |= "err""#
        );
        let (l, f) = loki_matchers(L, &g);
        assert_eq!(
            logql::enforce_with_filter("rate({app=\"x\"} | json [5m])", &l, f.as_deref()).unwrap(),
            r#"rate({app="x", cluster_id=~"c1|c2|c3", namespace=~"shop|web"} | cluster_id=~"c1|c2" and namespace=~"shop" or cluster_id=~"c3" and namespace=~"shop|web" | json [5m])"#
        );
        assert_eq!(
            prom_default_selector(&prom_matchers(L, &g).unwrap()),
            r#"{cluster_id=~"c1|c2",namespace=~"shop" or cluster_id=~"c3",namespace=~"shop|web"}"#
        );
    }
}
