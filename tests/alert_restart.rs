//! Durability of the alert engine: killed with SIGKILL while alerts fire,
//! the restarted process neither re-sends what was delivered nor loses
//! what was pending; silences survive too.

mod alert_support;
mod support;

use std::time::Duration;

use alert_support::{WebhookSink, call, post_alerts, rfc3339, summary};
use serde_json::json;
use support::{Tidewatch, free_port};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn kill_9_neither_duplicates_nor_loses_notifications() {
    let hook = WebhookSink::start();
    let dir = tempfile::tempdir().unwrap();
    // group_interval is long: after the first notification, anything new
    // stays pending until a restart (group_wait) flushes it.
    let cfg = dir.path().join("tidewatch.yml");
    std::fs::write(
        &cfg,
        format!(
            "alerting:\n  route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 1s\n    group_interval: 1h\n    repeat_interval: 1h\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: {}/hook\n",
            hook.url
        ),
    )
    .unwrap();
    let port = free_port();
    let args = ["--config", cfg.to_str().unwrap()];
    let mut tw = Tidewatch::start_on("alertmanager", dir.path(), port, &args);
    let base = tw.url("");
    post_alerts(
        &base,
        json!([{"labels": {"alertname": "Durable", "instance": "x"}}, {"labels": {"alertname": "Delivered"}}]),
    );
    hook.wait_for("Delivered", 1, WAIT);
    let first = hook.wait_for("Durable", 1, WAIT);
    assert_eq!(summary(&first[0]).1, vec!["Durable:x:firing".to_string()]);
    // Delivered X; now Y arrives and is acknowledged (HTTP 200), pending.
    post_alerts(
        &base,
        json!([{"labels": {"alertname": "Durable", "instance": "y"}}]),
    );
    let (s, sil) = call(
        "POST",
        &format!("{base}/api/v2/silences"),
        Some(
            json!({"matchers": [{"name": "alertname", "value": "Quiet", "isRegex": false}],
                    "startsAt": rfc3339(0), "endsAt": rfc3339(3600), "createdBy": "t", "comment": "c"}),
        ),
    );
    assert_eq!(s, 200);
    tw.proc.kill9();

    let tw = Tidewatch::start_on("alertmanager", dir.path(), port, &args);
    // The pending alert is delivered with the group …
    let after = hook.wait_for("Durable", 2, WAIT);
    assert_eq!(
        summary(&after[1]).1,
        vec![
            "Durable:x:firing".to_string(),
            "Durable:y:firing".to_string()
        ]
    );
    // … the silence still holds, and nothing is sent twice: a marker group
    // posted now flushes after every restored group did.
    post_alerts(
        &base,
        json!([{"labels": {"alertname": "Quiet"}}, {"labels": {"alertname": "Marker"}}]),
    );
    hook.wait_for("Marker", 1, WAIT);
    assert_eq!(
        hook.for_alertname("Durable").len(),
        2,
        "{:#?}",
        hook.hooks()
    );
    // Delivered before the kill with nothing new: not re-sent.
    assert_eq!(
        hook.for_alertname("Delivered").len(),
        1,
        "{:#?}",
        hook.hooks()
    );
    assert!(hook.for_alertname("Quiet").is_empty());
    let (_, sils) = call("GET", &tw.url("/api/v2/silences"), None);
    assert_eq!(sils[0]["id"], sil["silenceID"]);
    let (_, alerts) = call(
        "GET",
        &tw.url("/api/v2/alerts?filter=alertname=\"Durable\""),
        None,
    );
    assert_eq!(alerts.as_array().unwrap().len(), 2);
}
