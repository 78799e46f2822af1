//! The engine through its public interface: `Engine` over `MemStorage`.

use std::time::Duration;

use tidewatch_common::Labels;
use tidewatch_promql::storage::STALE_NAN_BITS;
use tidewatch_promql::{Engine, EngineOptions, MemStorage, QueryError, Value};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// `http_requests_total{job="a"}` counting 0,10,20,… every 15s for 10 minutes, and
/// `temp{room="x"}` with a staleness marker at 60s.
fn storage() -> MemStorage {
    let s = MemStorage::new();
    s.append(
        labels(&[("__name__", "http_requests_total"), ("job", "a")]),
        (0..=40).map(|i| (i * 15_000, i as f64 * 10.0)),
    );
    s.append(
        labels(&[("__name__", "http_requests_total"), ("job", "b")]),
        (0..=40).map(|i| (i * 15_000, i as f64 * 20.0)),
    );
    s.append(
        labels(&[("__name__", "temp"), ("room", "x")]),
        [
            (0, 21.0),
            (30_000, 22.0),
            (60_000, f64::from_bits(STALE_NAN_BITS)),
        ],
    );
    s
}

fn vector(v: &Value) -> Vec<(String, f64)> {
    let Value::Vector(samples) = v else {
        panic!("expected a vector, got {v:?}")
    };
    let mut out: Vec<(String, f64)> = samples
        .iter()
        .map(|s| (s.labels.to_string(), s.value))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn instant_selector_honours_lookback_and_staleness() {
    let s = storage();
    let e = Engine::default();
    let r = e.instant_query(&s, "temp", 45_000).await.unwrap();
    assert_eq!(vector(&r.value), vec![(r#"temp{room="x"}"#.into(), 22.0)]);
    // The staleness marker at 60s ends the series immediately.
    let r = e.instant_query(&s, "temp", 61_000).await.unwrap();
    assert_eq!(vector(&r.value), vec![]);
    // Without a marker a sample is visible for the lookback delta only.
    let short = Engine::new(EngineOptions {
        lookback_delta: Duration::from_secs(10),
        ..Default::default()
    });
    let r = short.instant_query(&s, "temp", 45_000).await.unwrap();
    assert_eq!(vector(&r.value), vec![]);
}

#[tokio::test]
async fn rate_aggregation_and_binary_ops() {
    let s = storage();
    let e = Engine::default();
    let r = e
        .instant_query(&s, "sum by (job) (rate(http_requests_total[5m]))", 600_000)
        .await
        .unwrap();
    let v = vector(&r.value);
    assert_eq!(v.len(), 2);
    assert!((v[0].1 - 10.0 / 15.0).abs() < 1e-9, "{v:?}");
    assert!((v[1].1 - 20.0 / 15.0).abs() < 1e-9, "{v:?}");
    let r = e
        .instant_query(
            &s,
            r#"http_requests_total{job="b"} / ignoring(job) http_requests_total{job="a"}"#,
            600_000,
        )
        .await
        .unwrap();
    assert_eq!(vector(&r.value), vec![("{}".into(), 2.0)]);
}

#[tokio::test]
async fn range_query_returns_a_matrix_per_step() {
    let s = storage();
    let e = Engine::default();
    let r = e
        .range_query(
            &s,
            r#"http_requests_total{job="a"} offset 1m"#,
            60_000,
            120_000,
            30_000,
        )
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("expected a matrix")
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].timestamps, vec![60_000, 90_000, 120_000]);
    assert_eq!(m[0].values, vec![0.0, 20.0, 40.0]);
    let r = e
        .range_query(&s, "time()", 0, 20_000, 10_000)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("expected a matrix")
    };
    assert_eq!(m[0].values, vec![0.0, 10.0, 20.0]);
}

#[tokio::test]
async fn errors_map_to_prometheus_types() {
    let s = storage();
    let e = Engine::default();
    let err = e.instant_query(&s, "sum(", 0).await.unwrap_err();
    assert!(matches!(err, QueryError::BadData(_)), "{err:?}");
    assert_eq!((err.error_type(), err.http_status()), ("bad_data", 400));
    let err = e.range_query(&s, "up", 0, 10, 0).await.unwrap_err();
    assert_eq!(err.error_type(), "bad_data");
    let err = e
        .instant_query(&s, "http_requests_total + on() http_requests_total", 0)
        .await
        .unwrap_err();
    assert_eq!((err.error_type(), err.http_status()), ("execution", 422));
}

#[tokio::test]
async fn max_samples_and_timeout_are_enforced() {
    let s = storage();
    let small = Engine::new(EngineOptions {
        max_samples: 10,
        ..Default::default()
    });
    let err = small
        .instant_query(&s, "http_requests_total[10m]", 600_000)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too many samples"), "{err}");
    let hasty = Engine::new(EngineOptions {
        timeout: Duration::ZERO,
        ..Default::default()
    });
    let err = hasty
        .instant_query(&s, "http_requests_total", 0)
        .await
        .unwrap_err();
    assert_eq!((err.error_type(), err.http_status()), ("timeout", 503));
}

#[tokio::test]
async fn memstorage_orders_and_replaces_samples() {
    let s = MemStorage::new();
    let l = labels(&[("__name__", "m")]);
    s.append(l.clone(), [(20_000, 2.0), (10_000, 1.0)]);
    s.append(l.clone(), [(10_000, 5.0)]);
    assert_eq!(s.series_count(), 1);
    let e = Engine::default();
    let r = e.instant_query(&s, "m[1m]", 30_000).await.unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("expected a matrix")
    };
    assert_eq!(m[0].timestamps, vec![10_000, 20_000]);
    assert_eq!(m[0].values, vec![5.0, 2.0]);
    s.clear();
    assert_eq!(s.series_count(), 0);
}

