//! Clusters, businesses, quotas, members and the Kubernetes webhooks,
//! against the protocol-level Kubernetes API test stand-in.

mod common;

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tidewatch_platform::Config;
use tidewatch_platform::testing::kube_standin::{KubeStandIn, VERSION};

const P: &str = "/api/platform/v1";

async fn import(t: &common::TestPlatform, k: &KubeStandIn, name: &str) -> String {
    let v = t
        .admin_ok(
            Method::POST,
            &format!("{P}/clusters"),
            Some(json!({"name": name, "api_server": k.url(), "token": "cluster-admin-token"})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(v["version"], VERSION);
    assert_eq!(v["phase"], "Running");
    assert!(
        v.get("token").is_none() && v.get("credential").is_none(),
        "{v}"
    );
    v["id"].as_str().unwrap().to_string()
}

/// A SubjectAccessReview exactly as kube-apiserver sends it.
fn sar(user: &str, uid: &str, verb: &str, resource: &str, ns: &str) -> Value {
    json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {"creationTimestamp": null},
        "spec": {
            "resourceAttributes": {"namespace": ns, "verb": verb, "version": "v1", "resource": resource},
            "user": user, "uid": uid,
            "groups": ["tidewatch:authenticated", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=abc"]}
        },
        "status": {"allowed": false}
    })
}

#[tokio::test]
async fn cluster_import_verifies_reachability_and_credentials() {
    let t = common::start(Config::default()).await;
    let k = KubeStandIn::start("cluster-admin-token").await;
    let before = t
        .admin_ok(Method::GET, &format!("{P}/clusters"), None, StatusCode::OK)
        .await;
    let (st, v) = t
        .call(
            Method::POST,
            &format!("{P}/clusters"),
            Some(&t.admin),
            Some(json!({"name": "c1", "api_server": k.url(), "token": "wrong"})),
        )
        .await;
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("token")),
        "{v}"
    );
    let (st, v) = t
        .call(
            Method::POST,
            &format!("{P}/clusters"),
            Some(&t.admin),
            Some(json!({"name": "c1", "api_server": "http://127.0.0.1:1", "token": "x"})),
        )
        .await;
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("api_server")),
        "{v}"
    );
    let (st, v) = t
        .call(
            Method::POST,
            &format!("{P}/clusters"),
            Some(&t.admin),
            Some(json!({"name": "c1", "token": "x"})),
        )
        .await;
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("api_server")),
        "{v}"
    );
    assert_eq!(
        before,
        t.admin_ok(Method::GET, &format!("{P}/clusters"), None, StatusCode::OK)
            .await
    );

    let id = import(&t, &k, "c1").await;
    let (st, v) = t
        .call(
            Method::POST,
            &format!("{P}/clusters"),
            Some(&t.admin),
            Some(json!({"name": "c1", "api_server": k.url(), "token": "cluster-admin-token"})),
        )
        .await;
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::CONFLICT, Some("name"))
    );
    // Credentials are encrypted at rest: the token is not in the database file.
    let row: (String,) = sqlx::query_as("SELECT credential FROM clusters WHERE id = $1")
        .bind(&id)
        .fetch_one(&t.platform.store.pool)
        .await
        .unwrap();
    assert!(!row.0.contains("cluster-admin-token"));
    // Read-only views come from the cluster.
    let nodes = t
        .admin_ok(
            Method::GET,
            &format!("{P}/clusters/{id}/nodes"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(nodes["items"][0]["metadata"]["name"], "node-1");
    k.set_list("pods", vec![json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "uid": "p1"}, "spec": {"containers": []}})]);
    let pods = t
        .admin_ok(
            Method::GET,
            &format!("{P}/clusters/c1/pods?namespace=default"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(pods["items"][0]["metadata"]["name"], "web-1");
}

#[tokio::test]
async fn business_quota_members_and_kubernetes_webhooks_end_to_end() {
    let t = common::start(Config::default()).await;
    let k = KubeStandIn::start("cluster-admin-token").await;
    let cid = import(&t, &k, "prod").await;

    // A business with a quota in the cluster, and a child bounded by it.
    let shop = t
        .admin_ok(Method::POST, &format!("{P}/businesses"),
            Some(json!({"name": "shop", "quotas": {"prod": {"hard": {"requests.cpu": "4", "requests.memory": "8Gi", "pods": "20"}}}})),
            StatusCode::CREATED)
        .await;
    let shop_id = shop["id"].as_str().unwrap().to_string();
    assert!(
        shop["quotas"][&cid].is_object(),
        "quotas are keyed by cluster id: {shop}"
    );
    let bank = t
        .admin_ok(
            Method::POST,
            &format!("{P}/businesses"),
            Some(json!({"name": "bank", "quotas": {cid.clone(): {"hard": {"requests.cpu": "2"}}}})),
            StatusCode::CREATED,
        )
        .await;
    let bank_id = bank["id"].as_str().unwrap().to_string();

    // Bad input: 4xx naming the field, nothing changes.
    let before = t
        .admin_ok(
            Method::GET,
            &format!("{P}/businesses"),
            None,
            StatusCode::OK,
        )
        .await;
    for (body, field, status) in [
        (json!({"quotas": {}}), "name", StatusCode::BAD_REQUEST),
        (json!({"name": "shop"}), "name", StatusCode::CONFLICT),
        (
            json!({"name": "kid", "parent_id": "shop", "quotas": {"prod": {"hard": {"requests.cpu": "5"}}}}),
            "quotas.prod.hard.requests.cpu",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "kid", "parent_id": "nope"}),
            "parent_id",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "kid", "quotas": {"nope": {"hard": {"pods": "1"}}}}),
            "quotas.nope",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "kid", "quotas": {"prod": {"hard": {"bogus": "1"}}}}),
            "quotas.prod.hard.bogus",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "kid", "quotas": {"prod": {"hard": {"pods": "lots"}}}}),
            "quotas.prod.hard.pods",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (st, v) = t
            .call(
                Method::POST,
                &format!("{P}/businesses"),
                Some(&t.admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(st, status, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    assert_eq!(
        before,
        t.admin_ok(
            Method::GET,
            &format!("{P}/businesses"),
            None,
            StatusCode::OK
        )
        .await
    );

    let kid = t
        .admin_ok(Method::POST, &format!("{P}/businesses"),
            Some(json!({"name": "kid", "parent_id": "shop", "quotas": {"prod": {"hard": {"requests.cpu": "3"}}}})),
            StatusCode::CREATED)
        .await;
    assert_eq!(kid["parent_id"], shop_id.as_str());
    // The parent now has 1 cpu left: a namespace asking 2 is refused.
    let (st, v) = t
        .call(
            Method::POST,
            &format!("{P}/businesses/shop/namespaces"),
            Some(&t.admin),
            Some(json!({"name": "shop-web", "cluster_id": "prod", "hard": {"requests.cpu": "2"}})),
        )
        .await;
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("hard.requests.cpu")),
        "{v}"
    );
    assert!(
        k.namespace("shop-web").is_none(),
        "nothing created in the cluster"
    );
    // A parent's quota cannot shrink below what it gave out.
    let (st, v) = t
        .call(
            Method::PUT,
            &format!("{P}/businesses/shop"),
            Some(&t.admin),
            Some(json!({"quotas": {"prod": {"hard": {"requests.cpu": "2"}}}})),
        )
        .await;
    assert_eq!(
        (st, v["field"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("quotas.prod.hard.requests.cpu")
        ),
        "{v}"
    );

    // Namespaces are created in the cluster with a ResourceQuota.
    let ns = t
        .admin_ok(Method::POST, &format!("{P}/businesses/shop/namespaces"),
            Some(json!({"name": "shop-web", "cluster_id": "prod", "hard": {"requests.cpu": "1", "pods": "10"}})),
            StatusCode::CREATED)
        .await;
    let nsobj = k
        .namespace("shop-web")
        .expect("namespace created in the cluster");
    assert_eq!(
        nsobj["metadata"]["labels"]["tidewatch.io/business"],
        shop_id.as_str()
    );
    let rq = k
        .quota("shop-web", "tidewatch-business-quota")
        .expect("ResourceQuota created");
    assert_eq!(rq["spec"]["hard"]["requests.cpu"], "1");
    t.admin_ok(
        Method::POST,
        &format!("{P}/businesses/bank/namespaces"),
        Some(json!({"name": "bank-core", "cluster_id": "prod", "hard": {"requests.cpu": "1500m"}})),
        StatusCode::CREATED,
    )
    .await;
    let (st, v) = t
        .call(
            Method::POST,
            &format!("{P}/businesses/bank/namespaces"),
            Some(&t.admin),
            Some(json!({"name": "shop-web", "cluster_id": "prod"})),
        )
        .await;
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::CONFLICT, Some("name"))
    );

    // Quota used vs hard.
    k.set_quota_used(
        "shop-web",
        BTreeMap::from([
            ("requests.cpu".into(), "500m".into()),
            ("pods".into(), "3".into()),
        ]),
    );
    let q = t
        .admin_ok(
            Method::GET,
            &format!("{P}/businesses/shop/quota"),
            None,
            StatusCode::OK,
        )
        .await;
    let c = &q["clusters"][&cid];
    assert_eq!(c["hard"]["requests.cpu"], "4");
    assert_eq!(
        c["allocated"]["requests.cpu"], "4",
        "3 to kid + 1 to shop-web: {q}"
    );
    assert_eq!(c["used"]["requests.cpu"], "500m");
    assert_eq!(c["used"]["pods"], "3");

    // A user, bound as member of shop.
    let tok = t.user_with_token("alice", json!(["login-only"])).await;
    let (st, v) = t
        .call(
            Method::POST,
            &format!("{P}/businesses/shop/members"),
            Some(&t.admin),
            Some(json!({"user": "alice", "role": "platform-admin"})),
        )
        .await;
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("role"))
    );
    let (st, v) = t
        .call(
            Method::POST,
            &format!("{P}/businesses/shop/members"),
            Some(&t.admin),
            Some(json!({"user": "nobody", "role": "business-member"})),
        )
        .await;
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("user"))
    );
    t.admin_ok(
        Method::POST,
        &format!("{P}/businesses/shop/members"),
        Some(json!({"user": "alice", "role": "business-member"})),
        StatusCode::CREATED,
    )
    .await;
    let members = t
        .admin_ok(
            Method::GET,
            &format!("{P}/businesses/shop/members"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(members["items"][0]["name"], "alice");

    // Alice sees only her business (and its child) and its namespaces.
    let (st, v) = t
        .call(Method::GET, &format!("{P}/businesses"), Some(&tok), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kid", "shop"]);
    assert_eq!(
        t.call(
            Method::GET,
            &format!("{P}/businesses/bank"),
            Some(&tok),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.call(
            Method::GET,
            &format!("{P}/clusters/prod/pods?namespace=shop-web"),
            Some(&tok),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        t.call(
            Method::GET,
            &format!("{P}/clusters/prod/pods?namespace=bank-core"),
            Some(&tok),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.call(
            Method::GET,
            &format!("{P}/clusters/prod/nodes"),
            Some(&tok),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.call(
            Method::DELETE,
            &format!("{P}/businesses/shop"),
            Some(&tok),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    // TokenReview as kube-apiserver sends it.
    let (st, review) = t
        .call(
            Method::POST,
            "/auth/authn",
            None,
            Some(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "metadata": {"creationTimestamp": null},
            "spec": {"token": tok, "audiences": ["https://kubernetes.default.svc"]},
            "status": {"user": {}}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(review["kind"], "TokenReview");
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(review["status"]["user"]["username"], "alice");
    let uid = review["status"]["user"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, bad) = t
        .call(Method::POST, "/auth/authn", None, Some(json!({
            "apiVersion": "authentication.k8s.io/v1beta1", "kind": "TokenReview", "spec": {"token": "tw_forged"}})))
        .await;
    assert_eq!(bad["apiVersion"], "authentication.k8s.io/v1beta1");
    assert_eq!(bad["status"]["authenticated"], false);

    // SubjectAccessReview: her namespace yes, another business's no.
    let authz = |body: Value| {
        let t = &t;
        let cid = cid.clone();
        async move {
            t.call(
                Method::POST,
                &format!("/auth/authz/{cid}"),
                None,
                Some(body),
            )
            .await
            .1
        }
    };
    let ok = authz(sar("alice", &uid, "create", "pods", "shop-web")).await;
    assert_eq!(ok["status"]["allowed"], true, "{ok}");
    assert_eq!(ok["kind"], "SubjectAccessReview");
    let no = authz(sar("alice", &uid, "get", "pods", "bank-core")).await;
    assert_eq!(no["status"]["allowed"], false, "{no}");
    assert!(
        no["status"].get("denied").is_none(),
        "no opinion, so RBAC may still allow"
    );
    let no = authz(sar("alice", &uid, "list", "nodes", "")).await;
    assert_eq!(no["status"]["allowed"], false, "cluster-scoped: {no}");
    let admin_review = authz(sar("admin", "", "delete", "nodes", "")).await;
    assert_eq!(admin_review["status"]["allowed"], true);
    // The plain path works when the namespace name is unambiguous.
    let (_, v) = t
        .call(
            Method::POST,
            "/auth/authz",
            None,
            Some(sar("alice", &uid, "get", "pods", "shop-web")),
        )
        .await;
    assert_eq!(v["status"]["allowed"], true, "{v}");

    // A viewer may read but not write.
    let vtok = t.user_with_token("victor", json!(["login-only"])).await;
    t.admin_ok(
        Method::POST,
        &format!("{P}/businesses/bank/members"),
        Some(json!({"user": "victor", "role": "business-viewer"})),
        StatusCode::CREATED,
    )
    .await;
    let (_, rv) = t.call(Method::POST, "/auth/authn", None, Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": vtok}}))).await;
    let vuid = rv["status"]["user"]["uid"].as_str().unwrap().to_string();
    assert_eq!(
        authz(sar("victor", &vuid, "get", "pods", "bank-core")).await["status"]["allowed"],
        true
    );
    assert_eq!(
        authz(sar("victor", &vuid, "delete", "pods", "bank-core")).await["status"]["allowed"],
        false
    );

    // Migration moves the namespace, its access and its label.
    let (st, v) = t
        .call(
            Method::POST,
            &format!("{P}/businesses/shop/namespaces/shop-web/migrate"),
            Some(&t.admin),
            Some(json!({"destination": "bank"})),
        )
        .await;
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("destination.requests.cpu")),
        "bank has 500m cpu left: {v}"
    );
    t.admin_ok(
        Method::PUT,
        &format!("{P}/businesses/bank"),
        Some(json!({"quotas": {"prod": {"hard": {"requests.cpu": "3", "pods": "50"}}}})),
        StatusCode::OK,
    )
    .await;
    let m = t
        .admin_ok(
            Method::POST,
            &format!("{P}/businesses/shop/namespaces/shop-web/migrate"),
            Some(json!({"destination": "bank"})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(m["phase"], "Finished");
    assert_eq!(
        m["phases"],
        json!([
            "Pending",
            "OldOneLocked",
            "OldOneDetached",
            "NewOneCreated",
            "OldOneTerminating",
            "Finished"
        ])
    );
    assert_eq!(
        k.namespace("shop-web").unwrap()["metadata"]["labels"]["tidewatch.io/business"],
        bank_id.as_str()
    );
    assert_eq!(
        authz(sar("alice", &uid, "create", "pods", "shop-web")).await["status"]["allowed"],
        false
    );
    let bank_ns = t
        .admin_ok(
            Method::GET,
            &format!("{P}/businesses/bank/namespaces"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(bank_ns["items"].as_array().unwrap().len(), 2);
    let _ = ns;

    // Deleting: refused while in use, then allowed.
    let (st, _) = t
        .call(
            Method::DELETE,
            &format!("{P}/businesses/shop"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "shop still has a child");
    t.admin_ok(
        Method::DELETE,
        &format!("{P}/businesses/bank/namespaces/shop-web"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert!(k.namespace("shop-web").is_none());
    let audit = t
        .admin_ok(
            Method::GET,
            &format!("{P}/audit?resource=namespace"),
            None,
            StatusCode::OK,
        )
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "deleteNamespace",
            "migrateNamespace",
            "createNamespace",
            "createNamespace"
        ]
    );
}
