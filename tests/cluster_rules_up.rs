//! Built-in recording rules in `tidewatch up`: in Kubernetes mode each node
//! collector emits its share of the cluster usage as
//! `node:k8s_cluster_<x>:share{cluster_id,node}`, and the alert engine's
//! built-in rules sum the shares into the TKEStack catalogue name, one
//! series per cluster.
//!
//! Instead of running two node-mode collectors (which needs a Kubernetes
//! API stand-in each), the test pushes two nodes' share series — exactly
//! what those collectors ship — through the text import
//! `POST /api/v1/import/prometheus`, then queries the catalogue name with
//! PromQL on the same address. A second `up` with
//! `alerting.builtin_rules.enabled: false` shows the switch turns them off.

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{Tidewatch, blocking_get, wait_until};

const WAIT: Duration = Duration::from_secs(60);

fn query(tw: &Tidewatch, q: &str) -> Vec<serde_json::Value> {
    let q = q
        .replace('(', "%28")
        .replace(')', "%29")
        .replace('{', "%7B")
        .replace('}', "%7D")
        .replace('"', "%22")
        .replace('=', "%3D")
        .replace(' ', "%20");
    let (status, body) = blocking_get(&tw.url(&format!("/api/v1/query?query={q}")));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Starts `up` with built-in rules every second (`enabled` as given) and
/// an extra rule file recording `tw_shares_seen`, the number of share
/// series the rule engine sees.
fn start_up(dir: &Path, enabled: bool) -> Tidewatch {
    let rules = dir.join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: probe\n    interval: 1s\n    rules:\n      - record: tw_shares_seen\n        expr: count(node:k8s_cluster_cpu_core_used:share{cluster_id=\"c1\"})\n",
    )
    .unwrap();
    let cfg = dir.join("tw.yml");
    std::fs::write(
        &cfg,
        format!(
            "alerting:\n  rule_files: [{}]\n  builtin_rules:\n    enabled: {enabled}\n    interval: 1s\n",
            rules.display()
        ),
    )
    .unwrap();
    let c = cfg.display().to_string();
    Tidewatch::start("up", &dir.join("data"), &["--config", &c])
}

/// Imports node-a's and node-b's shares of cluster `c1`'s CPU usage.
fn import_shares(tw: &Tidewatch) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let body = format!(
        "node:k8s_cluster_cpu_core_used:share{{cluster_id=\"c1\",node=\"node-a\"}} 1.5 {now_ms}\n\
         node:k8s_cluster_cpu_core_used:share{{cluster_id=\"c1\",node=\"node-b\"}} 2.25 {now_ms}\n"
    );
    let r = support::reqwest::blocking_client()
        .post(tw.url("/api/v1/import/prometheus"))
        .header("Content-Type", "text/plain; version=0.0.4")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
}

#[test]
fn two_nodes_shares_become_one_cluster_series() {
    let dir = tempfile::tempdir().unwrap();
    let tw = start_up(dir.path(), true);
    import_shares(&tw);

    let q = "k8s_cluster_cpu_core_used{cluster_id=\"c1\"}";
    wait_until("k8s_cluster_cpu_core_used recorded for c1", WAIT, || {
        !query(&tw, q).is_empty()
    });
    let r = query(&tw, q);
    assert_eq!(r.len(), 1, "one series per cluster: {r:?}");
    let m = &r[0]["metric"];
    assert!(m.get("node").is_none(), "no node label: {m}");
    assert_eq!(m["cluster_id"], "c1", "{m}");
    let v: f64 = r[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert_eq!(v, 3.75, "the sum of node-a's 1.5 and node-b's 2.25");
}

#[test]
fn builtin_rules_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let tw = start_up(dir.path(), false);
    import_shares(&tw);
    // Rules see both shares (and have evaluated since), yet nothing
    // records the catalogue name.
    wait_until("the probe rule sees both shares", WAIT, || {
        query(&tw, "tw_shares_seen")
            .first()
            .is_some_and(|s| s["value"][1] == "2")
    });
    wait_until("the probe rule evaluated again", WAIT, || {
        query(&tw, "count_over_time(tw_shares_seen[1m])")
            .first()
            .and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .is_some_and(|n| n >= 3.0)
    });
    assert!(
        query(&tw, "k8s_cluster_cpu_core_used{cluster_id=\"c1\"}").is_empty(),
        "built-in rules are off"
    );
}
