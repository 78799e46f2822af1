//! Alert engine configuration (`alerting:` section): the Alertmanager-style
//! routing tree, receivers, inhibition rules and time intervals, plus rule
//! evaluation and limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate, join};
use tidewatch_common::duration::serde_duration;

use crate::matcher::Matchers;
use crate::timeinterval::TimeInterval;

/// Alert engine settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The routing tree; when absent every alert goes to the built-in
    /// `platform` receiver (TKEStack-style receivers, channels and templates).
    pub route: Option<RouteConfig>,
    /// Receivers named by routes.
    pub receivers: Vec<ReceiverConfig>,
    /// Inhibition rules.
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Named time intervals used by `mute_time_intervals`/`active_time_intervals`.
    pub time_intervals: Vec<TimeIntervalConfig>,
    /// How long an alert without `endsAt` stays active (Alertmanager: 5m).
    #[serde(with = "serde_duration")]
    pub resolve_timeout: Duration,
    /// How long resolved alerts stay visible through the API.
    #[serde(with = "serde_duration")]
    pub resolved_retention: Duration,
    /// Base URL used in links (`externalURL`).
    pub external_url: String,
    /// Prometheus rule files to evaluate.
    pub rule_files: Vec<PathBuf>,
    /// Default evaluation interval of rule groups.
    #[serde(with = "serde_duration")]
    pub evaluation_interval: Duration,
    /// Built-in recording rules (the TKEStack cluster usage catalogue summed
    /// from the collectors' per-node shares).
    pub builtin_rules: BuiltinRules,
    /// Prometheus HTTP API base URL queried by rule evaluation (the stack
    /// fills it with its own address when unset).
    pub query_url: Option<String>,
    /// Remote-write URL for `ALERTS`, `ALERTS_FOR_STATE` and recording-rule
    /// results; nothing is written back when unset.
    pub remote_write_url: Option<String>,
    /// Labels added to every rule-generated alert and series.
    pub external_labels: BTreeMap<String, String>,
    /// Notification delivery settings.
    pub notify: NotifyConfig,
    /// Request limits of the HTTP APIs.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            route: None,
            receivers: Vec::new(),
            inhibit_rules: Vec::new(),
            time_intervals: Vec::new(),
            resolve_timeout: Duration::from_secs(300),
            resolved_retention: Duration::from_secs(900),
            external_url: "http://127.0.0.1:9800".into(),
            rule_files: Vec::new(),
            evaluation_interval: Duration::from_secs(60),
            builtin_rules: BuiltinRules::default(),
            query_url: None,
            remote_write_url: None,
            external_labels: BTreeMap::new(),
            notify: NotifyConfig::default(),
            limits: Limits::default(),
        }
    }
}

/// Built-in recording rules (`alerting.builtin_rules`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuiltinRules {
    /// Whether they are evaluated (`up` and the `alertmanager` role).
    pub enabled: bool,
    /// Their evaluation interval (the collector's default cycle).
    #[serde(with = "serde_duration")]
    pub interval: Duration,
}

impl Default for BuiltinRules {
    fn default() -> Self {
        BuiltinRules {
            enabled: true,
            interval: Duration::from_secs(15),
        }
    }
}

/// Delivery settings shared by every integration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Timeout of one delivery attempt.
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
    /// Attempts per notification before giving up until the next flush.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    #[serde(with = "serde_duration")]
    pub initial_backoff: Duration,
    /// Cap of the retry delay.
    #[serde(with = "serde_duration")]
    pub max_backoff: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            timeout: Duration::from_secs(10),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Explicit limits of the APIs.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most alerts accepted in one `POST /api/v2/alerts`.
    pub max_alerts_per_request: usize,
    /// Most alerts held at once.
    pub max_alerts: usize,
    /// Most silences held at once (expired included).
    pub max_silences: usize,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// History entries kept.
    pub max_history: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_alerts_per_request: 10_000,
            max_alerts: 100_000,
            max_silences: 10_000,
            max_body_bytes: 16 << 20,
            max_history: 10_000,
        }
    }
}

/// One node of the routing tree (Alertmanager's `route`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver; inherited from the parent when empty.
    pub receiver: Option<String>,
    /// Labels to group by; `...` groups by all labels. Inherited when absent.
    pub group_by: Option<Vec<String>>,
    /// Matchers in Prometheus notation (`severity=~"page|critical"`).
    pub matchers: Vec<String>,
    /// Deprecated equality matchers.
    #[serde(rename = "match")]
    pub match_eq: BTreeMap<String, String>,
    /// Deprecated regex matchers.
    pub match_re: BTreeMap<String, String>,
    /// Keep matching siblings after this route matched.
    #[serde(rename = "continue")]
    pub continue_: bool,
    /// Wait before the first notification of a new group.
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<Duration>,
    /// Wait between notifications about changes to a group.
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub group_interval: Option<Duration>,
    /// Wait before re-sending an unchanged group.
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<Duration>,
    /// Time intervals during which notifications are muted.
    pub mute_time_intervals: Vec<String>,
    /// Time intervals outside which notifications are muted.
    pub active_time_intervals: Vec<String>,
    /// Child routes.
    pub routes: Vec<RouteConfig>,
}

