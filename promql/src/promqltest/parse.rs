//! Parser of Prometheus's PromQL test-file format.

use tidewatch_common::Labels;

use super::series::{SeqValue, expand};

/// One series of a `load` block.
#[derive(Clone, Debug)]
pub struct LoadSeries {
    /// Series labels.
    pub labels: Labels,
    /// Samples `(timestamp_ms, value)`; stale markers included.
    pub samples: Vec<(i64, f64)>,
    /// Native-histogram samples `(timestamp_ms, histogram)`.
    pub histograms: Vec<(i64, crate::native::FloatHistogram)>,
}

/// A `load` block.
#[derive(Clone, Debug, Default)]
pub struct Load {
    /// Float series.
    pub series: Vec<LoadSeries>,
    /// Labels of series with native-histogram samples.
    pub histograms: Vec<Labels>,
    /// `load_with_nhcb`: classic histograms are also exposed as native ones.
    pub with_nhcb: bool,
}

/// When an `eval` is run.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalKind {
    /// `eval instant at T`.
    Instant { at_ms: i64 },
    /// `eval range from A to B step S`.
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

/// An expected error.
#[derive(Clone, Debug, PartialEq)]
pub enum FailExpect {
    /// Any error.
    Any,
    /// The error message equals this.
    Msg(String),
    /// The error message matches this regex.
    Regex(String),
}

/// An expected series (or scalar when `labels` is `None`).
#[derive(Clone, Debug)]
pub struct ExpectedSeries {
    /// Labels; `None` for a scalar result line.
    pub labels: Option<Labels>,
    /// Values in order (for range results, one per step; gaps omitted).
    pub values: Vec<SeqValue>,
}

/// An `eval` command with its expectations.
#[derive(Clone, Debug)]
pub struct Eval {
    /// Line number (1-based) in the file.
    pub line: usize,
    /// The PromQL expression.
    pub query: String,
    /// Instant or range.
    pub kind: EvalKind,
    /// `expect fail`.
    pub fail: Option<FailExpect>,
    /// `expect warn` (`Some(true)`) / `expect no_warn` (`Some(false)`).
    pub warn: Option<bool>,
    /// `expect info` / `expect no_info`.
    pub info: Option<bool>,
    /// `expect ordered`.
    pub ordered: bool,
    /// `expect range vector from A to B step S` (instant query returning a matrix).
    pub range_vector: Option<(i64, i64, i64)>,
    /// `expect string "…"`.
    pub string: Option<String>,
    /// Expected result lines.
    pub results: Vec<ExpectedSeries>,
    /// Whether the expected output uses native-histogram notation.
    pub native: bool,
    /// An expected native-histogram line could not be read.
    pub unreadable: bool,
}

/// One command of a test file.
#[derive(Clone, Debug)]
pub enum Command {
    /// `load <interval>` with series.
    Load(Load),
    /// `clear`.
    Clear,
    /// `eval …`.
    Eval(Box<Eval>),
}

/// Parses a duration such as `5m`, `1h30m`, `10s53ms`, `-1m` or plain
/// seconds (`100`, `1.5`) into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('-') {
        return parse_duration_ms(rest).map(|v| -v);
    }
    if let Ok(v) = s.parse::<f64>() {
        return Ok((v * 1000.0).round() as i64);
    }
    tidewatch_common::duration::parse_duration(s).map(|d| d.as_millis() as i64)
}

/// Splits a series line into its descriptor and the rest.
fn split_descriptor(line: &str) -> (&str, &str) {
    let line = line.trim();
    let mut in_quote: Option<char> = None;
    let mut depth = 0;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if let Some(q) = in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                in_quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_quote = Some(c),
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (&line[..=i], &line[i + 1..]);
                }
            }
            c if c.is_whitespace() && depth == 0 => return (&line[..i], &line[i..]),
            _ => {}
        }
    }
    (line, "")
}

