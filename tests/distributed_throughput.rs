//! Throughput of the multi-process setup next to a single node (a
//! measurement, not a check: run by hand, figures go to docs/scaling.md):
//!
//! ```text
//! cargo test --release -p tidewatch --test distributed_throughput -- --ignored --nocapture
//! ```
//!
//! A simple loop: `WRITERS` threads each POST `REQUESTS` remote-write
//! requests of `SERIES` series × `SAMPLES` samples, back to back. Reported:
//! acknowledged samples per second (first request to last 204), and for the
//! distributed setup also the time until the query replica answers the full
//! sample count (ingest → Kafka → consumers → queryable). Then the median
//! latency of a few read requests (PromQL range query, series, label names,
//! label values) on the single node and on the query replica (fan-out to both
//! consumers), `QUERY_RUNS` runs each.

mod distributed_support;
mod support;

use std::time::{Duration, Instant};

use distributed_support::{
    api_data, enc, kafka_yaml, now_ms, request, write_config, write_retrying,
};
use support::{Tidewatch, start_kafka, wait_until};

const WRITERS: usize = 4;
const REQUESTS: i64 = 100;
const SERIES: usize = 100;
const SAMPLES: i64 = 10;
const QUERY_RUNS: usize = 20;

/// Median wall time of `QUERY_RUNS` GETs of `url` (each must succeed).
fn median_latency(client: &reqwest::blocking::Client, url: &str) -> Duration {
    let mut times: Vec<Duration> = (0..QUERY_RUNS)
        .map(|_| {
            let t = Instant::now();
            assert!(api_data(client, url).is_some(), "{url}");
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// Writes the load to `urls` (writer i uses `urls[i % len]`); returns the
/// elapsed time until the last acknowledgement.
fn load(urls: &[String], metric: &str, base: i64) -> Duration {
    let started = Instant::now();
    std::thread::scope(|sc| {
        for w in 0..WRITERS {
            let url = urls[w % urls.len()].clone();
            sc.spawn(move || {
                let client = support::reqwest::blocking_client();
                for r in 0..REQUESTS {
                    let req = request(metric, &format!("w{w}"), SERIES, SAMPLES, r, base);
                    assert_eq!(write_retrying(&client, &url, &req), 204);
                }
            });
        }
    });
    started.elapsed()
}

fn total() -> f64 {
    (WRITERS as i64 * REQUESTS * SERIES as i64 * SAMPLES) as f64
}

fn count_query(node: &Tidewatch, metric: &str, base: i64) -> String {
    node.url(&format!(
        "/api/v1/query?query={}&time={}",
        enc(&format!("sum(count_over_time({metric}[2h]))")),
        (base + 7_000_000) as f64 / 1000.0
    ))
}

#[test]
#[ignore = "measurement, run by hand (see the module docs)"]
fn throughput_single_node_vs_distributed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let base = now_ms() - 3_000_000;
    let client = support::reqwest::blocking_client();

    let single = Tidewatch::start("aggregator", &dir.join("single"), &[]);
    let t = load(&[single.url("/api/v1/write")], "bench", base);
    println!(
        "single node: {:.0} samples/s acknowledged ({:.0} samples in {t:?})",
        total() / t.as_secs_f64(),
        total()
    );

    let (_kafka, kport) = start_kafka(dir);
    let kafka = kafka_yaml(kport);
    let start = |name: &str, yaml: String| {
        let d = dir.join(name);
        let cfg = write_config(&d, &yaml);
        Tidewatch::start("aggregator", &d, &["--config", &cfg.to_string_lossy()])
    };
    let a = start(
        "agg-a",
        format!("    mode: consumer\n    replica: agg-a\n{kafka}"),
    );
    let b = start(
        "agg-b",
        format!("    mode: consumer\n    replica: agg-b\n{kafka}"),
    );
    let ingesters: Vec<Tidewatch> = (0..2)
        .map(|i| start(&format!("ing-{i}"), format!("    mode: ingester\n{kafka}")))
        .collect();
    let query = start(
        "query",
        format!(
            "    mode: query\n    query: {{replicas: ['http://{}', 'http://{}']}}\n",
            a.addr, b.addr
        ),
    );
    let urls: Vec<String> = ingesters.iter().map(|i| i.url("/api/v1/write")).collect();
    // Warm-up: one request touching every partition, queryable through the
    // query replica, so the consumer group has settled before timing.
    let warm = request("warmup", "w", SERIES, 1, 0, base);
    assert_eq!(write_retrying(&client, &urls[0], &warm), 204);
    let warm_url = count_query(&query, "warmup", base);
    wait_until(
        "the warm-up request queryable",
        Duration::from_secs(120),
        || {
            api_data(&client, &warm_url)
                .and_then(|d| d["result"][0]["value"][1].as_str()?.parse::<usize>().ok())
                == Some(SERIES)
        },
    );
    let started = Instant::now();
    let t = load(&urls, "bench", base);
    println!(
        "distributed (2 ingesters, 2 consumers): {:.0} samples/s acknowledged ({t:?})",
        total() / t.as_secs_f64()
    );
    let url = count_query(&query, "bench", base);
    wait_until("all samples queryable", Duration::from_secs(300), || {
        api_data(&client, &url)
            .and_then(|d| d["result"][0]["value"][1].as_str()?.parse::<f64>().ok())
            == Some(total())
    });
    let e2e = started.elapsed();
    println!(
        "distributed end to end (first write to all queryable): {:.0} samples/s ({e2e:?})",
        total() / e2e.as_secs_f64()
    );

    // Reads: the same requests on the single node and on the query replica.
    let (start_s, end_s) = (base as f64 / 1000.0, (base + 7_000_000) as f64 / 1000.0);
    let reads = [
        (
            "range query sum by (producer) (rate(bench[5m])), 1h, step 60s",
            format!(
                "/api/v1/query_range?query={}&start={start_s}&end={}&step=60",
                enc("sum by (producer) (rate(bench[5m]))"),
                start_s + 3600.0
            ),
        ),
        (
            "series match[]=bench{s=\"7\"}",
            format!("/api/v1/series?match[]={}", enc("bench{s=\"7\"}")),
        ),
        (
            "labels match[]=bench",
            format!("/api/v1/labels?match[]=bench&start={start_s}&end={end_s}"),
        ),
        (
            "label/s/values (no match[])",
            "/api/v1/label/s/values".to_string(),
        ),
    ];
    for (what, path) in reads {
        let s = median_latency(&client, &single.url(&path));
        let q = median_latency(&client, &query.url(&path));
        println!("read {what}: single node {s:?}, query replica {q:?} (median of {QUERY_RUNS})");
    }
}