/// A receiver: a name and its integrations.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Unique name.
    pub name: String,
    /// Webhooks.
    pub webhook_configs: Vec<WebhookConfig>,
    /// Emails.
    pub email_configs: Vec<EmailConfig>,
}

/// A webhook integration: Alertmanager's webhook JSON (version 4), or a
/// body rendered from `body_template` (WeCom/DingTalk/Feishu-style bots).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Target URL.
    pub url: String,
    /// Also notify about resolved alerts (default true).
    pub send_resolved: Option<bool>,
    /// Most alerts per payload (0: all).
    pub max_alerts: usize,
    /// Extra HTTP headers.
    pub headers: BTreeMap<String, String>,
    /// Minijinja template of the whole body; when set the body is this
    /// template's output instead of the Alertmanager JSON.
    pub body_template: Option<String>,
    /// Built-in bot body: `wecom`, `dingtalk` or `feishu` (markdown text).
    pub bot: Option<String>,
    /// Content type of a templated body (default `application/json`).
    pub content_type: Option<String>,
}

/// How an SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// No encryption (local relays, tests).
    Plain,
    /// Upgrade with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// An email integration.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// Recipients, comma-separated.
    pub to: String,
    /// Sender address.
    pub from: String,
    /// `host:port` of the SMTP server.
    pub smarthost: String,
    /// Connection security.
    pub tls: SmtpTls,
    /// SMTP AUTH user.
    pub auth_username: Option<String>,
    /// SMTP AUTH password (or `$TIDEWATCH_SMTP_PASSWORD`).
    pub auth_password: Option<String>,
    /// Also notify about resolved alerts (default false, like Alertmanager).
    pub send_resolved: Option<bool>,
    /// Subject template (minijinja); a good default otherwise.
    pub subject: Option<String>,
    /// Body template (minijinja, plain text); a good default otherwise.
    pub text: Option<String>,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
}

/// An inhibition rule: alerts matching `target_matchers` are muted while an
/// alert matching `source_matchers` fires with equal `equal` labels.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Matchers of the inhibiting alert.
    pub source_matchers: Vec<String>,
    /// Matchers of the muted alerts.
    pub target_matchers: Vec<String>,
    /// Labels that must be equal in both.
    pub equal: Vec<String>,
}

/// A named set of time intervals.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeIntervalConfig {
    /// Name referenced by routes.
    pub name: String,
    /// The intervals (any of them matching means "in the interval").
    pub time_intervals: Vec<TimeInterval>,
}