#[tokio::test]
async fn max_samples_covers_subquery_results() {
    let s = storage();
    // 2 series, few raw samples, but the 1s-resolution subquery materialises
    // 2 × 601 points.
    let e = Engine::new(EngineOptions {
        max_samples: 1000,
        ..Default::default()
    });
    let err = e
        .instant_query(&s, "max_over_time(http_requests_total[10m:1s])", 600_000)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too many samples"), "{err}");
    let r = e
        .instant_query(&s, "max_over_time(http_requests_total[10m:1m])", 600_000)
        .await
        .unwrap();
    assert_eq!(vector(&r.value).len(), 2);
}

/// A storage whose selects never complete.
struct Stuck;

impl tidewatch_promql::Storage for Stuck {
    fn select(
        &self,
        _req: tidewatch_promql::SelectRequest,
    ) -> tidewatch_promql::storage::SelectFuture<'_> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn timeout_covers_the_storage_phase() {
    let e = Engine::new(EngineOptions {
        timeout: Duration::from_millis(50),
        ..Default::default()
    });
    let err = e.instant_query(&Stuck, "up", 0).await.unwrap_err();
    assert_eq!(err.error_type(), "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluates_on_a_multi_threaded_runtime() {
    let s = storage();
    let r = Engine::default()
        .instant_query(&s, "count(http_requests_total)", 600_000)
        .await
        .unwrap();
    assert_eq!(vector(&r.value), vec![("{}".into(), 2.0)]);
}

/// A storage returning every series in two parts, like a head and a block.
struct Split(MemStorage);

impl tidewatch_promql::Storage for Split {
    fn select(
        &self,
        req: tidewatch_promql::SelectRequest,
    ) -> tidewatch_promql::storage::SelectFuture<'_> {
        let mut out = Vec::new();
        for s in self.0.select_sync(&req) {
            let mid = s.timestamps.len() / 2;
            out.push(tidewatch_promql::Series {
                labels: s.labels.clone(),
                timestamps: s.timestamps[mid..].to_vec(),
                values: s.values[mid..].to_vec(),
            });
            out.push(tidewatch_promql::Series {
                labels: s.labels,
                timestamps: s.timestamps[..mid].to_vec(),
                values: s.values[..mid].to_vec(),
            });
        }
        Box::pin(async move { Ok(out) })
    }
}

