//! The scrape manager against stub HTTP targets (in-process axum servers
//! whose exposition the test changes): target labels and `honor_labels`,
//! metric relabelling, report series, staleness markers when a series or a
//! target disappears, `sample_limit`, failing targets.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tidewatch_collector::metrics::sample::Sample;
use tidewatch_collector::metrics::scrape::{STALE_NAN_BITS, ScrapeConfig, ScrapeManager};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A target serving whatever `body` holds (404 when it is `None`).
async fn target(body: Arc<Mutex<Option<String>>>) -> String {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let b = body.lock().clone();
            async move {
                match b {
                    Some(b) => (axum::http::StatusCode::OK, b),
                    None => (axum::http::StatusCode::NOT_FOUND, String::new()),
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

fn job(yaml: &str) -> ScrapeConfig {
    serde_yaml::from_str(yaml).unwrap()
}

/// Receives batches until one satisfies `f` (deadline 20 s).
async fn until(
    rx: &mut mpsc::Receiver<Vec<Sample>>,
    what: &str,
    f: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let b = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("channel open");
        if f(&b) {
            return b;
        }
    }
}

fn find<'a>(b: &'a [Sample], name: &str) -> Option<&'a Sample> {
    b.iter().find(|s| s.labels.metric_name() == Some(name))
}

fn is_stale(s: &Sample) -> bool {
    s.value.to_bits() == STALE_NAN_BITS
}

#[tokio::test]
async fn relabel_report_staleness_and_target_removal() {
    let body = Arc::new(Mutex::new(Some(
        "# TYPE a gauge\na{job=\"inner\"} 1\nb{x=\"1\"} 2\nc 3\n".to_string(),
    )));
    let addr = target(body.clone()).await;
    let cfg = job(&format!(
        r#"
job_name: stub
scrape_interval: 100ms
scrape_timeout: 100ms
static_configs:
- targets: ["{addr}"]
  labels: {{env: test}}
metric_relabel_configs:
- source_labels: [__name__]
  regex: c
  action: drop
"#
    ));
    let (tx, mut rx) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let mut m = ScrapeManager::new(&[cfg], tx, stop.clone()).unwrap();
    m.start_static();
    assert_eq!(m.targets(), 1);

    let b = until(&mut rx, "a healthy scrape", |b| {
        find(b, "up").is_some_and(|u| u.value == 1.0)
    })
    .await;
    let a = find(&b, "a").unwrap();
    assert_eq!(a.labels.get("job"), Some("stub"));
    assert_eq!(
        a.labels.get("exported_job"),
        Some("inner"),
        "honor_labels: false"
    );
    assert_eq!(a.labels.get("env"), Some("test"));
    assert_eq!(a.labels.get("instance"), Some(addr.as_str()));
    assert!(find(&b, "c").is_none(), "dropped by metric_relabel_configs");
    assert_eq!(find(&b, "scrape_samples_scraped").unwrap().value, 3.0);
    assert_eq!(
        find(&b, "scrape_samples_post_metric_relabeling")
            .unwrap()
            .value,
        2.0
    );
    assert!(find(&b, "scrape_duration_seconds").is_some());

    // Series b disappears: the next scrape carries its staleness marker.
    *body.lock() = Some("a 1\n".into());
    let b2 = until(&mut rx, "a stale marker for b", |b| find(b, "b").is_some()).await;
    assert!(is_stale(find(&b2, "b").unwrap()));
    assert_eq!(find(&b2, "a").unwrap().value, 1.0);

    // The target fails: up = 0 and its series go stale.
    *body.lock() = None;
    let b3 = until(&mut rx, "a failed scrape", |b| {
        find(b, "up").is_some_and(|u| u.value == 0.0)
    })
    .await;
    assert!(is_stale(find(&b3, "a").unwrap()));
    let h = m.health();
    let health = h.read().values().next().unwrap().clone();
    assert_eq!(health.health, "down");
    assert!(health.last_error.contains("404"), "{}", health.last_error);

    // The target is removed from discovery: everything it reported goes stale.
    *body.lock() = Some("a 1\n".into());
    until(&mut rx, "recovery", |b| {
        find(b, "up").is_some_and(|u| u.value == 1.0)
    })
    .await;
    m.sync(0, Vec::new());
    let b4 = until(&mut rx, "stale markers on removal", |b| {
        find(b, "up").is_some_and(is_stale)
    })
    .await;
    assert!(b4.iter().all(is_stale));
    assert!(find(&b4, "a").is_some());
    assert_eq!(m.targets(), 0);
    m.shutdown().await;
}

#[tokio::test]
async fn sample_limit_fails_the_scrape() {
    let body = Arc::new(Mutex::new(Some("a 1\nb 2\nc 3\n".to_string())));
    let addr = target(body).await;
    let cfg = job(&format!(
        "job_name: limited\nscrape_interval: 100ms\nscrape_timeout: 100ms\nsample_limit: 2\nstatic_configs:\n- targets: [\"{addr}\"]\n"
    ));
    let (tx, mut rx) = mpsc::channel(16);
    let mut m = ScrapeManager::new(&[cfg], tx, CancellationToken::new()).unwrap();
    m.start_static();
    let b = until(&mut rx, "a scrape", |b| find(b, "up").is_some()).await;
    assert_eq!(find(&b, "up").unwrap().value, 0.0);
    assert!(find(&b, "a").is_none());
    assert_eq!(find(&b, "scrape_samples_scraped").unwrap().value, 3.0);
    let h = m.health();
    assert!(
        h.read()
            .values()
            .next()
            .unwrap()
            .last_error
            .contains("sample_limit")
    );
    m.shutdown().await;
}

#[tokio::test]
async fn scrapes_debian_node_exporter() {
    // A real target: Debian's node_exporter.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus-node-exporter is installed");
    let cfg = job(&format!(
        "job_name: node\nscrape_interval: 200ms\nscrape_timeout: 200ms\nstatic_configs:\n- targets: [\"127.0.0.1:{port}\"]\nmetric_relabel_configs:\n- source_labels: [__name__]\n  regex: 'node_(cpu|load).*'\n  action: keep\n"
    ));
    let (tx, mut rx) = mpsc::channel(16);
    let mut m = ScrapeManager::new(&[cfg], tx, CancellationToken::new()).unwrap();
    m.start_static();
    let b = until(&mut rx, "node_exporter up", |b| {
        find(b, "up").is_some_and(|u| u.value == 1.0)
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(find(&b, "node_load1").is_some());
    assert!(
        b.iter()
            .any(|s| s.labels.metric_name() == Some("node_cpu_seconds_total"))
    );
    assert!(
        b.iter().all(|s| {
            let n = s.labels.metric_name().unwrap();
            n.starts_with("node_cpu")
                || n.starts_with("node_load")
                || n == "up"
                || n.starts_with("scrape_")
        }),
        "keep relabelling applied"
    );
    assert!(
        find(&b, "scrape_samples_scraped").unwrap().value
            > find(&b, "scrape_samples_post_metric_relabeling")
                .unwrap()
                .value
    );
    m.shutdown().await;
}
