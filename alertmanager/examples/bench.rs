//! Alerting benchmark: rule evaluations per second (with a fixed querier,
//! and with the in-process PromQL engine `up` uses), notifications per
//! second and per CPU-second (through the whole pipeline: journal, routing,
//! grouping, dedup log, webhook delivery, history) beside Debian's
//! Alertmanager measured the same way in the same run, and the delay from a
//! threshold crossing to the webhook call.
//!
//! `cargo run --release -p tidewatch-alertmanager --example bench`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use tidewatch_alertmanager::model::Alert;
use tidewatch_alertmanager::rules::file::GroupDef;
use tidewatch_alertmanager::rules::group::Group;
use tidewatch_alertmanager::rules::querier::{EngineQuerier, Querier, QueryFuture, Sample};
use tidewatch_alertmanager::{AlertEngine, Config};
use tidewatch_common::Labels;
use tokio_util::sync::CancellationToken;

struct Fixed(Vec<Sample>);

impl Querier for Fixed {
    fn query<'a>(&'a self, _e: &'a str, _t: i64) -> QueryFuture<'a> {
        let v = self.0.clone();
        Box::pin(async move { Ok(v) })
    }
}

async fn rule_evaluation() {
    let rules: String = (0..100)
        .map(|i| {
            format!(
                "- alert: A{i}\n  expr: x > 1\n  for: 1m\n  labels: {{severity: page}}\n  annotations: {{summary: '{{{{ $labels.instance }}}} is {{{{ $value }}}}'}}\n"
            )
        })
        .collect();
    let def: GroupDef = serde_yaml::from_str(&format!("name: g\nrules:\n{rules}")).unwrap();
    let mut g = Group::compile(&def, "bench", Duration::from_secs(60)).unwrap();
    let q = Fixed(
        (0..100)
            .map(|i| Sample {
                labels: Labels::from_pairs([
                    ("__name__", "x".to_string()),
                    ("instance", format!("host-{i}")),
                ]),
                value: 5.0,
                histogram: None,
            })
            .collect(),
    );
    let ext = BTreeMap::new();
    let start = Instant::now();
    let mut evals = 0u64;
    let mut ts = 0;
    while start.elapsed() < Duration::from_secs(3) {
        g.eval(&q, ts, &ext, "http://x").await;
        ts += 60_000;
        evals += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "rule evaluation: {:.0} rules/s, {:.0} alert instances/s (100 alerting rules x 100 series, templated annotations, one core)",
        evals as f64 * 100.0 / secs,
        evals as f64 * 100.0 * 100.0 / secs
    );
}

/// The same 100 rules, queried through the PromQL engine over an in-memory
/// store of 100 series with 1 h of 15 s samples (what `up` does with the
/// aggregator's store).
async fn rule_evaluation_in_process() {
    let rules: String = (0..100)
        .map(|i| {
            format!("- alert: A{i}\n  expr: x > {i}\n  for: 1m\n  labels: {{severity: page}}\n")
        })
        .collect();
    let def: GroupDef = serde_yaml::from_str(&format!("name: g\nrules:\n{rules}")).unwrap();
    let mut g = Group::compile(&def, "bench", Duration::from_secs(60)).unwrap();
    let storage = Arc::new(tidewatch_promql::MemStorage::new());
    for i in 0..100 {
        let l = Labels::from_pairs([
            ("__name__", "x".to_string()),
            ("instance", format!("host-{i}")),
        ]);
        storage.append(l, (0..240).map(|k| (k * 15_000, 50.0 + k as f64)));
    }
    let q = EngineQuerier {
        engine: tidewatch_promql::Engine::default(),
        storage,
    };
    let ext = BTreeMap::new();
    let start = Instant::now();
    let mut evals = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        g.eval(&q, 3_600_000, &ext, "http://x").await;
        evals += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "rule evaluation in-process: {:.0} rules/s (100 alerting rules over 100 series, PromQL included, one core)",
        evals as f64 * 100.0 / secs
    );
}

/// CPU seconds (user + system) used so far by process `pid` (`self` too).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are
    // the 12th and 13th of those, in clock ticks (100 Hz on Linux).
    let rest = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A webhook sink counting calls and remembering the last arrival.
