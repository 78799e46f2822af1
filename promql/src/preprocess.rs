//! Query-text rewriting for PromQL syntax the `promql-parser` crate does not
//! understand yet:
//!
//! - duration expressions (`x[5m+30s]`, `x[step()*2:1m]`,
//!   `x offset (1h/2)`, `min_of`, `max_of`, `step()`, `range()`), which are
//!   evaluated to plain millisecond durations before parsing;
//! - the `anchored` / `smoothed` range-selector modifiers, which are turned
//!   into a reserved matcher ([`EXT_LABEL`]) on the selector that the engine
//!   strips again before reading storage.

use crate::engine::QueryError;

/// Reserved label name carrying the extended range-selector modifier.
pub const EXT_LABEL: &str = "__tidewatch_range_mode__";

/// Reserved label name added to `info()`'s label selector so that
/// selectors whose matchers all match the empty string still parse.
pub const INFO_LABEL: &str = "__tidewatch_info__";

/// Whether `name` is one of the reserved marker labels above.
pub fn is_reserved(name: &str) -> bool {
    name == EXT_LABEL || name == INFO_LABEL
}

/// Values of durations known only at query time.
#[derive(Clone, Copy, Debug)]
pub struct QueryTimes {
    /// `step()` in ms (0 for instant queries).
    pub step_ms: i64,
    /// `range()` in ms (end - start).
    pub range_ms: i64,
}

/// Rewrites `query`; returns it unchanged when nothing needs rewriting.
pub fn rewrite(query: &str, times: QueryTimes) -> Result<String, QueryError> {
    let b = query.as_bytes();
    let mut out = String::with_capacity(query.len() + 16);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                let end = skip_string(b, i);
                out.push_str(&query[i..end]);
                i = end;
            }
            b'#' => {
                // Comment to end of line.
                let end = query[i..].find('\n').map_or(b.len(), |p| i + p);
                out.push_str(&query[i..end]);
                i = end;
            }
            b'[' => {
                let Some(close) = matching(b, i, b'[', b']') else {
                    out.push_str(&query[i..]);
                    break;
                };
                let inner = &query[i + 1..close];
                out.push('[');
                let parts = split_top(inner, b':');
                for (k, p) in parts.iter().enumerate() {
                    if k > 0 {
                        out.push(':');
                    }
                    out.push_str(&rewrite_duration(p, times)?);
                }
                out.push(']');
                i = close + 1;
                // `anchored` / `smoothed` right after the range.
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
            }
            _ if word_at(query, i, "info") && query[i + 4..].trim_start().starts_with('(') => {
                // Mark the label selector (second argument) of info().
                let open = i + 4 + (query[i + 4..].len() - query[i + 4..].trim_start().len());
                out.push_str(&query[i..=open]);
                i = open + 1;
                if let Some(close) = matching(b, open, b'(', b')') {
                    let inner = &query[open + 1..close];
                    let args = split_top(inner, b',');
                    if args.len() == 2 {
                        let second = args[1].trim_start();
                        if let Some(after_brace) = second.strip_prefix('{') {
                            let pos = close - args[1].len() + (args[1].len() - second.len());
                            let first = rewrite(&query[open + 1..pos], times)?;
                            out.push_str(&first);
                            out.push('{');
                            out.push_str(&format!("{INFO_LABEL}=\"1\""));
                            let rest = after_brace.trim_start();
                            if !rest.starts_with('}') {
                                out.push(',');
                            }
                            i = pos + 1;
                        }
                    }
                }
            }
            _ if word_at(query, i, "anchored") || word_at(query, i, "smoothed") => {
                let kw = if word_at(query, i, "anchored") {
                    "anchored"
                } else {
                    "smoothed"
                };
                insert_marker(&mut out, kw)?;
                i += kw.len();
            }
            _ if word_at(query, i, "offset") => {
                out.push_str("offset");
                i += "offset".len();
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let mut neg = false;
                let mut k = j;
                if k < b.len() && (b[k] == b'-' || b[k] == b'+') {
                    neg = b[k] == b'-';
                    k += 1;
                    while k < b.len() && b[k].is_ascii_whitespace() {
                        k += 1;
                    }
                }
                let atom_end = if k < b.len() && b[k] == b'(' {
                    matching(b, k, b'(', b')').map(|e| e + 1)
                } else {
                    let mut e = k;
                    while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
                        e += 1;
                    }
                    let ident = &query[k..e];
                    if e < b.len()
                        && b[e] == b'('
                        && ident.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
                        && !ident.is_empty()
                    {
                        matching(b, e, b'(', b')').map(|x| x + 1)
                    } else {
                        None
                    }
                };
                if let Some(end) = atom_end {
                    let v = eval_duration(&query[k..end], times)?;
                    let v = if neg { -v } else { v };
                    if (v * 1000.0).round() == 0.0 {
                        // A zero offset is no offset (the parser rejects `offset 0ms`).
                        out.truncate(out.len() - "offset".len());
                    } else {
                        out.push(' ');
                        out.push_str(&fmt_ms(v));
                    }
                    i = end;
                }
            }
            _ => {
                let ch = query[i..].chars().next().unwrap();
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    Ok(out)
}

