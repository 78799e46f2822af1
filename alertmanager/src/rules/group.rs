//! A rule group and its evaluation with Prometheus's semantics: recording
//! rules produce series; alerting rules move each label set through
//! inactive → pending → firing → resolved (`for`, `keep_firing_for`), and
//! produce `ALERTS`/`ALERTS_FOR_STATE` series and alerts to send.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use tidewatch_common::{Label, Labels};

use crate::model::Alert;
use crate::rules::file::{GroupDef, opt_duration};
use crate::rules::querier::Querier;
use crate::template::GoTemplates;

/// Prometheus keeps resolved alerts this long for resending.
const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;
/// Prometheus's `--rules.alert.resend-delay` default.
const RESEND_DELAY_MS: i64 = 60 * 1000;

/// State of an alert instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Resolved (kept for resending the resolution).
    Inactive,
    /// Condition true, `for` not yet elapsed.
    Pending,
    /// Firing.
    Firing,
}

impl AlertState {
    /// `inactive`, `pending`, `firing`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert instance of an alerting rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    /// Labels (rule labels and `alertname` included).
    #[serde(with = "crate::model::labels_map")]
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    /// Last value.
    pub value: f64,
    /// State.
    pub state: AlertState,
    /// When it became pending (ms).
    pub active_at: i64,
    /// When it started firing (ms).
    pub fired_at: Option<i64>,
    /// When it resolved (ms).
    pub resolved_at: Option<i64>,
    /// Last time it was sent (ms).
    pub last_sent_at: Option<i64>,
    /// Since when it is kept firing after the condition cleared (ms).
    pub keep_firing_since: Option<i64>,
}

/// A compiled rule.
#[derive(Clone, Debug)]
pub enum Rule {
    /// `record`.
    Recording {
        /// Output name.
        name: String,
        /// Expression.
        expr: String,
        /// Labels set on the output.
        labels: BTreeMap<String, String>,
    },
    /// `alert`.
    Alerting {
        /// Alert name.
        name: String,
        /// Expression.
        expr: String,
        /// `for`.
        for_ms: i64,
        /// `keep_firing_for`.
        keep_firing_for_ms: i64,
        /// Label templates.
        labels: BTreeMap<String, String>,
        /// Annotation templates.
        annotations: BTreeMap<String, String>,
    },
}

impl Rule {
    /// The rule's name (`record` or `alert`).
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording { name, .. } | Rule::Alerting { name, .. } => name,
        }
    }
}

/// A compiled group with the state of its alerting rules.
#[derive(Clone, Debug)]
pub struct Group {
    /// Name (file + group name makes the persistence key).
    pub name: String,
    /// Source (file path or `policy:<name>`).
    pub source: String,
    /// Evaluation interval.
    pub interval: Duration,
    /// Most series/alerts per rule (0: none).
    pub limit: usize,
    /// Rules in order.
    pub rules: Vec<Rule>,
    /// Per alerting rule (by index): label-set hash → instance.
    pub active: Vec<HashMap<u64, ActiveAlert>>,
    /// The compiled label and annotation templates.
    templates: std::sync::Arc<GoTemplates>,
}

/// What one evaluation produced.
#[derive(Debug, Default)]
pub struct EvalOutput {
    /// Series to write back (recording results, `ALERTS`, `ALERTS_FOR_STATE`).
    pub series: Vec<(Labels, f64)>,
    /// Alerts to send (firing, or resolved).
    pub alerts: Vec<Alert>,
    /// Rule errors (the group goes on with the next rule).
    pub errors: Vec<String>,
}

