//! SQL scoping: the query is parsed with `sqlparser`; only read-only
//! queries are accepted, and every reference to a scoped table (`metrics`,
//! `logs`, `events`) becomes a derived table filtered to the caller's
//! cluster namespaces: `(SELECT * FROM metrics WHERE cluster_id IN ('c1')
//! AND namespace IN ('a', 'b')) AS metrics`, one `OR`ed term per group of
//! clusters sharing a namespace set.

use std::ops::ControlFlow;

use sqlparser::ast::{SetExpr, Statement, TableFactor, VisitMut, VisitorMut};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::ScopeGroup;

/// What to filter and how.
pub struct SqlScope<'a> {
    /// Tables to restrict (lower case).
    pub tables: &'a [String],
    /// Column holding the cluster id.
    pub cluster_column: &'a str,
    /// Column holding the namespace.
    pub namespace_column: &'a str,
    /// Allowed namespaces per cluster group (may be empty: nothing is
    /// visible).
    pub groups: &'a [ScopeGroup],
}

fn list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| literal(v))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SqlScope<'_> {
    /// The filter condition.
    pub fn condition(&self) -> String {
        let term = |g: &ScopeGroup| {
            format!(
                "{} IN ({}) AND {} IN ({})",
                self.cluster_column,
                list(&g.clusters),
                self.namespace_column,
                list(&g.namespaces)
            )
        };
        match self.groups {
            [] => "FALSE".to_string(),
            [g] => term(g),
            gs => gs
                .iter()
                .map(|g| format!("({})", term(g)))
                .collect::<Vec<_>>()
                .join(" OR "),
        }
    }
}

fn literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

struct Rewriter<'a> {
    scope: &'a SqlScope<'a>,
    error: Option<String>,
}

impl Rewriter<'_> {
    fn derived(&self, table: &str, alias: &str) -> Result<TableFactor, String> {
        let cond = self.scope.condition();
        let text = format!("SELECT * FROM (SELECT * FROM {table} WHERE {cond}) AS {alias}");
        let mut stmts = Parser::parse_sql(&GenericDialect {}, &text).map_err(|e| e.to_string())?;
        let Some(Statement::Query(q)) = stmts.pop() else {
            return Err("internal: template did not parse to a query".into());
        };
        let SetExpr::Select(select) = *q.body else {
            return Err("internal: template is not a SELECT".into());
        };
        let from = select.from.into_iter().next().ok_or("internal: no FROM")?;
        Ok(from.relation)
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn post_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name, alias, args, ..
        } = tf
        {
            let full = name.to_string();
            let last = full
                .rsplit('.')
                .next()
                .unwrap_or(&full)
                .trim_matches('"')
                .to_ascii_lowercase();
            if args.is_none()
                && self
                    .scope
                    .tables
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&last))
            {
                let alias_text = alias
                    .as_ref()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| last.clone());
                match self.derived(&full, &alias_text) {
                    Ok(d) => *tf = d,
                    Err(e) => {
                        self.error = Some(e);
                        return ControlFlow::Break(());
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites `sql` for `scope`; only single read-only queries pass.
pub fn enforce(sql: &str, scope: &SqlScope<'_>) -> Result<String, String> {
    let mut stmts =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| format!("cannot parse SQL: {e}"))?;
    if stmts.len() != 1 {
        return Err("exactly one SQL statement is allowed".into());
    }
    let stmt = &mut stmts[0];
    if !matches!(stmt, Statement::Query(_)) {
        return Err("only SELECT queries are allowed".into());
    }
    let mut r = Rewriter { scope, error: None };
    let _ = stmt.visit(&mut r);
    if let Some(e) = r.error {
        return Err(e);
    }
    Ok(stmt.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope<'a>(tables: &'a [String], groups: &'a [ScopeGroup]) -> SqlScope<'a> {
        SqlScope {
            tables,
            cluster_column: "cluster_id",
            namespace_column: "namespace",
            groups,
        }
    }

    fn one(ns: &[&str]) -> Vec<ScopeGroup> {
        vec![ScopeGroup {
            clusters: vec!["c1".into()],
            namespaces: ns.iter().map(|s| s.to_string()).collect(),
        }]
    }

    #[test]
    fn scoped_tables_are_filtered_everywhere() {
        let tables = vec!["metrics".to_string(), "logs".to_string()];
        let g = one(&["a", "o'b"]);
        let s = scope(&tables, &g);
        assert_eq!(
            enforce("select count(*) from metrics", &s).unwrap(),
            "SELECT count(*) FROM (SELECT * FROM metrics WHERE cluster_id IN ('c1') AND namespace IN ('a', 'o''b')) AS metrics"
        );
        let got = enforce(
            "SELECT l.line FROM logs l JOIN metrics m ON l.pod = m.pod WHERE m.namespace = 'x'",
            &s,
        )
        .unwrap();
        assert!(
            got.contains("(SELECT * FROM logs WHERE cluster_id IN ('c1') AND namespace IN ('a', 'o''b')) AS l"),
            "{got}"
        );
        assert!(
            got.contains("(SELECT * FROM metrics WHERE cluster_id IN ('c1') AND namespace IN ('a', 'o''b')) AS m"),
            "{got}"
        );
        let got = enforce(
            "WITH x AS (SELECT * FROM metrics) SELECT * FROM x WHERE value > (SELECT max(value) FROM metrics)",
            &s,
        )
        .unwrap();
        assert_eq!(
            got.matches("WHERE cluster_id IN ('c1') AND namespace IN")
                .count(),
            2,
            "{got}"
        );
        // Unscoped tables stay as they are.
        assert_eq!(
            enforce("SELECT 1 FROM other", &s).unwrap(),
            "SELECT 1 FROM other"
        );
    }

    #[test]
    fn clusters_sharing_a_namespace_name_stay_apart() {
        let tables = vec!["events".to_string()];
        let g = vec![
            ScopeGroup {
                clusters: vec!["c1".into(), "c3".into()],
                namespaces: vec!["shop".into()],
            },
            ScopeGroup {
                clusters: vec!["c2".into()],
                namespaces: vec!["shop".into(), "web".into()],
            },
        ];
        assert_eq!(
            enforce("SELECT * FROM events", &scope(&tables, &g)).unwrap(),
            "SELECT * FROM (SELECT * FROM events WHERE (cluster_id IN ('c1', 'c3') AND namespace IN ('shop')) \
             OR (cluster_id IN ('c2') AND namespace IN ('shop', 'web'))) AS events"
        );
    }

    #[test]
    fn no_namespaces_means_nothing_visible() {
        let tables = vec!["events".to_string()];
        let got = enforce("SELECT * FROM events", &scope(&tables, &[])).unwrap();
        assert_eq!(
            got,
            "SELECT * FROM (SELECT * FROM events WHERE false) AS events"
        );
    }

    #[test]
    fn writes_and_multiple_statements_are_refused() {
        let tables = vec!["metrics".to_string()];
        let s = scope(&tables, &[]);
        assert!(enforce("DROP TABLE metrics", &s).is_err());
        assert!(enforce("SELECT 1; SELECT 2", &s).is_err());
        assert!(enforce("INSERT INTO metrics VALUES (1)", &s).is_err());
        assert!(enforce("SELEC 1", &s).is_err());
    }
}
