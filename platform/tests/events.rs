//! Event watching and forwarding against the Kubernetes API stand-in and a
//! recording stand-in for the aggregator's `/api/v1/events`.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode as AxStatus;
use axum::routing::post;
use axum::{Json, Router};
use parking_lot::Mutex;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tidewatch_platform::Config;
use tidewatch_platform::testing::kube_standin::KubeStandIn;

#[derive(Default)]
struct Sink {
    events: Mutex<Vec<Value>>,
    fail_first: AtomicUsize,
}

async fn receive(State(s): State<Arc<Sink>>, Json(body): Json<Value>) -> AxStatus {
    if s.fail_first.load(Ordering::SeqCst) > 0 {
        s.fail_first.fetch_sub(1, Ordering::SeqCst);
        return AxStatus::SERVICE_UNAVAILABLE;
    }
    s.events
        .lock()
        .extend(body["events"].as_array().unwrap().iter().cloned());
    AxStatus::NO_CONTENT
}

async fn sink(fail_first: usize) -> (Arc<Sink>, String) {
    let s = Arc::new(Sink::default());
    s.fail_first.store(fail_first, Ordering::SeqCst);
    let app = Router::new()
        .route("/api/v1/events", post(receive))
        .with_state(s.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (s, url)
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn keys(s: &Sink) -> Vec<(String, i64)> {
    s.events
        .lock()
        .iter()
        .map(|e| {
            (
                e["uid"].as_str().unwrap().to_string(),
                e["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn assert_unique(s: &Sink) {
    let k = keys(s);
    let set: HashSet<_> = k.iter().cloned().collect();
    assert_eq!(set.len(), k.len(), "duplicates forwarded: {k:?}");
}

fn has(s: &Sink, uid: &str, count: i64) -> bool {
    keys(s).iter().any(|(u, c)| u == uid && *c == count)
}

#[tokio::test]
async fn events_are_forwarded_once_across_410_relists_and_restarts() {
    let (s, url) = sink(2).await;
    let k = KubeStandIn::start("tok").await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        aggregator_url: Some(url),
        admin_password: Some("admin-pass".into()),
        ..Default::default()
    };
    let t = common::start_in(config.clone(), dir.path()).await;
    k.put_event("shop", "e1", "BackOff", 1);
    k.put_event("shop", "e2", "Pulled", 1);
    let v = t
        .admin_ok(
            Method::POST,
            "/api/platform/v1/clusters",
            Some(json!({"name": "c1", "api_server": k.url(), "token": "tok"})),
            StatusCode::CREATED,
        )
        .await;
    let cid = v["id"].as_str().unwrap().to_string();

    // Listed events arrive (after the aggregator's first two 503s), shaped as agreed.
    wait_for("e1 and e2", || {
        has(&s, "uid-shop-e1", 1) && has(&s, "uid-shop-e2", 1)
    })
    .await;
    let e1 = s
        .events
        .lock()
        .iter()
        .find(|e| e["uid"] == "uid-shop-e1")
        .cloned()
        .unwrap();
    assert_eq!(e1["cluster_id"], cid.as_str());
    assert_eq!(e1["namespace"], "shop");
    assert_eq!(e1["name"], "e1");
    assert_eq!(e1["reason"], "BackOff");
    assert_eq!(e1["type"], "Warning");
    assert_eq!(
        e1["involved_object"],
        json!({"kind": "Pod", "name": "e1-pod", "namespace": "shop", "uid": "pod-e1-uid"})
    );
    assert_eq!(e1["source_component"], "kubelet");
    assert_eq!(e1["first_timestamp"], "2026-01-01T00:00:00Z");
    assert!(
        e1["resource_version"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    assert!(t.platform.metrics.post_failures.get() >= 2);

    // Watched changes: a new event and a repeat (count 2) of e1.
    k.put_event("shop", "e3", "Killing", 1);
    k.put_event("shop", "e1", "BackOff", 2);
    wait_for("e3 and e1#2", || {
        has(&s, "uid-shop-e3", 1) && has(&s, "uid-shop-e1", 2)
    })
    .await;

    // 410 Gone: the watcher re-lists; nothing already sent is sent again.
    let lists_before = k
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/events?") && !r.contains("watch=true"))
        .count();
    k.expire_watches();
    wait_for("a re-list", || {
        k.requests()
            .iter()
            .filter(|r| r.starts_with("GET /api/v1/events?") && !r.contains("watch=true"))
            .count()
            > lists_before
    })
    .await;
    k.put_event("kid", "e4", "Started", 1);
    wait_for("e4", || {
        has(&s, "uid-shop-e1", 2) && has(&s, "uid-kid-e4", 1)
    })
    .await;
    assert_unique(&s);
    assert_eq!(keys(&s).len(), 5);
    assert!(
        k.requests()
            .iter()
            .any(|r| r.contains("watch=true") && r.contains("allowWatchBookmarks=true")),
        "{:?}",
        k.requests()
    );

    // Restart on the same data directory: the re-list sends nothing old.
    t.platform.close().await.unwrap();
    drop(t);
    let t = common::start_in(config, dir.path()).await;
    k.put_event("kid", "e5", "Started", 1);
    wait_for("e5", || has(&s, "uid-kid-e5", 1)).await;
    assert_unique(&s);
    assert_eq!(keys(&s).len(), 6);
    t.platform.close().await.unwrap();
}

#[tokio::test]
async fn cluster_health_follows_the_api_server() {
    let config = Config {
        cluster_health_interval: Duration::from_millis(1000),
        ..Default::default()
    };
    let t = common::start(config).await;
    let k = KubeStandIn::start("tok").await;
    let v = t
        .admin_ok(
            Method::POST,
            "/api/platform/v1/clusters",
            Some(json!({"name": "c1", "api_server": k.url(), "token": "tok"})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(v["conditions"][0]["type"], "Reachable");
    assert_eq!(v["conditions"][0]["status"], "True");
    drop(k);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = t
            .admin_ok(
                Method::GET,
                "/api/platform/v1/clusters/c1",
                None,
                StatusCode::OK,
            )
            .await;
        if v["phase"] == "Failed" {
            assert_eq!(v["conditions"][0]["status"], "False");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster never marked Failed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
