//! The platform REST objects of alerting: CRUD with `{"items": [...]}`
//! lists, 4xx errors naming the field, cascades, template previews,
//! compiled policy rules, and persistence across a restart.

mod alert_support;
mod support;

use alert_support::call;
use serde_json::json;
use support::{Tidewatch, free_port};

#[test]
fn alerting_objects_crud_validation_and_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut tw = Tidewatch::start_on("alertmanager", dir.path(), port, &[]);
    let api = |p: &str| format!("http://127.0.0.1:{port}/api/platform/v1/{p}");

    // Channels: exactly one kind; URLs checked.
    let (s, e) = call(
        "POST",
        &api("channels"),
        Some(json!({"name": "hook", "webhook": {"url": "not a url"}})),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("webhook.url")), "{e}");
    let (s, e) = call("POST", &api("channels"), Some(json!({"name": "both"})));
    assert_eq!(s, 400, "{e}");
    let (s, e) = call(
        "POST",
        &api("channels"),
        Some(json!({"name": "hook", "webhook": {"url": "http://127.0.0.1:9/x"}, "bogus": 1})),
    );
    assert_eq!(s, 400);
    assert!(e["error"].as_str().unwrap().contains("bogus"), "{e}");
    let (s, _) = call(
        "POST",
        &api("channels"),
        Some(json!({"name": "hook", "webhook": {"url": "http://127.0.0.1:9/x"}})),
    );
    assert_eq!(s, 201);
    let (s, e) = call(
        "POST",
        &api("channels"),
        Some(json!({"name": "hook", "webhook": {"url": "http://127.0.0.1:9/x"}})),
    );
    assert_eq!((s, e["field"].as_str()), (409, Some("name")));

    // Templates belong to an existing channel; bad templates are 400.
    let (s, e) = call(
        "POST",
        &api("templates"),
        Some(json!({"name": "t", "channel": "nope"})),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("channel")));
    let (s, e) = call(
        "POST",
        &api("templates"),
        Some(json!({"name": "t", "channel": "hook", "body": "{% if %}"})),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("body")), "{e}");
    let (s, _) = call(
        "POST",
        &api("templates"),
        Some(
            json!({"name": "t", "channel": "hook", "header": "{{ alertName }}!", "body": "{{ alarmPolicyName }} at {{ value }}{{ unit }}"}),
        ),
    );
    assert_eq!(s, 201);
    let (s, p) = call(
        "POST",
        &api("templates/t/preview"),
        Some(json!({"variables": {"value": "42"}})),
    );
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["header"], "k8s_pod_rate_cpu_core_used_limit!");
    assert_eq!(p["body"], "example-policy at 42%");
    let (s, p) = call(
        "POST",
        &api("templates/preview"),
        Some(json!({"header": "{{ nodeName }}", "body": ""})),
    );
    assert_eq!(s, 200);
    assert_eq!(p["header"], "node-1");

    // Receivers, groups and policies reference each other.
    let (s, e) = call(
        "POST",
        &api("receivers"),
        Some(json!({"name": "bob", "identities": {"email": "nope"}})),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("identities.email")));
    let (s, _) = call(
        "POST",
        &api("receivers"),
        Some(json!({"name": "bob", "username": "bob", "identities": {"email": "bob@example.com"}})),
    );
    assert_eq!(s, 201);
    let (s, e) = call(
        "POST",
        &api("receiver-groups"),
        Some(json!({"name": "g", "receivers": ["bob", "eve"]})),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("receivers[1]")));
    let (s, _) = call(
        "POST",
        &api("receiver-groups"),
        Some(json!({"name": "g", "receivers": ["bob"]})),
    );
    assert_eq!(s, 201);
    let policy = json!({
        "name": "pods", "type": "pod", "namespace": "default", "workload_type": "Deployment",
        "objects_type": "part", "objects": ["web"], "statistics_period": 60,
        "metrics": [{"metric_name": "k8s_pod_restart_total", "continue_period": 2,
                     "evaluator": {"type": "ge", "value": "1"}}],
        "receiver_groups": ["g"], "notify_ways": [{"channel": "hook", "template": "t"}],
    });
    let (s, e) = call("POST", &api("alarm-policies"), Some(policy.clone()));
    assert_eq!(
        (s, e["field"].as_str()),
        (400, Some("metrics[0].evaluator.type")),
        "{e}"
    );
    let mut policy = policy;
    policy["metrics"][0]["evaluator"]["type"] = json!("gt");
    let (s, e) = call("POST", &api("alarm-policies"), Some(policy.clone()));
    assert_eq!(s, 201, "{e}");
    let (_, rules) = call("GET", &api("alarm-policies/pods/rules"), None);
    let r = &rules["groups"][0];
    assert_eq!(r["interval"], "60s");
    assert_eq!(r["rules"][0]["for"], "120s");
    assert_eq!(
        r["rules"][0]["expr"],
        "k8s_pod_restart_total{namespace=\"default\",workload_kind=\"Deployment\",workload_name=~\"web\"} > 1"
    );
    let (s, e) = call("PUT", &api("alarm-policies/other"), Some(policy.clone()));
    assert_eq!((s, e["field"].as_str()), (400, Some("name")));
    let (s, _) = call("GET", &api("alarm-policies/none"), None);
    assert_eq!(s, 404);
    let (_, list) = call("GET", &api("alarm-policies"), None);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Everything survives a restart.
    tw.proc.kill9();
    let _tw = Tidewatch::start_on("alertmanager", dir.path(), port, &[]);
    for (kind, n) in [
        ("channels", 1),
        ("templates", 1),
        ("receivers", 1),
        ("receiver-groups", 1),
        ("alarm-policies", 1),
    ] {
        let (s, list) = call("GET", &api(kind), None);
        assert_eq!(s, 200);
        assert_eq!(list["items"].as_array().unwrap().len(), n, "{kind}: {list}");
    }

    // Deleting a channel deletes its templates.
    let (s, _) = call("DELETE", &api("channels/hook"), None);
    assert_eq!(s, 204);
    let (_, list) = call("GET", &api("templates"), None);
    assert!(list["items"].as_array().unwrap().is_empty());
    let (s, _) = call("DELETE", &api("channels/hook"), None);
    assert_eq!(s, 404);
}
