//! The notification pipeline's last stage: rendering and delivering one
//! group notification through one integration, with retries and backoff.

pub mod email;
pub mod platform;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tidewatch_common::Labels;

use crate::config::{EmailConfig, NotifyConfig, ReceiverConfig, WebhookConfig};
use crate::model::{Alert, fp_hex, labels_to_map};
use crate::objects::ObjectStore;
use crate::template;

/// One integration of a receiver.
#[derive(Clone, Debug)]
pub enum Integration {
    /// Webhook `i` of the receiver.
    Webhook(usize, WebhookConfig),
    /// Email `i` of the receiver.
    Email(usize, EmailConfig),
    /// TKEStack-style delivery: per alert, to the receivers, groups and
    /// channel/template pairs named in its annotations.
    Platform,
}

impl Integration {
    /// The integrations of a receiver config.
    pub fn of(r: &ReceiverConfig) -> Vec<Integration> {
        let mut v: Vec<Integration> = r
            .webhook_configs
            .iter()
            .enumerate()
            .map(|(i, w)| Integration::Webhook(i, w.clone()))
            .collect();
        v.extend(
            r.email_configs
                .iter()
                .enumerate()
                .map(|(i, e)| Integration::Email(i, e.clone())),
        );
        v
    }

    /// `webhook[0]`, `email[1]`, `platform`.
    pub fn name(&self) -> String {
        match self {
            Integration::Webhook(i, _) => format!("webhook[{i}]"),
            Integration::Email(i, _) => format!("email[{i}]"),
            Integration::Platform => "platform".into(),
        }
    }

    /// Whether resolved alerts are delivered.
    pub fn send_resolved(&self) -> bool {
        match self {
            Integration::Webhook(_, w) => w.send_resolved.unwrap_or(true),
            Integration::Email(_, e) => e.send_resolved.unwrap_or(false),
            Integration::Platform => true,
        }
    }
}

