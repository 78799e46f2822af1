//! Tenant scoping across clusters, end to end through `tidewatch up`: two
//! clusters (Kubernetes API stand-ins) both have a `web` namespace, owned by
//! different businesses. A member of one business sees only its cluster's
//! `web` in PromQL, LogQL, SQL and the label-values endpoints — first with
//! one cluster group (plain ANDed matchers), then with namespaces in both
//! clusters that differ per cluster (the `or` forms).

mod platform_support;
mod support;

use std::time::Duration;

use platform_support::{Api, P, kube, remote_write, sql};
use serde_json::{Value, json};
use support::{free_port, wait_until};

fn business(api: &Api, name: &str, cluster: &str, ns: &str) {
    api.admin(
        "POST",
        &format!("{P}/businesses"),
        Some(json!({"name": name, "quotas": {cluster: {"hard": {"pods": "20"}}}})),
        201,
    );
    api.admin(
        "POST",
        &format!("{P}/businesses/{name}/namespaces"),
        Some(json!({"name": ns, "cluster_id": cluster, "hard": {"pods": "10"}})),
        201,
    );
}

fn member(api: &Api, business: &str, user: &str) {
    api.admin(
        "POST",
        &format!("{P}/businesses/{business}/members"),
        Some(json!({"user": user, "role": "business-member"})),
        201,
    );
}

fn get(api: &Api, token: &str, path: &str, params: &[(&str, &str)]) -> Value {
    let resp = api
        .http
        .get(api.tw.url(path))
        .query(params)
        .bearer_auth(token)
        .send()
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().unwrap();
    assert!(status.is_success(), "{path} {params:?}: {v}");
    v
}

/// `(cluster_id, namespace)` of every PromQL result.
fn prom_pairs(api: &Api, token: &str, q: &str) -> Vec<(String, String)> {
    let v = get(api, token, "/api/v1/query", &[("query", q)]);
    let mut out: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["cluster_id"].as_str().unwrap_or("").to_string(),
                r["metric"]["namespace"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// `(cluster_id, namespace)` of every LogQL stream.
fn loki_pairs(api: &Api, token: &str, q: &str) -> Vec<(String, String)> {
    let v = get(
        api,
        token,
        "/loki/api/v1/query_range",
        &[("query", q), ("limit", "1000")],
    );
    let mut out: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["stream"]["cluster_id"].as_str().unwrap_or("").to_string(),
                r["stream"]["namespace"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn values(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn pair(c: &str, n: &str) -> (String, String) {
    (c.to_string(), n.to_string())
}

#[test]
fn a_namespace_name_shared_by_two_clusters_does_not_leak() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ke, kw) = (kube(&rt), kube(&rt));
    let api = Api::start("up", dir.path(), free_port(), "");
    for (name, k) in [("east", &ke), ("west", &kw)] {
        api.admin(
            "POST",
            &format!("{P}/clusters"),
            Some(json!({"name": name, "api_server": k.url(), "token": "cluster-admin-token"})),
            201,
        );
    }
    let id = |name: &str| -> String {
        api.admin("GET", &format!("{P}/clusters/{name}"), None, 200)["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (east, west) = (id("east"), id("west"));
    business(&api, "shop", "east", "web");
    business(&api, "bank", "west", "web");
    api.admin(
        "POST",
        &format!("{P}/users"),
        Some(json!({"name": "alice", "password": "alice-password", "roles": ["login-only"]})),
        201,
    );
    member(&api, "shop", "alice");
    let alice = api.login_token("alice", "alice-password");

    // Data in every (cluster, namespace): metrics, log streams, events.
    let all = [(&east, "web"), (&west, "web"), (&west, "api")];
    let series: Vec<Vec<(&str, &str)>> = all
        .iter()
        .map(|(c, n)| {
            vec![
                ("__name__", "tw_tenancy_probe"),
                ("cluster_id", c.as_str()),
                ("namespace", *n),
            ]
        })
        .collect();
    let refs: Vec<&[(&str, &str)]> = series.iter().map(|s| s.as_slice()).collect();
    remote_write(&api, &refs);
    let now_ns = chrono::Utc::now()
        .timestamp_nanos_opt()
        .unwrap()
        .to_string();
    let streams: Vec<Value> = all
        .iter()
        .map(|(c, n)| {
            json!({"stream": {"app": "probe", "cluster_id": c, "namespace": n},
                             "values": [[now_ns, format!("hello from {c}/{n}")]]})
        })
        .collect();
    let resp = api
        .http
        .post(api.tw.url("/loki/api/v1/push"))
        .json(&json!({"streams": streams}))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let ts = chrono::Utc::now().to_rfc3339();
    let events: Vec<Value> = all
        .iter()
        .map(|(c, n)| {
            json!({"cluster_id": c, "namespace": n, "name": "e", "uid": format!("{c}-{n}"),
                             "count": 1, "first_timestamp": ts, "last_timestamp": ts})
        })
        .collect();
    let resp = api
        .http
        .post(api.tw.url("/api/v1/events"))
        .json(&json!({"events": events}))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    wait_until("data visible to the admin", Duration::from_secs(60), || {
        prom_pairs(&api, &api.admin, "tw_tenancy_probe").len() == 3
            && loki_pairs(&api, &api.admin, r#"{app="probe"}"#).len() == 3
    });

    let check = |want: &[(String, String)]| {
        let mut want = want.to_vec();
        want.sort();
        let want = want.as_slice();
        assert_eq!(prom_pairs(&api, &alice, "tw_tenancy_probe"), want);
        assert_eq!(
            prom_pairs(
                &api,
                &alice,
                r#"sum by (cluster_id, namespace) (rate(tw_tenancy_probe{namespace=~"web|api"}[5m])) or tw_tenancy_probe"#
            ),
            want
        );
        assert_eq!(loki_pairs(&api, &alice, r#"{app="probe"}"#), want);
        assert_eq!(
            loki_pairs(&api, &alice, r#"{namespace="web"} |= "hello""#),
            want.iter()
                .filter(|(_, n)| n == "web")
                .cloned()
                .collect::<Vec<_>>()
        );
        let mut rows: Vec<(String, String)> = sql(
            &api,
            Some(&alice),
            "SELECT cluster_id, namespace FROM events",
        )
        .iter()
        .map(|r| {
            (
                r["cluster_id"].as_str().unwrap().to_string(),
                r["namespace"].as_str().unwrap().to_string(),
            )
        })
        .collect();
        rows.sort();
        assert_eq!(rows, want);
        let clusters: Vec<String> = want
            .iter()
            .map(|(c, _)| c.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            values(&get(&api, &alice, "/api/v1/label/cluster_id/values", &[])),
            clusters
        );
        assert_eq!(
            values(&get(
                &api,
                &alice,
                "/loki/api/v1/label/cluster_id/values",
                &[]
            )),
            clusters
        );
    };

    // One group: shop's `web` in east only, never bank's `web` in west.
    check(&[pair(&east, "web")]);

    // Two groups with different namespaces per cluster: east/web and
    // west/api (another business), still never west/web.
    business(&api, "mobile", "west", "api");
    member(&api, "mobile", "alice");
    check(&[pair(&east, "web"), pair(&west, "api")]);
}
