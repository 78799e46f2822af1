//! The compactor role owns the bucket (SeaweedFS): two replicas upload
//! small blocks of the same time partitions; one `mode: compactor` process
//! merges them into one block per partition, deletes the blocks it
//! replaced and those past the retention time, and a bucket-only query
//! replica answers the retained data exactly like a single node fed the
//! same requests — before and after compaction.

mod distributed_support;
mod support;

use std::time::Duration;

use distributed_support::{api_data, enc, now_ms, request};
use support::{S3, Tidewatch, post_remote_write, start_s3, wait_until};

const SERIES: usize = 10;
const SAMPLES: i64 = 30;
const ROUNDS: i64 = 3;
const HOUR: i64 = 3_600_000;

fn object_store(s3: &S3) -> String {
    format!(
        "    object_store: {{bucket: {}, endpoint: '{}', allow_http: true, access_key_id: {}, secret_access_key: {}, sync_interval: 300ms}}\n",
        s3.bucket, s3.endpoint, s3.access_key, s3.secret_key
    )
}

fn start(dir: &std::path::Path, name: &str, aggregator: &str, distributed: &str) -> Tidewatch {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let cfg = d.join("tidewatch.yml");
    std::fs::write(
        &cfg,
        format!("aggregator:\n{aggregator}  distributed:\n{distributed}"),
    )
    .unwrap();
    Tidewatch::start("aggregator", &d, &["--config", &cfg.to_string_lossy()])
}

/// Sum of the samples of every metric line whose name ends with `name`.
fn metric(node: &Tidewatch, name: &str) -> f64 {
    let (_, text) = support::blocking_get(&node.url("/metrics"));
    text.lines()
        .filter(|l| {
            l.split([' ', '{'])
                .next()
                .is_some_and(|n| n.ends_with(name))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn one_compactor_merges_replicas_blocks_and_applies_retention_in_the_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let s3 = start_s3(dir, "tidewatch");
    // Uploaders keep their small blocks (no local compaction, no local
    // retention): whatever changes in the bucket is the compactor's doing.
    let uploader = "  flush_interval: 1s\n  retention_time: 0s\n  compact_min_blocks: 1000\n";
    let replicas: Vec<Tidewatch> = ["agg-a", "agg-b"]
        .iter()
        .map(|r| {
            start(
                dir,
                r,
                uploader,
                &format!("    replica: {r}\n{}", object_store(&s3)),
            )
        })
        .collect();
    let single = start(dir, "single", uploader, "    mode: standalone\n");
    let query = start(
        dir,
        "query",
        "",
        &format!("    mode: query\n{}", object_store(&s3)),
    );
    let client = support::reqwest::blocking_client();

    // An old partition (past a 2h retention once the recent data exists)
    // and three rounds of a recent partition, each round flushed and
    // uploaded as its own small block by each replica.
    let recent = (now_ms() - 6 * HOUR).div_euclid(2 * HOUR) * 2 * HOUR;
    let old = recent - 4 * HOUR;
    let write = |producer: usize, req: i64, base: i64| {
        let r = request(
            "comp_test",
            &format!("p{producer}"),
            SERIES,
            SAMPLES,
            req,
            base,
        );
        for node in [&replicas[producer], &single] {
            assert_eq!(
                post_remote_write(&client, &node.url("/api/v1/write"), &r),
                204
            );
        }
    };
    let mut uploaded = [0.0f64; 2];
    let mut write_round = |req: i64, base: i64| {
        for p in 0..2 {
            write(p, req, base);
        }
        for (p, node) in replicas.iter().enumerate() {
            wait_until(
                "the round's block to be uploaded",
                Duration::from_secs(60),
                || metric(node, "blocks_uploaded_total") > uploaded[p],
            );
            uploaded[p] = metric(node, "blocks_uploaded_total");
        }
    };
    write_round(0, old);
    for r in 0..ROUNDS {
        write_round(r, recent);
    }
    assert!(uploaded.iter().all(|&n| n >= (ROUNDS + 1) as f64));

    let recent_end = (recent + (ROUNDS * SAMPLES - 1) * 1000) as f64 / 1000.0;
    let old_end = (old + (SAMPLES - 1) * 1000) as f64 / 1000.0;
    let recent_queries: Vec<String> = vec![
        format!(
            "/api/v1/query?query={}&time={recent_end}",
            enc("count(comp_test)")
        ),
        format!(
            "/api/v1/query?query={}&time={recent_end}",
            enc("sum by (producer) (count_over_time(comp_test[2h]))")
        ),
        format!(
            "/api/v1/query_range?query={}&start={}&end={recent_end}&step=15",
            enc("sum by (producer) (comp_test)"),
            recent as f64 / 1000.0
        ),
        format!(
            "/api/v1/query_range?query={}&start={}&end={recent_end}&step=10",
            enc("comp_test{s=\"3\"}"),
            recent as f64 / 1000.0
        ),
    ];
    let old_query = format!(
        "/api/v1/query?query={}&time={old_end}",
        enc("count_over_time(comp_test[10m])")
    );
    let same_as_single = |queries: &[String]| {
        queries.iter().all(|q| {
            let want = api_data(&client, &single.url(q));
            want.is_some() && want == api_data(&client, &query.url(q))
        })
    };
    let result_len = |node: &Tidewatch, q: &str| {
        api_data(&client, &node.url(q)).and_then(|d| d["result"].as_array().map(|r| r.len()))
    };

    // Before compaction: the bucket's many small blocks answer like the
    // single node, old data included.
    let mut with_old = recent_queries.clone();
    with_old.push(old_query.clone());
    wait_until(
        "the query replica to answer like the single node from the small blocks",
        Duration::from_secs(60),
        || same_as_single(&with_old),
    );
    assert_eq!(result_len(&single, &old_query), Some(2 * SERIES));

    // The compactor: retention 2h, merges a partition from 2 blocks.
    let compactor = start(
        dir,
        "compactor",
        "  retention_time: 2h\n  compact_min_blocks: 2\n",
        &format!("    mode: compactor\n{}", object_store(&s3)),
    );
    wait_until(
        "one live block left: the recent partition merged, the old one expired",
        Duration::from_secs(90),
        || {
            metric(&compactor, "bucket_blocks_deleted_expired_total") >= 2.0
                && metric(&compactor, "bucket_compactions_total") >= 1.0
                && metric(&compactor, "bucket_live_blocks") == 1.0
        },
    );
    // Every small recent block was replaced and deleted.
    assert!(
        metric(&compactor, "bucket_blocks_deleted_replaced_total") >= (2 * ROUNDS) as f64,
        "replaced blocks deleted: {}",
        metric(&compactor, "bucket_blocks_deleted_replaced_total")
    );
    // Retained data: unchanged answers from the one merged block; expired
    // data: gone from the bucket (the single node keeps it: no retention).
    wait_until(
        "the query replica to answer from the compacted bucket",
        Duration::from_secs(60),
        || same_as_single(&recent_queries) && result_len(&query, &old_query) == Some(0),
    );
    assert_eq!(result_len(&single, &old_query), Some(2 * SERIES));
    // The uploaders are not the owners: they deleted nothing.
    for node in &replicas {
        assert_eq!(metric(node, "bucket_blocks_deleted_expired_total"), 0.0);
    }
}
