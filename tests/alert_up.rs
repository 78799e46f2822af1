//! `tidewatch up`: the alert engine evaluates rules in-process against the
//! aggregator and appends `ALERTS` straight into its store. To prove no
//! HTTP is involved, `alerting.query_url` and `remote_write_url` point at a
//! closed port (they serve components deployed alone). A rule from
//! `alerting.rule_files` fires on data imported through
//! `POST /api/v1/import/prometheus`, reaches a webhook receiver, and
//! `ALERTS{alertname=…}` is queryable through `/api/v1/query` on the same
//! address.

mod alert_support;
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alert_support::WebhookSink;
use support::{Tidewatch, blocking_get, wait_until};

const WAIT: Duration = Duration::from_secs(60);

fn query(tw: &Tidewatch, q: &str) -> Vec<serde_json::Value> {
    let q = q
        .replace('{', "%7B")
        .replace('}', "%7D")
        .replace('"', "%22")
        .replace('=', "%3D");
    let (status, body) = blocking_get(&tw.url(&format!("/api/v1/query?query={q}")));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[test]
fn rule_file_alert_fires_in_up_and_writes_back_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookSink::start();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: backlog\n    interval: 1s\n    rules:\n      - alert: BacklogHigh\n        expr: tw_alert_up_backlog > 100\n        for: 1s\n        labels: {severity: page}\n        annotations: {summary: 'backlog {{ $value }}'}\n",
    )
    .unwrap();
    // A port nothing listens on: any HTTP evaluation would fail.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = dir.path().join("tw.yml");
    std::fs::write(
        &cfg,
        format!(
            "alerting:\n  query_url: http://{dead}\n  remote_write_url: http://{dead}/api/v1/write\n  rule_files: [{}]\n  route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 1s\n    group_interval: 1s\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: {}/hook\n",
            rules.display(),
            hook.url
        ),
    )
    .unwrap();
    let c = cfg.display().to_string();
    let tw = Tidewatch::start("up", &dir.path().join("data"), &["--config", &c]);

    // Nothing fires before the data exists.
    assert!(hook.for_alertname("BacklogHigh").is_empty());
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let r = support::reqwest::blocking_client()
        .post(tw.url("/api/v1/import/prometheus"))
        .header("Content-Type", "text/plain; version=0.0.4")
        .body(format!("tw_alert_up_backlog 500 {now_ms}\n"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);

    let got = hook.wait_for("BacklogHigh", 1, WAIT);
    let body = &got[0].body;
    assert_eq!(body["status"], "firing", "{body}");
    let a = &body["alerts"][0];
    assert_eq!(a["labels"]["severity"], "page", "{a}");
    assert_eq!(a["annotations"]["summary"], "backlog 500", "{a}");

    wait_until("ALERTS written back and queryable", WAIT, || {
        query(
            &tw,
            "ALERTS{alertname=\"BacklogHigh\",alertstate=\"firing\"}",
        )
        .len()
            == 1
    });
    let r = query(&tw, "ALERTS{alertname=\"BacklogHigh\"}");
    assert!(r.iter().all(|s| s["metric"]["severity"] == "page"), "{r:?}");
}