/// A group notification about to be sent.
#[derive(Clone, Debug)]
pub struct Notification {
    /// Receiver name.
    pub receiver: String,
    /// Group key.
    pub group_key: String,
    /// Grouping labels.
    pub group_labels: Labels,
    /// Alerts (firing and resolved, as of `now`).
    pub alerts: Vec<Alert>,
    /// Flush time.
    pub now: DateTime<Utc>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn common(
    alerts: &[Alert],
    get: impl Fn(&Alert) -> BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut it = alerts.iter();
    let Some(first) = it.next() else {
        return BTreeMap::new();
    };
    let mut m = get(first);
    for a in it {
        let o = get(a);
        m.retain(|k, v| o.get(k) == Some(v));
    }
    m
}

/// TKEStack's template variables for one alert.
pub fn tke_vars(a: &Alert, now: DateTime<Utc>) -> BTreeMap<String, String> {
    let l = |k: &str| a.labels.get(k).unwrap_or("").to_string();
    let an = |k: &str| a.annotations.get(k).cloned().unwrap_or_default();
    let first = |ks: &[&str]| {
        ks.iter()
            .find_map(|k| a.labels.get(k).map(str::to_string))
            .unwrap_or_default()
    };
    let status = if a.resolved_at(now) {
        "resolved"
    } else {
        "firing"
    };
    let mut v = BTreeMap::new();
    v.insert("status".into(), status.into());
    v.insert("alertName".into(), a.name().to_string());
    v.insert(
        "startsAt".into(),
        a.starts_at.format("%Y-%m-%d %H:%M:%S").to_string(),
    );
    v.insert(
        "endsAt".into(),
        a.ends_at.format("%Y-%m-%d %H:%M:%S").to_string(),
    );
    v.insert("alarmPolicyName".into(), l("alarmPolicyName"));
    v.insert("alarmPolicyType".into(), an("alarmPolicyType"));
    v.insert("clusterID".into(), first(&["cluster_id", "cluster"]));
    v.insert(
        "clusterDisplayName".into(),
        first(&["cluster_display_name", "cluster_id", "cluster"]),
    );
    for k in [
        "value",
        "unit",
        "evaluateType",
        "evaluateValue",
        "metricDisplayName",
    ] {
        v.insert(k.into(), an(k));
    }
    v.insert("workloadKind".into(), first(&["workload_kind"]));
    v.insert("workloadName".into(), first(&["workload_name"]));
    v.insert("namespace".into(), first(&["namespace"]));
    v.insert("podName".into(), first(&["pod_name", "pod"]));
    v.insert("nodeName".into(), first(&["node", "node_name"]));
    v.insert("nodeRole".into(), first(&["node_role"]));
    v.insert("virtualMachine".into(), first(&["name"]));
    let summary = format!(
        "{}{} {} {}{}, current value {}{}",
        v["alertName"],
        if v["metricDisplayName"].is_empty() {
            String::new()
        } else {
            format!(" ({})", v["metricDisplayName"])
        },
        v["evaluateType"],
        v["evaluateValue"],
        v["unit"],
        v["value"],
        v["unit"],
    );
    v.insert(
        "summary".into(),
        an("summary")
            .chars()
            .next()
            .map_or(summary, |_| an("summary")),
    );
    v
}

/// Alertmanager's webhook payload (version 4).
pub fn webhook_payload(
    n: &Notification,
    alerts: &[Alert],
    truncated: usize,
    external_url: &str,
) -> Value {
    let firing = alerts.iter().any(|a| !a.resolved_at(n.now));
    let list: Vec<Value> = alerts
        .iter()
        .map(|a| {
            json!({
                "status": if a.resolved_at(n.now) { "resolved" } else { "firing" },
                "labels": labels_to_map(&a.labels),
                "annotations": a.annotations,
                "startsAt": ts(a.starts_at),
                "endsAt": if a.resolved_at(n.now) { ts(a.ends_at) } else { "0001-01-01T00:00:00Z".to_string() },
                "generatorURL": a.generator_url,
                "fingerprint": fp_hex(a.fingerprint()),
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": truncated,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": n.receiver,
        "groupLabels": labels_to_map(&n.group_labels),
        "commonLabels": common(alerts, |a| labels_to_map(&a.labels)),
        "commonAnnotations": common(alerts, |a| a.annotations.clone()),
        "externalURL": external_url,
        "alerts": list,
    })
}

/// The template context: the webhook payload plus `firingCount`,
/// `resolvedCount`, `groupLabelsText`, per-alert `vars` and the first
/// alert's TKEStack variables at the top level.
pub fn template_context(n: &Notification, alerts: &[Alert], external_url: &str) -> Value {
    let mut v = webhook_payload(n, alerts, 0, external_url);
    let firing = alerts.iter().filter(|a| !a.resolved_at(n.now)).count();
    let obj = v.as_object_mut().expect("payload is an object");
    if let Some(first) = alerts.first() {
        for (k, val) in tke_vars(first, n.now) {
            obj.entry(k).or_insert(Value::String(val));
        }
    }
    obj.insert("firingCount".into(), json!(firing));
    obj.insert("resolvedCount".into(), json!(alerts.len() - firing));
    let text: Vec<String> = n
        .group_labels
        .iter()
        .map(|l| format!("{}={}", l.name, l.value))
        .collect();
    obj.insert("groupLabelsText".into(), json!(text.join(", ")));
    if let Some(Value::Array(list)) = obj.get_mut("alerts") {
        for (item, a) in list.iter_mut().zip(alerts) {
            item["vars"] = json!(tke_vars(a, n.now));
        }
    }
    v
}

/// Delivers notifications.
pub struct Notifier {
    http: reqwest::Client,
    cfg: NotifyConfig,
    external_url: String,
    objects: Arc<ObjectStore>,
}

impl Notifier {
    /// A notifier.
    pub fn new(cfg: NotifyConfig, external_url: String, objects: Arc<ObjectStore>) -> Notifier {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .expect("reqwest client");
        Notifier {
            http,
            cfg,
            external_url,
            objects,
        }
    }

    /// Sends `n` through `integ`, retrying retryable failures with
    /// exponential backoff.
    pub async fn send(&self, integ: &Integration, n: &Notification) -> Result<(), String> {
        let alerts: Vec<Alert> = if integ.send_resolved() {
            n.alerts.clone()
        } else {
            n.alerts
                .iter()
                .filter(|a| !a.resolved_at(n.now))
                .cloned()
                .collect()
        };
        if alerts.is_empty() {
            return Ok(());
        }
        let mut delay = self.cfg.initial_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_once(integ, n, &alerts).await {
                Ok(()) => return Ok(()),
                Err((retry, msg)) => {
                    if !retry || attempt >= self.cfg.max_attempts {
                        return Err(format!("{msg} (attempt {attempt})"));
                    }
                    tracing::warn!(integration = %integ.name(), receiver = %n.receiver, attempt, error = %msg, "notification failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.cfg.max_backoff);
                }
            }
        }
    }

    async fn send_once(
        &self,
        integ: &Integration,
        n: &Notification,
        alerts: &[Alert],
    ) -> Result<(), (bool, String)> {
        match integ {
            Integration::Webhook(_, w) => {
                let (truncated, alerts) = if w.max_alerts > 0 && alerts.len() > w.max_alerts {
                    (alerts.len() - w.max_alerts, &alerts[..w.max_alerts])
                } else {
                    (0, alerts)
                };
                let (ctype, body) = if let Some(t) = &w.body_template {
                    let ctx = template_context(n, alerts, &self.external_url);
                    let body = template::render(t, &ctx).map_err(|e| (false, e))?;
                    (
                        w.content_type
                            .clone()
                            .unwrap_or_else(|| "application/json".into()),
                        body.into_bytes(),
                    )
                } else if let Some(bot) = &w.bot {
                    let ctx = template_context(n, alerts, &self.external_url);
                    let title = template::render(template::DEFAULT_SUBJECT, &ctx)
                        .map_err(|e| (false, e))?;
                    let text =
                        template::render(template::DEFAULT_TEXT, &ctx).map_err(|e| (false, e))?;
                    (
                        "application/json".into(),
                        webhook::bot_body(bot, &title, &text)
                            .to_string()
                            .into_bytes(),
                    )
                } else {
                    let p = webhook_payload(n, alerts, truncated, &self.external_url);
                    ("application/json".into(), p.to_string().into_bytes())
                };
                webhook::post(&self.http, &w.url, &w.headers, &ctype, body).await
            }
            Integration::Email(_, e) => {
                let ctx = template_context(n, alerts, &self.external_url);
                let subject = template::render(
                    e.subject.as_deref().unwrap_or(template::DEFAULT_SUBJECT),
                    &ctx,
                )
                .map_err(|m| (false, m))?;
                let body =
                    template::render(e.text.as_deref().unwrap_or(template::DEFAULT_TEXT), &ctx)
                        .map_err(|m| (false, m))?;
                let (host, port) = email::split_host_port(&e.smarthost)
                    .ok_or_else(|| (false, format!("bad smarthost {:?}", e.smarthost)))?;
                let password = e
                    .auth_password
                    .clone()
                    .or_else(|| std::env::var("TIDEWATCH_SMTP_PASSWORD").ok());
                let target = email::SmtpTarget {
                    host,
                    port,
                    tls: e.tls,
                    auth: e
                        .auth_username
                        .clone()
                        .map(|u| (u, password.unwrap_or_default())),
                    from: e.from.clone(),
                };
                let to: Vec<String> = e.to.split(',').map(str::to_string).collect();
                let headers: Vec<(String, String)> = e.headers.clone().into_iter().collect();
                email::send(
                    &target,
                    &to,
                    subject.trim(),
                    &body,
                    &headers,
                    self.cfg.timeout,
                )
                .await
            }
            Integration::Platform => {
                platform::deliver(&self.http, &self.objects, n, alerts, self.cfg.timeout).await
            }
        }
    }

    /// Delivery timeout per attempt.
    pub fn timeout(&self) -> Duration {
        self.cfg.timeout
    }
}
