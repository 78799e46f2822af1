//! End-to-end tests of the platform through the `tidewatch` binary's HTTP
//! API: tenancy, businesses and quotas, the Kubernetes webhooks with the
//! JSON kube-apiserver sends, durability of the store under `kill -9`,
//! dashboards serving, and (with the aggregator) tenant query scoping.
//! Kubernetes is the protocol-level test stand-in from
//! `tidewatch_platform::testing`, running in the test process.

mod platform_support;
mod support;

use std::time::Duration;

use platform_support::{Api, P, kube, remote_write};
use serde_json::{Value, json};
use support::free_port;
use tidewatch_platform::testing::kube_standin::KubeStandIn;

fn sar(user: &str, verb: &str, ns: &str) -> Value {
    json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "metadata": {"creationTimestamp": null},
        "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "version": "v1", "resource": "pods"},
                 "user": user, "groups": ["system:authenticated"]},
        "status": {"allowed": false}
    })
}

/// Admin imports a cluster, creates a business with quota, a namespace, a
/// user and a role binding; the user's token passes the webhooks for their
/// namespace and fails for another business's.
fn build_tenant(api: &Api, k: &KubeStandIn) -> (String, String) {
    let c = api.admin(
        "POST",
        &format!("{P}/clusters"),
        Some(json!({"name": "prod", "api_server": k.url(), "token": "cluster-admin-token"})),
        201,
    );
    for (b, ns) in [("shop", "shop-web"), ("bank", "bank-core")] {
        api.admin("POST", &format!("{P}/businesses"),
            Some(json!({"name": b, "quotas": {"prod": {"hard": {"requests.cpu": "4", "pods": "20"}}}})), 201);
        api.admin(
            "POST",
            &format!("{P}/businesses/{b}/namespaces"),
            Some(json!({"name": ns, "cluster_id": "prod", "hard": {"requests.cpu": "2"}})),
            201,
        );
    }
    api.admin(
        "POST",
        &format!("{P}/users"),
        Some(json!({"name": "alice", "password": "alice-password", "roles": ["login-only"]})),
        201,
    );
    api.admin(
        "POST",
        &format!("{P}/businesses/shop/members"),
        Some(json!({"user": "alice", "role": "business-member"})),
        201,
    );
    let token = api.login_token("alice", "alice-password");
    (c["id"].as_str().unwrap().to_string(), token)
}

#[test]
fn admin_builds_a_tenant_and_the_kubernetes_webhooks_enforce_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let k = kube(&rt);
    let api = Api::start("platform", dir.path(), free_port(), "");
    let (cluster, alice) = build_tenant(&api, &k);
    assert!(
        k.namespace("shop-web").is_some(),
        "namespace created in the cluster"
    );
    assert!(
        k.quota("shop-web", "tidewatch-business-quota").is_some(),
        "ResourceQuota created"
    );

    // TokenReview exactly as kube-apiserver posts it.
    let (st, review) = api.call(
        "POST",
        "/auth/authn",
        None,
        Some(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "metadata": {"creationTimestamp": null},
        "spec": {"token": alice, "audiences": ["https://kubernetes.default.svc.cluster.local"]},
        "status": {"user": {}}})),
    );
    assert_eq!(st, 200);
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(review["status"]["user"]["username"], "alice");
    assert_eq!(
        review["status"]["audiences"][0],
        "https://kubernetes.default.svc.cluster.local"
    );

    let (_, ok) = api.call(
        "POST",
        &format!("/auth/authz/{cluster}"),
        None,
        Some(sar("alice", "create", "shop-web")),
    );
    assert_eq!(ok["status"]["allowed"], true, "{ok}");
    let (_, no) = api.call(
        "POST",
        &format!("/auth/authz/{cluster}"),
        None,
        Some(sar("alice", "get", "bank-core")),
    );
    assert_eq!(no["status"]["allowed"], false, "{no}");
    let (_, ghost) = api.call(
        "POST",
        &format!("/auth/authz/{cluster}"),
        None,
        Some(sar("mallory", "get", "shop-web")),
    );
    assert_eq!(ghost["status"]["allowed"], false);

    // The REST API agrees: alice sees her business only.
    let (st, v) = api.call("GET", &format!("{P}/businesses"), Some(&alice), None);
    assert_eq!(st, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        api.call(
            "GET",
            &format!("{P}/businesses/bank/namespaces"),
            Some(&alice),
            None
        )
        .0,
        403
    );
    assert_eq!(
        api.call(
            "POST",
            &format!("{P}/users"),
            Some(&alice),
            Some(json!({"name": "x", "password": "xxxxxxxxx"}))
        )
        .0,
        403
    );
    let audit = api.admin(
        "GET",
        &format!("{P}/audit?actor=admin&resource=business"),
        None,
        200,
    );
    assert!(audit["items"].as_array().unwrap().len() >= 3, "{audit}");
}

