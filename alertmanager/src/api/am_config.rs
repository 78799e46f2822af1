//! The Alertmanager-compatible view of the configuration served as
//! `config.original` by `GET /api/v2/status`, so `amtool config show` and
//! `amtool config routes` parse it (Tidewatch-only fields left out).

use serde_json::{Value, json};

use crate::Config;
use crate::config::{RouteConfig, SmtpTls};
use crate::dispatch::route::{DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT};
use tidewatch_common::duration::format_duration;

fn route(r: &RouteConfig) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| match x {
            Value::Array(a) => !a.is_empty(),
            Value::Object(m) => !m.is_empty(),
            Value::Null => false,
            _ => true,
        });
        o.insert(
            "routes".into(),
            Value::Array(r.routes.iter().map(route).collect()),
        );
        if r.routes.is_empty() {
            o.remove("routes");
        }
    }
    v
}

/// The YAML text.
pub fn original(c: &Config) -> String {
    let root = match &c.route {
        Some(r) => route(r),
        None => json!({
            "receiver": crate::PLATFORM_RECEIVER,
            "group_by": ["alertname", "alarmPolicyName"],
            "group_wait": format_duration(DEFAULT_GROUP_WAIT),
            "group_interval": format_duration(DEFAULT_GROUP_INTERVAL),
            "repeat_interval": "1h",
        }),
    };
    let mut receivers: Vec<Value> = c
        .receivers
        .iter()
        .map(|r| {
            let mut o = json!({"name": r.name});
            if !r.webhook_configs.is_empty() {
                o["webhook_configs"] = r
                    .webhook_configs
                    .iter()
                    .map(|w| json!({"send_resolved": w.send_resolved.unwrap_or(true), "url": w.url, "max_alerts": w.max_alerts}))
                    .collect();
            }
            if !r.email_configs.is_empty() {
                o["email_configs"] = r
                    .email_configs
                    .iter()
                    .map(|e| {
                        json!({
                            "send_resolved": e.send_resolved.unwrap_or(false),
                            "to": e.to, "from": e.from, "smarthost": e.smarthost,
                            "auth_username": e.auth_username.clone().unwrap_or_default(),
                            "auth_password": if e.auth_password.is_some() { "<secret>" } else { "" },
                            "require_tls": e.tls != SmtpTls::Plain,
                        })
                    })
                    .collect();
            }
            o
        })
        .collect();
    if !c
        .receivers
        .iter()
        .any(|r| r.name == crate::PLATFORM_RECEIVER)
    {
        receivers.push(json!({"name": crate::PLATFORM_RECEIVER}));
    }
    let v = json!({
        "global": {"resolve_timeout": format_duration(c.resolve_timeout)},
        "route": root,
        "inhibit_rules": c.inhibit_rules,
        "receivers": receivers,
        "time_intervals": c.time_intervals,
        "templates": [],
    });
    serde_yaml::to_string(&v).unwrap_or_default()
}
