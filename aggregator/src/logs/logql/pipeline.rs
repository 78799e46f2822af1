//! Runs a log pipeline (line filters, parsers, label filters,
//! `line_format`) over one entry.

use std::borrow::Cow;

use tidewatch_common::Labels;

use super::ast::{CmpOp, LabelPred, LineOp, Stage, TemplatePart};

/// The labels of an entry while it moves through the pipeline.
pub type LabelVec = Vec<(String, String)>;

/// Processes one line; `None` when a filter drops it. The labels are `None`
/// when no stage changed the stream's labels.
pub fn process<'l>(
    stages: &[Stage],
    stream: &Labels,
    line: &'l str,
) -> Option<(Option<LabelVec>, Cow<'l, str>)> {
    let mut labels: Option<LabelVec> = None;
    let mut line: Cow<'l, str> = Cow::Borrowed(line);
    for st in stages {
        match st {
            Stage::Line { op, value, re } => {
                let keep = match op {
                    LineOp::Contains => line.contains(value.as_str()),
                    LineOp::NotContains => !line.contains(value.as_str()),
                    LineOp::Match => re.as_ref().is_some_and(|r| r.is_match(&line)),
                    LineOp::NotMatch => !re.as_ref().is_some_and(|r| r.is_match(&line)),
                };
                if !keep {
                    return None;
                }
            }
            Stage::Json => {
                let l = labels.get_or_insert_with(|| materialize(stream));
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(serde_json::Value::Object(map)) => {
                        for (k, v) in &map {
                            flatten_json(stream, l, &sanitize(k), v);
                        }
                    }
                    _ => set(l, "__error__", "JSONParserErr".to_string()),
                }
            }
            Stage::Logfmt => {
                let l = labels.get_or_insert_with(|| materialize(stream));
                if !logfmt(stream, l, &line) {
                    set(l, "__error__", "LogfmtParserErr".to_string());
                }
            }
            Stage::LabelFilter(pred) => {
                let keep = match &labels {
                    Some(l) => eval_pred(pred, &|n| get(l, n)),
                    None => eval_pred(pred, &|n| stream.get(n)),
                };
                if !keep {
                    return None;
                }
            }
            Stage::LineFormat(parts) => {
                let mut out = String::with_capacity(line.len());
                for p in parts {
                    match p {
                        TemplatePart::Text(t) => out.push_str(t),
                        TemplatePart::Line => out.push_str(&line),
                        TemplatePart::Label(n) => {
                            let v = match &labels {
                                Some(l) => get(l, n),
                                None => stream.get(n),
                            };
                            out.push_str(v.unwrap_or(""));
                        }
                    }
                }
                line = Cow::Owned(out);
            }
        }
    }
    Some((labels, line))
}

fn materialize(l: &Labels) -> LabelVec {
    l.iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

fn get<'a>(l: &'a LabelVec, name: &str) -> Option<&'a str> {
    l.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn set(l: &mut LabelVec, name: &str, value: String) {
    match l.iter_mut().find(|(n, _)| n == name) {
        Some(e) => e.1 = value,
        None => l.push((name.to_string(), value)),
    }
}

/// Adds an extracted label; a name clashing with a stream label gets the
/// suffix `_extracted`, as in Loki.
fn add_extracted(stream: &Labels, l: &mut LabelVec, name: String, value: String) {
    if value.is_empty() {
        return;
    }
    if stream.get(&name).is_some() {
        set(l, &format!("{name}_extracted"), value);
    } else {
        set(l, &name, value);
    }
}

fn sanitize(k: &str) -> String {
    let mut s: String = k
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn flatten_json(stream: &Labels, l: &mut LabelVec, prefix: &str, v: &serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                flatten_json(stream, l, &format!("{prefix}_{}", sanitize(k)), v);
            }
        }
        serde_json::Value::String(s) => add_extracted(stream, l, prefix.to_string(), s.clone()),
        serde_json::Value::Number(n) => add_extracted(stream, l, prefix.to_string(), n.to_string()),
        serde_json::Value::Bool(b) => add_extracted(stream, l, prefix.to_string(), b.to_string()),
        serde_json::Value::Null | serde_json::Value::Array(_) => {}
    }
}

