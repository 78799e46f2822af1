//! Templates: minijinja for notification subjects and bodies (with
//! TKEStack's variables), and Prometheus's Go-template annotations
//! (`{{ $labels.x }}`, `{{ $value | humanize }}`) translated to minijinja.

use std::collections::BTreeMap;

use minijinja::{Environment, Error, ErrorKind, Value};

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

fn env() -> Environment<'static> {
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

/// Expands a Prometheus annotation/label template (Go `text/template`
/// syntax) for one alert.
pub fn expand_go(
    src: &str,
    labels: &BTreeMap<String, String>,
    value: f64,
    external_labels: &BTreeMap<String, String>,
) -> Result<String, String> {
    if !src.contains("{{") {
        return Ok(src.to_string());
    }
    let jinja = translate_go(src)?;
    let env = env();
    let t = env
        .template_from_str(&jinja)
        .map_err(|e| format!("template: {e}"))?;
    let ctx = minijinja::context! {
        labels => labels,
        value => value,
        external_labels => external_labels,
    };
    t.render(ctx).map_err(|e| format!("template: {e}"))
}

/// Prometheus templates compiled once (keyed by their source) and rendered
/// per alert: the hot path of alerting-rule evaluation.
pub struct GoTemplates {
    env: Environment<'static>,
}

impl std::fmt::Debug for GoTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GoTemplates")
    }
}

impl Default for GoTemplates {
    fn default() -> Self {
        GoTemplates { env: env() }
    }
}

impl GoTemplates {
    /// Compiles `src` (no-op for text without actions or already added).
    pub fn add(&mut self, src: &str) -> Result<(), String> {
        if !src.contains("{{") || self.env.get_template(src).is_ok() {
            return Ok(());
        }
        let jinja = translate_go(src)?;
        self.env
            .add_template_owned(src.to_string(), jinja)
            .map_err(|e| format!("template: {e}"))
    }

    /// Renders a source added before (text without actions as is).
    pub fn render(
        &self,
        src: &str,
        labels: &BTreeMap<String, String>,
        value: f64,
        external_labels: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        if !src.contains("{{") {
            return Ok(src.to_string());
        }
        let t = self
            .env
            .get_template(src)
            .map_err(|e| format!("template: {e}"))?;
        let ctx = minijinja::context! {
            labels => labels,
            value => value,
            external_labels => external_labels,
        };
        t.render(ctx).map_err(|e| format!("template: {e}"))
    }
}

/// Translates a Go template to minijinja: `$labels`, `$value`,
/// `$externalLabels`, `.Labels`, `.Value`, function calls, pipelines and
/// `if`/`else`/`end`.
pub fn translate_go(src: &str) -> Result<String, String> {
    let mut out = String::with_capacity(src.len() + 16);
    let mut rest = src;
    let mut blocks: Vec<&str> = Vec::new();
    while let Some(start) = rest.find("{{") {
        out.push_str(&escape_text(&rest[..start]));
        let after = &rest[start + 2..];
        let end = find_close(after).ok_or_else(|| "unclosed action {{".to_string())?;
        let mut action = &after[..end];
        let (mut ltrim, mut rtrim) = ("", "");
        if let Some(a) = action.strip_prefix('-') {
            action = a;
            ltrim = "-";
        }
        if let Some(a) = action.strip_suffix('-') {
            action = a;
            rtrim = "-";
        }
        let action = action.trim();
        if action.starts_with("/*") {
            // comment
        } else if let Some(cond) = action.strip_prefix("if ") {
            blocks.push("if");
            out.push_str(&format!("{{%{ltrim} if {} {rtrim}%}}", expr(cond)?));
        } else if let Some(cond) = action.strip_prefix("else if ") {
            out.push_str(&format!("{{%{ltrim} elif {} {rtrim}%}}", expr(cond)?));
        } else if action == "else" {
            out.push_str(&format!("{{%{ltrim} else {rtrim}%}}"));
        } else if action == "end" {
            let b = blocks
                .pop()
                .ok_or_else(|| "unexpected {{end}}".to_string())?;
            out.push_str(&format!("{{%{ltrim} end{b} {rtrim}%}}"));
        } else if action.starts_with("range ")
            || action.starts_with("with ")
            || action.starts_with("define ")
            || action.starts_with("template ")
        {
            return Err(format!("unsupported template action {{{{{action}}}}}"));
        } else {
            out.push_str(&format!(
                "{{{{{ltrim} ({})|gofmt {rtrim}}}}}",
                expr(action)?
            ));
        }
        rest = &after[end + 2..];
    }
    if !blocks.is_empty() {
        return Err("unexpected EOF: missing {{end}}".into());
    }
    out.push_str(&escape_text(rest));
    Ok(out)
}