/// Parses a series descriptor (`name{a="b"}`) into labels.
pub fn parse_labels(desc: &str) -> Result<Labels, String> {
    let d = desc.trim();
    if d == "{}" {
        return Ok(Labels::empty());
    }
    let expr = promql_parser::parser::parse(d).map_err(|e| format!("bad series {d:?}: {e}"))?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(format!("bad series {d:?}"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(n) = &vs.name {
        pairs.push((tidewatch_common::labels::METRIC_NAME.into(), n.clone()));
    }
    for m in &vs.matchers.matchers {
        pairs.push((m.name.clone(), m.value.clone()));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Splits series values at whitespace, keeping native-histogram notation
/// (`{{…}}`, which contains spaces) in one token.
pub fn split_values(rest: &str) -> Vec<&str> {
    // Histogram notation contains spaces inside `{{ }}`: keep it as one token.
    let mut out = Vec::new();
    let mut start = None;
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '{' => {
                depth += 1;
                start.get_or_insert(i);
            }
            '}' => depth -= 1,
            c if c.is_whitespace() && depth == 0 => {
                if let Some(s) = start.take() {
                    out.push(&rest[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        out.push(&rest[s..]);
    }
    out
}

fn unquote(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('`') && s.ends_with('`') {
        return Ok(s[1..s.len() - 1].to_string());
    }
    serde_json::from_str::<String>(s).map_err(|e| format!("bad string {s:?}: {e}"))
}

/// Parses a whole test file.
pub fn parse_file(text: &str) -> Result<Vec<Command>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    let is_body = |l: &str| !l.trim().is_empty() && (l.starts_with(' ') || l.starts_with('\t'));
    while i < lines.len() {
        let raw = lines[i];
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let lineno = i + 1;
        i += 1;
        let mut body = Vec::new();
        while i < lines.len()
            && (is_body(lines[i])
                || lines[i].trim_start().starts_with('#')
                    && !lines[i].trim().is_empty()
                    && lines[i].starts_with(char::is_whitespace))
        {
            if !lines[i].trim_start().starts_with('#') {
                body.push(lines[i]);
            }
            i += 1;
        }
        let word = line.split_whitespace().next().unwrap_or("");
        match word {
            "clear" => cmds.push(Command::Clear),
            "load" | "load_with_nhcb" => {
                let interval = line
                    .split_whitespace()
                    .nth(1)
                    .ok_or_else(|| format!("line {lineno}: load needs an interval"))?;
                let step =
                    parse_duration_ms(interval).map_err(|e| format!("line {lineno}: {e}"))?;
                let mut load = Load {
                    with_nhcb: word == "load_with_nhcb",
                    ..Default::default()
                };
                for b in body {
                    let (desc, rest) = split_descriptor(b);
                    if rest.starts_with("@st") || desc.ends_with("@st") {
                        // Start-timestamp annotations are not modelled.
                        continue;
                    }
                    let labels = parse_labels(desc).map_err(|e| format!("line {lineno}: {e}"))?;
                    let toks = split_values(rest);
                    let vals = expand(&toks).map_err(|e| format!("line {lineno}: {e}"))?;
                    let (mut samples, mut histograms) = (Vec::new(), Vec::new());
                    for (k, v) in vals.into_iter().enumerate() {
                        match v {
                            SeqValue::Value(f) => samples.push((k as i64 * step, f)),
                            SeqValue::Histogram(h) => histograms.push((k as i64 * step, *h)),
                            SeqValue::Omitted => {}
                        }
                    }
                    if !histograms.is_empty() {
                        load.histograms.push(labels.clone());
                    }
                    load.series.push(LoadSeries {
                        labels,
                        samples,
                        histograms,
                    });
                }
                cmds.push(Command::Load(load));
            }
            w if w.starts_with("eval") => {
                cmds.push(Command::Eval(Box::new(
                    parse_eval(line, &body, lineno).map_err(|e| format!("line {lineno}: {e}"))?,
                )));
            }
            other => return Err(format!("line {lineno}: unknown command {other:?}")),
        }
    }
    Ok(cmds)
}

fn parse_eval(line: &str, body: &[&str], lineno: usize) -> Result<Eval, String> {
    let (word, rest) = line.split_once(char::is_whitespace).ok_or("bad eval")?;
    let mut ev = Eval {
        line: lineno,
        query: String::new(),
        kind: EvalKind::Instant { at_ms: 0 },
        fail: None,
        warn: None,
        info: None,
        ordered: false,
        range_vector: None,
        string: None,
        results: Vec::new(),
        native: false,
        unreadable: false,
    };
    match word {
        "eval" => {}
        "eval_fail" => ev.fail = Some(FailExpect::Any),
        "eval_warn" => ev.warn = Some(true),
        "eval_info" => ev.info = Some(true),
        "eval_ordered" => ev.ordered = true,
        w => return Err(format!("unknown command {w:?}")),
    }
    let rest = rest.trim();
    let toks: Vec<&str> = rest.splitn(3, char::is_whitespace).collect();
    if toks.first() == Some(&"instant") && toks.get(1) == Some(&"at") {
        let r = toks.get(2).ok_or("missing time")?;
        let (t, q) = r.split_once(char::is_whitespace).ok_or("missing query")?;
        ev.kind = EvalKind::Instant {
            at_ms: parse_duration_ms(t)?,
        };
        ev.query = q.trim().to_string();
    } else if toks.first() == Some(&"range") {
        // range from A to B step S QUERY
        let parts: Vec<&str> = rest.splitn(8, char::is_whitespace).collect();
        if parts.len() < 8 || parts[1] != "from" || parts[3] != "to" || parts[5] != "step" {
            return Err(format!("bad range eval {rest:?}"));
        }
        ev.kind = EvalKind::Range {
            start_ms: parse_duration_ms(parts[2])?,
            end_ms: parse_duration_ms(parts[4])?,
            step_ms: parse_duration_ms(parts[6])?,
        };
        ev.query = parts[7].trim().to_string();
    } else {
        return Err(format!("bad eval {rest:?}"));
    }
    for b in body {
        let t = b.trim();
        if let Some(e) = t.strip_prefix("expect ") {
            let e = e.trim();
            let (kw, arg) = match e.split_once(char::is_whitespace) {
                Some((k, a)) => (k, a.trim()),
                None => (e, ""),
            };
            match kw {
                "fail" => {
                    ev.fail = Some(if let Some(m) = arg.strip_prefix("msg:") {
                        FailExpect::Msg(m.trim().to_string())
                    } else if let Some(r) = arg.strip_prefix("regex:") {
                        FailExpect::Regex(r.trim().to_string())
                    } else {
                        FailExpect::Any
                    })
                }
                "warn" => ev.warn = Some(true),
                "no_warn" => ev.warn = Some(false),
                "info" => ev.info = Some(true),
                "no_info" => ev.info = Some(false),
                "ordered" => ev.ordered = true,
                "range" => {
                    // vector from A to B step S
                    let p: Vec<&str> = arg.split_whitespace().collect();
                    if p.len() != 7
                        || p[0] != "vector"
                        || p[1] != "from"
                        || p[3] != "to"
                        || p[5] != "step"
                    {
                        return Err(format!("bad expect range {arg:?}"));
                    }
                    ev.range_vector = Some((
                        parse_duration_ms(p[2])?,
                        parse_duration_ms(p[4])?,
                        parse_duration_ms(p[6])?,
                    ));
                }
                "string" => ev.string = Some(unquote(arg)?),
                other => return Err(format!("unknown expectation {other:?}")),
            }
            continue;
        }
        if t.contains("{{") {
            ev.native = true;
        }
        let (desc, rest) = split_descriptor(t);
        if rest.trim().is_empty() {
            // A scalar result line.
            let Some(v) = super::series::parse_float(desc) else {
                if ev.native {
                    ev.unreadable = true;
                    continue;
                }
                return Err(format!("bad result line {t:?}"));
            };
            ev.results.push(ExpectedSeries {
                labels: None,
                values: vec![SeqValue::Value(v)],
            });
            continue;
        }
        let parsed = parse_labels(desc).and_then(|l| Ok((l, expand(&split_values(rest))?)));
        match parsed {
            Ok((labels, values)) => ev.results.push(ExpectedSeries {
                labels: Some(labels),
                values,
            }),
            // Histogram lines this parser does not read: the case is skipped.
            Err(_) if ev.native => ev.unreadable = true,
            Err(e) => return Err(e),
        }
    }
    Ok(ev)
}
