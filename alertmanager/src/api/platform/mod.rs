//! Platform REST objects of alerting under `/api/platform/v1/`: alarm
//! policies, receivers, receiver groups, channels, templates (with
//! preview), alert history, the inbox, acknowledgements, silences and rule
//! group status. Lists are `{"items": [...]}`; errors
//! `{"error": "...", "field": "..."}`.

mod crud;
mod object;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};

use crate::AlertEngine;
use crate::api::{ApiError, Style, parse_json, query_pairs};
use crate::model::parse_fp;
use crate::objects::{Ack, AlarmPolicy, Channel, NotifyTemplate, Receiver, ReceiverGroup};
use crud::{crud, items};

const S: Style = Style::Platform;
const BASE: &str = "/api/platform/v1";

/// The routes.
pub fn router() -> Router<Arc<AlertEngine>> {
    let r = Router::new();
    let r = crud::<Channel>(r, "channels");
    let r = crud::<NotifyTemplate>(r, "templates");
    let r = crud::<Receiver>(r, "receivers");
    let r = crud::<ReceiverGroup>(r, "receiver-groups");
    let r = crud::<AlarmPolicy>(r, "alarm-policies");
    r.route(
        &format!("{BASE}/alarm-policies/{{name}}/rules"),
        get(policy_rules),
    )
    .route(&format!("{BASE}/templates/preview"), post(preview_inline))
    .route(
        &format!("{BASE}/templates/{{name}}/preview"),
        post(preview_named),
    )
    .route(&format!("{BASE}/alert-history"), get(history))
    .route(&format!("{BASE}/inbox"), get(inbox))
    .route(
        &format!("{BASE}/inbox/{{id}}/read"),
        post(mark_read).delete(mark_unread),
    )
    .route(&format!("{BASE}/alerts"), get(alerts))
    .route(
        &format!("{BASE}/alerts/{{fingerprint}}/ack"),
        post(ack).delete(unack).get(get_ack),
    )
    .route(&format!("{BASE}/silences"), get(silences))
    .route(&format!("{BASE}/rule-groups"), get(rule_groups))
}

async fn policy_rules(
    State(e): State<Arc<AlertEngine>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = e
        .objects()
        .read(|o| o.alarm_policies.get(&name).cloned())
        .ok_or_else(|| ApiError::not_found(S, format!("alarm policy {name:?} not found")))?;
    let g = crate::rules::policy::compile(&p);
    Ok(Json(json!({ "groups": [g] })))
}

fn sample_vars(extra: &Value) -> Value {
    let mut v = json!({
        "status": "firing", "alertName": "k8s_pod_rate_cpu_core_used_limit",
        "startsAt": Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        "alarmPolicyName": "example-policy", "alarmPolicyType": "pod",
        "clusterID": "cls-example", "clusterDisplayName": "example",
        "value": "93.50", "unit": "%", "evaluateType": "gt", "evaluateValue": "90",
        "metricDisplayName": "CPU usage of limit", "workloadKind": "Deployment",
        "workloadName": "web", "namespace": "default", "podName": "web-7d9f-abcde",
        "nodeName": "node-1", "nodeRole": "", "virtualMachine": "",
        "summary": "CPU usage of limit gt 90%, current value 93.50%",
    });
    if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in x {
            o.insert(k.clone(), val.clone());
        }
    }
    v
}

fn render_preview(header: &str, body: &str, vars: &Value) -> Result<Json<Value>, ApiError> {
    let (h, b) = crate::notify::platform::render_message(header, body, vars)
        .map_err(|m| ApiError::bad(S, "body", m))?;
    Ok(Json(json!({ "header": h, "body": b, "variables": vars })))
}

async fn preview_named(
    State(e): State<Arc<AlertEngine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let t = e
        .objects()
        .read(|o| o.templates.get(&name).cloned())
        .ok_or_else(|| ApiError::not_found(S, format!("template {name:?} not found")))?;
    let extra: Value = if body.is_empty() {
        json!({})
    } else {
        parse_json(S, &body)?
    };
    let vars = sample_vars(extra.get("variables").unwrap_or(&json!({})));
    render_preview(&t.header, &t.body, &vars)
}

async fn preview_inline(body: Bytes) -> Result<Json<Value>, ApiError> {
    let v: Value = parse_json(S, &body)?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let vars = sample_vars(v.get("variables").unwrap_or(&json!({})));
    render_preview(&s("header"), &s("body"), &vars)
}

fn limit_of(q: &[(String, String)]) -> Result<usize, ApiError> {
    match q.iter().find(|(k, _)| k == "limit") {
        Some((_, v)) => v
            .parse::<usize>()
            .map_err(|_| ApiError::bad(S, "limit", format!("invalid limit {v:?}"))),
        None => Ok(1000),
    }
}

async fn history(
    State(e): State<Arc<AlertEngine>>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = query_pairs(q.as_deref());
    let limit = limit_of(&q)?;
    let name = q
        .iter()
        .find(|(k, _)| k == "alertname")
        .map(|(_, v)| v.clone());
    let h: Vec<_> = e
        .objects()
        .history()
        .into_iter()
        .filter(|x| name.as_ref().is_none_or(|n| x.alertnames.contains(n)))
        .take(limit)
        .collect();
    Ok(items(h))
}

