//! The store through the aggregator's in-process API: ingest, PromQL storage
//! selects and SQL over head and blocks, flush, compaction, restart.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use promql_parser::label::{MatchOp, Matcher};
use tidewatch_aggregator::{Aggregator, Config, IngestSeries};
use tidewatch_common::Labels;
use tidewatch_promql::storage::{STALE_NAN_BITS, SelectRequest};
use tokio_util::sync::CancellationToken;

async fn open(dir: &std::path::Path, config: Config) -> Arc<Aggregator> {
    Aggregator::open(
        config,
        dir,
        &mut Registry::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

fn series(name: &str, job: &str, ts: &[i64], v: f64) -> IngestSeries {
    IngestSeries::new(
        Labels::from_pairs([("__name__", name), ("job", job)]),
        ts.to_vec(),
        vec![v; ts.len()],
    )
}

async fn select(a: &Aggregator, name: &str, start: i64, end: i64) -> Vec<(String, Vec<i64>)> {
    let r = a
        .storage()
        .select(SelectRequest {
            matchers: vec![Matcher::new(MatchOp::Equal, "__name__", name)],
            start_ms: start,
            end_ms: end,
        })
        .await
        .unwrap();
    r.into_iter()
        .map(|s| (s.labels.get("job").unwrap().to_string(), s.timestamps))
        .collect()
}

async fn sql_count(a: &Aggregator, q: &str) -> i64 {
    let b = a
        .sql_context()
        .sql(q)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let c = b[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap();
    c.value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_flush_compact_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        compact_min_blocks: 2,
        ..Config::default()
    };
    let a = open(dir.path(), config.clone()).await;
    a.append(vec![
        series("m", "a", &[1000, 2000, 3000], 1.0),
        series("m", "b", &[1000], 2.0),
        series("other", "a", &[1000], 3.0),
    ])
    .await
    .unwrap();
    assert_eq!(
        select(&a, "m", 0, 10_000).await,
        vec![
            ("a".into(), vec![1000, 2000, 3000]),
            ("b".into(), vec![1000])
        ]
    );
    assert_eq!(
        select(&a, "m", 1500, 2500).await,
        vec![("a".into(), vec![2000])]
    );

    a.flush().await.unwrap();
    assert_eq!(a.store().blocks().len(), 1);
    // Out of order, duplicate and a staleness marker, into the new head.
    a.append(vec![
        series("m", "a", &[2500, 2000], 1.0),
        IngestSeries::new(
            Labels::from_pairs([("__name__", "m"), ("job", "b")]),
            vec![4000],
            vec![f64::from_bits(STALE_NAN_BITS)],
        ),
    ])
    .await
    .unwrap();
    assert_eq!(
        select(&a, "m", 0, 10_000).await,
        vec![
            ("a".into(), vec![1000, 2000, 2500, 3000]),
            ("b".into(), vec![1000, 4000])
        ]
    );
    assert_eq!(
        sql_count(&a, "SELECT count(*) FROM metrics WHERE metric = 'm'").await,
        7 // 4 + 2 head/block rows, one duplicate (2000) counted in both
    );
    a.flush().await.unwrap();
    // Two blocks in one partition with compact_min_blocks=2 → compacted.
    assert_eq!(a.store().blocks().len(), 1);
    assert_eq!(
        sql_count(&a, "SELECT count(*) FROM metrics WHERE metric = 'm'").await,
        6
    );
    a.close().await.unwrap();
    drop(a);

    let a = open(dir.path(), config).await;
    let got = a
        .storage()
        .select(SelectRequest {
            matchers: vec![Matcher::new(MatchOp::Equal, "job", "b")],
            start_ms: 0,
            end_ms: 10_000,
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].values[1].to_bits(), STALE_NAN_BITS);
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_replay_without_flush_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.limits.max_labels_per_series = 2;
    {
        let a = open(dir.path(), config.clone()).await;
        a.append(vec![series("w", "a", &[1000, 2000], 5.0)])
            .await
            .unwrap();
        let err = a
            .append(vec![IngestSeries::new(
                Labels::from_pairs([("__name__", "w"), ("a", "1"), ("b", "2")]),
                vec![1],
                vec![1.0],
            )])
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("aggregator.limits.max_labels_per_series=2"),
            "{err}"
        );
        // Dropped without close: only the WAL has the data.
    }
    let a = open(dir.path(), config).await;
    assert_eq!(
        select(&a, "w", 0, 5000).await,
        vec![("a".into(), vec![1000, 2000])]
    );
    assert_eq!(a.store().blocks().len(), 0);
}