#[tokio::test]
async fn series_split_by_the_storage_are_merged() {
    let s = Split(storage());
    let e = Engine::default();
    let r = e
        .range_query(&s, r#"http_requests_total{job="a"}"#, 0, 600_000, 60_000)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("expected a matrix")
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].values.len(), 11);
    let r = e
        .instant_query(
            &s,
            r#"increase(http_requests_total{job="a"}[10m])"#,
            600_000,
        )
        .await
        .unwrap();
    let v = vector(&r.value);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, r#"{job="a"}"#);
    assert!((v[0].1 - 400.0).abs() < 1e-9, "{v:?}");
}

#[tokio::test]
async fn resolution_limits_are_enforced() {
    let s = storage();
    let e = Engine::default();
    let err = e.range_query(&s, "up", 0, 86_400_000, 1).await.unwrap_err();
    assert_eq!(err.error_type(), "bad_data");
    assert!(err.to_string().contains("maximum resolution"), "{err}");
    // A subquery at 1ms resolution over a year is refused, not allocated.
    let err = e
        .instant_query(&s, "max_over_time(http_requests_total[365d:1ms])", 600_000)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too many samples"), "{err}");
}

#[test]
fn format_query_pretty_prints_or_rejects() {
    assert_eq!(
        tidewatch_promql::format_query("sum(rate(x[5m]))by(job)").unwrap(),
        "sum by (job) (rate(x[5m]))"
    );
    assert_eq!(
        tidewatch_promql::format_query("sum(")
            .unwrap_err()
            .error_type(),
        "bad_data"
    );
}

#[tokio::test]
async fn holt_winters_is_double_exponential_smoothing() {
    let s = storage();
    let e = Engine::default();
    let a = e
        .instant_query(
            &s,
            "holt_winters(http_requests_total[5m], 0.3, 0.6)",
            600_000,
        )
        .await
        .unwrap();
    let b = e
        .instant_query(
            &s,
            "double_exponential_smoothing(http_requests_total[5m], 0.3, 0.6)",
            600_000,
        )
        .await
        .unwrap();
    assert_eq!(vector(&a.value).len(), 2);
    assert_eq!(vector(&a.value), vector(&b.value));
}

#[tokio::test]
async fn or_joins_a_label_set_present_on_alternating_sides() {
    let s = MemStorage::new();
    s.append(labels(&[("__name__", "m"), ("side", "x")]), [(0, 1.0)]);
    s.append(
        labels(&[("__name__", "m"), ("side", "x"), ("alt", "1")]),
        [(60_000, 2.0)],
    );
    let e = Engine::new(EngineOptions {
        lookback_delta: Duration::from_secs(30),
        ..Default::default()
    });
    let r = e
        .range_query(
            &s,
            r#"m{alt=""} or label_replace(m{alt="1"}, "alt", "", "", "")"#,
            0,
            60_000,
            60_000,
        )
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("expected a matrix")
    };
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].values, vec![1.0, 2.0]);
}

#[tokio::test]
async fn extreme_offsets_and_ranges_do_not_overflow() {
    let s = storage();
    let e = Engine::default();
    for (q, series) in [
        ("http_requests_total offset 100000000y", 0),
        ("http_requests_total offset -100000000y", 0),
        ("rate(http_requests_total[100000000y])", 2),
        (
            "max_over_time(http_requests_total[100000000y:1y] offset -100000000y)",
            0,
        ),
    ] {
        match e.instant_query(&s, q, 600_000).await {
            Ok(r) => assert_eq!(vector(&r.value).len(), series, "{q}"),
            Err(err) => panic!("{q}: {err}"),
        }
    }
}
