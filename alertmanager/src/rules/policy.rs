//! TKEStack alarm policies compiled to Prometheus rule groups exactly as
//! TKEStack does: interval = statistics period, one alerting rule per
//! metric named after it, `for` = period × continue periods, the policy's
//! notify settings carried in annotations.

use std::collections::BTreeMap;

use crate::objects::AlarmPolicy;
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
    if p.metrics.is_empty() {
        return bad("metrics", "at least one metric is required".into());
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
            let receivers = p.receivers.join(",");
            let groups = p.receiver_groups.join(",");
            let ways: Vec<String> = p
                .notify_ways
                .iter()
                .map(|w| format!("{}:{}", w.channel, w.template))
                .collect();
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
                ("receivers", receivers),
                ("receiverGroups", groups),
                ("notifyWay", ways.join(",")),
                ("alarmPolicyType", p.policy_type.clone()),
                ("alarmObjectsType", p.objects_type.clone()),
                ("alarmObjects", p.objects.join(",")),
                ("value", value_tpl.to_string()),
            ]
            .into_iter()
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
}