/// Parses `k=v k2="quoted v" k3` pairs; false on an unterminated quote.
fn logfmt(stream: &Labels, l: &mut LabelVec, line: &str) -> bool {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        let key = &line[ks..i];
        if i >= b.len() || b[i] == b' ' {
            continue;
        }
        i += 1; // '='
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        v.push(b[i + 1] as char);
                        i += 2;
                    }
                    b'"' => {
                        i += 1;
                        closed = true;
                        break;
                    }
                    _ => {
                        let c = line[i..].chars().next().unwrap();
                        v.push(c);
                        i += c.len_utf8();
                    }
                }
            }
            if !closed {
                return false;
            }
            v
        } else {
            let vs = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            line[vs..i].to_string()
        };
        if !key.is_empty() {
            add_extracted(stream, l, sanitize(key), value);
        }
    }
    true
}

pub(crate) fn eval_pred<'s>(p: &LabelPred, get: &dyn Fn(&str) -> Option<&'s str>) -> bool {
    match p {
        LabelPred::And(a, b) => eval_pred(a, get) && eval_pred(b, get),
        LabelPred::Or(a, b) => eval_pred(a, get) || eval_pred(b, get),
        LabelPred::Str(m) => m.matches(get(&m.name).unwrap_or("")),
        LabelPred::Num { name, op, value } => {
            let Some(v) = get(name).and_then(|s| s.trim().parse::<f64>().ok()) else {
                return false;
            };
            match op {
                CmpOp::Eq => v == *value,
                CmpOp::Ne => v != *value,
                CmpOp::Gt => v > *value,
                CmpOp::Ge => v >= *value,
                CmpOp::Lt => v < *value,
                CmpOp::Le => v <= *value,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ast::Expr;
    use super::super::parser::parse;
    use super::*;

    fn run(q: &str, line: &str) -> Option<(Vec<(String, String)>, String)> {
        let Expr::Log(e) = parse(q).unwrap() else {
            panic!()
        };
        let stream = Labels::from_pairs([("app", "api")]);
        process(&e.stages, &stream, line).map(|(l, line)| {
            let mut l = l.unwrap_or_else(|| materialize(&stream));
            l.sort();
            (l, line.into_owned())
        })
    }

    #[test]
    fn filters_and_parsers() {
        assert!(run(r#"{app="api"} |= "boom""#, "a boom b").is_some());
        assert!(run(r#"{app="api"} != "boom""#, "a boom b").is_none());
        assert!(run(r#"{app="api"} |~ "b[o]+m""#, "a boom b").is_some());
        assert!(run(r#"{app="api"} !~ "b[o]+m""#, "a boom b").is_none());
        let (l, line) = run(
            r#"{app="api"} | json | status >= 500 | line_format "{{.req_method}} {{.status}} {{.app_extracted}}""#,
            r#"{"status":503,"req":{"method":"GET"},"app":"inner"}"#,
        )
        .unwrap();
        assert_eq!(line, "GET 503 inner");
        assert!(l.contains(&("req_method".into(), "GET".into())));
        assert!(run(r#"{app="api"} | json | status >= 500"#, r#"{"status":200}"#).is_none());
        let (l, _) = run(
            r#"{app="api"} | logfmt | level="error" or level="warn""#,
            r#"level=error msg="disk full" dur=5ms"#,
        )
        .unwrap();
        assert!(l.contains(&("msg".into(), "disk full".into())));
        let (l, _) = run(r#"{app="api"} | json"#, "not json").unwrap();
        assert!(l.contains(&("__error__".into(), "JSONParserErr".into())));
    }
}
