//! The remote-write sender against a stub endpoint (an in-process axum
//! server scripted per test): 5xx and 429 are retried until accepted, other
//! 4xx are dropped after one attempt, and bodies are snappy-compressed
//! remote-write 1.0 protobuf.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use prost::Message;
use tidewatch_collector::metrics::encode::encode_records;
use tidewatch_collector::metrics::sample::Sample;
use tidewatch_collector::metrics::ship::{Endpoint, QueueConfig, RemoteWriteConfig, ShipMetrics};
use tidewatch_common::labels::Labels;
use tidewatch_common::remote_write::WriteRequest;
use tokio_util::sync::CancellationToken;

/// Starts a stub answering with `script` in order (then 204); returns its
/// URL and the decoded requests it received.
async fn stub(script: Vec<u16>) -> (String, Arc<Mutex<Vec<WriteRequest>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(script.into_iter()));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/api/v1/write",
        post(move |body: Bytes| {
            let g = g.clone();
            let script = script.clone();
            async move {
                let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                g.lock().push(WriteRequest::decode(raw.as_slice()).unwrap());
                let code = script.lock().next().unwrap_or(204);
                StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, got)
}

fn samples(n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            labels: Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]),
            value: i as f64,
            timestamp_ms: 1000,
        })
        .collect()
}

async fn run_case(script: Vec<u16>) -> (usize, usize, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (url, got) = stub(script).await;
    let cfg = RemoteWriteConfig {
        url,
        name: "stub".into(),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..RemoteWriteConfig::default()
    };
    let mut reg = Registry::default();
    let ep = Endpoint::open(
        dir.path(),
        cfg,
        &QueueConfig::default(),
        ShipMetrics::register(&mut reg),
    )
    .unwrap();
    ep.push(&encode_records(&samples(3), &[], 500))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(ep.clone().run(reqwest::Client::new(), stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ep.pending() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue never drained"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    task.await.unwrap();
    let reqs = got.lock();
    let series = reqs.last().map(|r| r.timeseries.len()).unwrap_or(0);
    (reqs.len(), series, ep.pending())
}

#[tokio::test]
async fn server_errors_and_429_are_retried_until_accepted() {
    let (requests, series, pending) = run_case(vec![503, 500, 429]).await;
    assert_eq!(requests, 4);
    assert_eq!(series, 3);
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let (requests, _, pending) = run_case(vec![400]).await;
    assert_eq!(requests, 1, "a 400 is final");
    assert_eq!(pending, 0, "the rejected batch is dropped, not retried");
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RemoteWriteConfig {
        url: "http://127.0.0.1:9/api/v1/write".into(),
        name: "full".into(),
        ..RemoteWriteConfig::default()
    };
    let mut reg = Registry::default();
    let metrics = ShipMetrics::register(&mut reg);
    let queue = QueueConfig {
        max_bytes: 64 << 10,
        segment_bytes: 4 << 10,
    };
    let ep = Endpoint::open(dir.path(), cfg, &queue, metrics).unwrap();
    // No sender runs: 100 cycles of ~40 KB can never fit in 64 KiB.
    for _ in 0..100 {
        ep.push(&encode_records(&samples(300), &[], 50))
            .await
            .unwrap();
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    let dropped: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("remote_write_dropped_records_total{endpoint=\"full\"} "))
        .expect("dropped counter exported")
        .parse()
        .unwrap();
    assert!(dropped > 0.0, "{text}");
    let on_disk: u64 = std::fs::read_dir(dir.path().join("full"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        on_disk <= 64 << 10,
        "queue bounded on disk: {on_disk} bytes"
    );
    // What fits stays queued for the sender.
    assert!(ep.pending() > 0);
}
