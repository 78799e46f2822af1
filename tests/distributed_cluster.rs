//! The distributed mode on one machine, several processes: two producers
//! (remote-write clients) → two stateless ingesters → Kafka (Tansu) → two
//! aggregator replicas (consumer group) → blocks in S3 (SeaweedFS) → query
//! replicas, whose PromQL, series, label names and label values answers
//! must equal those of a single-node `tidewatch aggregator` fed the same
//! requests.

mod distributed_support;
mod support;

use std::time::Duration;

use distributed_support::{
    api_data, enc, kafka_yaml, now_ms, request, s3_yaml, write_config, write_retrying,
};
use support::{Tidewatch, post_remote_write, start_kafka, start_s3, wait_until};

const PRODUCERS: usize = 2;
const REQUESTS: i64 = 40;
const SERIES: usize = 20;
const SAMPLES: i64 = 15;

fn start(dir: &std::path::Path, name: &str, yaml: &str) -> Tidewatch {
    let d = dir.join(name);
    let cfg = write_config(&d, yaml);
    Tidewatch::start("aggregator", &d, &["--config", &cfg.to_string_lossy()])
}

/// Instant and range queries whose answers are compared.
fn queries(end_s: f64, start_s: f64) -> Vec<String> {
    let instant = [
        "count(dist_test)",
        "sum by (producer) (dist_test)",
        "dist_test{s=\"3\"}",
        "max_over_time(dist_test[10m])",
        "sum by (producer) (rate(dist_test[5m]))",
        "topk(3, dist_test)",
        "count_over_time(dist_test{producer=\"p1\"}[30m])",
    ];
    let mut out: Vec<String> = instant
        .iter()
        .map(|q| format!("/api/v1/query?query={}&time={end_s}", enc(q)))
        .collect();
    for q in ["sum by (producer) (dist_test)", "dist_test{s=~\"1|7\"}"] {
        out.push(format!(
            "/api/v1/query_range?query={}&start={start_s}&end={end_s}&step=30",
            enc(q)
        ));
    }
    // Series, label names and label values fan out too.
    let sel = |m: &str| format!("match[]={}", enc(m));
    out.extend([
        format!(
            "/api/v1/series?{}&start={start_s}&end={end_s}",
            sel("dist_test{producer=\"p1\"}")
        ),
        format!(
            "/api/v1/series?{}&{}",
            sel("dist_test{s=~\"1|2\"}"),
            sel("{s=\"19\"}")
        ),
        format!("/api/v1/series?{}&limit=3", sel("dist_test")),
        "/api/v1/labels".to_string(),
        format!("/api/v1/labels?{}", sel("dist_test{s=\"3\"}")),
        "/api/v1/label/s/values".to_string(),
        "/api/v1/label/__name__/values".to_string(),
        format!(
            "/api/v1/label/producer/values?{}",
            sel("dist_test{s=\"3\"}")
        ),
    ]);
    out
}

