//! TKEStack alarm policies compiled to Prometheus rule groups exactly as
//! TKEStack does: interval = statistics period, one alerting rule per
//! metric named after it, `for` = period × continue periods, the policy's
//! notify settings carried in annotations. Raw PromQL rules of a policy
//! (the dashboards' PromQL mode) join the same group as written, with the
//! same notify annotations.

use std::collections::BTreeMap;

use crate::objects::{AlarmPolicy, PolicyRule};
use crate::rules::file::{GroupDef, RuleDef};

/// Checks a policy; errors are `(field, message)`.
pub fn validate(p: &AlarmPolicy) -> Result<(), (String, String)> {
    let bad = |f: &str, m: String| Err((f.to_string(), m));
    if p.name.trim().is_empty() {
        return bad("name", "must not be empty".into());
    }
    if p.name.chars().count() > 60 {
        return bad("name", "at most 60 characters".into());
    }
    if !["cluster", "node", "pod", "virtualMachine"].contains(&p.policy_type.as_str()) {
        return bad(
            "type",
            format!(
                "{:?} is not one of cluster, node, pod, virtualMachine",
                p.policy_type
            ),
        );
    }
    if !["all", "part"].contains(&p.objects_type.as_str()) {
        return bad(
            "objects_type",
            format!("{:?} is not all or part", p.objects_type),
        );
    }
    if p.objects_type == "part" && p.objects.is_empty() {
        return bad(
            "objects",
            "objects_type part needs at least one object".into(),
        );
    }
    if p.statistics_period == 0 {
        return bad("statistics_period", "must be greater than 0".into());
    }
    if p.metrics.is_empty() && p.rules.is_empty() {
        return bad(
            "metrics",
            "at least one metric (or one PromQL rule in rules) is required".into(),
        );
    }
    for (i, r) in p.rules.iter().enumerate() {
        validate_rule(p, r).map_err(|(f, m)| (format!("rules[{i}].{f}"), m))?;
    }
    for (i, m) in p.metrics.iter().enumerate() {
        let f = |x: &str| format!("metrics[{i}].{x}");
        if !tidewatch_common::labels::is_valid_metric_name(&m.metric_name) {
            return bad(
                &f("metric_name"),
                format!("invalid metric name {:?}", m.metric_name),
            );
        }
        if !(1..=5).contains(&m.continue_period) {
            return bad(&f("continue_period"), "must be between 1 and 5".into());
        }
        if !["gt", "lt", "eq"].contains(&m.evaluator.kind.as_str()) {
            return bad(
                &f("evaluator.type"),
                format!("{:?} is not gt, lt or eq", m.evaluator.kind),
            );
        }
        let v = m.evaluator.value.as_str();
        if v != "true" && v != "false" && v.parse::<f64>().is_err() {
            return bad(
                &f("evaluator.value"),
                format!("{v:?} is not a number, true or false"),
            );
        }
    }
    for (i, w) in p.notify_ways.iter().enumerate() {
        if w.channel.is_empty() {
            return bad(
                &format!("notify_ways[{i}].channel"),
                "must not be empty".into(),
            );
        }
    }
    Ok(())
}

/// Checks one raw PromQL rule; the field is relative to the rule.
fn validate_rule(p: &AlarmPolicy, r: &PolicyRule) -> Result<(), (String, String)> {
    let name = rule_name(p, r);
    if !tidewatch_common::labels::is_valid_metric_name(name) {
        let why = if r.alert.is_empty() {
            format!("required: the policy name {name:?} is not a valid alert name")
        } else {
            format!("invalid alert name {name:?} (letters, digits, _ and :)")
        };
        return Err(("alert".into(), why));
    }
    if r.expr.trim().is_empty() {
        return Err(("expr".into(), "must not be empty".into()));
    }
    if let Err(e) = promql_parser::parser::parse(&r.expr) {
        return Err(("expr".into(), format!("could not parse {:?}: {e}", r.expr)));
    }
    if !r.for_.is_empty() {
        tidewatch_common::duration::parse_duration(&r.for_)
            .map_err(|e| ("for".to_string(), format!("{:?}: {e}", r.for_)))?;
    }
    let def = compile_rule(p, r);
    if let Some(e) = crate::rules::file::check_rule(&def).into_iter().next() {
        let field = if e.starts_with("label") {
            "severity"
        } else {
            "summary"
        };
        return Err((field.into(), e));
    }
    Ok(())
}

fn rule_name<'a>(p: &'a AlarmPolicy, r: &'a PolicyRule) -> &'a str {
    if r.alert.is_empty() {
        &p.name
    } else {
        &r.alert
    }
}