#[test]
fn bad_input_gets_4xx_naming_the_field_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let k = kube(&rt);
    let api = Api::start("platform", dir.path(), free_port(), "");
    build_tenant(&api, &k);
    let snapshot = |api: &Api| {
        (
            api.admin("GET", &format!("{P}/businesses"), None, 200),
            api.admin("GET", &format!("{P}/users"), None, 200),
            api.admin("GET", &format!("{P}/businesses/shop/namespaces"), None, 200),
        )
    };
    let before = snapshot(&api);
    for (path, body, status, field) in [
        ("/businesses", json!({"quotas": {}}), 400, "name"),
        ("/businesses", json!({"name": "shop"}), 409, "name"),
        (
            "/businesses",
            json!({"name": "kid", "parent_id": "shop", "quotas": {"prod": {"hard": {"requests.cpu": "3"}}}}),
            400,
            "quotas.prod.hard.requests.cpu",
        ),
        (
            "/businesses/shop/namespaces",
            json!({"cluster_id": "prod"}),
            400,
            "name",
        ),
        (
            "/businesses/shop/namespaces",
            json!({"name": "more", "cluster_id": "prod", "hard": {"requests.cpu": "3"}}),
            400,
            "hard.requests.cpu",
        ),
        (
            "/businesses/shop/namespaces",
            json!({"name": "bank-core", "cluster_id": "prod"}),
            409,
            "name",
        ),
        (
            "/users",
            json!({"name": "alice", "password": "password-1"}),
            409,
            "name",
        ),
        ("/users", json!({"name": "bob"}), 400, "password"),
        (
            "/businesses/shop/members",
            json!({"user": "bob", "role": "business-member"}),
            400,
            "user",
        ),
        (
            "/clusters",
            json!({"name": "other", "api_server": k.url(), "token": "wrong"}),
            400,
            "token",
        ),
    ] {
        let (st, v) = api.call(
            "POST",
            &format!("{P}{path}"),
            Some(&api.admin),
            Some(body.clone()),
        );
        assert_eq!(st, status, "{path} {body}: {v}");
        assert_eq!(v["field"], field, "{path} {body}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(before, snapshot(&api));
    assert!(k.namespace("more").is_none());
}

#[test]
fn acknowledged_changes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut api = Api::start("platform", dir.path(), port, "");
    api.admin(
        "POST",
        &format!("{P}/businesses"),
        Some(json!({"name": "durable"})),
        201,
    );
    api.admin(
        "POST",
        &format!("{P}/users"),
        Some(json!({"name": "dora", "password": "dora-password"})),
        201,
    );
    let dora = api.login_token("dora", "dora-password");
    api.tw.proc.kill9();

    let api = Api::start("platform", dir.path(), port, "");
    api.admin("GET", &format!("{P}/businesses/durable"), None, 200);
    let (st, me) = api.call("GET", &format!("{P}/me"), Some(&dora), None);
    assert_eq!(
        st, 200,
        "a token acknowledged before kill -9 still works: {me}"
    );
    assert_eq!(me["user"]["name"], "dora");
}

#[test]
fn up_serves_the_dashboards_and_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start("up", dir.path(), free_port(), "");
    let resp = api.http.get(api.tw.url("/businesses/shop")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let (st, doc) = api.call("GET", "/api/platform/openapi.json", None, None);
    assert_eq!(st, 200);
    assert!(doc["paths"]["/api/platform/v1/businesses"].is_object());
    assert_eq!(api.call("GET", &format!("{P}/me"), None, None).0, 401);
    assert_eq!(support::blocking_get(&api.tw.url("/-/ready")).0, 200);
}

fn namespaces_in(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|r| r["metric"]["namespace"].as_str().unwrap_or("").to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn a_tenants_promql_for_another_business_namespace_returns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let k = kube(&rt);
    let api = Api::start("up", dir.path(), free_port(), "");
    let (cid, _) = build_tenant(&api, &k);
    let alice = api.login_token("alice", "alice-password");
    remote_write(
        &api,
        &[
            &[
                ("__name__", "tw_scope_probe"),
                ("cluster_id", &cid),
                ("namespace", "shop-web"),
            ],
            &[
                ("__name__", "tw_scope_probe"),
                ("cluster_id", &cid),
                ("namespace", "bank-core"),
            ],
        ],
    );
    let query = |token: Option<&str>, q: &str| -> Value {
        let mut req = api
            .http
            .get(api.tw.url("/api/v1/query"))
            .query(&[("query", q)]);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().unwrap()
    };
    // The admin sees both namespaces (poll: ingestion may be asynchronous).
    support::wait_until(
        "both series visible to the admin",
        Duration::from_secs(30),
        || namespaces_in(&query(Some(&api.admin), "tw_scope_probe")) == ["bank-core", "shop-web"],
    );
    // Alice: only her own, and nothing for another business's namespace.
    assert_eq!(
        namespaces_in(&query(Some(&alice), "tw_scope_probe")),
        ["shop-web"]
    );
    assert!(
        namespaces_in(&query(
            Some(&alice),
            r#"tw_scope_probe{namespace="bank-core"}"#
        ))
        .is_empty()
    );
    assert!(
        namespaces_in(&query(
            Some(&alice),
            r#"sum by (namespace) (tw_scope_probe{namespace=~"bank.*"})"#
        ))
        .is_empty()
    );
    let labels: Value = api
        .http
        .get(api.tw.url("/api/v1/label/namespace/values"))
        .bearer_auth(&alice)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(labels["data"], json!(["shop-web"]), "{labels}");
}
