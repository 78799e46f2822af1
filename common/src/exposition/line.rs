//! Syntax of one exposition line: metric names, label sets, values,
//! timestamps and exemplars. No allocation except the label strings that end
//! up in the output.

use crate::labels::Label;

/// Dialect-dependent syntax rules.
#[derive(Clone, Copy)]
pub(super) struct Syntax {
    /// OpenMetrics: single spaces, no trailing commas, strict numbers,
    /// float-second timestamps, exemplars.
    pub om: bool,
}

/// A parsed sample line, borrowing from the input.
pub(super) struct SampleLine<'a> {
    /// Metric name.
    pub name: &'a str,
    /// Value.
    pub value: f64,
    /// Timestamp in milliseconds.
    pub timestamp_ms: Option<i64>,
    /// Timestamp as written (OpenMetrics seconds, for ordering checks).
    pub timestamp_raw: Option<f64>,
    /// Whether an exemplar followed.
    pub has_exemplar: bool,
}

/// Byte cursor over one line.
pub(super) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Takes bytes up to the next space/tab (or the end).
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while !matches!(self.peek(), None | Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
}

fn is_name_start(b: u8, metric: bool) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || (metric && b == b':')
}

fn is_name_char(b: u8, metric: bool) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || (metric && b == b':')
}

/// Reads a metric (`metric = true`) or label name.
fn read_name<'a>(c: &mut Cursor<'a>, metric: bool) -> Option<&'a str> {
    let start = c.pos;
    match c.peek() {
        Some(b) if is_name_start(b, metric) => c.pos += 1,
        _ => return None,
    }
    while matches!(c.peek(), Some(b) if is_name_char(b, metric)) {
        c.pos += 1;
    }
    Some(&c.s[start..c.pos])
}

/// Reads a metric name at the start of a `# TYPE`/`# HELP`/`# UNIT` line.
pub(super) fn metric_name_prefix(s: &str) -> Option<(&str, &str)> {
    let mut c = Cursor::new(s);
    let n = read_name(&mut c, true)?;
    Some((n, c.rest()))
}

/// Reads a quoted label value after the opening quote; unescapes `\\`,
/// `\"` and `\n` (other escapes are kept verbatim, as Prometheus does).
fn read_label_value(c: &mut Cursor<'_>) -> Result<String, String> {
    let bytes = c.s.as_bytes();
    let start = c.pos;
    let mut has_escape = false;
    loop {
        match bytes.get(c.pos) {
            None => return Err("unterminated label value (missing closing '\"')".into()),
            Some(b'"') => break,
            Some(b'\\') => {
                has_escape = true;
                c.pos += 2;
            }
            Some(_) => c.pos += 1,
        }
    }
    if c.pos > c.s.len() {
        return Err("unterminated label value (missing closing '\"')".into());
    }
    let raw = &c.s[start..c.pos];
    c.pos += 1; // closing quote
    if !has_escape {
        return Ok(raw.to_string());
    }
    Ok(unescape(raw, true))
}

/// Unescapes `\\`, `\n` and (when `quotes`) `\"`; other sequences are kept.
pub(super) fn unescape(raw: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Parses `{name="value",...}` (cursor on `{`) appending to `out`.
fn read_labels(c: &mut Cursor<'_>, syn: Syntax, out: &mut Vec<Label>) -> Result<(), String> {
    c.pos += 1; // '{'
    let blanks = |c: &mut Cursor<'_>| {
        if !syn.om {
            c.skip_blanks()
        }
    };
    blanks(c);
    if c.eat(b'}') {
        return Ok(());
    }
    loop {
        blanks(c);
        let name = read_name(c, false).ok_or_else(|| match c.peek() {
            Some(b',') => "unexpected ',' in label set (missing label)".to_string(),
            Some(b) => format!("invalid label name starting at {:?}", b as char),
            None => "unterminated label set".to_string(),
        })?;
        blanks(c);
        if !c.eat(b'=') {
            return Err(format!("expected '=' after label name {name:?}"));
        }
        blanks(c);
        if !c.eat(b'"') {
            return Err(format!("expected '\"' to open the value of label {name:?}"));
        }
        let value = read_label_value(c)?;
        out.push(Label::new(name, value));
        blanks(c);
        if c.eat(b'}') {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err(format!(
                "expected ',' or '}}' after the value of label {name:?}"
            ));
        }
        blanks(c);
        if c.eat(b'}') {
            if syn.om {
                return Err("trailing ',' in label set".into());
            }
            return Ok(());
        }
    }
}

/// Parses a number: Prometheus text accepts what Go's `ParseFloat` does
/// for decimal input (`Inf`, `nan`, … in any case); OpenMetrics forbids hex,
/// underscores and other bases.
pub(super) fn parse_float(tok: &str, syn: Syntax) -> Option<f64> {
    if tok.is_empty() {
        return None;
    }
    let numeric = tok
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if numeric {
        return tok.parse().ok();
    }
    let unsigned = tok.strip_prefix(['+', '-']).unwrap_or(tok);
    let lower = unsigned.len() <= 8 && {
        let mut buf = [0u8; 8];
        buf[..unsigned.len()].copy_from_slice(unsigned.as_bytes());
        buf.make_ascii_lowercase();
        let l = &buf[..unsigned.len()];
        l == b"inf" || l == b"infinity" || (l == b"nan" && unsigned.len() == tok.len())
    };
    if !lower {
        return None;
    }
    let _ = syn;
    tok.parse().ok()
}

