//! The query-scoping middleware in front of an echoing stand-in for the
//! aggregator's routes: what reaches the aggregator for admins, tenants and
//! anonymous callers.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::routing::any;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tidewatch_platform::config::AnonymousQueries;
use tidewatch_platform::testing::kube_standin::KubeStandIn;
use tidewatch_platform::{Config, Platform};

const P: &str = "/api/platform/v1";

/// Echoes what the aggregator would receive.
async fn echo(RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap();
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    axum::Json(json!({
        "params": params, "form": form,
        "body": String::from_utf8_lossy(&body),
        "content_type": headers.get("content-type").map(|v| v.to_str().unwrap()),
    }))
}

async fn serve_scoped(p: &Arc<Platform>) -> String {
    let inner = Router::new()
        .route("/api/v1/{*rest}", any(echo))
        .route("/loki/api/v1/{*rest}", any(echo));
    let app = p.scope_router(inner);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    base
}

async fn setup(config: Config) -> (common::TestPlatform, KubeStandIn, String, String) {
    let t = common::start(config).await;
    let k = KubeStandIn::start("t0k").await;
    t.admin_ok(
        Method::POST,
        &format!("{P}/clusters"),
        Some(json!({"name": "c1", "api_server": k.url(), "token": "t0k"})),
        StatusCode::CREATED,
    )
    .await;
    for (b, ns) in [("shop", "shop-web"), ("bank", "bank-core")] {
        t.admin_ok(
            Method::POST,
            &format!("{P}/businesses"),
            Some(json!({"name": b})),
            StatusCode::CREATED,
        )
        .await;
        t.admin_ok(
            Method::POST,
            &format!("{P}/businesses/{b}/namespaces"),
            Some(json!({"name": ns, "cluster_id": "c1"})),
            StatusCode::CREATED,
        )
        .await;
    }
    let alice = t.user_with_token("alice", json!(["platform-user"])).await;
    t.admin_ok(
        Method::POST,
        &format!("{P}/businesses/shop/members"),
        Some(json!({"user": "alice", "role": "business-viewer"})),
        StatusCode::CREATED,
    )
    .await;
    let base = serve_scoped(&t.platform).await;
    (t, k, base, alice)
}