fn escape_text(s: &str) -> String {
    if s.contains("{%") || s.contains("{#") {
        format!("{{% raw %}}{s}{{% endraw %}}")
    } else {
        s.to_string()
    }
}

fn find_close(s: &str) -> Option<usize> {
    let mut in_q = false;
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        match b[i] {
            b'\\' if in_q => i += 1,
            b'"' | b'`' => in_q = !in_q,
            b'}' if !in_q && b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Splits on whitespace and `|` outside quotes and parentheses.
fn tokens(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut in_q: Option<char> = None;
    let mut esc = false;
    for c in s.chars() {
        if let Some(q) = in_q {
            cur.push(c);
            if esc {
                esc = false;
            } else if c == '\\' && q == '"' {
                esc = true;
            } else if c == q {
                in_q = None;
            }
            continue;
        }
        match c {
            '"' | '`' => {
                in_q = Some(c);
                cur.push(c);
            }
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            '|' if depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push("|".into());
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if in_q.is_some() || depth != 0 {
        return Err(format!("unbalanced quotes or parentheses in {s:?}"));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

const FUNCS: &[&str] = &[
    "humanize",
    "humanize1024",
    "humanizePercentage",
    "humanizeDuration",
    "printf",
    "toUpper",
    "toLower",
    "title",
    "gt",
    "ge",
    "lt",
    "le",
    "eq",
    "ne",
    "and",
    "or",
    "not",
];

fn expr(s: &str) -> Result<String, String> {
    let toks = tokens(s)?;
    let mut stages: Vec<Vec<String>> = vec![Vec::new()];
    for t in toks {
        if t == "|" {
            stages.push(Vec::new());
        } else {
            stages.last_mut().expect("non-empty").push(t);
        }
    }
    let mut acc: Option<String> = None;
    for st in stages {
        if st.is_empty() {
            return Err(format!("empty pipeline stage in {s:?}"));
        }
        let mut args: Vec<String> = st[1..]
            .iter()
            .map(|a| operand(a))
            .collect::<Result<_, _>>()?;
        let head = &st[0];
        let e = if FUNCS.contains(&head.as_str()) {
            if let Some(a) = acc.take() {
                args.push(a);
            }
            call(head, &args)?
        } else if acc.is_some() {
            return Err(format!("{head:?} is not a function"));
        } else if st.len() > 1 {
            return Err(format!("function {head:?} not defined"));
        } else {
            operand(head)?
        };
        acc = Some(e);
    }
    acc.ok_or_else(|| "empty action".to_string())
}

fn call(f: &str, args: &[String]) -> Result<String, String> {
    Ok(match f {
        "and" => format!("({})", args.join(" and ")),
        "or" => format!("({})", args.join(" or ")),
        "not" => format!("(not {})", args.first().ok_or("not: missing argument")?),
        _ => format!("{f}({})", args.join(", ")),
    })
}

fn operand(t: &str) -> Result<String, String> {
    if let Some(inner) = t.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        return Ok(format!("({})", expr(inner)?));
    }
    if t.starts_with('"') {
        return Ok(t.to_string());
    }
    if let Some(raw) = t.strip_prefix('`').and_then(|x| x.strip_suffix('`')) {
        return Ok(serde_json::to_string(raw).unwrap_or_default());
    }
    if t.parse::<f64>().is_ok() || t == "true" || t == "false" {
        return Ok(t.to_string());
    }
    let (root, path) = match t.find('.').filter(|&i| i > 0) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let root = match root {
        "$labels" | ".Labels" => "labels",
        "$value" | ".Value" => "value",
        "$externalLabels" | ".ExternalLabels" => "external_labels",
        _ if t.starts_with(".Labels") => return Ok(format!("labels{}", &t[7..])),
        _ if t == ".Value" => return Ok("value".into()),
        _ if t.starts_with('$') => return Err(format!("undefined variable {root:?}")),
        _ => return Err(format!("function {t:?} not defined")),
    };
    Ok(format!("{root}{path}"))
}

/// Go's `%g`-like shortest float formatting.
pub fn fmt_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v}");
    if v.abs() >= 1e21 || (v != 0.0 && v.abs() < 1e-4) {
        return format!("{v:e}");
    }
    s
}

fn humanize(v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return fmt_g(v);
    }
    let abs = v.abs();
    if abs >= 1.0 {
        let units = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"];
        let mut x = v;
        let mut i = 0;
        while x.abs() >= 1000.0 && i < units.len() - 1 {
            x /= 1000.0;
            i += 1;
        }
        format!("{}{}", round4(x), units[i])
    } else {
        let units = ["", "m", "u", "n", "p", "f", "a", "z", "y"];
        let mut x = v;
        let mut i = 0;
        while x.abs() < 1.0 && i < units.len() - 1 {
            x *= 1000.0;
            i += 1;
        }
        format!("{}{}", round4(x), units[i])
    }
}

fn humanize_1024(v: f64) -> String {
    if v.abs() < 1.0 {
        return fmt_g(v);
    }
    let units = ["", "ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"];
    let mut x = v;
    let mut i = 0;
    while x.abs() >= 1024.0 && i < units.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    format!("{}{}", round4(x), units[i])
}

/// Four significant digits, like Go's `%.4g`.
fn round4(x: f64) -> String {
    let digits = if x.abs() >= 1.0 {
        x.abs().log10().floor() as i32 + 1
    } else {
        1
    };
    let decimals = (4 - digits).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn humanize_duration(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return fmt_g(v);
    }
    if v.abs() < 1.0 && v != 0.0 {
        return format!("{}ms", round4(v * 1000.0));
    }
    let neg = v < 0.0;
    let total = v.abs() as u64;
    let (d, h, m, s) = (
        total / 86400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if d > 0 {
        out.push_str(&format!("{d}d {h}h {m}m {s}s"));
    } else if h > 0 {
        out.push_str(&format!("{h}h {m}m {s}s"));
    } else if m > 0 {
        out.push_str(&format!("{m}m {s}s"));
    } else {
        out.push_str(&format!("{s}s"));
    }
    out
}

fn titlecase(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Go `printf` subset: `%s %v %d %f %.Nf %g %e %q %%`.
fn printf(fmt: String, args: minijinja::value::Rest<Value>) -> Result<String, Error> {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut prec: Option<usize> = None;
        let mut spec = String::new();
        while let Some(&n) = chars.peek() {
            if n == '.' || n.is_ascii_digit() {
                spec.push(n);
                chars.next();
            } else {
                break;
            }
        }
        if let Some(p) = spec.strip_prefix('.') {
            prec = p.parse().ok();
        }
        let verb = chars.next().unwrap_or('%');
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = it
            .next()
            .ok_or_else(|| Error::new(ErrorKind::MissingArgument, "printf: missing argument"))?;
        let num = f64::try_from(arg.clone()).ok();
        match verb {
            'd' => out.push_str(&format!("{}", num.unwrap_or(0.0) as i64)),
            'f' | 'F' => out.push_str(&format!("{:.*}", prec.unwrap_or(6), num.unwrap_or(0.0))),
            'e' => out.push_str(&format!("{:.*e}", prec.unwrap_or(6), num.unwrap_or(0.0))),
            'g' => out.push_str(&num.map(fmt_g).unwrap_or_else(|| arg.to_string())),
            'q' => out.push_str(&format!("{:?}", arg.to_string())),
            _ => match num {
                Some(n) if !arg.is_kind_string() => out.push_str(&fmt_g(n)),
                _ => out.push_str(&arg.to_string()),
            },
        }
    }
    Ok(out)
}

trait KindExt {
    fn is_kind_string(&self) -> bool;
}

impl KindExt for Value {
    fn is_kind_string(&self) -> bool {
        self.kind() == minijinja::value::ValueKind::String
    }
}

#[cfg(test)]
mod tests {
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
