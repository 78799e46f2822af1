//! End to end through `tidewatch alertmanager`: alerts posted to the
//! Alertmanager API reach a webhook grouped, on the group_wait /
//! group_interval / repeat_interval schedule, never while silenced,
//! inhibited or muted by a time interval, resolved when they end, and
//! not repeated once acknowledged.

mod alert_support;
mod support;

use std::time::Duration;

use alert_support::{WebhookSink, call, post_alerts, rfc3339, summary};
use serde_json::json;
use support::Tidewatch;

const WAIT: Duration = Duration::from_secs(30);

fn config(dir: &std::path::Path, hook: &str, repeat: &str) -> std::path::PathBuf {
    let cfg = format!(
        r#"
alerting:
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 1s
    group_interval: 2s
    repeat_interval: {repeat}
    routes:
      - matchers: ['alertname="Muted"']
        mute_time_intervals: [always]
      - matchers: ['alertname="OffHours"']
        active_time_intervals: [last_century]
  time_intervals:
    - name: always
      time_intervals:
        - times: [{{start_time: "00:00", end_time: "24:00"}}]
    - name: last_century
      time_intervals:
        - years: ["1900:1999"]
  receivers:
    - name: hook
      webhook_configs:
        - url: {hook}/hook
  inhibit_rules:
    - source_matchers: ['severity="critical"']
      target_matchers: ['severity="warning"']
      equal: [cluster]
"#
    );
    let p = dir.join("tidewatch.yml");
    std::fs::write(&p, cfg).unwrap();
    p
}

#[test]
fn grouping_and_timing() {
    let hook = WebhookSink::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &hook.url, "6s");
    let tw = Tidewatch::start(
        "alertmanager",
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
    );
    let base = tw.url("");

    let t0 = std::time::Instant::now();
    post_alerts(
        &base,
        json!([
            {"labels": {"alertname": "Grp", "instance": "a"}, "annotations": {"summary": "a is down"}},
            {"labels": {"alertname": "Grp", "instance": "b"}},
            {"labels": {"alertname": "Other", "instance": "c"}},
        ]),
    );
    let first = hook.wait_for("Grp", 1, WAIT);
    // group_wait: nothing before 1s; both alerts in one payload.
    assert!(
        first[0].at - t0 >= Duration::from_millis(900),
        "{:?}",
        first[0].at - t0
    );
    assert_eq!(
        summary(&first[0]),
        (
            "firing".into(),
            vec!["Grp:a:firing".into(), "Grp:b:firing".into()]
        )
    );
    let b = &first[0].body;
    assert_eq!(b["version"], "4");
    assert_eq!(b["receiver"], "hook");
    assert_eq!(b["groupLabels"], json!({"alertname": "Grp"}));
    assert_eq!(b["commonLabels"], json!({"alertname": "Grp"}));
    assert_eq!(b["groupKey"], "{}:{alertname=\"Grp\"}");
    assert_eq!(b["alerts"][0]["annotations"]["summary"], "a is down");
    assert_eq!(b["alerts"][0]["fingerprint"].as_str().unwrap().len(), 16);
    // The other alertname is its own group.
    let other = hook.wait_for("Other", 1, WAIT);
    assert_eq!(summary(&other[0]).1, vec!["Other:c:firing".to_string()]);

    // A new alert joins the group: sent at the next group_interval tick,
    // not before.
    post_alerts(
        &base,
        json!([{"labels": {"alertname": "Grp", "instance": "c"}}]),
    );
    let second = hook.wait_for("Grp", 2, WAIT);
    assert!(
        second[1].at - second[0].at >= Duration::from_millis(1900),
        "{:?}",
        second[1].at - second[0].at
    );
    assert_eq!(summary(&second[1]).1.len(), 3);

    // Unchanged: repeated after repeat_interval (6s), not at every tick.
    let third = hook.wait_for("Grp", 3, WAIT);
    assert!(
        third[2].at - third[1].at >= Duration::from_millis(5900),
        "{:?}",
        third[2].at - third[1].at
    );
    assert_eq!(summary(&third[2]), summary(&third[1]));

    // Resolve one: the next payload lists it resolved.
    post_alerts(
        &base,
        json!([{"labels": {"alertname": "Grp", "instance": "a"}, "startsAt": rfc3339(-60), "endsAt": rfc3339(-1)}]),
    );
    let fourth = hook.wait_for("Grp", 4, WAIT);
    let (status, alerts) = summary(&fourth[3]);
    assert_eq!(status, "firing");
    assert_eq!(
        alerts,
        vec!["Grp:a:resolved", "Grp:b:firing", "Grp:c:firing"]
    );
    // The Alertmanager API no longer lists the resolved alert.
    let (_, list) = call(
        "GET",
        &format!("{base}/api/v2/alerts?filter=alertname=\"Grp\""),
        None,
    );
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
}