impl Group {
    /// Compiles a checked group definition.
    pub fn compile(
        def: &GroupDef,
        source: &str,
        default_interval: Duration,
    ) -> Result<Group, String> {
        let interval = opt_duration(&def.interval)?.unwrap_or(default_interval);
        let mut rules = Vec::new();
        for r in &def.rules {
            let mut labels = def.labels.clone();
            labels.extend(r.labels.clone());
            if let Some(rec) = &r.record {
                rules.push(Rule::Recording {
                    name: rec.clone(),
                    expr: r.expr.clone(),
                    labels,
                });
            } else if let Some(a) = &r.alert {
                let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis() as i64);
                rules.push(Rule::Alerting {
                    name: a.clone(),
                    expr: r.expr.clone(),
                    for_ms: ms(opt_duration(&r.for_)?),
                    keep_firing_for_ms: ms(opt_duration(&r.keep_firing_for)?),
                    labels,
                    annotations: r.annotations.clone(),
                });
            }
        }
        let n = rules.len();
        let mut templates = GoTemplates::default();
        for r in &rules {
            if let Rule::Alerting {
                labels,
                annotations,
                name,
                ..
            } = r
            {
                for v in labels.values().chain(annotations.values()) {
                    templates
                        .add(v)
                        .map_err(|e| format!("rule {name:?}: {e}"))?;
                }
            }
        }
        Ok(Group {
            templates: std::sync::Arc::new(templates),
            name: def.name.clone(),
            source: source.to_string(),
            interval,
            limit: def.limit,
            rules,
            active: vec![HashMap::new(); n],
        })
    }

    /// Persistence key.
    pub fn key(&self) -> String {
        format!("{};{}", self.source, self.name)
    }

    /// Evaluates every rule at `ts_ms` in order. Recording results are
    /// visible to later rules only through the querier's storage.
    pub async fn eval(
        &mut self,
        q: &dyn Querier,
        ts_ms: i64,
        external: &BTreeMap<String, String>,
        external_url: &str,
    ) -> EvalOutput {
        let mut out = EvalOutput::default();
        for i in 0..self.rules.len() {
            let rule = &self.rules[i];
            let res = match q
                .query(
                    match &rule {
                        Rule::Recording { expr, .. } | Rule::Alerting { expr, .. } => expr,
                    },
                    ts_ms,
                )
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    out.errors.push(format!("rule {:?}: {e}", rule.name()));
                    continue;
                }
            };
            if self.limit > 0 && res.len() > self.limit {
                out.errors.push(format!(
                    "rule {:?}: exceeded limit of {} with {} series",
                    rule.name(),
                    self.limit,
                    res.len()
                ));
                continue;
            }
            match &rule {
                Rule::Recording { name, labels, .. } => {
                    let mut seen = std::collections::HashSet::new();
                    for s in res {
                        let mut l = s.labels.clone();
                        l.set("__name__", name);
                        for (k, v) in labels {
                            l.set(k, v);
                        }
                        if !seen.insert(l.clone()) {
                            out.errors.push(format!(
                                "rule {name:?}: vector contains metrics with the same labelset after applying rule labels"
                            ));
                            break;
                        }
                        if s.histogram.is_some() {
                            out.errors.push(format!(
                                "rule {name:?}: recording native histogram samples is not supported"
                            ));
                            break;
                        }
                        out.series.push((l, s.value));
                    }
                }
                Rule::Alerting {
                    name,
                    for_ms,
                    keep_firing_for_ms,
                    labels,
                    annotations,
                    expr,
                } => {
                    let r = eval_alerting(
                        &mut self.active[i],
                        &self.templates,
                        AlertingRule {
                            name,
                            for_ms: *for_ms,
                            keep_firing_for_ms: *keep_firing_for_ms,
                            labels,
                            annotations,
                        },
                        res,
                        ts_ms,
                        external,
                    );
                    if let Err(e) = r {
                        out.errors.push(e);
                        continue;
                    }
                    for a in self.active[i].values() {
                        if a.state == AlertState::Inactive {
                            continue;
                        }
                        let mut l = a.labels.clone();
                        l.set("__name__", "ALERTS");
                        l.set("alertstate", a.state.as_str());
                        out.series.push((l, 1.0));
                        let mut f = a.labels.clone();
                        f.set("__name__", "ALERTS_FOR_STATE");
                        out.series.push((f, (a.active_at / 1000) as f64));
                    }
                    let interval_ms = self.interval.as_millis() as i64;
                    let gen_url = format!(
                        "{}/graph?g0.expr={}&g0.tab=1",
                        external_url.trim_end_matches('/'),
                        urlencode(expr)
                    );
                    for a in self.active[i].values_mut() {
                        if let Some(alert) = to_send(a, ts_ms, interval_ms, &gen_url) {
                            out.alerts.push(alert);
                        }
                    }
                }
            }
        }
        out
    }

    /// The firing/pending instances of alerting rules.
    pub fn alerts(&self) -> Vec<(String, ActiveAlert)> {
        let mut v = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            if let Rule::Alerting { name, .. } = r {
                v.extend(self.active[i].values().map(|a| (name.clone(), a.clone())));
            }
        }
        v
    }
}