/// The notify settings every rule of a policy carries as annotations.
fn notify_annotations(p: &AlarmPolicy) -> Vec<(&'static str, String)> {
    let ways: Vec<String> = p
        .notify_ways
        .iter()
        .map(|w| format!("{}:{}", w.channel, w.template))
        .collect();
    vec![
        ("receivers", p.receivers.join(",")),
        ("receiverGroups", p.receiver_groups.join(",")),
        ("notifyWay", ways.join(",")),
        ("alarmPolicyType", p.policy_type.clone()),
        ("alarmObjectsType", p.objects_type.clone()),
        ("alarmObjects", p.objects.join(",")),
    ]
}

/// A raw PromQL rule as written, with the policy's labels and notify
/// annotations.
fn compile_rule(p: &AlarmPolicy, r: &PolicyRule) -> RuleDef {
    let name = rule_name(p, r).to_string();
    let mut annotations: BTreeMap<String, String> = notify_annotations(p)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    annotations.insert("metricDisplayName".into(), name.clone());
    annotations.insert("value".into(), "{{ $value }}".into());
    if !r.summary.is_empty() {
        annotations.insert("summary".into(), r.summary.clone());
    }
    let mut labels: BTreeMap<String, String> = [
        ("alarmPolicyName", p.name.clone()),
        ("version", p.version.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if !r.severity.is_empty() {
        labels.insert("severity".into(), r.severity.clone());
    }
    RuleDef {
        record: None,
        alert: Some(name),
        expr: r.expr.clone(),
        for_: (!r.for_.is_empty()).then(|| r.for_.clone()),
        keep_firing_for: None,
        labels,
        annotations,
    }
}

fn quote(v: &str) -> String {
    format!("\"{}\"", tidewatch_common::labels::escape_value(v))
}

fn escape_re(v: &str) -> String {
    regex::escape(v).replace('\\', "\\\\")
}

/// The rule group of a policy.
pub fn compile(p: &AlarmPolicy) -> GroupDef {
    let mut filter: Vec<String> = Vec::new();
    if !p.cluster_id.is_empty() {
        filter.push(format!("cluster_id={}", quote(&p.cluster_id)));
    }
    if p.policy_type == "pod" || p.policy_type == "virtualMachine" {
        if !p.namespace.is_empty() {
            filter.push(format!("namespace={}", quote(&p.namespace)));
        }
        if !p.workload_type.is_empty() {
            filter.push(format!("workload_kind={}", quote(&p.workload_type)));
        }
        if p.objects_type == "part" {
            let name = if p.policy_type == "virtualMachine" {
                "name"
            } else {
                "workload_name"
            };
            let alts: Vec<String> = p.objects.iter().map(|o| escape_re(o)).collect();
            filter.push(format!("{name}=~\"{}\"", alts.join("|")));
        }
    }
    let rules = p
        .metrics
        .iter()
        .map(|m| {
            let op = match m.evaluator.kind.as_str() {
                "gt" => ">",
                "lt" => "<",
                _ => "==",
            };
            let (value, is_bool) = match m.evaluator.value.as_str() {
                "true" => ("1".to_string(), true),
                "false" => ("0".to_string(), true),
                v => (v.to_string(), false),
            };
            let (op, value) = if is_bool { ("==", value) } else { (op, value) };
            let expr = if filter.is_empty() {
                format!("{} {op} {value}", m.metric_name)
            } else {
                format!("{}{{{}}} {op} {value}", m.metric_name, filter.join(","))
            };
            let value_tpl = if m.unit == "%" {
                "{{ printf \"%.2f\" $value }}"
            } else {
                "{{ $value }}"
            };
            let annotations: BTreeMap<String, String> = [
                ("isBool", is_bool.to_string()),
                ("evaluateType", m.evaluator.kind.clone()),
                ("evaluateValue", m.evaluator.value.clone()),
                ("unit", m.unit.clone()),
                ("measurement", m.measurement.clone()),
                (
                    "metricDisplayName",
                    if m.display_name.is_empty() {
                        m.metric_name.clone()
                    } else {
                        m.display_name.clone()
                    },
                ),
                ("value", value_tpl.to_string()),
            ]
            .into_iter()
            .chain(notify_annotations(p))
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let labels: BTreeMap<String, String> = [
                ("alert", m.metric_name.clone()),
                ("alarmPolicyName", p.name.clone()),
                ("version", p.version.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            RuleDef {
                record: None,
                alert: Some(m.metric_name.clone()),
                expr,
                for_: Some(format!(
                    "{}s",
                    p.statistics_period * m.continue_period as u64
                )),
                keep_firing_for: None,
                labels,
                annotations,
            }
        })
        .chain(p.rules.iter().map(|r| compile_rule(p, r)))
        .collect();
    GroupDef {
        name: p.name.clone(),
        interval: Some(format!("{}s", p.statistics_period)),
        limit: 0,
        labels: BTreeMap::new(),
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{AlarmMetric, Evaluator, NotifyWay};

    #[test]
    fn compiles_like_tkestack() {
        let p = AlarmPolicy {
            name: "pods".into(),
            cluster_id: "cls-1".into(),
            policy_type: "pod".into(),
            objects_type: "part".into(),
            objects: vec!["web".into(), "api".into()],
            namespace: "default".into(),
            workload_type: "Deployment".into(),
            statistics_period: 60,
            metrics: vec![
                AlarmMetric {
                    metric_name: "k8s_pod_rate_cpu_core_used_limit".into(),
                    display_name: "CPU".into(),
                    measurement: "k8s_pod".into(),
                    continue_period: 3,
                    evaluator: Evaluator {
                        kind: "gt".into(),
                        value: "90".into(),
                    },
                    unit: "%".into(),
                },
                AlarmMetric {
                    metric_name: "k8s_pod_status_ready".into(),
                    display_name: String::new(),
                    measurement: "k8s_pod".into(),
                    continue_period: 1,
                    evaluator: Evaluator {
                        kind: "eq".into(),
                        value: "false".into(),
                    },
                    unit: String::new(),
                },
            ],
            receivers: vec!["alice".into()],
            receiver_groups: vec!["ops".into()],
            notify_ways: vec![NotifyWay {
                channel: "mail".into(),
                template: "t".into(),
            }],
            rules: vec![],
            version: 2,
        };
        validate(&p).unwrap();
        let g = compile(&p);
        assert_eq!(g.interval.as_deref(), Some("60s"));
        assert_eq!(
            g.rules[0].expr,
            "k8s_pod_rate_cpu_core_used_limit{cluster_id=\"cls-1\",namespace=\"default\",workload_kind=\"Deployment\",workload_name=~\"web|api\"} > 90"
        );
        assert_eq!(g.rules[0].for_.as_deref(), Some("180s"));
        assert_eq!(
            g.rules[1].expr.split(' ').skip(1).collect::<Vec<_>>(),
            ["==", "0"]
        );
        assert_eq!(g.rules[0].annotations["notifyWay"], "mail:t");
        assert_eq!(g.rules[0].labels["alarmPolicyName"], "pods");
        let f = crate::rules::file::RuleFile { groups: vec![g] };
        assert!(
            crate::rules::file::check(&f).is_empty(),
            "{:?}",
            crate::rules::file::check(&f)
        );
    }

    #[test]
    fn raw_promql_rules_validate_and_compile_beside_metrics() {
        let rule = |alert: &str, expr: &str, for_: &str| PolicyRule {
            alert: alert.into(),
            expr: expr.into(),
            for_: for_.into(),
            severity: "critical".into(),
            summary: "{{ $labels.job }} down".into(),
        };
        let mut p: AlarmPolicy = serde_json::from_value(serde_json::json!({
            "name": "raw", "type": "cluster", "statistics_period": 30, "metrics": [],
            "rules": [{"alert": "TargetDown", "expr": "up == 0", "for": "2m",
                       "severity": "critical", "summary": "{{ $labels.job }} down"}],
        }))
        .unwrap();
        validate(&p).unwrap();
        let g = compile(&p);
        assert_eq!(g.rules.len(), 1);
        let r = &g.rules[0];
        assert_eq!(r.alert.as_deref(), Some("TargetDown"));
        assert_eq!(r.expr, "up == 0");
        assert_eq!(r.for_.as_deref(), Some("2m"));
        assert_eq!(r.labels["severity"], "critical");
        assert_eq!(r.labels["alarmPolicyName"], "raw");
        assert_eq!(r.annotations["summary"], "{{ $labels.job }} down");

        for (bad, field) in [
            (rule("TargetDown", "up ==", "1m"), "rules[0].expr"),
            (rule("TargetDown", "up == 0", "soon"), "rules[0].for"),
            (rule("target down", "up == 0", "1m"), "rules[0].alert"),
            (rule("", "up == 0", "1m"), "rules[0].alert"),
            (rule("TargetDown", " ", "1m"), "rules[0].expr"),
        ] {
            p.name = "raw policy".into();
            p.rules = vec![bad];
            assert_eq!(validate(&p).unwrap_err().0, field);
        }
        p.rules = vec![PolicyRule {
            summary: "{{ $labels.job".into(),
            ..rule("TargetDown", "up == 0", "")
        }];
        assert_eq!(validate(&p).unwrap_err().0, "rules[0].summary");
        p.rules.clear();
        assert_eq!(validate(&p).unwrap_err().0, "metrics");
        let unknown = serde_json::from_value::<AlarmPolicy>(serde_json::json!({
            "name": "raw", "type": "cluster", "statistics_period": 30,
            "rules": [{"expr": "up", "sevrity": "x"}],
        }));
        assert!(unknown.is_err());
    }
}