async fn get(t: &common::TestPlatform, url: String, token: Option<&str>) -> (StatusCode, Value) {
    let mut r = t.http.get(url);
    if let Some(tok) = token {
        r = r.bearer_auth(tok);
    }
    let resp = r.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

fn param<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    v["params"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["form"].as_array().unwrap())
        .filter(|p| p[0] == key)
        .map(|p| p[1].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn tenant_queries_are_confined_to_their_namespaces() {
    let (t, _k, base, alice) = setup(Config::default()).await;
    let cid = t
        .admin_ok(
            Method::GET,
            &format!("{P}/clusters/c1"),
            None,
            StatusCode::OK,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Parameters as forwarded, with the cluster id shown as `C`.
    let pn = |v: &Value, key: &str| -> Vec<String> {
        param(v, key).iter().map(|p| p.replace(&cid, "C")).collect()
    };
    let enc = |q: &str| serde_urlencoded::to_string([("query", q)]).unwrap();

    // PromQL: every selector gets the namespace matcher.
    let (st, v) = get(
        &t,
        format!(
            "{base}/api/v1/query?{}",
            enc(r#"sum(rate(x{namespace="bank-core"}[5m])) / y"#)
        ),
        Some(&alice),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        pn(&v, "query"),
        [
            r#"sum(rate(x{cluster_id=~"C",namespace="bank-core",namespace=~"shop-web"}[5m])) / y{cluster_id=~"C",namespace=~"shop-web"}"#
        ]
    );
    // POST form bodies too.
    let resp = t
        .http
        .post(format!("{base}/api/v1/query_range"))
        .bearer_auth(&alice)
        .form(&[("query", "up"), ("step", "15")])
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        pn(&v, "query"),
        [r#"up{cluster_id=~"C",namespace=~"shop-web"}"#]
    );
    assert_eq!(pn(&v, "step"), ["15"]);
    // Label values without match[] get one, so other tenants' values do not leak.
    let (_, v) = get(&t, format!("{base}/api/v1/label/pod/values"), Some(&alice)).await;
    assert_eq!(
        pn(&v, "match[]"),
        [r#"{cluster_id=~"C",namespace=~"shop-web"}"#]
    );
    let (_, v) = get(
        &t,
        format!("{base}/api/v1/series?match[]=up&match[]=%7Bjob%3D%22a%22%7D"),
        Some(&alice),
    )
    .await;
    assert_eq!(
        pn(&v, "match[]"),
        [
            r#"up{cluster_id=~"C",namespace=~"shop-web"}"#,
            r#"{cluster_id=~"C",job="a",namespace=~"shop-web"}"#
        ]
    );
    // LogQL.
    let (_, v) = get(
        &t,
        format!(
            "{base}/loki/api/v1/query_range?{}",
            enc(r#"{app="web"} |= "x""#)
        ),
        Some(&alice),
    )
    .await;
    assert_eq!(
        pn(&v, "query"),
        [r#"{app="web", cluster_id=~"C", namespace=~"shop-web"} |= "x""#]
    );
    let (_, v) = get(
        &t,
        format!("{base}/loki/api/v1/label/app/values"),
        Some(&alice),
    )
    .await;
    assert_eq!(
        pn(&v, "query"),
        [r#"{cluster_id=~"C", namespace=~"shop-web"}"#]
    );
    // SQL in a JSON body.
    let resp = t
        .http
        .post(format!("{base}/api/v1/sql"))
        .bearer_auth(&alice)
        .json(&json!({"query": "SELECT count(*) FROM logs"}))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["query"].as_str().unwrap().replace(&cid, "C"),
        "SELECT count(*) FROM (SELECT * FROM logs WHERE cluster_id IN ('C') AND namespace IN ('shop-web')) AS logs"
    );
    // Bad queries and unscopable endpoints.
    let (st, v) = get(
        &t,
        format!("{base}/api/v1/query?{}", enc("sum(")),
        Some(&alice),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["errorType"], "bad_data");
    let (st, _) = get(&t, format!("{base}/api/v1/rules"), Some(&alice)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let resp = t
        .http
        .post(format!("{base}/api/v1/sql"))
        .bearer_auth(&alice)
        .json(&json!({"query": "DROP TABLE logs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn admins_and_anonymous_callers_see_everything_by_default() {
    let (t, _k, base, _alice) = setup(Config::default()).await;
    let (st, v) = get(&t, format!("{base}/api/v1/query?query=up"), Some(&t.admin)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(param(&v, "query"), ["up"]);
    let (st, v) = get(&t, format!("{base}/api/v1/query?query=up"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(param(&v, "query"), ["up"]);
    let (st, _) = get(
        &t,
        format!("{base}/api/v1/query?query=up"),
        Some("tw_forged"),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "a bad token is not anonymous");
    // A user with no business sees nothing.
    let bob = t.user_with_token("bob", json!(["platform-user"])).await;
    let (_, v) = get(&t, format!("{base}/api/v1/query?query=up"), Some(&bob)).await;
    assert_eq!(param(&v, "query"), [r#"up{namespace="tidewatch:none"}"#]);
}

#[tokio::test]
async fn anonymous_queries_can_be_denied() {
    let mut c = Config::default();
    c.auth.anonymous_queries = AnonymousQueries::Deny;
    let (t, _k, base, alice) = setup(c).await;
    let (st, _) = get(&t, format!("{base}/api/v1/query?query=up"), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = get(&t, format!("{base}/api/v1/query?query=up"), Some(&alice)).await;
    assert_eq!(st, StatusCode::OK);
}