#[test]
fn kafka_s3_cluster_answers_like_a_single_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut kafka_proc, kport) = start_kafka(dir);
    let s3 = start_s3(dir, "tidewatch");
    let kafka = kafka_yaml(kport);

    let single = Tidewatch::start("aggregator", &dir.join("single"), &[]);
    let agg_a = start(
        dir,
        "agg-a",
        &format!(
            "    mode: consumer\n    replica: agg-a\n{kafka}{}",
            s3_yaml(&s3)
        ),
    );
    let agg_b = start(
        dir,
        "agg-b",
        &format!(
            "    mode: consumer\n    replica: agg-b\n{kafka}{}",
            s3_yaml(&s3)
        ),
    );
    let ingesters: Vec<Tidewatch> = (0..PRODUCERS)
        .map(|i| {
            start(
                dir,
                &format!("ingest-{i}"),
                &format!("    mode: ingester\n{kafka}"),
            )
        })
        .collect();
    let query = start(
        dir,
        "query",
        &format!(
            "    mode: query\n    query: {{replicas: ['http://{}', 'http://{}']}}\n{}",
            agg_a.addr,
            agg_b.addr,
            s3_yaml(&s3)
        ),
    );
    let blocks_only = start(
        dir,
        "query-blocks",
        &format!("    mode: query\n{}", s3_yaml(&s3)),
    );

    // Two producers, each writing to its ingester and to the single node.
    let base = now_ms() - 3_600_000;
    std::thread::scope(|sc| {
        for (p, ing) in ingesters.iter().enumerate() {
            let (ing_url, single_url) = (ing.url("/api/v1/write"), single.url("/api/v1/write"));
            sc.spawn(move || {
                let client = support::reqwest::blocking_client();
                for r in 0..REQUESTS {
                    let req = request("dist_test", &format!("p{p}"), SERIES, SAMPLES, r, base);
                    assert_eq!(write_retrying(&client, &ing_url, &req), 204, "ingester");
                    assert_eq!(post_remote_write(&client, &single_url, &req), 204, "single");
                }
            });
        }
    });
    let last = base + (REQUESTS * SAMPLES - 1) * 1000;
    let (start_s, end_s) = (base as f64 / 1000.0, last as f64 / 1000.0);
    let client = support::reqwest::blocking_client();

    // The single node holds everything (the comparison is not vacuous).
    let count = api_data(
        &client,
        &single.url(&format!(
            "/api/v1/query?query=count(dist_test)&time={end_s}"
        )),
    )
    .unwrap();
    assert_eq!(
        count["result"][0]["value"][1],
        (PRODUCERS * SERIES).to_string()
    );

    let same_as_single = |node: &Tidewatch| {
        queries(end_s, start_s).iter().all(|q| {
            let want = api_data(&client, &single.url(q));
            let got = api_data(&client, &node.url(q));
            want.is_some() && want == got
        })
    };
    // Heads (remote-read) + bucket: identical once both replicas consumed.
    wait_until(
        "the query replica to answer like the single node",
        Duration::from_secs(90),
        || same_as_single(&query),
    );
    // Blocks alone, from S3: identical once every replica flushed and
    // uploaded (flush_interval 1s, sync_interval 300ms).
    wait_until(
        "the bucket-only query replica to answer like the single node",
        Duration::from_secs(120),
        || same_as_single(&blocks_only),
    );
    // Both replicas got partitions, and each uploaded its blocks.
    for agg in [&agg_a, &agg_b] {
        let n = api_data(
            &client,
            &agg.url(&format!(
                "/api/v1/query?query=count(dist_test)&time={end_s}"
            )),
        )
        .unwrap();
        let n: usize = n["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(
            n > 0 && n < PRODUCERS * SERIES,
            "each replica holds a share of the series, {} holds {n}",
            agg.addr
        );
    }
    // Self-metrics: each consumer consumed and uploaded, each ingester
    // published.
    let metric = |node: &Tidewatch, name: &str| -> f64 {
        let (_, text) = support::blocking_get(&node.url("/metrics"));
        text.lines()
            .filter(|l| {
                l.split([' ', '{'])
                    .next()
                    .is_some_and(|n| n.ends_with(name))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    for agg in [&agg_a, &agg_b] {
        assert!(metric(agg, "kafka_messages_consumed_total") > 0.0);
        assert!(metric(agg, "blocks_uploaded_total") > 0.0);
    }
    for ing in &ingesters {
        assert_eq!(
            metric(ing, "kafka_requests_published_total"),
            REQUESTS as f64
        );
    }
    // The metadata answers are not vacuous, and bad requests fail the same way.
    let series = api_data(
        &client,
        &query.url(&format!("/api/v1/series?match[]={}", enc("dist_test"))),
    )
    .unwrap();
    assert_eq!(series.as_array().unwrap().len(), PRODUCERS * SERIES);
    for bad in [
        "/api/v1/series",
        "/api/v1/label/x-y/values",
        "/api/v1/labels?match[]=rate(x[5m])",
    ] {
        let status = |node: &Tidewatch| client.get(node.url(bad)).send().unwrap().status();
        assert_eq!(status(&query).as_u16(), 400, "{bad}");
        assert_eq!(status(&single), status(&query), "{bad}");
    }
    // Remote-read is a real Prometheus endpoint: a bad body is a clear 400.
    let r = client
        .post(query.url("/api/v1/read"))
        .body("not snappy")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("ReadRequest"));
    // And the ingester refuses bad remote-write before touching Kafka.
    let r = client
        .post(ingesters[0].url("/api/v1/write"))
        .header("Content-Type", "text/plain")
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    // Without the broker nothing is acknowledged: 503 once the
    // acknowledgement deadline (ack_timeout: 5s) passes, never 204.
    kafka_proc.kill9();
    let req = request("dist_test", "p0", 1, 1, REQUESTS, base);
    let slow = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(
        post_remote_write(&slow, &ingesters[0].url("/api/v1/write"), &req),
        503
    );
}

#[test]
fn distributed_config_errors_name_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        "    mode: query\n    query: {replicas: ['agg-0:9800']}\n    kafka: {max_batch_messages: 0}\n",
    );
    let out = std::process::Command::new(support::tidewatch_bin())
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "aggregator.distributed.query.replicas[0]: must be an http:// or https:// URL"
        ),
        "{text}"
    );
    assert!(
        text.contains("aggregator.distributed.kafka.max_batch_messages: must be positive"),
        "{text}"
    );
}