#[test]
fn silenced_and_inhibited_alerts_are_not_sent() {
    let hook = WebhookSink::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &hook.url, "1h");
    let tw = Tidewatch::start(
        "alertmanager",
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
    );
    let base = tw.url("");

    let (s, body) = call(
        "POST",
        &format!("{base}/api/v2/silences"),
        Some(json!({
            "matchers": [{"name": "alertname", "value": "Sil.*", "isRegex": true}],
            "startsAt": rfc3339(0), "endsAt": rfc3339(3600),
            "createdBy": "test", "comment": "maintenance",
        })),
    );
    assert_eq!(s, 200, "{body}");
    let id = body["silenceID"].as_str().unwrap().to_string();

    // Silenced, inhibited (warning under a critical of the same cluster),
    // and two controls posted in the same request share the group timing.
    post_alerts(
        &base,
        json!([
            {"labels": {"alertname": "Silenced", "instance": "x"}},
            {"labels": {"alertname": "Warn", "severity": "warning", "cluster": "c1"}},
            {"labels": {"alertname": "Crit", "severity": "critical", "cluster": "c1"}},
            {"labels": {"alertname": "WarnOther", "severity": "warning", "cluster": "c2"}},
            {"labels": {"alertname": "Muted"}},
            {"labels": {"alertname": "OffHours"}},
        ]),
    );
    hook.wait_for("Crit", 1, WAIT);
    hook.wait_for("WarnOther", 1, WAIT);
    // Two more flush ticks of every group pass.
    post_alerts(&base, json!([{"labels": {"alertname": "Marker"}}]));
    hook.wait_for("Marker", 1, WAIT);
    assert!(hook.for_alertname("Silenced").is_empty());
    assert!(hook.for_alertname("Warn").is_empty());
    // Muted by a time interval, or outside its active interval.
    assert!(hook.for_alertname("Muted").is_empty());
    assert!(hook.for_alertname("OffHours").is_empty());

    // The API reports why.
    let (_, alerts) = call("GET", &format!("{base}/api/v2/alerts"), None);
    let find = |n: &str| {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(find("Silenced")["status"]["state"], "suppressed");
    assert_eq!(find("Silenced")["status"]["silencedBy"], json!([id]));
    assert_eq!(
        find("Warn")["status"]["inhibitedBy"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(find("Crit")["status"]["state"], "active");
    let (_, active_only) = call(
        "GET",
        &format!("{base}/api/v2/alerts?silenced=false&inhibited=false"),
        None,
    );
    assert!(
        active_only
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["labels"]["alertname"] != "Silenced" && a["labels"]["alertname"] != "Warn")
    );

    // Expiring the silence lets the alert through at the next tick.
    let (s, _) = call("DELETE", &format!("{base}/api/v2/silence/{id}"), None);
    assert_eq!(s, 200);
    let got = hook.wait_for("Silenced", 1, WAIT);
    assert_eq!(summary(&got[0]).1, vec!["Silenced:x:firing".to_string()]);
    let (_, sil) = call("GET", &format!("{base}/api/v2/silence/{id}"), None);
    assert_eq!(sil["status"]["state"], "expired");

    // Bad silences are 400 with a message.
    let (s, msg) = call(
        "POST",
        &format!("{base}/api/v2/silences"),
        Some(
            json!({"matchers": [], "startsAt": rfc3339(0), "endsAt": rfc3339(60), "createdBy": "t", "comment": "c"}),
        ),
    );
    assert_eq!(s, 400);
    assert!(msg.as_str().unwrap().contains("matcher"), "{msg}");
    let (s, msg) = call(
        "POST",
        &format!("{base}/api/v2/alerts"),
        Some(json!([{"labels": {}}])),
    );
    assert_eq!(s, 400);
    assert!(msg.as_str().unwrap().contains("label"), "{msg}");
}

#[test]
fn acknowledged_group_stops_repeating_until_unacked() {
    let hook = WebhookSink::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &hook.url, "3s");
    let tw = Tidewatch::start(
        "alertmanager",
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
    );
    let base = tw.url("");

    post_alerts(
        &base,
        json!([{"labels": {"alertname": "Acked", "instance": "a"}}]),
    );
    let first = hook.wait_for("Acked", 1, WAIT);
    let fp = first[0].body["alerts"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, ack) = call(
        "POST",
        &format!("{base}/api/platform/v1/alerts/{fp}/ack"),
        Some(json!({"by": "alice", "comment": "looking", "duration": "1h"})),
    );
    assert_eq!(s, 200, "{ack}");
    assert_eq!(ack["by"], "alice");

    // A control group with the same timing repeats; the acked one does not.
    post_alerts(&base, json!([{"labels": {"alertname": "Control"}}]));
    hook.wait_for("Control", 2, WAIT);
    assert_eq!(hook.for_alertname("Acked").len(), 1);

    // Withdrawing the ack resumes repeats.
    let (s, _) = call(
        "DELETE",
        &format!("{base}/api/platform/v1/alerts/{fp}/ack"),
        None,
    );
    assert_eq!(s, 204);
    hook.wait_for("Acked", 2, WAIT);

    // Acknowledging something that is not firing is a 404; a bad
    // fingerprint a 400 naming the field.
    let (s, _) = call(
        "POST",
        &format!("{base}/api/platform/v1/alerts/0000000000000001/ack"),
        None,
    );
    assert_eq!(s, 404);
    let (s, e) = call(
        "POST",
        &format!("{base}/api/platform/v1/alerts/zz/ack"),
        None,
    );
    assert_eq!(s, 400);
    assert_eq!(e["field"], "fingerprint");
}