fn fmt_ms(v: f64) -> String {
    let ms = (v * 1000.0).round() as i64;
    if ms < 0 {
        format!("-{}ms", -ms)
    } else {
        format!("{ms}ms")
    }
}

fn word_at(s: &str, i: usize, w: &str) -> bool {
    let b = s.as_bytes();
    s[i..].starts_with(w)
        && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b':'))
        && b.get(i + w.len())
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b':'))
}

fn skip_string(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == b'\\' && q != b'`' {
            j += 2;
            continue;
        }
        if b[j] == q {
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

fn matching(b: &[u8], i: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0;
    let mut j = i;
    while j < b.len() {
        match b[j] {
            b'"' | b'\'' | b'`' => {
                j = skip_string(b, j);
                continue;
            }
            x if x == open => depth += 1,
            x if x == close => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

fn split_top(s: &str, sep: u8) -> Vec<&str> {
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    let mut j = 0;
    while j < b.len() {
        match b[j] {
            b'"' | b'\'' | b'`' => {
                j = skip_string(b, j);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            x if x == sep && depth == 0 => {
                parts.push(&s[start..j]);
                start = j + 1;
            }
            _ => {}
        }
        j += 1;
    }
    parts.push(&s[start..]);
    parts
}

/// Keeps a plain duration literal as written; evaluates anything else.
fn rewrite_duration(p: &str, times: QueryTimes) -> Result<String, QueryError> {
    let t = p.trim();
    if t.is_empty() || is_plain_duration(t) {
        return Ok(p.to_string());
    }
    let v = eval_duration(t, times)?;
    Ok(fmt_ms(v))
}

fn is_plain_duration(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    let mut any = false;
    while i < b.len() {
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if s == i {
            return false;
        }
        let u = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        if !matches!(&t[u..i], "ms" | "s" | "m" | "h" | "d" | "w" | "y") {
            return false;
        }
        any = true;
    }
    any
}

/// Inserts the modifier marker into the selector that `out` ends with,
/// looking past its range, `offset` and `@` modifiers.
fn insert_marker(out: &mut String, kw: &str) -> Result<(), QueryError> {
    let mut end = out.trim_end().len();
    loop {
        let s = &out[..end];
        let tok_start = after_last_space(s);
        let prev = s[..tok_start].trim_end();
        let prev_start = after_last_space(prev);
        match &prev[prev_start..] {
            "offset" | "@" => end = prev[..prev_start].trim_end().len(),
            p if p.ends_with("offset") || p.ends_with('@') => {
                end = prev.len() - if p.ends_with('@') { 1 } else { "offset".len() };
                end = out[..end].trim_end().len();
            }
            _ => break,
        }
    }
    let mut sel_end = end;
    if out[..end].ends_with(']') {
        let open = out[..end]
            .rfind('[')
            .ok_or_else(|| QueryError::BadData(format!("{kw} needs a selector")))?;
        sel_end = out[..open].trim_end().len();
    }
    let before = &out[..sel_end];
    let marker = format!("{EXT_LABEL}=\"{kw}\"");
    if before.ends_with('}') {
        let close = before.len() - 1;
        let ob = before[..close]
            .rfind('{')
            .ok_or_else(|| QueryError::BadData("bad selector".into()))?;
        let empty = before[ob + 1..close].trim().is_empty();
        let ins = if empty { marker } else { format!(",{marker}") };
        out.insert_str(close, &ins);
    } else if before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        out.insert_str(sel_end, &format!("{{{marker}}}"));
    } else {
        return Err(QueryError::BadData(format!(
            "{kw} modifier is not supported for subqueries"
        )));
    }
    Ok(())
}

/// Byte index just past the last whitespace character of `s` (0 if none).
fn after_last_space(s: &str) -> usize {
    s.char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// Evaluates a duration expression to seconds.
pub fn eval_duration(s: &str, times: QueryTimes) -> Result<f64, QueryError> {
    let mut p = DurParser {
        s: s.as_bytes(),
        src: s,
        i: 0,
        times,
    };
    let v = p.expr(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(QueryError::BadData(format!(
            "unexpected {:?} in duration expression {s:?}",
            &s[p.i..]
        )));
    }
    Ok(v)
}

struct DurParser<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
    times: QueryTimes,
}

impl DurParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn err(&self, what: &str) -> QueryError {
        QueryError::BadData(format!("{what} in duration expression {:?}", self.src))
    }

    /// Precedence climbing: 1 = + -, 2 = * / %, 3 = ^ (right-assoc).
    fn expr(&mut self, min: u8) -> Result<f64, QueryError> {
        let mut lhs = self.unary()?;
        loop {
            self.ws();
            let Some(&c) = self.s.get(self.i) else { break };
            let prec = match c {
                b'+' | b'-' => 1,
                b'*' | b'/' | b'%' => 2,
                b'^' => 3,
                _ => break,
            };
            if prec < min {
                break;
            }
            self.i += 1;
            let rhs = if c == b'^' {
                self.expr(prec)?
            } else {
                self.expr(prec + 1)?
            };
            lhs = match c {
                b'+' => lhs + rhs,
                b'-' => lhs - rhs,
                b'*' => lhs * rhs,
                b'/' => lhs / rhs,
                b'%' => lhs % rhs,
                _ => lhs.powf(rhs),
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<f64, QueryError> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'-') => {
                self.i += 1;
                // Unary minus binds looser than `^`.
                Ok(-self.expr(3)?)
            }
            Some(b'+') => {
                self.i += 1;
                self.expr(3)
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Result<f64, QueryError> {
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            return Err(self.err("unexpected end"));
        };
        if c == b'(' {
            self.i += 1;
            let v = self.expr(0)?;
            self.ws();
            if self.s.get(self.i) != Some(&b')') {
                return Err(self.err("missing ')'"));
            }
            self.i += 1;
            return Ok(v);
        }
        if c.is_ascii_alphabetic() {
            let st = self.i;
            while self.i < self.s.len()
                && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
            {
                self.i += 1;
            }
            let name = self.src[st..self.i].to_ascii_lowercase();
            self.ws();
            if self.s.get(self.i) != Some(&b'(') {
                return Err(self.err(&format!("unknown identifier {name:?}")));
            }
            self.i += 1;
            let mut args = Vec::new();
            self.ws();
            if self.s.get(self.i) != Some(&b')') {
                loop {
                    args.push(self.expr(0)?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b')') => break,
                        _ => return Err(self.err("expected ',' or ')'")),
                    }
                }
            }
            self.i += 1;
            return match (name.as_str(), args.as_slice()) {
                ("step", []) => Ok(self.times.step_ms as f64 / 1000.0),
                ("range", []) => Ok(self.times.range_ms as f64 / 1000.0),
                ("min_of", [a, b]) => Ok(a.min(*b)),
                ("max_of", [a, b]) => Ok(a.max(*b)),
                _ => Err(self.err(&format!("unknown function {name:?}"))),
            };
        }
        // Number or duration literal.
        let st = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'.')
        {
            self.i += 1;
        }
        let lit = &self.src[st..self.i];
        if let Ok(v) = lit.parse::<f64>() {
            return Ok(v);
        }
        if is_plain_duration(lit) {
            return crate::promqltest::parse_duration_ms(lit)
                .map(|ms| ms as f64 / 1000.0)
                .map_err(|e| self.err(&e));
        }
        Err(self.err(&format!("bad literal {lit:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: QueryTimes = QueryTimes {
        step_ms: 5000,
        range_ms: 10_000,
    };

    #[test]
    fn evaluates_duration_expressions() {
        assert_eq!(rewrite("x[26m+4m]", T).unwrap(), "x[1800000ms]");
        assert_eq!(rewrite("x[30m]", T).unwrap(), "x[30m]");
        assert_eq!(rewrite("x[29s+1s:5s+5s]", T).unwrap(), "x[30000ms:10000ms]");
        assert_eq!(rewrite("x[5m:]", T).unwrap(), "x[5m:]");
        assert_eq!(rewrite("x[1h30m % 1h]", T).unwrap(), "x[1800000ms]");
        assert_eq!(
            rewrite("x offset (100 + 2)", T).unwrap(),
            "x offset 102000ms"
        );
        assert_eq!(rewrite("x offset 100 + 2", T).unwrap(), "x offset 100 + 2");
        assert_eq!(
            rewrite("x offset -step()*2", T).unwrap(),
            "x offset -5000ms*2"
        );
        assert_eq!(
            rewrite("x offset min_of(step(), 1s)+8000", T).unwrap(),
            "x offset 1000ms+8000"
        );
        assert_eq!(rewrite("x[1+(STep()-5)*2]", T).unwrap(), "x[1000ms]");
        assert_eq!(rewrite(r#"f("[a+b]")"#, T).unwrap(), r#"f("[a+b]")"#);
        assert_eq!(
            rewrite(r#"info(m{a="1", b="2"}, {data=~".*"})"#, T).unwrap(),
            format!(r#"info(m{{a="1", b="2"}}, {{{INFO_LABEL}="1",data=~".*"}})"#)
        );
        assert_eq!(rewrite("info(m)", T).unwrap(), "info(m)");
    }

    #[test]
    fn never_panics_on_odd_input() {
        let pieces = [
            "x", "[", "]", "(", ")", "{", "}", "\"", "'", "`", " ", "\u{a0}", "é", "offset", "@",
            "anchored", "smoothed", "info", ",", ":", "-", "5m", "step()", "#", "\n", "1",
        ];
        // Every 3-piece combination, and some longer ones.
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let _ = rewrite(&format!("{a}{b}{c}"), T);
                    let _ = rewrite(&format!("x{a} {b}[1m]{c} anchored"), T);
                }
            }
        }
    }

    #[test]
    fn marks_extended_range_modifiers() {
        assert_eq!(
            rewrite("rate(x[1m] anchored)", T).unwrap(),
            format!("rate(x{{{EXT_LABEL}=\"anchored\"}}[1m] )")
        );
        assert_eq!(
            rewrite("rate(x{a=\"b\"}[1m] smoothed)", T).unwrap(),
            format!("rate(x{{a=\"b\",{EXT_LABEL}=\"smoothed\"}}[1m] )")
        );
        assert_eq!(
            rewrite("x @ 100 smoothed + 0", T).unwrap(),
            format!("x{{{EXT_LABEL}=\"smoothed\"}} @ 100  + 0")
        );
        assert_eq!(
            rewrite("x[1m] offset 5m anchored", T).unwrap(),
            format!("x{{{EXT_LABEL}=\"anchored\"}}[1m] offset 5m ")
        );
    }
}
