//! TKEStack-style delivery: each alert names its receivers, receiver groups
//! and `channel:template` pairs in its annotations (as compiled alarm
//! policies do); groups fan out to their members, each member gets the
//! template rendered with TKEStack's variables through the channel, and an
//! inbox message is recorded per member.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use crate::model::{Alert, fp_hex};
use crate::notify::{Notification, email, tke_vars, webhook};
use crate::objects::{InboxMessage, ObjectStore, Objects, Receiver};
use crate::template;

fn split(s: Option<&String>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// The receivers an alert's annotations name, groups expanded.
pub fn resolve_receivers(objs: &Objects, a: &Alert) -> Vec<Receiver> {
    let mut names: BTreeSet<String> = split(a.annotations.get("receivers")).into_iter().collect();
    for g in split(a.annotations.get("receiverGroups")) {
        if let Some(g) = objs.receiver_groups.get(&g) {
            names.extend(g.receivers.iter().cloned());
        }
    }
    names
        .into_iter()
        .filter_map(|n| objs.receivers.get(&n).cloned())
        .collect()
}

/// Renders a template's header and body for one alert.
pub fn render_message(
    header: &str,
    body: &str,
    vars: &serde_json::Value,
) -> Result<(String, String), String> {
    let h = if header.is_empty() {
        "[{{ status|upper }}] {{ alertName }} ({{ alarmPolicyName }})"
    } else {
        header
    };
    let b = if body.is_empty() {
        template::DEFAULT_MESSAGE
    } else {
        body
    };
    Ok((template::render(h, vars)?, template::render(b, vars)?))
}

/// Delivers the alerts of `n` the TKEStack way. Errors are
/// `(retryable, message)`.
pub async fn deliver(
    http: &reqwest::Client,
    store: &ObjectStore,
    n: &Notification,
    alerts: &[Alert],
    timeout: Duration,
) -> Result<(), (bool, String)> {
    let objs = store.objects();
    // Transport failures are retried; configuration problems are not.
    let mut errors = Vec::new();
    let mut config_errors = Vec::new();
    let mut inbox = Vec::new();
    for a in alerts {
        let receivers = resolve_receivers(&objs, a);
        let vars = tke_vars(a, n.now);
        let status = vars["status"].clone();
        let ctx = json!(vars);
        for way in split(a.annotations.get("notifyWay")) {
            let (ch_name, tpl_name) = way.split_once(':').unwrap_or((way.as_str(), ""));
            let Some(ch) = objs.channels.get(ch_name) else {
                config_errors.push(format!("channel {ch_name:?} not found"));
                continue;
            };
            let tpl = objs.templates.get(tpl_name);
            let (header, body) = match render_message(
                tpl.map_or("", |t| t.header.as_str()),
                tpl.map_or("", |t| t.body.as_str()),
                &ctx,
            ) {
                Ok(x) => x,
                Err(e) => {
                    config_errors.push(format!("template {tpl_name:?}: {e}"));
                    continue;
                }
            };
            let mut delivered: Vec<(&Receiver, String)> = Vec::new();
            if let Some(smtp) = &ch.smtp {
                let target = email::SmtpTarget {
                    host: smtp.host.clone(),
                    port: smtp.port,
                    tls: smtp.tls,
                    auth: smtp.password.as_ref().map(|p| {
                        (
                            smtp.username.clone().unwrap_or_else(|| smtp.email.clone()),
                            p.clone(),
                        )
                    }),
                    from: smtp.email.clone(),
                };
                for r in &receivers {
                    let Some(addr) = r.identities.get("email") else {
                        continue;
                    };
                    match email::send(
                        &target,
                        std::slice::from_ref(addr),
                        &header,
                        &body,
                        &[],
                        timeout,
                    )
                    .await
                    {
                        Ok(()) => delivered.push((r, addr.clone())),
                        Err((true, e)) => errors.push(e),
                        Err((false, e)) => config_errors.push(e),
                    }
                }
            } else if let Some(wh) = &ch.webhook {
                let content = format!("{status}\r\n{body}");
                let with_hook: Vec<&Receiver> = receivers
                    .iter()
                    .filter(|r| r.identities.contains_key("webhook"))
                    .collect();
                let mut targets: Vec<(String, Vec<&Receiver>)> = with_hook
                    .iter()
                    .map(|r| (r.identities["webhook"].clone(), vec![*r]))
                    .collect();
                if targets.is_empty() {
                    targets.push((wh.url.clone(), receivers.iter().collect()));
                }
                for (url, rs) in targets {
                    let payload = json!({"receivers": rs, "content": content, "header": header});
                    match webhook::post(
                        http,
                        &url,
                        &wh.headers,
                        "application/json",
                        payload.to_string().into_bytes(),
                    )
                    .await
                    {
                        Ok(()) => delivered.extend(rs.into_iter().map(|r| (r, url.clone()))),
                        Err((true, e)) => errors.push(e),
                        Err((false, e)) => config_errors.push(e),
                    }
                }
            }
            for (r, identity) in delivered {
                inbox.push(InboxMessage {
                    id: uuid::Uuid::new_v4().to_string(),
                    receiver: r.name.clone(),
                    username: r.username.clone(),
                    channel: ch.name.clone(),
                    identity,
                    header: header.clone(),
                    body: body.clone(),
                    alarm_policy_name: vars["alarmPolicyName"].clone(),
                    cluster_id: vars["clusterID"].clone(),
                    alert_status: status.clone(),
                    fingerprint: fp_hex(a.fingerprint()),
                    created_at: Utc::now(),
                    read: false,
                });
            }
        }
    }
    if !inbox.is_empty() {
        store
            .add_messages(inbox)
            .map_err(|e| (true, format!("recording inbox: {e}")))?;
    }
    match (errors.is_empty(), config_errors.is_empty()) {
        (true, true) => Ok(()),
        (false, _) => {
            errors.extend(config_errors);
            Err((true, errors.join("; ")))
        }
        (true, false) => Err((false, config_errors.join("; "))),
    }
}
