//! PromQL label enforcement on the AST (like prom-label-proxy): every
//! vector and matrix selector, wherever it sits (functions, aggregations,
//! binary operands, subqueries), gets the enforced matchers ANDed in.
//!
//! The enforcement is a list of alternatives (one per group of clusters
//! sharing a namespace set): with one, its matchers are ANDed into the
//! selector; with several, the selector becomes an `or` of matcher sets
//! (`{a="1",cluster_id=~"c1",namespace=~"x" or a="1",cluster_id=~"c2",…}`),
//! the product of the user's own alternatives and the enforced ones, so a
//! series is selected only if one user alternative and one allowed
//! (cluster, namespace) group both match it. The aggregator evaluates
//! each matcher set and merges the series without duplicates.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, VectorSelector};

/// Parses `query`, restricts every selector to one of the `enforce`
/// alternatives and prints it back.
pub fn enforce(query: &str, enforce: &[Vec<Matcher>]) -> Result<String, String> {
    let mut expr = parser::parse(query)?;
    walk(&mut expr, enforce)?;
    Ok(expr.to_string())
}

/// Restricts one selector text (`match[]` of series/labels APIs).
pub fn enforce_selector(selector: &str, enforce: &[Vec<Matcher>]) -> Result<String, String> {
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

fn add(vs: &mut VectorSelector, enforce: &[Vec<Matcher>]) {
    let m = &mut vs.matchers;
    // The user's alternatives, each with the matchers outside `or` groups.
    let user: Vec<Vec<Matcher>> = if m.or_matchers.is_empty() {
        vec![std::mem::take(&mut m.matchers)]
    } else {
        let outer = std::mem::take(&mut m.matchers);
        std::mem::take(&mut m.or_matchers)
            .into_iter()
            .map(|mut g| {
                g.extend(outer.iter().cloned());
                g
            })
            .collect()
    };
    let mut sets: Vec<Vec<Matcher>> = Vec::with_capacity(user.len() * enforce.len().max(1));
    for u in &user {
        if enforce.is_empty() {
            sets.push(u.clone());
        }
        for e in enforce {
            let mut set = u.clone();
            set.extend(e.iter().cloned());
            sets.push(set);
        }
    }
    if sets.len() == 1 {
        m.matchers = sets.pop().unwrap_or_default();
    } else {
        m.or_matchers = sets;
    }
}

fn walk(expr: &mut Expr, enforce: &[Vec<Matcher>]) -> Result<(), String> {
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

    fn ns(values: &[&str]) -> Vec<Vec<Matcher>> {
        vec![vec![
            regex_matcher(
                "namespace",
                &values.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap(),
        ]]
    }

    fn groups() -> Vec<Vec<Matcher>> {
        let re = |n: &str, v: &[&str]| {
            regex_matcher(n, &v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        vec![
            vec![re("cluster_id", &["c1"]), re("namespace", &["shop"])],
            vec![re("cluster_id", &["c2"]), re("namespace", &["web"])],
        ]
    }

    #[test]
    fn several_cluster_groups_become_or_matcher_sets() {
        let got = enforce("sum(rate(x[5m]))", &groups()).unwrap();
        assert_eq!(
            got,
            r#"sum(rate(x{cluster_id=~"c1", namespace=~"shop" or cluster_id=~"c2", namespace=~"web"}[5m]))"#
        );
        assert_eq!(enforce(&got, &[]).unwrap(), got);
        // The user's own `or` multiplies out: every set keeps a scope pair.
        let got = enforce(r#"{job="a" or job="b",env="p"}"#, &groups()).unwrap();
        assert_eq!(got.matches(" or ").count(), 3, "{got}");
        assert_eq!(
            got.matches(r#"cluster_id=~"c1", namespace=~"shop""#)
                .count(),
            2,
            "{got}"
        );
        assert_eq!(
            got.matches(r#"cluster_id=~"c2", namespace=~"web""#).count(),
            2,
            "{got}"
        );
        let got = enforce_selector(r#"up{namespace="shop"}"#, &groups()).unwrap();
        assert_eq!(
            got,
            r#"up{namespace="shop", cluster_id=~"c1", namespace=~"shop" or namespace="shop", cluster_id=~"c2", namespace=~"web"}"#
        );
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