#[test]
fn failed_deliveries_are_retried() {
    let hook = WebhookSink::start_failing(2);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &hook.url, "1h");
    let tw = Tidewatch::start(
        "alertmanager",
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
    );
    post_alerts(&tw.url(""), json!([{"labels": {"alertname": "Retry"}}]));
    let got = hook.wait_for("Retry", 1, WAIT);
    assert_eq!(got.len(), 1);
    let (_, hist) = call(
        "GET",
        &tw.url("/api/platform/v1/alert-history?alertname=Retry"),
        None,
    );
    let items = hist["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|h| h["ok"] == true && h["integration"] == "webhook[0]"),
        "{hist}"
    );
}

#[test]
fn platform_receiver_fans_out_tkestack_style() {
    let hook = WebhookSink::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tidewatch.yml");
    std::fs::write(
        &cfg,
        "alerting:\n  route:\n    receiver: platform\n    group_by: [alertname]\n    group_wait: 1s\n    group_interval: 1s\n",
    )
    .unwrap();
    let tw = Tidewatch::start(
        "alertmanager",
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
    );
    let api = |p: &str| tw.url(&format!("/api/platform/v1/{p}"));
    for (kind, body) in [
        (
            "channels",
            json!({"name": "bot", "webhook": {"url": format!("{}/channel", hook.url), "headers": {"X-Token": "t"}}}),
        ),
        (
            "templates",
            json!({"name": "t", "channel": "bot", "header": "{{ alertName }}", "body": "{{ alarmPolicyName }}: {{ value }}{{ unit }} on {{ podName }}"}),
        ),
        (
            "receivers",
            json!({"name": "alice", "username": "alice", "identities": {"webhook": format!("{}/alice", hook.url)}}),
        ),
        (
            "receivers",
            json!({"name": "bob", "username": "bob", "identities": {"email": "bob@example.com"}}),
        ),
        (
            "receiver-groups",
            json!({"name": "ops", "receivers": ["alice", "bob"]}),
        ),
    ] {
        let (s, b) = call("POST", &api(kind), Some(body));
        assert_eq!(s, 201, "{kind}: {b}");
    }
    // A member with a webhook identity gets its own call …
    post_alerts(
        &tw.url(""),
        json!([{"labels": {"alertname": "CpuHigh", "alarmPolicyName": "p1", "pod": "web-1"},
                "annotations": {"notifyWay": "bot:t", "receiverGroups": "ops", "value": "93", "unit": "%"}}]),
    );
    let got = hook.wait_path("/alice", 1, WAIT);
    assert_eq!(got[0].body["content"], "firing\r\np1: 93% on web-1");
    assert_eq!(got[0].body["receivers"][0]["name"], "alice");
    // … members without one share the channel's URL.
    post_alerts(
        &tw.url(""),
        json!([{"labels": {"alertname": "MemHigh", "alarmPolicyName": "p2"},
                "annotations": {"notifyWay": "bot:t", "receivers": "bob", "value": "1"}}]),
    );
    let got = hook.wait_path("/channel", 1, WAIT);
    assert_eq!(got[0].body["receivers"][0]["name"], "bob");
    assert!(
        got[0].body["content"]
            .as_str()
            .unwrap()
            .starts_with("firing\r\np2: 1")
    );
    let (_, inbox) = call("GET", &format!("{}?receiver=alice", api("inbox")), None);
    let items = inbox["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{inbox}");
    assert_eq!(items[0]["header"], "CpuHigh");
    assert_eq!(items[0]["read"], false);
}