async fn sink() -> (String, Arc<AtomicUsize>, Arc<AtomicU64>) {
    let count = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(AtomicU64::new(0));
    let (c, l) = (count.clone(), last.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_b: axum::body::Bytes| {
            let (c, l) = (c.clone(), l.clone());
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                l.store(now_us(), Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let lis = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", lis.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(lis, app).await.unwrap() });
    (url, count, last)
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn config(yaml: &str) -> Config {
    serde_yaml::from_str(yaml).unwrap()
}

async fn notifications() {
    let (url, count, _) = sink().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {url}\n"
    ));
    let mut reg = Registry::default();
    let stop = CancellationToken::new();
    let engine = AlertEngine::start(cfg, dir.path(), &mut reg, stop.clone())
        .await
        .unwrap();
    let n = 2000;
    let now = chrono::Utc::now();
    let alerts: Vec<Alert> = (0..n)
        .map(|i| Alert {
            labels: Labels::from_pairs([
                ("alertname", format!("A{i}")),
                ("instance", "x".to_string()),
            ]),
            annotations: BTreeMap::new(),
            starts_at: now,
            ends_at: now + chrono::Duration::hours(1),
            generator_url: String::new(),
            updated_at: now,
            timeout: false,
        })
        .collect();
    let start = Instant::now();
    let cpu0 = cpu_seconds("self");
    for chunk in alerts.chunks(100) {
        engine.receive(chunk.to_vec(), "bench").unwrap();
    }
    while count.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self") - cpu0;
    println!(
        "notifications (Tidewatch): {:.0}/s, {:.0} per CPU-second ({n} groups, each journaled, routed, deduplicated, POSTed, logged; fsync per record; CPU includes the webhook sink)",
        n as f64 / secs,
        n as f64 / cpu.max(0.01)
    );
    stop.cancel();
}

/// Debian's Alertmanager, the same 2,000 single-alert groups posted to
/// `/api/v2/alerts`, delivered to the same kind of webhook sink.
async fn alertmanager_notifications() {
    let Ok(bin) = which("prometheus-alertmanager") else {
        println!("notifications (Alertmanager): skipped, prometheus-alertmanager not found");
        return;
    };
    let (url, count, _) = sink().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = start_alertmanager(&bin, dir.path(), &url, "1h").await;
    let pid = child.id().to_string();
    let client = reqwest::Client::new();
    let n = 2000;
    let now = chrono::Utc::now();
    let ends = now + chrono::Duration::hours(1);
    let bodies: Vec<serde_json::Value> = (0..n)
        .collect::<Vec<_>>()
        .chunks(100)
        .map(|c| {
            serde_json::Value::Array(
                c.iter()
                    .map(|i| {
                        serde_json::json!({
                            "labels": {"alertname": format!("A{i}"), "instance": "x"},
                            "startsAt": now.to_rfc3339(),
                            "endsAt": ends.to_rfc3339(),
                        })
                    })
                    .collect(),
            )
        })
        .collect();
    let start = Instant::now();
    let cpu0 = cpu_seconds(&pid);
    for b in &bodies {
        let r = client
            .post(format!("{base}/api/v2/alerts"))
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(b).unwrap())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    while count.load(Ordering::SeqCst) < n {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "alertmanager too slow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&pid) - cpu0;
    println!(
        "notifications (Alertmanager 0.25, same run): {:.0}/s, {:.0} per CPU-second ({n} groups via /api/v2/alerts, webhook; CPU of the alertmanager process)",
        n as f64 / secs,
        n as f64 / cpu.max(0.01)
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawns `bin args` quietly and waits for `{base}/-/ready`.
async fn spawn_ready(bin: &std::path::Path, args: &[String], base: &str) -> std::process::Child {
    let child = std::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("{base}/-/ready"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(Instant::now() < deadline, "{} did not start", bin.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// Debian's Alertmanager delivering every alert group to `hook`.
async fn start_alertmanager(
    bin: &std::path::Path,
    dir: &std::path::Path,
    hook: &str,
    group_interval: &str,
) -> (std::process::Child, String) {
    let cfg = dir.join("am.yml");
    std::fs::write(
        &cfg,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: {group_interval}\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {hook}\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let args = vec![
        format!("--config.file={}", cfg.display()),
        format!("--storage.path={}", dir.display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--cluster.listen-address=".to_string(),
    ];
    (spawn_ready(bin, &args, &base).await, base)
}

/// Threshold crossing → webhook, side by side on the same data: a sample
/// remote-written into Debian's Prometheus crosses `bench_x > 5`;
/// Prometheus's own rule (1 s interval) → Alertmanager (`group_wait: 0s`)
/// → webhook, and Tidewatch's rule (1 s interval, querying that
/// Prometheus over HTTP) → webhook.
async fn threshold_delay_side_by_side() {
    let (Ok(prom_bin), Ok(am_bin)) = (which("prometheus"), which("prometheus-alertmanager")) else {
        println!("threshold delay side by side: skipped, prometheus or alertmanager not found");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (am_hook, am_count, am_last) = sink().await;
    let (tw_hook, tw_count, tw_last) = sink().await;
    std::fs::create_dir_all(dir.path().join("am")).unwrap();
    let (mut am, am_base) =
        start_alertmanager(&am_bin, &dir.path().join("am"), &am_hook, "1s").await;
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: High\n        expr: bench_x > 5\n",
    )
    .unwrap();
    let prom_cfg = dir.path().join("prom.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n",
            rules.display(),
            am_base.trim_start_matches("http://")
        ),
    )
    .unwrap();
    let port = free_port();
    let prom_base = format!("http://127.0.0.1:{port}");
    let args = vec![
        format!("--config.file={}", prom_cfg.display()),
        format!("--storage.tsdb.path={}", dir.path().join("prom").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--web.enable-remote-write-receiver".to_string(),
        // Alerts sent before Alertmanager discovery synced are otherwise
        // only re-sent after a minute.
        "--rules.alert.resend-delay=1s".to_string(),
    ];
    let mut prom = spawn_ready(&prom_bin, &args, &prom_base).await;
    let cfg = config(&format!(
        "query_url: {prom_base}\nrule_files: ['{}']\nroute:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {tw_hook}\n",
        rules.display()
    ));
    let mut reg = Registry::default();
    let stop = CancellationToken::new();
    let _engine = AlertEngine::start(cfg, &dir.path().join("tw"), &mut reg, stop.clone())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let push = |v: f64| {
        let client = client.clone();
        let url = format!("{prom_base}/api/v1/write");
        async move {
            let ts = chrono::Utc::now().timestamp_millis();
            let body = tidewatch_alertmanager::rules::writer::encode(
                &[(Labels::from_pairs([("__name__", "bench_x")]), v)],
                ts,
            );
            let r = client
                .post(url)
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
        }
    };
    let wait_both = |a: usize, t: usize| {
        let (am_count, tw_count) = (am_count.clone(), tw_count.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while am_count.load(Ordering::SeqCst) <= a || tw_count.load(Ordering::SeqCst) <= t {
                assert!(
                    Instant::now() < deadline,
                    "no notification from both: alertmanager {} (was {a}), tidewatch {} (was {t})",
                    am_count.load(Ordering::SeqCst),
                    tw_count.load(Ordering::SeqCst)
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    push(0.0).await;
    // Let Prometheus discover Alertmanager (5 s service-discovery sync).
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (mut am_delays, mut tw_delays) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (a, t) = (
            am_count.load(Ordering::SeqCst),
            tw_count.load(Ordering::SeqCst),
        );
        let t0 = now_us();
        push(10.0).await;
        wait_both(a, t).await;
        am_delays.push((am_last.load(Ordering::SeqCst) - t0) as f64 / 1000.0);
        tw_delays.push((tw_last.load(Ordering::SeqCst) - t0) as f64 / 1000.0);
        // Resolve; wait for both resolved notifications.
        let (a, t) = (
            am_count.load(Ordering::SeqCst),
            tw_count.load(Ordering::SeqCst),
        );
        push(0.0).await;
        wait_both(a, t).await;
    }
    for d in [&mut am_delays, &mut tw_delays] {
        d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    println!(
        "threshold crossing -> webhook, same Prometheus data, 1 s rule interval: Prometheus+Alertmanager median {:.0} ms (max {:.0}), Tidewatch median {:.0} ms (max {:.0}), 5 crossings",
        am_delays[2], am_delays[4], tw_delays[2], tw_delays[4]
    );
    stop.cancel();
    let _ = prom.kill();
    let _ = am.kill();
    let _ = prom.wait();
    let _ = am.wait();
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

async fn threshold_delay() {
    let (url, count, last) = sink().await;
    // A fake Prometheus query API whose value the benchmark flips.
    let value = Arc::new(AtomicU64::new(0f64.to_bits()));
    let v2 = value.clone();
    let prom = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::post(move || {
            let v = f64::from_bits(v2.load(Ordering::SeqCst));
            async move {
                let result = if v > 5.0 {
                    serde_json::json!([{"metric": {"__name__": "x"}, "value": [0, v.to_string()]}])
                } else {
                    serde_json::json!([])
                };
                axum::Json(serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
            }
        }),
    );
    let lis = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let prom_url = format!("http://{}", lis.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(lis, prom).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("r.yml");
    std::fs::write(&rules, "groups:\n  - name: g\n    interval: 200ms\n    rules:\n      - alert: High\n        expr: x > 5\n").unwrap();
    let cfg = config(&format!(
        "query_url: {prom_url}\nrule_files: ['{}']\nroute:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 100ms\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {url}\n",
        rules.display()
    ));
    let mut reg = Registry::default();
    let stop = CancellationToken::new();
    let _engine = AlertEngine::start(cfg, dir.path(), &mut reg, stop.clone())
        .await
        .unwrap();
    let mut delays = Vec::new();
    for _ in 0..10 {
        let before = count.load(Ordering::SeqCst);
        let t0 = now_us();
        value.store(10f64.to_bits(), Ordering::SeqCst);
        while count.load(Ordering::SeqCst) == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        delays.push((last.load(Ordering::SeqCst) - t0) as f64 / 1000.0);
        // Resolve and wait for the resolved notification.
        let before = count.load(Ordering::SeqCst);
        value.store(0f64.to_bits(), Ordering::SeqCst);
        while count.load(Ordering::SeqCst) == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    delays.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "threshold crossing -> webhook: median {:.0} ms, max {:.0} ms (rule interval 200ms, group_wait 0s; bounded by the interval)",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    stop.cancel();
}

#[tokio::main]
async fn main() {
    // `BENCH_ONLY=side` runs the side-by-side delay alone.
    if std::env::var("BENCH_ONLY").as_deref() != Ok("side") {
        rule_evaluation().await;
        rule_evaluation_in_process().await;
        notifications().await;
        alertmanager_notifications().await;
        threshold_delay().await;
    }
    threshold_delay_side_by_side().await;
}