struct AlertingRule<'a> {
    name: &'a str,
    for_ms: i64,
    keep_firing_for_ms: i64,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
}

fn eval_alerting(
    active: &mut HashMap<u64, ActiveAlert>,
    templates: &GoTemplates,
    rule: AlertingRule<'_>,
    res: Vec<crate::rules::querier::Sample>,
    ts: i64,
    external: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut current: HashMap<u64, ActiveAlert> = HashMap::with_capacity(res.len());
    let templated = rule
        .labels
        .values()
        .chain(rule.annotations.values())
        .any(|v| v.contains("{{"));
    for s in res {
        let mut l = s.labels;
        l.remove("__name__");
        // Templates see the labels before the rule's labels apply.
        let tmpl_labels: BTreeMap<&str, &str> = if templated {
            l.iter()
                .map(|x| (x.name.as_str(), x.value.as_str()))
                .collect()
        } else {
            BTreeMap::new()
        };
        let mut set = Vec::with_capacity(rule.labels.len());
        for (k, v) in rule.labels {
            let v = templates
                .render(v, &tmpl_labels, s.value, external)
                .map_err(|e| format!("rule {:?}: label {k}: {e}", rule.name))?;
            set.push((k, v));
        }
        let mut ann = BTreeMap::new();
        for (k, v) in rule.annotations {
            let v = templates
                .render(v, &tmpl_labels, s.value, external)
                .map_err(|e| format!("rule {:?}: annotation {k}: {e}", rule.name))?;
            ann.insert(k.clone(), v);
        }
        drop(tmpl_labels);
        for (k, v) in set {
            l.set(k, &v);
        }
        l.set("alertname", rule.name);
        let h = l.stable_hash();
        if current.contains_key(&h) {
            return Err(format!(
                "rule {:?}: vector contains metrics with the same labelset after applying alert labels",
                rule.name
            ));
        }
        current.insert(
            h,
            ActiveAlert {
                labels: l,
                annotations: ann,
                value: s.value,
                state: AlertState::Pending,
                active_at: ts,
                fired_at: None,
                resolved_at: None,
                last_sent_at: None,
                keep_firing_since: None,
            },
        );
    }
    let seen: std::collections::HashSet<u64> = current.keys().copied().collect();
    for (h, new) in current {
        match active.get_mut(&h) {
            Some(a) if a.state != AlertState::Inactive => {
                a.value = new.value;
                a.annotations = new.annotations;
                a.labels = new.labels;
            }
            _ => {
                active.insert(h, new);
            }
        }
    }
    let mut remove = Vec::new();
    for (h, a) in active.iter_mut() {
        if !seen.contains(h) {
            if rule.keep_firing_for_ms > 0 && a.state == AlertState::Firing {
                let since = *a.keep_firing_since.get_or_insert(ts);
                if ts - since < rule.keep_firing_for_ms {
                    continue;
                }
            }
            if a.state == AlertState::Pending
                || a.resolved_at
                    .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
            {
                remove.push(*h);
            } else if a.state != AlertState::Inactive {
                a.state = AlertState::Inactive;
                a.resolved_at = Some(ts);
            }
            continue;
        }
        a.keep_firing_since = None;
        if a.state == AlertState::Pending && ts - a.active_at >= rule.for_ms {
            a.state = AlertState::Firing;
            a.fired_at = Some(ts);
        }
    }
    for h in remove {
        active.remove(&h);
    }
    Ok(())
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The alert to send for an instance, if it is due (Prometheus's
/// `needsSending` and `sendAlerts`).
fn to_send(a: &mut ActiveAlert, ts: i64, interval_ms: i64, gen_url: &str) -> Option<Alert> {
    if a.state == AlertState::Pending {
        return None;
    }
    let due = match (a.resolved_at, a.last_sent_at) {
        (_, None) => true,
        (Some(r), Some(sent)) if r > sent => true,
        (_, Some(sent)) => sent + RESEND_DELAY_MS <= ts,
    };
    if !due {
        return None;
    }
    a.last_sent_at = Some(ts);
    let ends = match (a.state, a.resolved_at) {
        (AlertState::Inactive, Some(r)) => r,
        _ => ts + 4 * interval_ms.max(RESEND_DELAY_MS),
    };
    Some(Alert {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: ms_to_time(a.fired_at.unwrap_or(a.active_at)),
        ends_at: ms_to_time(ends),
        generator_url: gen_url.to_string(),
        updated_at: ms_to_time(ts),
        timeout: false,
    })
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Adds external labels to a label set (existing labels win).
pub fn with_external(l: &Labels, external: &BTreeMap<String, String>) -> Labels {
    if external.is_empty() {
        return l.clone();
    }
    let mut v: Vec<Label> = external
        .iter()
        .filter(|(k, _)| l.get(k).is_none())
        .map(|(k, v)| Label::new(k.clone(), v.clone()))
        .collect();
    v.extend(l.iter().cloned());
    Labels::from_vec(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::querier::{QueryFuture, Sample};

    struct Fixed(parking_lot::Mutex<Vec<Sample>>);
    impl Querier for Fixed {
        fn query<'a>(&'a self, _e: &'a str, _t: i64) -> QueryFuture<'a> {
            let v = self.0.lock().clone();
            Box::pin(async move { Ok(v) })
        }
    }

    #[tokio::test]
    async fn pending_firing_resolved() {
        let def: GroupDef = serde_yaml::from_str(
            "name: g\ninterval: 1m\nrules:\n- alert: High\n  expr: x > 1\n  for: 2m\n  labels: {severity: page}\n  annotations: {summary: 'v={{ $value }} on {{ $labels.instance }}'}\n",
        )
        .unwrap();
        let mut g = Group::compile(&def, "t", Duration::from_secs(60)).unwrap();
        let q = Fixed(parking_lot::Mutex::new(vec![Sample {
            labels: Labels::from_pairs([("__name__", "x"), ("instance", "a")]),
            value: 5.0,
            histogram: None,
        }]));
        let e = BTreeMap::new();
        let o = g.eval(&q, 0, &e, "http://x").await;
        assert!(o.alerts.is_empty());
        assert_eq!(g.alerts()[0].1.state, AlertState::Pending);
        let o = g.eval(&q, 60_000, &e, "http://x").await;
        assert!(o.alerts.is_empty());
        let o = g.eval(&q, 120_000, &e, "http://x").await;
        assert_eq!(o.alerts.len(), 1);
        assert_eq!(o.alerts[0].annotations["summary"], "v=5 on a");
        assert_eq!(o.alerts[0].labels.get("severity"), Some("page"));
        assert!(
            o.series
                .iter()
                .any(|(l, _)| l.get("alertstate") == Some("firing"))
        );
        q.0.lock().clear();
        let o = g.eval(&q, 180_000, &e, "http://x").await;
        assert_eq!(o.alerts.len(), 1);
        assert!(o.alerts[0].ends_at.timestamp_millis() == 180_000);
        assert_eq!(g.alerts()[0].1.state, AlertState::Inactive);
    }

    #[tokio::test]
    async fn keep_firing_for_holds_the_alert() {
        let def: GroupDef = serde_yaml::from_str(
            "name: g\nrules:\n- alert: Flappy\n  expr: x\n  keep_firing_for: 2m\n",
        )
        .unwrap();
        let mut g = Group::compile(&def, "t", Duration::from_secs(60)).unwrap();
        let q = Fixed(parking_lot::Mutex::new(vec![Sample {
            labels: Labels::from_pairs([("__name__", "x")]),
            value: 1.0,
            histogram: None,
        }]));
        let e = BTreeMap::new();
        let o = g.eval(&q, 0, &e, "").await;
        assert_eq!(o.alerts.len(), 1, "for: 0 fires at once");
        q.0.lock().clear();
        for t in [60_000, 120_000] {
            g.eval(&q, t, &e, "").await;
            assert_eq!(
                g.alerts()[0].1.state,
                AlertState::Firing,
                "kept firing at {t}"
            );
        }
        let o = g.eval(&q, 180_000, &e, "").await;
        assert_eq!(g.alerts()[0].1.state, AlertState::Inactive);
        assert_eq!(o.alerts[0].ends_at.timestamp_millis(), 180_000);
    }
}
