//! Prometheus's Go-template syntax for rule labels and annotations,
//! translated to minijinja once and rendered per alert.

use std::collections::BTreeMap;

use super::env;
use minijinja::Environment;

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
    pub fn render<L: serde::Serialize>(
        &self,
        src: &str,
        labels: &L,
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
