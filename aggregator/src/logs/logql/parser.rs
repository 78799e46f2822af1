//! Parser of the LogQL subset (see [`super::ast`]).

use regex::Regex;
use tidewatch_common::duration::parse_duration;

use super::ast::*;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Dur(i64),
    Sym(&'static str),
}

const SYMS: [&str; 18] = [
    "|=", "|~", "!=", "!~", "=~", "==", ">=", "<=", "{", "}", "(", ")", ",", "|", "=", ">", "<",
    "[",
];

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' || c == '`' {
            let (v, n) = lex_string(&s[i..])?;
            out.push(Tok::Str(v));
            i += n;
            continue;
        }
        if c == '[' {
            let end = s[i..]
                .find(']')
                .ok_or_else(|| format!("unclosed '[' at position {i}"))?;
            let d = parse_duration(&s[i + 1..i + end])
                .map_err(|e| format!("range at position {i}: {e}"))?;
            out.push(Tok::Dur(d.as_nanos() as i64));
            i += end + 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '-' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b'e') {
                i += 1;
            }
            let v: f64 = s[start..i]
                .parse()
                .map_err(|_| format!("invalid number {:?}", &s[start..i]))?;
            out.push(Tok::Num(v));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(s[start..i].to_string()));
            continue;
        }
        match SYMS.iter().find(|sym| s[i..].starts_with(**sym)) {
            Some(sym) => {
                out.push(Tok::Sym(sym));
                i += sym.len();
            }
            None => return Err(format!("unexpected character {c:?} at position {i}")),
        }
    }
    Ok(out)
}

/// Reads a `"…"` (with escapes) or `` `…` `` (raw) string; returns the value
/// and the bytes consumed.
fn lex_string(s: &str) -> Result<(String, usize), String> {
    let quote = s.chars().next().unwrap();
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        if c == quote {
            return Ok((out, i + 1));
        }
        if c == '\\' && quote == '"' {
            match it.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, c)) => out.push(c),
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Err("unterminated string".into())
}

struct P {
    toks: Vec<Tok>,
    pos: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, sym: &str) -> Result<(), String> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(format!("expected {sym:?}, found {}", self.describe()))
        }
    }
    fn describe(&self) -> String {
        match self.peek() {
            None => "end of query".into(),
            Some(Tok::Ident(s)) => format!("{s:?}"),
            Some(Tok::Str(s)) => format!("string {s:?}"),
            Some(Tok::Num(n)) => format!("number {n}"),
            Some(Tok::Dur(_)) => "a range".into(),
            Some(Tok::Sym(s)) => format!("{s:?}"),
        }
    }
    fn string(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(format!("expected a string, found {}", self.describe()))
            }
        }
    }
    fn ident(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Ident(s)) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(format!("expected a label name, found {}", self.describe()))
            }
        }
    }
}

/// Parses a LogQL query.
pub fn parse(query: &str) -> Result<Expr, String> {
    let toks = lex(query)?;
    if toks.is_empty() {
        return Err("empty query".into());
    }
    let mut p = P { toks, pos: 0 };
    let e = if matches!(p.peek(), Some(Tok::Sym("{"))) {
        Expr::Log(log_expr(&mut p)?)
    } else {
        Expr::Metric(metric_expr(&mut p)?)
    };
    if p.peek().is_some() {
        return Err(format!("unexpected {} after the query", p.describe()));
    }
    Ok(e)
}

fn compile(pattern: &str, anchored: bool) -> Result<Regex, String> {
    let p = if anchored {
        format!("^(?:{pattern})$")
    } else {
        pattern.to_string()
    };
    Regex::new(&p).map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

fn matcher(p: &mut P) -> Result<Matcher, String> {
    let name = p.ident()?;
    let op = match p.next() {
        Some(Tok::Sym("=")) => MatchOp::Eq,
        Some(Tok::Sym("!=")) => MatchOp::Ne,
        Some(Tok::Sym("=~")) => MatchOp::Re,
        Some(Tok::Sym("!~")) => MatchOp::Nre,
        _ => {
            p.pos -= 1;
            return Err(format!(
                "expected a matcher operator after {name}, found {}",
                p.describe()
            ));
        }
    };
    let value = p.string()?;
    let re = match op {
        MatchOp::Re | MatchOp::Nre => Some(compile(&value, true)?),
        _ => None,
    };
    Ok(Matcher {
        name,
        op,
        value,
        re,
    })
}

fn log_expr(p: &mut P) -> Result<LogExpr, String> {
    p.expect("{")?;
    let mut matchers = Vec::new();
    while !p.eat("}") {
        matchers.push(matcher(p)?);
        if !p.eat(",") {
            p.expect("}")?;
            break;
        }
    }
    if !matchers.iter().any(|m| !m.matches("")) {
        return Err(
            "queries require at least one matcher that does not match the empty value".into(),
        );
    }
    let mut stages = Vec::new();
    loop {
        let line_op = match p.peek() {
            Some(Tok::Sym("|=")) => Some(LineOp::Contains),
            Some(Tok::Sym("!=")) => Some(LineOp::NotContains),
            Some(Tok::Sym("|~")) => Some(LineOp::Match),
            Some(Tok::Sym("!~")) => Some(LineOp::NotMatch),
            _ => None,
        };
        if let Some(op) = line_op {
            p.pos += 1;
            let value = p.string()?;
            let re = match op {
                LineOp::Match | LineOp::NotMatch => Some(compile(&value, false)?),
                _ => None,
            };
            stages.push(Stage::Line { op, value, re });
            continue;
        }
        if !p.eat("|") {
            break;
        }
        match p.peek() {
            Some(Tok::Ident(s)) if s == "json" => {
                p.pos += 1;
                stages.push(Stage::Json);
            }
            Some(Tok::Ident(s)) if s == "logfmt" => {
                p.pos += 1;
                stages.push(Stage::Logfmt);
            }
            Some(Tok::Ident(s)) if s == "line_format" => {
                p.pos += 1;
                let t = p.string()?;
                stages.push(Stage::LineFormat(parse_template(&t)?));
            }
            Some(Tok::Ident(_)) => stages.push(Stage::LabelFilter(label_or(p)?)),
            _ => {
                return Err(format!(
                    "expected a parser, line_format or a label filter after '|', found {}",
                    p.describe()
                ));
            }
        }
    }
    Ok(LogExpr { matchers, stages })
}

fn label_or(p: &mut P) -> Result<LabelPred, String> {
    let mut l = label_and(p)?;
    while matches!(p.peek(), Some(Tok::Ident(s)) if s == "or") {
        p.pos += 1;
        l = LabelPred::Or(Box::new(l), Box::new(label_and(p)?));
    }
    Ok(l)
}

fn label_and(p: &mut P) -> Result<LabelPred, String> {
    let mut l = label_atom(p)?;
    loop {
        let and = matches!(p.peek(), Some(Tok::Ident(s)) if s == "and");
        // `,` separates ANDed filters too, but only when a label name follows.
        let comma = matches!(p.peek(), Some(Tok::Sym(",")))
            && matches!(p.toks.get(p.pos + 1), Some(Tok::Ident(_)));
        if !(and || comma) {
            return Ok(l);
        }
        p.pos += 1;
        l = LabelPred::And(Box::new(l), Box::new(label_atom(p)?));
    }
}

fn label_atom(p: &mut P) -> Result<LabelPred, String> {
    if p.eat("(") {
        let e = label_or(p)?;
        p.expect(")")?;
        return Ok(e);
    }
    let name = p.ident()?;
    let op_tok = p.next();
    let rhs = p.next();
    match (op_tok, rhs) {
        (Some(Tok::Sym(op)), Some(Tok::Num(value))) => {
            let op = match op {
                "==" | "=" => CmpOp::Eq,
                "!=" => CmpOp::Ne,
                ">" => CmpOp::Gt,
                ">=" => CmpOp::Ge,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                o => {
                    return Err(format!(
                        "operator {o:?} cannot compare {name} with a number"
                    ));
                }
            };
            Ok(LabelPred::Num { name, op, value })
        }
        (Some(Tok::Sym(op)), Some(Tok::Str(value))) => {
            let op = match op {
                "=" | "==" => MatchOp::Eq,
                "!=" => MatchOp::Ne,
                "=~" => MatchOp::Re,
                "!~" => MatchOp::Nre,
                o => {
                    return Err(format!(
                        "operator {o:?} cannot compare {name} with a string"
                    ));
                }
            };
            let re = match op {
                MatchOp::Re | MatchOp::Nre => Some(compile(&value, true)?),
                _ => None,
            };
            Ok(LabelPred::Str(Matcher {
                name,
                op,
                value,
                re,
            }))
        }
        _ => Err(format!(
            "invalid label filter on {name}: expected an operator and a value"
        )),
    }
}

/// Parses a `line_format` template: `{{.name}}`, `{{ .name }}`, `{{__line__}}`.
pub fn parse_template(t: &str) -> Result<Vec<TemplatePart>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            out.push(TemplatePart::Text(rest[..i].to_string()));
        }
        let end = rest[i..]
            .find("}}")
            .ok_or_else(|| format!("line_format {t:?}: unclosed {{{{"))?;
        let inner = rest[i + 2..i + end].trim();
        if inner == "__line__" {
            out.push(TemplatePart::Line);
        } else if let Some(name) = inner.strip_prefix('.') {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("line_format {t:?}: unsupported field {inner:?}"));
            }
            out.push(TemplatePart::Label(name.to_string()));
        } else {
            return Err(format!(
                "line_format {t:?}: only {{{{.label}}}} and {{{{__line__}}}} are supported, found {inner:?}"
            ));
        }
        rest = &rest[i + end + 2..];
    }
    if !rest.is_empty() {
        out.push(TemplatePart::Text(rest.to_string()));
    }
    Ok(out)
}

fn metric_expr(p: &mut P) -> Result<MetricExpr, String> {
    let name = p.ident()?;
    let func = match name.as_str() {
        "count_over_time" => Some(RangeFn::CountOverTime),
        "rate" => Some(RangeFn::Rate),
        "bytes_over_time" => Some(RangeFn::BytesOverTime),
        "bytes_rate" => Some(RangeFn::BytesRate),
        _ => None,
    };
    if let Some(func) = func {
        p.expect("(")?;
        let log = log_expr(p)?;
        let range_ns = match p.next() {
            Some(Tok::Dur(d)) if d > 0 => d,
            _ => {
                p.pos -= 1;
                return Err(format!(
                    "{name}: expected a range like [5m], found {}",
                    p.describe()
                ));
            }
        };
        p.expect(")")?;
        return Ok(MetricExpr::Range {
            func,
            log,
            range_ns,
        });
    }
    let op = match name.as_str() {
        "sum" => AggOp::Sum,
        "count" => AggOp::Count,
        "min" => AggOp::Min,
        "max" => AggOp::Max,
        "avg" => AggOp::Avg,
        other => return Err(format!("unsupported function or aggregation {other:?}")),
    };
    let mut grouping = grouping(p)?;
    p.expect("(")?;
    let inner = metric_expr(p)?;
    p.expect(")")?;
    if grouping.is_none() {
        grouping = self::grouping(p)?;
    }
    Ok(MetricExpr::Agg {
        op,
        grouping,
        inner: Box::new(inner),
    })
}

fn grouping(p: &mut P) -> Result<Option<(bool, Vec<String>)>, String> {
    let without = match p.peek() {
        Some(Tok::Ident(s)) if s == "by" => false,
        Some(Tok::Ident(s)) if s == "without" => true,
        _ => return Ok(None),
    };
    p.pos += 1;
    p.expect("(")?;
    let mut names = Vec::new();
    while !p.eat(")") {
        names.push(p.ident()?);
        if !p.eat(",") {
            p.expect(")")?;
            break;
        }
    }
    Ok(Some((without, names)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_log_queries() {
        let Expr::Log(l) = parse(r#"{app="api", env=~"prod|stg"} |= "err" != `debug` | json | level="error" and status >= 500 | line_format "{{.level}}: {{ .msg }}""#).unwrap() else { panic!() };
        assert_eq!(l.matchers.len(), 2);
        assert_eq!(l.stages.len(), 5);
        assert!(matches!(&l.stages[4], Stage::LineFormat(t) if t.len() == 3));
    }

    #[test]
    fn parses_metric_queries() {
        let Expr::Metric(MetricExpr::Agg { op, grouping, .. }) =
            parse(r#"sum by (level) (count_over_time({app="x"} | logfmt [5m]))"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(op, AggOp::Sum);
        assert_eq!(grouping, Some((false, vec!["level".to_string()])));
        assert!(parse(r#"sum(rate({app="x"}[1m])) by (pod)"#).is_ok());
        assert!(parse(r#"bytes_over_time({app="x"}[1m])"#).is_ok());
    }

    #[test]
    fn errors_are_specific() {
        assert!(
            parse(r#"{app=""}"#)
                .unwrap_err()
                .contains("at least one matcher")
        );
        assert!(parse(r#"rate({app="x"})"#).unwrap_err().contains("range"));
        assert!(
            parse(r#"{app="x"} |~ "(""#)
                .unwrap_err()
                .contains("regular expression")
        );
        assert!(
            parse(r#"quantile({app="x"})"#)
                .unwrap_err()
                .contains("unsupported")
        );
        assert!(parse(r#"{app="x""#).is_err());
    }
}
