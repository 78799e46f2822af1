//! Email over real SMTP (aiosmtpd): a routed alert produces the rendered
//! firing and resolved emails; a TKEStack alarm policy, evaluated against
//! Debian's Prometheus (`up` of an unreachable target), notifies its receiver group through an SMTP channel
//! with its template, fills the inbox, and resolves when the policy no
//! longer matches.

mod alert_support;
mod support;

use std::path::Path;
use std::time::Duration;

use alert_support::{call, post_alerts, rfc3339};
use serde_json::json;
use support::{Tidewatch, start_prometheus, start_smtp, wait_until};

const WAIT: Duration = Duration::from_secs(60);

/// Starts aiosmtpd with a complete Maildir (`tmp`, `new`, `cur`), which
/// its `Mailbox` handler needs to exist.
fn smtp(dir: &Path) -> (support::Proc, u16) {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join("maildir").join(sub)).unwrap();
    }
    start_smtp(dir)
}

fn mails(dir: &Path) -> Vec<String> {
    let mut v: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(dir.join("maildir/new"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let t = e.metadata().ok()?.modified().ok()?;
                    Some((t, std::fs::read_to_string(e.path()).ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|(_, m)| m).collect()
}

fn wait_mail(dir: &Path, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let mut found = None;
    wait_until(what, WAIT, || {
        found = mails(dir).into_iter().find(|m| pred(m));
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn routed_alert_sends_firing_and_resolved_email() {
    let dir = tempfile::tempdir().unwrap();
    let (_smtp, port) = smtp(dir.path());
    let cfg = dir.path().join("tidewatch.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"
alerting:
  route:
    receiver: mail
    group_by: [alertname]
    group_wait: 1s
    group_interval: 1s
  receivers:
    - name: mail
      email_configs:
        - to: oncall@example.com
          from: tidewatch@example.com
          smarthost: 127.0.0.1:{port}
          tls: plain
          send_resolved: true
          headers: {{X-Team: storage}}
"#
        ),
    )
    .unwrap();
    let tw = Tidewatch::start(
        "alertmanager",
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
    );
    let alert = json!({"labels": {"alertname": "DiskFull", "instance": "db-1"},
                       "annotations": {"summary": "disk 97% full on db-1"}, "startsAt": rfc3339(-30)});
    post_alerts(&tw.url(""), json!([alert]));
    let firing = wait_mail(dir.path(), "firing email", |m| {
        m.contains("Subject: [FIRING:1] alertname=DiskFull")
    });
    assert!(firing.contains("To: oncall@example.com"), "{firing}");
    assert!(firing.contains("X-Team: storage"), "{firing}");
    assert!(
        firing.contains("Summary: disk 97% full on db-1"),
        "{firing}"
    );
    assert!(firing.contains("instance=db-1"), "{firing}");

    let mut resolved = alert.clone();
    resolved["endsAt"] = json!(rfc3339(-1));
    post_alerts(&tw.url(""), json!([resolved]));
    let r = wait_mail(dir.path(), "resolved email", |m| {
        m.contains("Subject: [RESOLVED] alertname=DiskFull")
    });
    assert!(r.contains("[RESOLVED] DiskFull"), "{r}");
    assert!(r.contains("Ended: "), "{r}");
}

#[test]
fn alarm_policy_notifies_receiver_group_by_email() {
    let dir = tempfile::tempdir().unwrap();
    let (_smtp, smtp_port) = smtp(dir.path());
    // A target nobody listens on: `up` is 0.
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
            "alerting:\n  query_url: {prom}\n  route:\n    receiver: platform\n    group_by: [alertname, alarmPolicyName]\n    group_wait: 1s\n    group_interval: 1s\n"
        ),
    )
    .unwrap();
    let tw = Tidewatch::start(
        "alertmanager",
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
    );
    let api = |p: &str| tw.url(&format!("/api/platform/v1/{p}"));
    let ok = |(s, b): (u16, serde_json::Value)| {
        assert!((200..300).contains(&s), "{s} {b}");
        b
    };
    ok(call(
        "POST",
        &api("channels"),
        Some(
            json!({"name": "mail", "smtp": {"host": "127.0.0.1", "port": smtp_port, "tls": "plain", "email": "alerts@tidewatch.local"}}),
        ),
    ));
    ok(call(
        "POST",
        &api("templates"),
        Some(json!({"name": "short", "channel": "mail",
        "header": "[{{ status }}] {{ alertName }} on {{ alarmPolicyName }}",
        "body": "Policy {{ alarmPolicyName }} ({{ alarmPolicyType }}): {{ metricDisplayName }} {{ evaluateType }} {{ evaluateValue }}, value {{ value }}"})),
    ));
    ok(call(
        "POST",
        &api("receivers"),
        Some(
            json!({"name": "alice", "username": "alice", "identities": {"email": "alice@example.com"}}),
        ),
    ));
    ok(call(
        "POST",
        &api("receiver-groups"),
        Some(json!({"name": "ops", "receivers": ["alice"]})),
    ));
    let mut policy = json!({
        "name": "targets-up", "type": "cluster", "statistics_period": 1,
        "metrics": [{"metric_name": "up", "display_name": "Target up", "continue_period": 1,
                     "evaluator": {"type": "lt", "value": "1"}, "unit": ""}],
        "receiver_groups": ["ops"], "notify_ways": [{"channel": "mail", "template": "short"}],
    });
    ok(call("POST", &api("alarm-policies"), Some(policy.clone())));

    let firing = wait_mail(dir.path(), "policy firing email", |m| {
        m.contains("Subject: [firing] up on targets-up")
    });
    assert!(firing.contains("To: alice@example.com"), "{firing}");
    assert!(
        firing.contains("Policy targets-up (cluster): Target up lt 1, value 0"),
        "{firing}"
    );

    // Lowering the threshold below the value resolves the alert.
    policy["metrics"][0]["evaluator"]["value"] = json!("0");
    let updated = ok(call("PUT", &api("alarm-policies/targets-up"), Some(policy)));
    assert_eq!(updated["version"], 1);
    wait_mail(dir.path(), "policy resolved email", |m| {
        m.contains("Subject: [resolved] up on targets-up")
    });

    let inbox = ok(call(
        "GET",
        &format!("{}?receiver=alice", api("inbox")),
        None,
    ));
    let items = inbox["items"].as_array().unwrap();
    assert!(items.len() >= 2, "{inbox}");
    assert!(
        items
            .iter()
            .any(|m| m["alert_status"] == "resolved" && m["identity"] == "alice@example.com")
    );
    let id = items[0]["id"].as_str().unwrap();
    ok(call("POST", &api(&format!("inbox/{id}/read")), None));
    let unread = ok(call(
        "GET",
        &format!("{}?receiver=alice&unread=true", api("inbox")),
        None,
    ));
    assert_eq!(unread["items"].as_array().unwrap().len(), items.len() - 1);
}
