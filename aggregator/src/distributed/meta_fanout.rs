//! Query mode: `/api/v1/series`, `/api/v1/labels` and
//! `/api/v1/label/<name>/values` answered from every consumer's index
//! (their own `POST /api/v1/series`: labels only) plus the series of the
//! bucket's live blocks, instead of the query replica's own, empty, index.
//! Parameters, errors and the JSON shape are those of the single node
//! (`crate::api::meta`). A block's series counts when it has a sample in
//! `[start, end]` (an index counts a series whose first..last sample span
//! overlaps it: the same unless a gap spans the whole range).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use promql_parser::label::{MatchOp, Matcher};
use serde_json::{Value as Json, json};
use tidewatch_common::labels::{METRIC_NAME, is_valid_label_name};

use super::fanout::FanoutStorage;
use crate::api::meta::parse_selectors;
use crate::api::params::{Params, limit, time_or};
use crate::api::response::{bad_data, error, labels_object, success};

/// `match[]` standing for every series (every stored series has a name).
const ANY_SERIES: &str = "{__name__=~\".+\"}";

/// What the middleware needs.
pub struct MetaFanout {
    /// The fan-out storage.
    pub storage: Arc<FanoutStorage>,
    /// Largest request body (`aggregator.limits.max_body_bytes`).
    pub max_body_bytes: usize,
}

enum Endpoint {
    Series,
    Labels,
    Values(String),
}

fn endpoint(method: &Method, path: &str) -> Option<Endpoint> {
    let get_or_post = *method == Method::GET || *method == Method::POST;
    match path {
        "/api/v1/series" if get_or_post => Some(Endpoint::Series),
        "/api/v1/labels" if get_or_post => Some(Endpoint::Labels),
        _ if *method == Method::GET => path
            .strip_prefix("/api/v1/label/")
            .and_then(|r| r.strip_suffix("/values"))
            .filter(|n| !n.contains('/'))
            .map(|n| Endpoint::Values(n.to_string())),
        _ => None,
    }
}

/// The middleware: answers the three endpoints, passes everything else on.
pub async fn intercept(State(f): State<Arc<MetaFanout>>, req: Request, next: Next) -> Response {
    let Some(ep) = endpoint(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    if let Endpoint::Values(name) = &ep
        && !is_valid_label_name(name)
    {
        return bad_data(format!("invalid label name: {name:?}"));
    }
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, f.max_body_bytes).await else {
        return bad_data(format!(
            "request body is over the limit aggregator.limits.max_body_bytes={}",
            f.max_body_bytes
        ));
    };
    let p = match Params::from_request(&parts.method, &parts.headers, parts.uri.query(), &body) {
        Ok(p) => p,
        Err(e) => return bad_data(e),
    };
    match answer(&f, &ep, &p).await {
        Ok(r) => r,
        Err(Failure::BadData(e)) => bad_data(e),
        Err(Failure::Execution(e)) => {
            error(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "execution", e)
        }
    }
}

enum Failure {
    BadData(String),
    Execution(String),
}

async fn answer(f: &MetaFanout, ep: &Endpoint, p: &Params) -> Result<Response, Failure> {
    let start = time_or(p, "start", i64::MIN).map_err(Failure::BadData)?;
    let end = time_or(p, "end", i64::MAX).map_err(Failure::BadData)?;
    let limit = limit(p).map_err(Failure::BadData)?;
    let selectors = p.all("match[]");
    if selectors.is_empty() && matches!(ep, Endpoint::Series) {
        return Err(Failure::BadData("no match[] parameter provided".into()));
    }
    let mut sets = parse_selectors(&selectors).map_err(Failure::BadData)?;
    let mut selectors = selectors;
    if sets.is_empty() {
        sets.push(vec![any_name()]);
        selectors.push(ANY_SERIES);
    }
    let series = f
        .storage
        .series(
            &selectors,
            &sets,
            (start, p.get("start")),
            (end, p.get("end")),
        )
        .await
        .map_err(|e| Failure::Execution(e.0))?;
    let take = if limit > 0 { limit } else { usize::MAX };
    let (data, total) = match ep {
        Endpoint::Series => (
            Json::Array(series.iter().take(take).map(labels_object).collect()),
            series.len(),
        ),
        Endpoint::Labels => {
            let names: BTreeSet<&str> = series
                .iter()
                .flat_map(|l| l.iter().map(|l| l.name.as_str()))
                .collect();
            (
                json!(names.iter().take(take).collect::<Vec<_>>()),
                names.len(),
            )
        }
        Endpoint::Values(name) => {
            let values: BTreeSet<&str> = series.iter().filter_map(|l| l.get(name)).collect();
            (
                json!(values.iter().take(take).collect::<Vec<_>>()),
                values.len(),
            )
        }
    };
    let warnings = if limit > 0 && total > limit {
        vec!["results truncated due to limit".to_string()]
    } else {
        Vec::new()
    };
    Ok(success(data, &warnings, &[]))
}

/// `{__name__=~".+"}`: every series (every stored series has a name).
fn any_name() -> Matcher {
    Matcher::new(
        MatchOp::Re(regex::Regex::new("^(?:.+)$").expect("valid regex")),
        METRIC_NAME,
        ".+",
    )
}
