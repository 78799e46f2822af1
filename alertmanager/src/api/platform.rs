//! Platform REST objects of alerting under `/api/platform/v1/`: alarm
//! policies, receivers, receiver groups, channels, templates (with
//! preview), alert history, the inbox, acknowledgements, silences and rule
//! group status. Lists are `{"items": [...]}`; errors
//! `{"error": "...", "field": "..."}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::Utc;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::AlertEngine;
use crate::api::{ApiError, Style, parse_json, query_pairs};
use crate::model::parse_fp;
use crate::objects::{Ack, AlarmPolicy, Channel, NotifyTemplate, Objects, Receiver, ReceiverGroup};

const S: Style = Style::Platform;
const BASE: &str = "/api/platform/v1";

/// A named object kept in [`Objects`].
trait Object: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Singular noun for messages.
    const KIND: &'static str;
    fn name(&self) -> &str;
    fn map(o: &mut Objects) -> &mut BTreeMap<String, Self>;
    fn map_ref(o: &Objects) -> &BTreeMap<String, Self>;
    /// Checks the object against the others; `(field, message)`.
    fn validate(&self, o: &Objects) -> Result<(), (String, String)>;
    /// Hook before replacing an existing object.
    fn on_update(&mut self, _old: &Self) {}
    /// Removes what depends on the object (cascade).
    fn on_delete(_name: &str, _o: &mut Objects) {}
}

fn check_name(n: &str) -> Result<(), (String, String)> {
    let ok = !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err((
            "name".into(),
            format!("invalid name {n:?}: 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'"),
        ))
    }
}

fn check_url(field: &str, u: &str) -> Result<(), (String, String)> {
    match reqwest::Url::parse(u) {
        Ok(url) if url.scheme() == "http" || url.scheme() == "https" => Ok(()),
        _ => Err((field.into(), format!("invalid URL {u:?} (http or https)"))),
    }
}

impl Object for Channel {
    const KIND: &'static str = "channel";
    fn name(&self) -> &str {
        &self.name
    }
    fn map(o: &mut Objects) -> &mut BTreeMap<String, Self> {
        &mut o.channels
    }
    fn map_ref(o: &Objects) -> &BTreeMap<String, Self> {
        &o.channels
    }
    fn validate(&self, _o: &Objects) -> Result<(), (String, String)> {
        check_name(&self.name)?;
        match (&self.smtp, &self.webhook) {
            (Some(s), None) => {
                if s.host.is_empty() {
                    return Err(("smtp.host".into(), "must not be empty".into()));
                }
                if s.port == 0 {
                    return Err(("smtp.port".into(), "must not be 0".into()));
                }
                if !s.email.contains('@') {
                    return Err((
                        "smtp.email".into(),
                        format!("invalid address {:?}", s.email),
                    ));
                }
                Ok(())
            }
            (None, Some(w)) => check_url("webhook.url", &w.url),
            _ => Err((
                "smtp".into(),
                "exactly one of smtp and webhook must be set".into(),
            )),
        }
    }
    fn on_delete(name: &str, o: &mut Objects) {
        o.templates.retain(|_, t| t.channel != name);
    }
}

impl Object for NotifyTemplate {
    const KIND: &'static str = "template";
    fn name(&self) -> &str {
        &self.name
    }
    fn map(o: &mut Objects) -> &mut BTreeMap<String, Self> {
        &mut o.templates
    }
    fn map_ref(o: &Objects) -> &BTreeMap<String, Self> {
        &o.templates
    }
    fn validate(&self, o: &Objects) -> Result<(), (String, String)> {
        check_name(&self.name)?;
        if !o.channels.contains_key(&self.channel) {
            return Err((
                "channel".into(),
                format!("channel {:?} not found", self.channel),
            ));
        }
        for (f, t) in [("header", &self.header), ("body", &self.body)] {
            crate::template::check(t).map_err(|e| (f.to_string(), e))?;
        }
        Ok(())
    }
}

const IDENTITIES: [&str; 4] = ["email", "webhook", "mobile", "wechat_openid"];

impl Object for Receiver {
    const KIND: &'static str = "receiver";
    fn name(&self) -> &str {
        &self.name
    }
    fn map(o: &mut Objects) -> &mut BTreeMap<String, Self> {
        &mut o.receivers
    }
    fn map_ref(o: &Objects) -> &BTreeMap<String, Self> {
        &o.receivers
    }
    fn validate(&self, _o: &Objects) -> Result<(), (String, String)> {
        check_name(&self.name)?;
        for (k, v) in &self.identities {
            let f = format!("identities.{k}");
            if !IDENTITIES.contains(&k.as_str()) {
                return Err((
                    f,
                    format!("unknown channel type {k:?} (email, webhook, mobile, wechat_openid)"),
                ));
            }
            if k == "email" && !v.contains('@') {
                return Err((f, format!("invalid address {v:?}")));
            }
            if k == "webhook" {
                check_url(&f, v)?;
            }
        }
        Ok(())
    }
}

impl Object for ReceiverGroup {
    const KIND: &'static str = "receiver group";
    fn name(&self) -> &str {
        &self.name
    }
    fn map(o: &mut Objects) -> &mut BTreeMap<String, Self> {
        &mut o.receiver_groups
    }
    fn map_ref(o: &Objects) -> &BTreeMap<String, Self> {
        &o.receiver_groups
    }
    fn validate(&self, o: &Objects) -> Result<(), (String, String)> {
        check_name(&self.name)?;
        for (i, r) in self.receivers.iter().enumerate() {
            if !o.receivers.contains_key(r) {
                return Err((
                    format!("receivers[{i}]"),
                    format!("receiver {r:?} not found"),
                ));
            }
        }
        Ok(())
    }
}