/// Parses a timestamp into (milliseconds, raw value).
fn parse_timestamp(tok: &str, syn: Syntax) -> Result<(i64, f64), String> {
    if syn.om {
        let secs = parse_float(tok, syn)
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("invalid timestamp {tok:?}"))?;
        Ok(((secs * 1000.0).round() as i64, secs))
    } else {
        let ms: i64 = tok
            .parse()
            .map_err(|_| format!("invalid timestamp {tok:?} (expected integer milliseconds)"))?;
        Ok((ms, ms as f64))
    }
}

/// Maximum combined length (code points) of an exemplar's label names and values.
const EXEMPLAR_MAX_CHARS: usize = 128;

/// Parses ` # {labels} value [timestamp]` after the `#` (cursor past `#`).
fn read_exemplar(c: &mut Cursor<'_>, syn: Syntax, scratch: &mut Vec<Label>) -> Result<(), String> {
    if !c.eat(b' ') || c.peek() != Some(b'{') {
        return Err("exemplar must be ' # {labels} value [timestamp]'".into());
    }
    scratch.clear();
    read_labels(c, syn, scratch).map_err(|e| format!("exemplar: {e}"))?;
    let chars: usize = scratch
        .iter()
        .map(|l| l.name.chars().count() + l.value.chars().count())
        .sum();
    if chars > EXEMPLAR_MAX_CHARS {
        return Err(format!(
            "exemplar labels have {chars} characters, more than {EXEMPLAR_MAX_CHARS}"
        ));
    }
    if !c.eat(b' ') {
        return Err("expected ' ' after the exemplar's labels".into());
    }
    let v = c.token();
    parse_float(v, syn).ok_or_else(|| format!("invalid exemplar value {v:?}"))?;
    if c.at_end() {
        return Ok(());
    }
    c.pos += 1;
    let ts = c.token();
    parse_timestamp(ts, syn).map_err(|e| format!("exemplar: {e}"))?;
    if !c.at_end() {
        return Err("unexpected text after the exemplar's timestamp".into());
    }
    Ok(())
}

/// Parses one sample line. Labels (without `__name__`) are appended to
/// `labels`; `scratch` is reused for exemplar labels.
pub(super) fn parse_sample<'a>(
    line: &'a str,
    syn: Syntax,
    labels: &mut Vec<Label>,
    scratch: &mut Vec<Label>,
) -> Result<SampleLine<'a>, String> {
    let mut c = Cursor::new(line);
    if !syn.om {
        c.skip_blanks();
    }
    let name = read_name(&mut c, true).ok_or_else(|| match c.peek() {
        Some(b) => format!("invalid metric name starting at {:?}", b as char),
        None => "expected a metric name".to_string(),
    })?;
    let after_name = c.pos;
    if !syn.om {
        c.skip_blanks();
    }
    if c.peek() == Some(b'{') {
        read_labels(&mut c, syn, labels)?;
    } else if !syn.om {
        c.pos = after_name;
    }
    // Separator before the value.
    if syn.om {
        if !c.eat(b' ') {
            return Err(match c.peek() {
                None => format!("missing value for {name:?}"),
                Some(b) => format!("expected ' ' before the value, found {:?}", b as char),
            });
        }
    } else {
        let before = c.pos;
        c.skip_blanks();
        if c.pos == before && !c.at_end() {
            return Err(format!(
                "expected whitespace before the value, found {:?}",
                c.rest().chars().next().unwrap_or(' ')
            ));
        }
    }
    let vtok = c.token();
    if vtok.is_empty() {
        return Err(format!("missing value for {name:?}"));
    }
    let value = parse_float(vtok, syn).ok_or_else(|| format!("invalid value {vtok:?}"))?;
    let mut out = SampleLine {
        name,
        value,
        timestamp_ms: None,
        timestamp_raw: None,
        has_exemplar: false,
    };
    if syn.om {
        if c.at_end() {
            return Ok(out);
        }
        if !c.eat(b' ') {
            return Err(format!(
                "expected ' ' after the value, found {:?}",
                c.rest().chars().next().unwrap_or(' ')
            ));
        }
        if c.peek() != Some(b'#') {
            let t = c.token();
            if t.is_empty() {
                return Err("trailing whitespace or empty timestamp".into());
            }
            let (ms, raw) = parse_timestamp(t, syn)?;
            out.timestamp_ms = Some(ms);
            out.timestamp_raw = Some(raw);
            if c.at_end() {
                return Ok(out);
            }
            if !c.eat(b' ') || c.peek() != Some(b'#') {
                return Err(format!(
                    "unexpected text after the timestamp: {:?}",
                    c.rest()
                ));
            }
        }
        c.pos += 1; // '#'
        read_exemplar(&mut c, syn, scratch)?;
        out.has_exemplar = true;
        return Ok(out);
    }
    c.skip_blanks();
    if c.at_end() {
        return Ok(out);
    }
    let t = c.token();
    let (ms, raw) = parse_timestamp(t, syn)?;
    out.timestamp_ms = Some(ms);
    out.timestamp_raw = Some(raw);
    c.skip_blanks();
    if !c.at_end() {
        return Err(format!(
            "unexpected text after the timestamp: {:?}",
            c.rest()
        ));
    }
    Ok(out)
}