/// Serde adapter for optional Prometheus durations.
pub mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};
    use tidewatch_common::duration::{format_duration, parse_duration};

    /// Serialises `Some` as a duration string.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    /// Deserialises an optional duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl Validate for Config {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        let mut err = |p: String, message: String| {
            errors.push(FieldError {
                path: p,
                message,
                line: None,
            })
        };
        let mut names = std::collections::HashSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let rp = join(path, &format!("receivers[{i}]"));
            if r.name.is_empty() {
                err(join(&rp, "name"), "must not be empty".into());
            } else if !names.insert(r.name.as_str()) {
                err(
                    join(&rp, "name"),
                    format!("duplicate receiver {:?}", r.name),
                );
            }
            for (j, w) in r.webhook_configs.iter().enumerate() {
                let wp = join(&rp, &format!("webhook_configs[{j}]"));
                if reqwest::Url::parse(&w.url).is_err() {
                    err(join(&wp, "url"), format!("invalid URL {:?}", w.url));
                }
                if let Some(b) = &w.bot
                    && !["wecom", "dingtalk", "feishu"].contains(&b.as_str())
                {
                    err(
                        join(&wp, "bot"),
                        format!("unknown bot {b:?} (wecom, dingtalk, feishu)"),
                    );
                }
                if let Some(t) = &w.body_template
                    && let Err(e) = crate::template::check(t)
                {
                    err(join(&wp, "body_template"), e);
                }
            }
            for (j, e) in r.email_configs.iter().enumerate() {
                let ep = join(&rp, &format!("email_configs[{j}]"));
                if e.to.trim().is_empty() {
                    err(join(&ep, "to"), "must not be empty".into());
                }
                if e.from.trim().is_empty() {
                    err(join(&ep, "from"), "must not be empty".into());
                }
                if crate::notify::email::split_host_port(&e.smarthost).is_none() {
                    err(
                        join(&ep, "smarthost"),
                        format!("expected host:port, got {:?}", e.smarthost),
                    );
                }
                for (f, t) in [("subject", &e.subject), ("text", &e.text)] {
                    if let Some(t) = t
                        && let Err(m) = crate::template::check(t)
                    {
                        err(join(&ep, f), m);
                    }
                }
            }
        }
        let intervals: std::collections::HashSet<&str> = self
            .time_intervals
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        if let Some(route) = &self.route {
            let rp = join(path, "route");
            if route.receiver.is_none() {
                err(
                    join(&rp, "receiver"),
                    "the root route needs a receiver".into(),
                );
            }
            validate_route(route, &rp, &names, &intervals, &mut err);
        }
        for (i, r) in self.inhibit_rules.iter().enumerate() {
            let ip = join(path, &format!("inhibit_rules[{i}]"));
            for (f, ms) in [
                ("source_matchers", &r.source_matchers),
                ("target_matchers", &r.target_matchers),
            ] {
                if let Err(e) = Matchers::parse_list(ms) {
                    err(join(&ip, f), e);
                }
            }
        }
        for (i, t) in self.time_intervals.iter().enumerate() {
            let tp = join(path, &format!("time_intervals[{i}]"));
            for (j, ti) in t.time_intervals.iter().enumerate() {
                if let Err(e) = ti.validate() {
                    err(join(&tp, &format!("time_intervals[{j}]")), e);
                }
            }
        }
        for (name, url) in [
            ("query_url", &self.query_url),
            ("remote_write_url", &self.remote_write_url),
        ] {
            if let Some(u) = url
                && reqwest::Url::parse(u).is_err()
            {
                err(join(path, name), format!("invalid URL {u:?}"));
            }
        }
        if self.evaluation_interval.is_zero() {
            err(
                join(path, "evaluation_interval"),
                "must be greater than 0".into(),
            );
        }
        if self.builtin_rules.interval < Duration::from_secs(1) {
            err(
                join(&join(path, "builtin_rules"), "interval"),
                "must be at least 1s".into(),
            );
        }
        if self.notify.max_attempts == 0 {
            err(
                join(path, "notify.max_attempts"),
                "must be at least 1".into(),
            );
        }
    }
}

fn validate_route(
    route: &RouteConfig,
    path: &str,
    receivers: &std::collections::HashSet<&str>,
    intervals: &std::collections::HashSet<&str>,
    err: &mut impl FnMut(String, String),
) {
    if let Some(r) = &route.receiver
        && r != crate::PLATFORM_RECEIVER
        && !receivers.contains(r.as_str())
    {
        err(join(path, "receiver"), format!("undefined receiver {r:?}"));
    }
    if let Err(e) = Matchers::parse_list(&route.matchers) {
        err(join(path, "matchers"), e);
    }
    for (k, v) in &route.match_re {
        if regex::Regex::new(&format!("^(?:{v})$")).is_err() {
            err(
                join(path, &format!("match_re.{k}")),
                format!("invalid regex {v:?}"),
            );
        }
    }
    for (f, names) in [
        ("mute_time_intervals", &route.mute_time_intervals),
        ("active_time_intervals", &route.active_time_intervals),
    ] {
        for n in names {
            if !intervals.contains(n.as_str()) {
                err(join(path, f), format!("undefined time interval {n:?}"));
            }
        }
    }
    for (f, d) in [
        ("group_interval", route.group_interval),
        ("repeat_interval", route.repeat_interval),
    ] {
        if d == Some(Duration::ZERO) {
            err(join(path, f), "must be greater than 0".into());
        }
    }
    for (i, r) in route.routes.iter().enumerate() {
        validate_route(
            r,
            &join(path, &format!("routes[{i}]")),
            receivers,
            intervals,
            err,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_switch_parses_and_its_interval_is_validated() {
        let c: Config =
            serde_yaml::from_str("builtin_rules: {enabled: false, interval: 30s}").unwrap();
        assert!(!c.builtin_rules.enabled);
        assert_eq!(c.builtin_rules.interval, Duration::from_secs(30));
        assert!(Config::default().builtin_rules.enabled, "on by default");
        let mut errors = Vec::new();
        c.validate("alerting", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");

        let c: Config = serde_yaml::from_str("builtin_rules: {interval: 100ms}").unwrap();
        let mut errors = Vec::new();
        c.validate("alerting", &mut errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "alerting.builtin_rules.interval");
        assert!(
            serde_yaml::from_str::<Config>("builtin_rules: {enable: true}").is_err(),
            "unknown fields are errors"
        );
    }
}
