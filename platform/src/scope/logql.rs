//! LogQL stream-selector enforcement. A small lexer walks the query,
//! skipping string literals (`"…"`, `` `…` ``) and comments; every stream
//! selector `{…}` it meets is parsed into matchers and printed back with
//! the enforced matchers added. Pipelines, templates and metric wrappers are
//! left byte-for-byte as written.

/// One label matcher of a stream selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMatcher {
    /// Label name.
    pub name: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: &'static str,
    /// Unescaped value.
    pub value: String,
}

impl LabelMatcher {
    /// `name op "value"`, quoted as LogQL needs.
    pub fn render(&self) -> String {
        format!("{}{}{}", self.name, self.op, quote(&self.value))
    }
}

fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Adds `enforce` to every stream selector of `query`. Fails when the query
/// has no selector or a selector does not parse.
pub fn enforce(query: &str, enforce: &[LabelMatcher]) -> Result<String, String> {
    enforce_with_filter(query, enforce, None)
}

/// Like [`enforce`], and puts the label-filter stage `filter` (such as
/// `cluster_id=~"c1" and namespace=~"a" or …`) right after every stream
/// selector, so it sees the stream labels before any user stage.
pub fn enforce_with_filter(
    query: &str,
    enforce: &[LabelMatcher],
    filter: Option<&str>,
) -> Result<String, String> {
    let b = query.as_bytes();
    let mut out = String::with_capacity(query.len() + 64);
    let mut i = 0;
    let mut last = 0;
    let mut selectors = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = skip_quoted(b, i)?,
            b'`' => {
                i = query[i + 1..]
                    .find('`')
                    .map(|j| i + 1 + j + 1)
                    .ok_or("unterminated raw string")?
            }
            b'#' => i = query[i..].find('\n').map(|j| i + j).unwrap_or(b.len()),
            b'{' => {
                let (matchers, end) = parse_selector(query, i)?;
                out.push_str(&query[last..i]);
                let mut all: Vec<String> = matchers.iter().map(LabelMatcher::render).collect();
                all.extend(enforce.iter().map(LabelMatcher::render));
                out.push('{');
                out.push_str(&all.join(", "));
                out.push('}');
                if let Some(f) = filter {
                    out.push_str(" | ");
                    out.push_str(f);
                }
                i = end;
                last = end;
                selectors += 1;
            }
            b'}' => return Err(format!("unexpected '}}' at offset {i}")),
            _ => i += 1,
        }
    }
    if selectors == 0 {
        return Err("a LogQL query needs a stream selector such as {app=\"x\"}".into());
    }
    out.push_str(&query[last..]);
    Ok(out)
}

fn skip_quoted(b: &[u8], start: usize) -> Result<usize, String> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("unterminated string".into())
}

fn unquote(s: &str) -> Result<String, String> {
    let inner = &s[1..s.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => return Err("dangling escape".into()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Parses `{name op "value", …}` starting at `start` (the `{`); returns
/// the matchers and the offset after `}`.
pub fn parse_selector(q: &str, start: usize) -> Result<(Vec<LabelMatcher>, usize), String> {
    let b = q.as_bytes();
    let mut i = start + 1;
    let mut out = Vec::new();
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        ws(&mut i);
        if i < b.len() && b[i] == b'}' {
            return Ok((out, i + 1));
        }
        let n0 = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if n0 == i || b[n0].is_ascii_digit() {
            return Err(format!("expected a label name at offset {n0}"));
        }
        let name = q[n0..i].to_string();
        ws(&mut i);
        let op = match (b.get(i), b.get(i + 1)) {
            (Some(b'='), Some(b'~')) => "=~",
            (Some(b'!'), Some(b'~')) => "!~",
            (Some(b'!'), Some(b'=')) => "!=",
            (Some(b'='), _) => "=",
            _ => return Err(format!("expected a match operator after {name:?}")),
        };
        i += op.len();
        ws(&mut i);
        let value = match b.get(i) {
            Some(b'"') => {
                let end = skip_quoted(b, i)?;
                let v = unquote(&q[i..end])?;
                i = end;
                v
            }
            Some(b'`') => {
                let end = q[i + 1..].find('`').ok_or("unterminated raw string")? + i + 1;
                let v = q[i + 1..end].to_string();
                i = end + 1;
                v
            }
            _ => return Err(format!("expected a quoted value for {name:?}")),
        };
        if op.ends_with('~') {
            regex::Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("invalid regex for {name:?}: {e}"))?;
        }
        out.push(LabelMatcher { name, op, value });
        ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok((out, i + 1)),
            _ => return Err(format!("expected ',' or '}}' at offset {i}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Vec<LabelMatcher> {
        vec![LabelMatcher {
            name: "namespace".into(),
            op: "=~",
            value: "a|b".into(),
        }]
    }

    #[test]
    fn selectors_everywhere_are_scoped() {
        assert_eq!(
            enforce(r#"{app="web"} |= "error""#, &ns()).unwrap(),
            r#"{app="web", namespace=~"a|b"} |= "error""#
        );
        assert_eq!(
            enforce(
                r#"sum by (pod) (rate({app="web"} |~ "5\\d\\d" [5m])) / sum(rate({job=`x`}[5m]))"#,
                &ns()
            )
            .unwrap(),
            r#"sum by (pod) (rate({app="web", namespace=~"a|b"} |~ "5\\d\\d" [5m])) / sum(rate({job="x", namespace=~"a|b"}[5m]))"#
        );
    }

    #[test]
    fn braces_inside_strings_are_not_selectors() {
        let q = r#"{app="web"} | line_format "{{.msg}} }" | label_format x=`{{.y}}`"#;
        assert_eq!(
            enforce(q, &ns()).unwrap(),
            r#"{app="web", namespace=~"a|b"} | line_format "{{.msg}} }" | label_format x=`{{.y}}`"#
        );
        assert_eq!(
            enforce(r#"{app="a\"}b"}"#, &ns()).unwrap(),
            r#"{app="a\"}b", namespace=~"a|b"}"#
        );
    }

    #[test]
    fn malformed_queries_are_rejected() {
        assert!(enforce("rate(x[5m])", &ns()).is_err());
        assert!(enforce("{app=web}", &ns()).is_err());
        assert!(enforce("{app=\"x\"", &ns()).is_err());
        assert!(enforce("{app=\"x\"}}", &ns()).is_err());
        assert!(enforce("{app=~\"(\"}", &ns()).is_err());
    }
}
