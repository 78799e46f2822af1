//! PromQL label enforcement on the AST (like prom-label-proxy): every
//! vector and matrix selector, wherever it sits (functions, aggregations,
//! binary operands, subqueries), gets the enforced matchers ANDed in.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, VectorSelector};

/// Parses `query`, adds `enforce` to every selector and prints it back.
pub fn enforce(query: &str, enforce: &[Matcher]) -> Result<String, String> {
    let mut expr = parser::parse(query)?;
    walk(&mut expr, enforce)?;
    Ok(expr.to_string())
}

/// Adds `enforce` to one selector text (`match[]` of series/labels APIs).
pub fn enforce_selector(selector: &str, enforce: &[Matcher]) -> Result<String, String> {
    let mut expr = parser::parse(selector)?;
    match &mut expr {
        Expr::VectorSelector(vs) => add(vs, enforce),
        _ => return Err(format!("{selector:?} is not a series selector")),
    }
    Ok(expr.to_string())
}

/// A regex matcher `name=~"v1|v2"` over literal values (escaped).
pub fn regex_matcher(name: &str, values: &[String]) -> Result<Matcher, String> {
    let alt = values
        .iter()
        .map(|v| escape_re(v))
        .collect::<Vec<_>>()
        .join("|");
    let re = regex::Regex::new(&format!("^(?:{alt})$")).map_err(|e| e.to_string())?;
    Ok(Matcher::new(MatchOp::Re(re), name, &alt))
}

/// Escapes the regex metacharacters of a literal (only those, so the text
/// stays readable and valid for both RE2 and Rust's `regex`).
pub fn escape_re(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An equality matcher.
pub fn equal_matcher(name: &str, value: &str) -> Matcher {
    Matcher::new(MatchOp::Equal, name, value)
}

fn add(vs: &mut VectorSelector, enforce: &[Matcher]) {
    if vs.matchers.or_matchers.is_empty() {
        vs.matchers.matchers.extend(enforce.iter().cloned());
    } else {
        for group in &mut vs.matchers.or_matchers {
            group.extend(enforce.iter().cloned());
        }
        // Matchers outside the `or` groups apply to all of them.
        for group in &mut vs.matchers.or_matchers {
            group.extend(vs.matchers.matchers.iter().cloned());
        }
        vs.matchers.matchers.clear();
    }
}

fn walk(expr: &mut Expr, enforce: &[Matcher]) -> Result<(), String> {
    match expr {
        Expr::Aggregate(a) => {
            walk(&mut a.expr, enforce)?;
            if let Some(p) = &mut a.param {
                walk(p, enforce)?;
            }
        }
        Expr::Unary(u) => walk(&mut u.expr, enforce)?,
        Expr::Binary(b) => {
            walk(&mut b.lhs, enforce)?;
            walk(&mut b.rhs, enforce)?;
        }
        Expr::Paren(p) => walk(&mut p.expr, enforce)?,
        Expr::Subquery(s) => walk(&mut s.expr, enforce)?,
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::VectorSelector(vs) => add(vs, enforce),
        Expr::MatrixSelector(ms) => add(&mut ms.vs, enforce),
        Expr::Call(c) => {
            for a in &mut c.args.args {
                walk(a, enforce)?;
            }
        }
        Expr::Extension(_) => return Err("extension expressions cannot be scoped".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(values: &[&str]) -> Vec<Matcher> {
        vec![
            regex_matcher(
                "namespace",
                &values.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap(),
        ]
    }

    fn check(q: &str, want: &str) {
        let got = enforce(q, &ns(&["a", "b"])).unwrap();
        assert_eq!(got, want, "{q}");
        // The output parses again to the same text.
        assert_eq!(enforce(&got, &[]).unwrap(), got);
    }

    #[test]
    fn every_selector_gets_the_namespace_matcher() {
        check("up", r#"up{namespace=~"a|b"}"#);
        check(r#"up{job="x"}"#, r#"up{job="x",namespace=~"a|b"}"#);
        check(
            "sum by (pod) (rate(container_cpu_usage_seconds_total[5m]))",
            r#"sum by (pod) (rate(container_cpu_usage_seconds_total{namespace=~"a|b"}[5m]))"#,
        );
        check(
            "a / on (pod) group_left b",
            r#"a{namespace=~"a|b"} / on (pod) group_left () b{namespace=~"a|b"}"#,
        );
        check(
            "max_over_time(rate(x[1m])[10m:1m] offset 5m)",
            r#"max_over_time(rate(x{namespace=~"a|b"}[1m])[10m:1m] offset 5m)"#,
        );
        check(
            r#"topk(3, -x{namespace="c"})"#,
            r#"topk(3, -x{namespace="c",namespace=~"a|b"})"#,
        );
        check(
            r#"label_replace(y, "d", "$1", "s", "(.*)")"#,
            r#"label_replace(y{namespace=~"a|b"}, "d", "$1", "s", "(.*)")"#,
        );
        check("1 + 2", "1 + 2");
    }

    #[test]
    fn another_namespace_cannot_escape_the_scope() {
        // The user's own matcher for another namespace is ANDed, never replaced.
        let got = enforce(r#"up{namespace="other"}"#, &ns(&["mine"])).unwrap();
        assert_eq!(got, r#"up{namespace="other",namespace=~"mine"}"#);
        // Regex metacharacters in names are literal.
        let got = enforce("up", &ns(&["a.b"])).unwrap();
        assert_eq!(got, r#"up{namespace=~"a\\.b"}"#);
    }

    #[test]
    fn or_matchers_are_each_scoped() {
        let got = enforce(r#"{job="a" or job="b"}"#, &ns(&["n"])).unwrap();
        assert!(got.matches("namespace=~\"n\"").count() == 2, "{got}");
    }

    #[test]
    fn series_selectors() {
        assert_eq!(
            enforce_selector(r#"{__name__=~"up|x"}"#, &ns(&["n"])).unwrap(),
            r#"{__name__=~"up|x",namespace=~"n"}"#
        );
        assert!(enforce_selector("sum(up)", &ns(&["n"])).is_err());
        assert!(enforce("up{", &ns(&["n"])).is_err());
    }
}
