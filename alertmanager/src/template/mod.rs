//! Templates: minijinja for notification subjects and bodies (with
//! TKEStack's variables), and Prometheus's Go-template annotations
//! (`{{ $labels.x }}`, `{{ $value | humanize }}`) translated to minijinja.

use minijinja::{Environment, Value};

mod funcs;
mod go;

pub use funcs::fmt_g;
use funcs::{humanize, humanize_1024, humanize_duration, printf, titlecase};
pub use go::{GoTemplates, expand_go, translate_go};

/// Default email subject.
pub const DEFAULT_SUBJECT: &str = "[{{ status|upper }}{% if status == \"firing\" %}:{{ firingCount }}{% endif %}] {{ groupLabelsText }}";

/// Default plain-text body (email, bots, TKEStack templates without a body).
pub const DEFAULT_TEXT: &str = "{{ status|upper }}: {{ groupLabelsText }}
{% for a in alerts %}
[{{ a.status|upper }}] {{ a.labels.alertname }}
{%- if a.annotations.summary %}
  Summary: {{ a.annotations.summary }}{% endif %}
{%- if a.annotations.description %}
  Description: {{ a.annotations.description }}{% endif %}
{%- if a.vars.value %}
  Value: {{ a.vars.value }}{{ a.vars.unit }}{% endif %}
  Labels: {% for k, v in a.labels|items %}{{ k }}={{ v }} {% endfor %}
  Started: {{ a.startsAt }}{% if a.status == \"resolved\" %}
  Ended: {{ a.endsAt }}{% endif %}
{%- if a.generatorURL %}
  Source: {{ a.generatorURL }}{% endif %}
{% endfor %}";

/// Default body of TKEStack-style per-alert messages (`{{ var }}` of the
/// TKEStack variables).
pub const DEFAULT_MESSAGE: &str = "[{{ status|upper }}] {{ alertName }}
Policy: {{ alarmPolicyName }} ({{ alarmPolicyType }})
{% if clusterID %}Cluster: {{ clusterID }}
{% endif %}{% if metricDisplayName %}Metric: {{ metricDisplayName }} {{ evaluateType }} {{ evaluateValue }}{{ unit }}
{% endif %}Value: {{ value }}{{ unit }}
{% if namespace %}Namespace: {{ namespace }}
{% endif %}{% if workloadName %}Workload: {{ workloadKind }}/{{ workloadName }}
{% endif %}{% if podName %}Pod: {{ podName }}
{% endif %}{% if nodeName %}Node: {{ nodeName }}
{% endif %}Started: {{ startsAt }}";

/// The minijinja environment with Prometheus's template functions.
pub(crate) fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env.add_function("humanize", |v: f64| humanize(v));
    env.add_filter("humanize", |v: f64| humanize(v));
    env.add_function("humanize1024", |v: f64| humanize_1024(v));
    env.add_function("humanizePercentage", |v: f64| {
        format!("{}%", fmt_g(v * 100.0))
    });
    env.add_filter("humanizePercentage", |v: f64| {
        format!("{}%", fmt_g(v * 100.0))
    });
    env.add_function("humanizeDuration", |v: f64| humanize_duration(v));
    env.add_filter("humanizeDuration", |v: f64| humanize_duration(v));
    env.add_function("printf", printf);
    env.add_filter("gofmt", |v: Value| match v.kind() {
        minijinja::value::ValueKind::Number => {
            f64::try_from(v.clone()).map_or_else(|_| v.to_string(), fmt_g)
        }
        _ => v.to_string(),
    });
    env.add_function("toUpper", |s: String| s.to_uppercase());
    env.add_function("toLower", |s: String| s.to_lowercase());
    env.add_function("title", |s: String| titlecase(&s));
    env.add_function("gt", |a: Value, b: Value| {
        cmp(&a, &b).is_some_and(|o| o.is_gt())
    });
    env.add_function("ge", |a: Value, b: Value| {
        cmp(&a, &b).is_some_and(|o| o.is_ge())
    });
    env.add_function("lt", |a: Value, b: Value| {
        cmp(&a, &b).is_some_and(|o| o.is_lt())
    });
    env.add_function("le", |a: Value, b: Value| {
        cmp(&a, &b).is_some_and(|o| o.is_le())
    });
    env.add_function("eq", |a: Value, b: Value| a == b);
    env.add_function("ne", |a: Value, b: Value| a != b);
    env
}

fn cmp(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (f64::try_from(a.clone()), f64::try_from(b.clone())) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y),
        _ => Some(a.to_string().cmp(&b.to_string())),
    }
}

/// Checks that a minijinja template parses.
pub fn check(src: &str) -> Result<(), String> {
    let env = env();
    env.template_from_str(src)
        .map(|_| ())
        .map_err(|e| format!("invalid template: {e}"))
}

/// Renders a minijinja template with `ctx`.
pub fn render(src: &str, ctx: &serde_json::Value) -> Result<String, String> {
    let env = env();
    let t = env
        .template_from_str(src)
        .map_err(|e| format!("invalid template: {e}"))?;
    t.render(Value::from_serialize(ctx))
        .map_err(|e| format!("rendering template: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("instance".to_string(), "h:9".to_string())])
    }

    #[test]
    fn go_templates() {
        let e = BTreeMap::new();
        let l = labels();
        assert_eq!(
            expand_go(
                "Instance {{ $labels.instance }} down, {{ $value }}",
                &l,
                3.0,
                &e
            )
            .unwrap(),
            "Instance h:9 down, 3"
        );
        assert_eq!(
            expand_go("{{ printf \"%.2f\" $value }}", &l, 3.14659, &e).unwrap(),
            "3.15"
        );
        assert_eq!(
            expand_go("{{ $value | humanize }}", &l, 1234567.0, &e).unwrap(),
            "1.235M"
        );
        assert_eq!(
            expand_go("{{ if gt $value 2.0 }}hi{{ else }}lo{{ end }}", &l, 3.0, &e).unwrap(),
            "hi"
        );
        assert!(expand_go("{{ $label.foo }}", &l, 1.0, &e).is_err());
        assert_eq!(
            expand_go("{{ humanizeDuration 3661 }}", &l, 1.0, &e).unwrap(),
            "1h 1m 1s"
        );
        assert_eq!(
            expand_go("{{ humanizePercentage 0.5 }}", &l, 1.0, &e).unwrap(),
            "50%"
        );
    }

    #[test]
    fn notification_defaults_render() {
        let ctx = serde_json::json!({
            "status": "firing", "firingCount": 1, "groupLabelsText": "alertname=X",
            "alerts": [{"status": "firing", "labels": {"alertname": "X"}, "annotations": {"summary": "s"},
                        "startsAt": "t", "endsAt": "u", "generatorURL": "", "vars": {}}]
        });
        assert_eq!(
            render(DEFAULT_SUBJECT, &ctx).unwrap(),
            "[FIRING:1] alertname=X"
        );
        let body = render(DEFAULT_TEXT, &ctx).unwrap();
        assert!(body.contains("Summary: s"), "{body}");
    }
}