impl Object for AlarmPolicy {
    const KIND: &'static str = "alarm policy";
    fn name(&self) -> &str {
        &self.name
    }
    fn map(o: &mut Objects) -> &mut BTreeMap<String, Self> {
        &mut o.alarm_policies
    }
    fn map_ref(o: &Objects) -> &BTreeMap<String, Self> {
        &o.alarm_policies
    }
    fn validate(&self, o: &Objects) -> Result<(), (String, String)> {
        crate::rules::policy::validate(self)?;
        for (i, r) in self.receivers.iter().enumerate() {
            if !o.receivers.contains_key(r) {
                return Err((
                    format!("receivers[{i}]"),
                    format!("receiver {r:?} not found"),
                ));
            }
        }
        for (i, g) in self.receiver_groups.iter().enumerate() {
            if !o.receiver_groups.contains_key(g) {
                return Err((
                    format!("receiver_groups[{i}]"),
                    format!("receiver group {g:?} not found"),
                ));
            }
        }
        for (i, w) in self.notify_ways.iter().enumerate() {
            if !o.channels.contains_key(&w.channel) {
                return Err((
                    format!("notify_ways[{i}].channel"),
                    format!("channel {:?} not found", w.channel),
                ));
            }
            if !w.template.is_empty() && !o.templates.contains_key(&w.template) {
                return Err((
                    format!("notify_ways[{i}].template"),
                    format!("template {:?} not found", w.template),
                ));
            }
        }
        Ok(())
    }
    fn on_update(&mut self, old: &Self) {
        self.version = old.version + 1;
    }
}

fn items<T: Serialize>(v: Vec<T>) -> Json<Value> {
    Json(json!({ "items": v }))
}

fn io_err(e: std::io::Error) -> ApiError {
    ApiError::internal(S, format!("persisting objects: {e}"))
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        io_err(e)
    }
}

async fn list<T: Object>(State(e): State<Arc<AlertEngine>>) -> Json<Value> {
    items(
        e.objects()
            .read(|o| T::map_ref(o).values().cloned().collect::<Vec<T>>()),
    )
}

async fn get_one<T: Object>(
    State(e): State<Arc<AlertEngine>>,
    Path(name): Path<String>,
) -> Result<Json<T>, ApiError> {
    e.objects()
        .read(|o| T::map_ref(o).get(&name).cloned())
        .map(Json)
        .ok_or_else(|| ApiError::not_found(S, format!("{} {name:?} not found", T::KIND)))
}

fn after_change<T: Object>(e: &AlertEngine) {
    if T::KIND == AlarmPolicy::KIND {
        e.reload_policies();
    }
}

async fn create<T: Object>(
    State(e): State<Arc<AlertEngine>>,
    body: Bytes,
) -> Result<(StatusCode, Json<T>), ApiError> {
    let obj: T = parse_json(S, &body)?;
    let created = e.objects().update(|o| {
        if T::map_ref(o).contains_key(obj.name()) {
            return Err(ApiError::conflict(
                S,
                "name",
                format!("{} {:?} already exists", T::KIND, obj.name()),
            ));
        }
        obj.validate(o).map_err(|(f, m)| ApiError::bad(S, f, m))?;
        T::map(o).insert(obj.name().to_string(), obj.clone());
        Ok::<T, ApiError>(obj)
    })?;
    after_change::<T>(&e);
    Ok((StatusCode::CREATED, Json(created)))
}

async fn replace<T: Object>(
    State(e): State<Arc<AlertEngine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<T>, ApiError> {
    let mut obj: T = parse_json(S, &body)?;
    if obj.name() != name {
        return Err(ApiError::bad(
            S,
            "name",
            format!("name {:?} does not match the path {name:?}", obj.name()),
        ));
    }
    let updated = e.objects().update(|o| {
        let old = T::map_ref(o)
            .get(&name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(S, format!("{} {name:?} not found", T::KIND)))?;
        obj.validate(o).map_err(|(f, m)| ApiError::bad(S, f, m))?;
        obj.on_update(&old);
        T::map(o).insert(name.clone(), obj.clone());
        Ok::<T, ApiError>(obj)
    })?;
    after_change::<T>(&e);
    Ok(Json(updated))
}

async fn delete<T: Object>(
    State(e): State<Arc<AlertEngine>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    e.objects().update(|o| {
        if T::map(o).remove(&name).is_none() {
            return Err(ApiError::not_found(
                S,
                format!("{} {name:?} not found", T::KIND),
            ));
        }
        T::on_delete(&name, o);
        Ok::<(), ApiError>(())
    })?;
    after_change::<T>(&e);
    Ok(StatusCode::NO_CONTENT)
}

fn crud<T: Object>(r: Router<Arc<AlertEngine>>, path: &str) -> Router<Arc<AlertEngine>> {
    r.route(&format!("{BASE}/{path}"), get(list::<T>).post(create::<T>))
        .route(
            &format!("{BASE}/{path}/{{name}}"),
            get(get_one::<T>).put(replace::<T>).delete(delete::<T>),
        )
}

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
