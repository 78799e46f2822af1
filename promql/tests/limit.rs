//! `limitk` and `limit_ratio`, whose corpus file mixes in native histograms
//! (so most of its cases are skipped there): float-only cases of our own,
//! run through the corpus runner.

use tidewatch_promql::Engine;
use tidewatch_promql::promqltest::{MemTarget, Outcome, run_file};

const CASES: &str = r#"
load 5m
    http_requests{job="api", instance="0", group="production"} 0+10x10
    http_requests{job="api", instance="1", group="production"} 0+20x10
    http_requests{job="api", instance="0", group="canary"} 0+30x10
    http_requests{job="api", instance="1", group="canary"} 0+40x10
    http_requests{job="app", instance="2", group="canary"} 0+50x10
    http_requests{job="app", instance="3", group="canary"} 0+60x10
    foo 1+1x10

eval instant at 50m count(limitk by (group) (1, http_requests) and http_requests)
    {} 2

eval instant at 50m count(limitk(100, http_requests) and http_requests)
    {} 6

eval instant at 50m count(limitk by (group) (0, http_requests))

eval range from 0m to 50m step 5m count(limitk(scalar(foo), http_requests))
    {} 1 2 3 4 5 6 6 6 6 6 6

eval range from 0 to 50m step 5m count(limit_ratio(0.0, http_requests))

eval range from 0 to 50m step 5m count(limit_ratio(1.0, http_requests) and http_requests)
    {} 6+0x10

eval range from 0 to 50m step 5m count(limit_ratio(-1.1, http_requests) and http_requests)
    expect warn
    {} 6+0x10

eval range from 0 to 50m step 5m count(limit_ratio(0.3, http_requests) or limit_ratio(-0.7, http_requests))
    {} 6+0x10

eval range from 0 to 50m step 5m count(limit_ratio(0.3, http_requests) and limit_ratio(-0.7, http_requests))

eval range from 0 to 50m step 5m count(limit_ratio(time() % 17/17, http_requests) or limit_ratio(-(1.0 - (time() % 17/17)), http_requests))
    {} 6+0x10

eval instant at 50m limit_ratio(NaN, http_requests)
    expect fail msg: Ratio value is NaN

eval instant at 50m limitk(NaN, http_requests)
    expect fail msg: Parameter value is NaN
"#;

#[tokio::test]
async fn limitk_and_limit_ratio() {
    let report = run_file(CASES, &MemTarget::default(), &Engine::default())
        .await
        .unwrap();
    let failures: Vec<String> = report
        .cases
        .iter()
        .filter_map(|c| match &c.outcome {
            Outcome::Fail(why) => Some(format!("line {}: {} — {why}", c.line, c.query)),
            _ => None,
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(report.total(), 12);
}
