//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`,
//! `/api/v1/metadata`, `/api/v1/status/buildinfo`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::Expr;
use serde_json::{Value as Json, json};
use tidewatch_common::labels::{METRIC_NAME, is_valid_label_name};

use super::AppState;
use super::params::{Params, limit, time_or};
use super::response::{bad_data, labels_object, success};

/// Parses `match[]` selectors into matcher sets (each an OR alternative).
pub fn parse_selectors(selectors: &[&str]) -> Result<Vec<Vec<Matcher>>, String> {
    let mut out = Vec::new();
    for s in selectors {
        let expr = promql_parser::parser::parse(s)
            .map_err(|e| format!("invalid parameter \"match[]\": {e}"))?;
        let Expr::VectorSelector(vs) = expr else {
            return Err(format!(
                "invalid parameter \"match[]\": {s:?} is not a series selector"
            ));
        };
        let mut base = vs.matchers.matchers.clone();
        if let Some(name) = &vs.name
            && !base.iter().any(|m| m.name == METRIC_NAME)
        {
            base.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
        }
        if vs.matchers.or_matchers.is_empty() {
            out.push(base);
        } else {
            for alt in &vs.matchers.or_matchers {
                let mut ms = base.clone();
                ms.extend(alt.iter().cloned());
                out.push(ms);
            }
        }
        if out
            .last()
            .is_some_and(|ms| ms.iter().all(|m| m.is_match("")))
        {
            return Err(
                "invalid parameter \"match[]\": match[] must contain at least one non-empty matcher"
                    .into(),
            );
        }
    }
    Ok(out)
}

struct Selection {
    ids: Vec<u64>,
    limit: usize,
}

fn select(app: &AppState, p: &Params, require_match: bool) -> Result<Selection, String> {
    let start = time_or(p, "start", i64::MIN)?;
    let end = time_or(p, "end", i64::MAX)?;
    let limit = limit(p)?;
    let selectors = p.all("match[]");
    if selectors.is_empty() && require_match {
        return Err("no match[] parameter provided".into());
    }
    let sets = parse_selectors(&selectors)?;
    let index = app.store.state.index.read();
    let ids = if sets.is_empty() {
        index.select(&[], start, end)
    } else {
        let mut seen = HashSet::new();
        let mut ids = Vec::new();
        for ms in &sets {
            for id in index.select(ms, start, end) {
                if seen.insert(id) {
                    ids.push(id);
                }
            }
        }
        ids
    };
    Ok(Selection { ids, limit })
}

fn params(
    method: &Method,
    headers: &HeaderMap,
    q: Option<&str>,
    body: &Bytes,
) -> Result<Params, Box<Response>> {
    Params::from_request(method, headers, q, body).map_err(|e| Box::new(bad_data(e)))
}

fn truncated(limit: usize, len: usize) -> Vec<String> {
    if limit > 0 && len > limit {
        vec!["results truncated due to limit".to_string()]
    } else {
        Vec::new()
    }
}

/// `GET|POST /api/v1/series`.
pub async fn series(
    State(app): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = match params(&method, &headers, q.as_deref(), &body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let sel = match select(&app, &p, true) {
        Ok(s) => s,
        Err(e) => return bad_data(e),
    };
    let mut labels: Vec<tidewatch_common::Labels> = {
        let index = app.store.state.index.read();
        sel.ids
            .iter()
            .filter_map(|id| index.get(*id).map(|e| e.labels.clone()))
            .collect()
    };
    labels.sort();
    let warnings = truncated(sel.limit, labels.len());
    if sel.limit > 0 {
        labels.truncate(sel.limit);
    }
    success(
        Json::Array(labels.iter().map(labels_object).collect()),
        &warnings,
        &[],
    )
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(
    State(app): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = match params(&method, &headers, q.as_deref(), &body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let sel = match select(&app, &p, false) {
        Ok(s) => s,
        Err(e) => return bad_data(e),
    };
    let mut names = BTreeSet::new();
    {
        let index = app.store.state.index.read();
        for id in &sel.ids {
            if let Some(e) = index.get(*id) {
                for l in e.labels.iter() {
                    if !names.contains(l.name.as_str()) {
                        names.insert(l.name.clone());
                    }
                }
            }
        }
    }
    let mut names: Vec<String> = names.into_iter().collect();
    let warnings = truncated(sel.limit, names.len());
    if sel.limit > 0 {
        names.truncate(sel.limit);
    }
    success(json!(names), &warnings, &[])
}

/// `GET /api/v1/label/<name>/values`.
pub async fn label_values(
    State(app): State<AppState>,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if !is_valid_label_name(&name) {
        return bad_data(format!("invalid label name: {name:?}"));
    }
    let p = match params(&method, &headers, q.as_deref(), &body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let sel = match select(&app, &p, false) {
        Ok(s) => s,
        Err(e) => return bad_data(e),
    };
    let mut values = BTreeSet::new();
    {
        let index = app.store.state.index.read();
        for id in &sel.ids {
            if let Some(v) = index.get(*id).and_then(|e| e.labels.get(&name))
                && !values.contains(v)
            {
                values.insert(v.to_string());
            }
        }
    }
    let mut values: Vec<String> = values.into_iter().collect();
    let warnings = truncated(sel.limit, values.len());
    if sel.limit > 0 {
        values.truncate(sel.limit);
    }
    success(json!(values), &warnings, &[])
}

/// `GET /api/v1/metadata`.
pub async fn metadata(
    State(app): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = match params(&method, &headers, q.as_deref(), &body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let limit = match limit(&p) {
        Ok(l) => l,
        Err(e) => return bad_data(e),
    };
    let metric = p.get("metric").filter(|m| !m.is_empty());
    let mut out = BTreeMap::new();
    for (name, meta) in app.store.metadata() {
        if metric.is_some_and(|m| m != name) {
            continue;
        }
        if limit > 0 && out.len() >= limit {
            break;
        }
        out.insert(name, json!([meta]));
    }
    success(json!(out), &[], &[])
}

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    success(
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "",
            "branch": "",
            "buildUser": "tidewatch",
            "buildDate": "",
            "goVersion": "n/a (Rust)",
        }),
        &[],
        &[],
    )
}
