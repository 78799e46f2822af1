//! The alerting objects as REST resources: names and the checks each
//! object gets against the others before it is stored.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::objects::{AlarmPolicy, Channel, NotifyTemplate, Objects, Receiver, ReceiverGroup};

/// A named object kept in [`Objects`].
pub(super) trait Object:
    Serialize + DeserializeOwned + Clone + Send + Sync + 'static
{
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
