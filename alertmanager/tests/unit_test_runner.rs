//! The rule unit-test runner's own logic (series loading, evaluation
//! schedule, `for`, alert and expression comparisons, `--run`), checked
//! with a tiny evaluator that understands selectors and comparisons with a
//! number: enough for these files, independent of the PromQL engine.

use std::sync::Arc;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{Expr, parse};
use tidewatch_alertmanager::rules::querier::{Querier, QueryFuture, Sample};
use tidewatch_alertmanager::unit_test::{Options, run_file_with};
use tidewatch_promql::memory::MemStorage;
use tidewatch_promql::storage::{SelectRequest, Storage, is_stale_nan};

struct Tiny(Arc<MemStorage>);

impl Tiny {
    async fn select(&self, e: &Expr, t: i64) -> Result<Vec<Sample>, String> {
        let Expr::VectorSelector(vs) = e else {
            return Err(format!("tiny evaluator: unsupported {e}"));
        };
        let mut matchers = vs.matchers.matchers.clone();
        if let Some(n) = &vs.name {
            matchers.push(Matcher::new(MatchOp::Equal, "__name__", n));
        }
        let series = self
            .0
            .select(SelectRequest {
                matchers,
                start_ms: t - 300_000,
                end_ms: t,
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(series
            .into_iter()
            .filter_map(|s| {
                let v = *s.values.last()?;
                (!is_stale_nan(v)).then_some(Sample {
                    labels: s.labels,
                    value: v,
                    histogram: None,
                })
            })
            .collect())
    }
}

impl Querier for Tiny {
    fn query<'a>(&'a self, expr: &'a str, t: i64) -> QueryFuture<'a> {
        Box::pin(async move {
            let e = parse(expr)?;
            match &e {
                Expr::NumberLiteral(n) => Ok(vec![Sample {
                    labels: Default::default(),
                    value: n.val,
                    histogram: None,
                }]),
                Expr::Binary(b) => {
                    let Expr::NumberLiteral(n) = b.rhs.as_ref() else {
                        return Err("tiny evaluator: rhs must be a number".into());
                    };
                    let op = b.op.to_string();
                    let mut out = self.select(&b.lhs, t).await?;
                    out.retain(|s| match op.as_str() {
                        "==" => s.value == n.val,
                        ">" => s.value > n.val,
                        "<" => s.value < n.val,
                        _ => false,
                    });
                    for s in &mut out {
                        s.labels.remove("__name__");
                    }
                    Ok(out)
                }
                _ => self.select(&e, t).await,
            }
        })
    }
}

fn tiny(s: Arc<MemStorage>) -> Box<dyn Querier> {
    Box::new(Tiny(s))
}

const RULES: &str = r#"
groups:
  - name: g
    rules:
      - alert: InstanceDown
        expr: up == 0
        for: 2m
        labels: {severity: page}
        annotations: {summary: "{{ $labels.instance }} down ({{ $value }})"}
      - record: up_copy
        expr: up
"#;

const TESTS: &str = r#"
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - name: passing
    interval: 1m
    input_series:
      - series: 'up{instance="a", job="j"}'
        values: '1 0x6'
      - series: 'up{instance="b", job="j"}'
        values: '1x6'
    alert_rule_test:
      - eval_time: 2m
        alertname: InstanceDown
        exp_alerts: []
      - eval_time: 3m30s
        alertname: InstanceDown
        exp_alerts:
          - exp_labels: {severity: page, instance: a, job: j}
            exp_annotations: {summary: "a down (0)"}
    promql_expr_test:
      - expr: up_copy
        eval_time: 2m
        exp_samples:
          - labels: 'up_copy{instance="a", job="j"}'
            value: 0
          - labels: 'up_copy{instance="b", job="j"}'
            value: 1
  - name: failing
    input_series:
      - series: 'up{instance="a"}'
        values: '0x5'
    alert_rule_test:
      - eval_time: 1m
        alertname: InstanceDown
        exp_alerts:
          - exp_labels: {severity: page, instance: a}
"#;

#[tokio::test]
async fn runner_schedule_and_comparisons() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let f = dir.path().join("test.yml");
    std::fs::write(&f, TESTS).unwrap();

    let only = |name: &str| Options {
        run: vec![format!("^{name}$")],
        ..Options::default()
    };
    run_file_with(&f, &only("passing"), &tiny)
        .await
        .expect("passing group passes");
    let errs = run_file_with(&f, &only("failing"), &tiny)
        .await
        .expect_err("failing group fails");
    let text = errs.join("\n");
    // Pending at 1m (for: 2m): expected firing, got none.
    assert!(text.contains("alertname: InstanceDown, time: 1m"), "{text}");
    assert!(text.contains("got:[]"), "{text}");
    assert!(run_file_with(&f, &Options::default(), &tiny).await.is_err());
}
