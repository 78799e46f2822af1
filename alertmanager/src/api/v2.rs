//! Alertmanager API v2: alerts, alert groups, silences, receivers, status —
//! the JSON shapes of Alertmanager 0.25, so Prometheus and `amtool` work.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tidewatch_common::Labels;

use crate::AlertEngine;
use crate::api::{ApiError, Style, parse_json, query_pairs};
use crate::dispatch::MuteStatus;
use crate::matcher::Matchers;
use crate::model::{Alert, fp_hex, labels_to_map};
use crate::silence::{PostableSilence, state};

const S: Style = Style::Alertmanager;

/// The routes.
pub fn router() -> Router<Arc<AlertEngine>> {
    Router::new()
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/alerts/groups", get(get_groups))
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(get_silence).delete(delete_silence),
        )
        .route("/api/v2/status", get(status))
        .route("/api/v2/receivers", get(receivers))
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Alertmanager's `postableAlert`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// Identifying labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Start (now when absent).
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// End (start + resolve timeout when absent).
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// Source link.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
}

fn zero(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.filter(|t| t.timestamp() > 0)
}

/// Validates and normalises posted alerts (Alertmanager's rules).
pub fn validate_alerts(
    posted: Vec<PostableAlert>,
    resolve_timeout: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Alert>, (String, String)> {
    let rt = chrono::Duration::from_std(resolve_timeout).unwrap_or(chrono::Duration::minutes(5));
    let mut out = Vec::with_capacity(posted.len());
    for (i, p) in posted.into_iter().enumerate() {
        let (labels, annotations, starts, ends, gen_url) = (
            p.labels,
            p.annotations,
            p.starts_at,
            p.ends_at,
            p.generator_url,
        );
        let field = format!("[{i}].labels");
        if labels.is_empty() {
            return Err((field, "at least one label pair required".into()));
        }
        for (k, v) in &labels {
            if !tidewatch_common::labels::is_valid_label_name(k) {
                return Err((field, format!("invalid label name {k:?}")));
            }
            if v.is_empty() {
                return Err((field, format!("empty value of label {k:?}")));
            }
        }
        let starts = zero(starts);
        let ends = zero(ends);
        let starts_at = starts.unwrap_or(now);
        let (ends_at, timeout) = match ends {
            Some(e) => (e, false),
            None => (starts_at.max(now) + rt, true),
        };
        if ends_at < starts_at {
            return Err((
                format!("[{i}].endsAt"),
                "start time must be before end time".into(),
            ));
        }
        out.push(Alert {
            labels: Labels::from_pairs(labels),
            annotations,
            starts_at,
            ends_at,
            generator_url: gen_url,
            updated_at: now,
            timeout,
        });
    }
    Ok(out)
}

async fn post_alerts(
    State(e): State<Arc<AlertEngine>>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let posted: Vec<PostableAlert> = parse_json(S, &body)?;
    if posted.len() > e.config().limits.max_alerts_per_request {
        return Err(ApiError::bad(
            S,
            "",
            format!(
                "{} alerts in one request exceed the limit of {}",
                posted.len(),
                e.config().limits.max_alerts_per_request
            ),
        ));
    }
    let alerts = validate_alerts(posted, e.config().resolve_timeout, Utc::now())
        .map_err(|(f, m)| ApiError::bad(S, f, m))?;
    e.receive(alerts, "api").map_err(|err| match err {
        crate::store::PutError::Full(_) => ApiError {
            status: axum::http::StatusCode::TOO_MANY_REQUESTS,
            message: err.to_string(),
            field: None,
            style: S,
        },
        crate::store::PutError::Io(_) => ApiError::internal(S, err),
    })?;
    Ok(StatusCode::OK)
}

/// Alert filters shared by `/alerts` and `/alerts/groups`.
struct Filter {
    active: bool,
    silenced: bool,
    inhibited: bool,
    unprocessed: bool,
    matchers: Matchers,
    receiver: Option<regex::Regex>,
}

fn parse_filter(raw: Option<&str>) -> Result<Filter, ApiError> {
    let mut f = Filter {
        active: true,
        silenced: true,
        inhibited: true,
        unprocessed: true,
        matchers: Matchers::default(),
        receiver: None,
    };
    for (k, v) in query_pairs(raw) {
        let b = || v != "false";
        match k.as_str() {
            "active" => f.active = b(),
            "silenced" => f.silenced = b(),
            "inhibited" => f.inhibited = b(),
            "unprocessed" => f.unprocessed = b(),
            "filter" => f.matchers.0.extend(
                Matchers::parse_set(&v)
                    .map_err(|m| ApiError::bad(S, "filter", m))?
                    .0,
            ),
            "receiver" if !v.is_empty() => {
                f.receiver = Some(
                    regex::Regex::new(&format!("^(?:{v})$"))
                        .map_err(|e| ApiError::bad(S, "receiver", e.to_string()))?,
                )
            }
            _ => {}
        }
    }
    Ok(f)
}

fn alert_json(a: &Alert, m: &MuteStatus, receivers: &[String]) -> Value {
    let suppressed = !m.silenced_by.is_empty() || !m.inhibited_by.is_empty();
    json!({
        "annotations": a.annotations,
        "endsAt": ts(a.ends_at),
        "fingerprint": fp_hex(a.fingerprint()),
        "receivers": receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "startsAt": ts(a.starts_at),
        "status": {
            "inhibitedBy": m.inhibited_by,
            "silencedBy": m.silenced_by,
            "state": if suppressed { "suppressed" } else { "active" },
        },
        "updatedAt": ts(a.updated_at),
        "generatorURL": a.generator_url,
        "labels": labels_to_map(&a.labels),
    })
}

impl Filter {
    fn keep(&self, a: &Alert, m: &MuteStatus, receivers: &[String]) -> bool {
        let suppressed = !m.silenced_by.is_empty() || !m.inhibited_by.is_empty();
        if !self.matchers.matches(&a.labels) {
            return false;
        }
        if let Some(r) = &self.receiver
            && !receivers.iter().any(|x| r.is_match(x))
        {
            return false;
        }
        if !self.silenced && !m.silenced_by.is_empty() {
            return false;
        }
        if !self.inhibited && !m.inhibited_by.is_empty() {
            return false;
        }
        if !self.active && !suppressed {
            return false;
        }
        true
    }
}

async fn get_alerts(
    State(e): State<Arc<AlertEngine>>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let f = parse_filter(q.as_deref())?;
    let now = Utc::now();
    let d = e.dispatcher();
    let mut alerts: Vec<Alert> = e
        .alerts()
        .into_iter()
        .filter(|a| !a.resolved_at(now))
        .collect();
    alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut out = Vec::new();
    for a in &alerts {
        let m = d.pipeline().mute_status(a, now);
        let receivers: Vec<String> = d
            .route()
            .match_alert(&a.labels)
            .iter()
            .map(|r| r.receiver.clone())
            .collect();
        if f.keep(a, &m, &receivers) {
            out.push(alert_json(a, &m, &receivers));
        }
    }
    Ok(Json(Value::Array(out)))
}

async fn get_groups(
    State(e): State<Arc<AlertEngine>>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let f = parse_filter(q.as_deref())?;
    let now = Utc::now();
    let d = e.dispatcher();
    let mut groups = d.groups();
    groups.sort_by(|a, b| a.key.cmp(&b.key));
    let mut out = Vec::new();
    for g in groups {
        let receivers = vec![g.receiver().to_string()];
        let mut alerts = g.alerts();
        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
        let list: Vec<Value> = alerts
            .iter()
            .filter(|a| !a.resolved_at(now))
            .filter_map(|a| {
                let m = d.pipeline().mute_status(a, now);
                f.keep(a, &m, &receivers)
                    .then(|| alert_json(a, &m, &receivers))
            })
            .collect();
        if list.is_empty() {
            continue;
        }
        out.push(json!({
            "alerts": list,
            "labels": labels_to_map(&g.labels),
            "receiver": {"name": g.receiver()},
        }));
    }
    Ok(Json(Value::Array(out)))
}

fn silence_json(s: &crate::silence::Silence, now: DateTime<Utc>) -> Value {
    json!({
        "id": s.id,
        "status": {"state": state(s, now)},
        "updatedAt": ts(s.updated_at),
        "comment": s.comment,
        "createdBy": s.created_by,
        "endsAt": ts(s.ends_at),
        "matchers": s.matchers.iter().map(|m| json!({
            "isEqual": m.is_equal.unwrap_or(true),
            "isRegex": m.is_regex,
            "name": m.name,
            "value": m.value,
        })).collect::<Vec<_>>(),
        "startsAt": ts(s.starts_at),
    })
}

async fn get_silences(
    State(e): State<Arc<AlertEngine>>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut filter = Matchers::default();
    for (k, v) in query_pairs(q.as_deref()) {
        if k == "filter" {
            filter.0.extend(
                Matchers::parse_set(&v)
                    .map_err(|m| ApiError::bad(S, "filter", m))?
                    .0,
            );
        }
    }
    let now = Utc::now();
    let mut list = e.silences().list();
    // Active first, then pending, then expired (amtool's order).
    list.sort_by_key(|s| match state(s, now) {
        "active" => 0,
        "pending" => 1,
        _ => 2,
    });
    let out: Vec<Value> = list
        .iter()
        .filter(|s| {
            filter.0.iter().all(|fm| {
                s.matchers
                    .iter()
                    .any(|m| m.name == fm.name && fm.matches_value(&m.value))
            })
        })
        .map(|s| silence_json(s, now))
        .collect();
    Ok(Json(Value::Array(out)))
}

async fn post_silence(
    State(e): State<Arc<AlertEngine>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let p: PostableSilence = parse_json(S, &body)?;
    let id = e.silences().upsert(p, Utc::now()).map_err(silence_err)?;
    Ok(Json(json!({"silenceID": id})))
}

fn silence_err(err: crate::silence::SilenceError) -> ApiError {
    use crate::silence::SilenceError as E;
    match err {
        E::Invalid(f, m) => ApiError::bad(S, f, m),
        E::NotFound(id) => ApiError::not_found(S, format!("silence {id} not found")),
        E::Io(e) => ApiError::internal(S, e),
    }
}

async fn get_silence(
    State(e): State<Arc<AlertEngine>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = e
        .silences()
        .get(&id)
        .ok_or_else(|| ApiError::not_found(S, format!("silence {id} not found")))?;
    Ok(Json(silence_json(&s, Utc::now())))
}

async fn delete_silence(
    State(e): State<Arc<AlertEngine>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    e.silences().expire(&id, Utc::now()).map_err(silence_err)?;
    Ok(StatusCode::OK)
}

async fn status(State(e): State<Arc<AlertEngine>>) -> Json<Value> {
    let original = serde_yaml::to_string(e.config()).unwrap_or_default();
    Json(json!({
        "cluster": {"peers": [], "status": "disabled"},
        "config": {"original": original},
        "uptime": ts(e.started_at()),
        "versionInfo": {
            "branch": "main",
            "buildDate": "",
            "buildUser": "tidewatch",
            "goVersion": "rust",
            "revision": env!("CARGO_PKG_VERSION"),
            "version": "0.25.0",
        },
    }))
}

async fn receivers(State(e): State<Arc<AlertEngine>>) -> Json<Value> {
    let list: Vec<Value> = e
        .dispatcher()
        .receiver_names()
        .into_iter()
        .map(|n| json!({"name": n}))
        .collect();
    Json(Value::Array(list))
}
