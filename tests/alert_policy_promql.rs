//! End to end through `tidewatch alertmanager` and Debian's Prometheus as
//! the query source: an alarm policy in the dashboards' PromQL mode
//! (`rules: [{alert, expr, for, severity, summary}]`) posted to the
//! platform REST API is validated, compiled beside template metrics, and
//! its rule fires and reaches a webhook.

mod alert_support;
mod support;

use std::time::Duration;

use alert_support::{WebhookSink, call};
use serde_json::json;
use support::{Tidewatch, start_prometheus, wait_until};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn raw_promql_policy_fires_to_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookSink::start();
    // A scrape target nobody listens on: `up{job="down"}` is 0.
    let (_prom, prom_port) = start_prometheus(
        &dir.path().join("prom"),
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: down\n    static_configs:\n      - targets: ['127.0.0.1:1']\n",
        &[],
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    wait_until("Prometheus scraped the down target", WAIT, || {
        let (_, v) = call(
            "GET",
            &format!("{prom}/api/v1/query?query=up%7Bjob%3D%22down%22%7D"),
            None,
        );
        v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
    let cfg = dir.path().join("tidewatch.yml");
    std::fs::write(
        &cfg,
        format!(
            "alerting:\n  query_url: {prom}\n  route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 1s\n    group_interval: 1s\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: {}/hook\n",
            hook.url
        ),
    )
    .unwrap();
    let tw = Tidewatch::start(
        "alertmanager",
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
    );
    let api = |p: &str| tw.url(&format!("/api/platform/v1/{p}"));

    // What the policy editor posts in PromQL mode (`metrics: []`).
    let mut policy = json!({
        "name": "raw-down", "type": "cluster", "cluster_id": "local", "statistics_period": 1,
        "objects_type": "all", "metrics": [],
        "rules": [{"alert": "TargetDown", "expr": "up{job=\"down\"} ==", "for": "1s",
                   "severity": "critical", "summary": "{{ $labels.instance }} is down"}],
        "receiver_groups": [], "receivers": [], "notify_ways": [],
    });
    let (s, e) = call("POST", &api("alarm-policies"), Some(policy.clone()));
    assert_eq!(
        (s, e["field"].as_str()),
        (400, Some("rules[0].expr")),
        "{e}"
    );
    policy["rules"][0]["expr"] = json!("up{job=\"down\"} == 0");
    policy["rules"][0]["for"] = json!("a while");
    let (s, e) = call("POST", &api("alarm-policies"), Some(policy.clone()));
    assert_eq!((s, e["field"].as_str()), (400, Some("rules[0].for")), "{e}");
    policy["rules"][0]["for"] = json!("1s");
    let (s, e) = call("POST", &api("alarm-policies"), Some(policy.clone()));
    assert_eq!(s, 201, "{e}");

    let (_, rules) = call("GET", &api("alarm-policies/raw-down/rules"), None);
    let r = &rules["groups"][0]["rules"][0];
    assert_eq!(r["alert"], "TargetDown", "{rules}");
    assert_eq!(r["expr"], "up{job=\"down\"} == 0", "{rules}");

    let got = hook.wait_for("TargetDown", 1, WAIT);
    let a = &got[0].body["alerts"][0];
    assert_eq!(got[0].body["status"], "firing", "{}", got[0].body);
    assert_eq!(a["labels"]["severity"], "critical", "{a}");
    assert_eq!(a["labels"]["alarmPolicyName"], "raw-down", "{a}");
    assert_eq!(a["labels"]["instance"], "127.0.0.1:1", "{a}");
    assert_eq!(a["annotations"]["summary"], "127.0.0.1:1 is down", "{a}");
}
