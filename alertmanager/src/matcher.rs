//! Label matchers (`=`, `!=`, `=~`, `!~`) in Prometheus notation and in the
//! Alertmanager API's JSON form.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};
use tidewatch_common::Labels;

/// The comparison of a matcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~` (fully anchored)
    Re,
    /// `!~`
    NotRe,
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Value or pattern.
    pub value: String,
    /// Comparison.
    pub op: MatchOp,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.value == o.value && self.op == o.op
    }
}

impl Matcher {
    /// Builds a matcher; fails on an invalid regex.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        let re = match op {
            MatchOp::Re | MatchOp::NotRe => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("invalid regex {value:?}: {e}"))?,
            ),
            _ => None,
        };
        if name.is_empty() {
            return Err("matcher without a label name".into());
        }
        Ok(Matcher {
            name: name.to_string(),
            value: value.to_string(),
            op,
            re,
        })
    }

    /// Whether `v` (the label's value, empty when absent) matches.
    pub fn matches_value(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            MatchOp::Re => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRe => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether the label set matches.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }

    /// Parses `name="value"`, `name!~"re"`, … (quotes optional).
    pub fn parse(s: &str) -> Result<Matcher, String> {
        let s = s.trim();
        let idx = s
            .find(['=', '!'])
            .ok_or_else(|| format!("bad matcher {s:?}: no operator"))?;
        let name = s[..idx].trim();
        let rest = &s[idx..];
        let (op, val) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Re, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRe, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::Ne, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Eq, v)
        } else {
            return Err(format!("bad matcher {s:?}: unknown operator"));
        };
        if !tidewatch_common::labels::is_valid_label_name(name) {
            return Err(format!("bad matcher {s:?}: invalid label name {name:?}"));
        }
        let val = unquote(val.trim()).map_err(|e| format!("bad matcher {s:?}: {e}"))?;
        Matcher::new(name, op, &val)
    }

    /// The API JSON form.
    pub fn to_api(&self) -> ApiMatcher {
        ApiMatcher {
            name: self.name.clone(),
            value: self.value.clone(),
            is_regex: matches!(self.op, MatchOp::Re | MatchOp::NotRe),
            is_equal: Some(matches!(self.op, MatchOp::Eq | MatchOp::Re)),
        }
    }
}

fn unquote(v: &str) -> Result<String, String> {
    let Some(inner) = v.strip_prefix('"') else {
        return Ok(v.to_string());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| "unterminated quote".to_string())?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(c) => out.push(c),
                None => return Err("dangling backslash".into()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        };
        write!(
            f,
            "{}{op}\"{}\"",
            self.name,
            tidewatch_common::labels::escape_value(&self.value)
        )
    }
}

/// A conjunction of matchers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Parses a list of matcher strings; each may itself be `{a="b",c="d"}`.
    pub fn parse_list(items: &[String]) -> Result<Matchers, String> {
        let mut out = Vec::new();
        for s in items {
            out.extend(Self::parse_set(s)?.0);
        }
        Ok(Matchers(out))
    }

    /// Parses `{a="b", c=~"d"}` or `a="b",c=~"d"`.
    pub fn parse_set(s: &str) -> Result<Matchers, String> {
        let s = s.trim();
        let s = s
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(s);
        let mut out = Vec::new();
        for part in split_outside_quotes(s) {
            if !part.trim().is_empty() {
                out.push(Matcher::parse(part)?);
            }
        }
        Ok(Matchers(out))
    }

    /// Whether every matcher matches.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|m| m.matches(labels))
    }
}

fn split_outside_quotes(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_q = false;
    let mut esc = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if esc => esc = false,
            '\\' => esc = true,
            '"' => in_q = !in_q,
            ',' if !in_q => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Alertmanager API v2 matcher JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiMatcher {
    /// Label name.
    pub name: String,
    /// Value or pattern.
    pub value: String,
    /// Whether `value` is a regex.
    pub is_regex: bool,
    /// Whether it is a positive match (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_equal: Option<bool>,
}

impl ApiMatcher {
    /// Compiles the API form.
    pub fn compile(&self) -> Result<Matcher, String> {
        let op = match (self.is_regex, self.is_equal.unwrap_or(true)) {
            (false, true) => MatchOp::Eq,
            (false, false) => MatchOp::Ne,
            (true, true) => MatchOp::Re,
            (true, false) => MatchOp::NotRe,
        };
        Matcher::new(&self.name, op, &self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let l = Labels::from_pairs([("alertname", "A"), ("sev", "page")]);
        let m =
            Matchers::parse_set(r#"{alertname="A", sev=~"pa.e|x", team!="ops", x!~".+"}"#).unwrap();
        assert_eq!(m.0.len(), 4);
        assert!(m.matches(&l));
        assert!(!Matcher::parse("sev=~pa").unwrap().matches(&l));
        assert!(Matcher::parse("sev=\"a\\\"b\"").unwrap().value == "a\"b");
        assert!(Matcher::parse("1x=a").is_err());
        assert!(Matcher::parse("a=~(").is_err());
        assert_eq!(Matcher::parse("a!~b").unwrap().to_string(), "a!~\"b\"");
    }
}