async fn inbox(
    State(e): State<Arc<AlertEngine>>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = query_pairs(q.as_deref());
    let limit = limit_of(&q)?;
    let who = q
        .iter()
        .find(|(k, _)| k == "receiver" || k == "user")
        .map(|(_, v)| v.clone());
    let unread = q.iter().any(|(k, v)| k == "unread" && v != "false");
    let msgs: Vec<_> = e
        .objects()
        .inbox(who.as_deref(), unread)
        .into_iter()
        .take(limit)
        .collect();
    Ok(items(msgs))
}

async fn set_read(e: &AlertEngine, id: &str, read: bool) -> Result<Json<Value>, ApiError> {
    let m = e
        .objects()
        .set_read(id, read)?
        .ok_or_else(|| ApiError::not_found(S, format!("message {id:?} not found")))?;
    Ok(Json(serde_json::to_value(m).unwrap_or_default()))
}

async fn mark_read(
    State(e): State<Arc<AlertEngine>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_read(&e, &id, true).await
}

async fn mark_unread(
    State(e): State<Arc<AlertEngine>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_read(&e, &id, false).await
}

async fn alerts(State(e): State<Arc<AlertEngine>>) -> Json<Value> {
    let now = Utc::now();
    let mut v: Vec<Value> = e
        .alerts()
        .into_iter()
        .filter(|a| !a.resolved_at(now))
        .map(|a| {
            let fp = a.fingerprint();
            json!({
                "fingerprint": crate::model::fp_hex(fp),
                "labels": crate::model::labels_to_map(&a.labels),
                "annotations": a.annotations,
                "startsAt": a.starts_at,
                "endsAt": a.ends_at,
                "ack": e.objects().ack_of(fp, now),
            })
        })
        .collect();
    v.sort_by(|a, b| a["fingerprint"].as_str().cmp(&b["fingerprint"].as_str()));
    items(v)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    #[serde(default)]
    by: String,
    #[serde(default)]
    comment: String,
    /// Prometheus duration; default 24h.
    #[serde(default)]
    duration: Option<String>,
}

fn fp_of(s: &str) -> Result<u64, ApiError> {
    parse_fp(s).ok_or_else(|| {
        ApiError::bad(
            S,
            "fingerprint",
            format!("invalid fingerprint {s:?} (16 hex digits)"),
        )
    })
}

async fn ack(
    State(e): State<Arc<AlertEngine>>,
    Path(fingerprint): Path<String>,
    body: Bytes,
) -> Result<Json<Ack>, ApiError> {
    let fp = fp_of(&fingerprint)?;
    let req: AckRequest = if body.is_empty() {
        AckRequest {
            by: String::new(),
            comment: String::new(),
            duration: None,
        }
    } else {
        parse_json(S, &body)?
    };
    let d = match &req.duration {
        Some(d) => tidewatch_common::duration::parse_duration(d)
            .map_err(|m| ApiError::bad(S, "duration", m))?,
        None => std::time::Duration::from_secs(86400),
    };
    let now = Utc::now();
    let firing = e
        .alerts()
        .into_iter()
        .any(|a| a.fingerprint() == fp && !a.resolved_at(now));
    if !firing {
        return Err(ApiError::not_found(
            S,
            format!("no firing alert with fingerprint {fingerprint}"),
        ));
    }
    let a = Ack {
        fingerprint: crate::model::fp_hex(fp),
        by: req.by,
        comment: req.comment,
        at: now,
        until: now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(1)),
        cleared: false,
    };
    e.objects().ack(fp, a.clone())?;
    Ok(Json(a))
}

async fn get_ack(
    State(e): State<Arc<AlertEngine>>,
    Path(fingerprint): Path<String>,
) -> Result<Json<Ack>, ApiError> {
    let fp = fp_of(&fingerprint)?;
    e.objects()
        .ack_of(fp, Utc::now())
        .map(Json)
        .ok_or_else(|| ApiError::not_found(S, format!("alert {fingerprint} is not acknowledged")))
}

async fn unack(
    State(e): State<Arc<AlertEngine>>,
    Path(fingerprint): Path<String>,
) -> Result<StatusCode, ApiError> {
    let fp = fp_of(&fingerprint)?;
    if e.objects().clear_ack(fp)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            S,
            format!("alert {fingerprint} is not acknowledged"),
        ))
    }
}

async fn silences(State(e): State<Arc<AlertEngine>>) -> Json<Value> {
    let now = Utc::now();
    items(
        e.silences()
            .list()
            .into_iter()
            .map(|s| {
                let st = crate::silence::state(&s, now);
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["state"] = json!(st);
                v
            })
            .collect(),
    )
}

async fn rule_groups(State(e): State<Arc<AlertEngine>>) -> Json<Value> {
    match e.rules() {
        Some(m) => items(m.status().await),
        None => items(Vec::<Value>::new()),
    }
}
