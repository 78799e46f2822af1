//! Native histograms through the public engine: selectors return histogram
//! samples with lookback and staleness, `histogram_count/sum/avg` read
//! them in instant and range queries, and what is not evaluated fails
//! clearly instead of returning float nonsense.

use tidewatch_common::Labels;
use tidewatch_promql::native::{NOT_SUPPORTED, format_histogram, parse_histogram};
use tidewatch_promql::storage::STALE_NAN_BITS;
use tidewatch_promql::{Engine, MemStorage, Value};

fn h(s: &str) -> tidewatch_promql::native::FloatHistogram {
    parse_histogram(s).unwrap().0
}

fn store() -> MemStorage {
    let st = MemStorage::new();
    let l = Labels::from_pairs([("__name__", "lat"), ("job", "a")]);
    st.append_histograms(
        l.clone(),
        [
            (0, h("{{count:2 sum:3 buckets:[2]}}")),
            (60_000, h("{{count:4 sum:6 buckets:[4]}}")),
            (120_000, h("{{count:1 sum:1 buckets:[1]}}")),
        ],
    );
    // A stale marker ends the series at 3m.
    st.append(l, [(180_000, f64::from_bits(STALE_NAN_BITS))]);
    st.append(
        Labels::from_pairs([("__name__", "up"), ("job", "a")]),
        [(0, 1.0)],
    );
    st
}

async fn instant(st: &MemStorage, q: &str, t: i64) -> Value {
    Engine::default()
        .instant_query(st, q, t)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .value
}

#[tokio::test]
async fn selectors_return_histograms_with_hints_lookback_and_staleness() {
    let st = store();
    let Value::Vector(v) = instant(&st, "lat", 90_000).await else {
        panic!("not a vector")
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].timestamp, 90_000);
    let got = format_histogram(v[0].histogram.as_ref().unwrap());
    assert_eq!(
        got,
        "{{count:4 sum:6 counter_reset_hint:not_reset buckets:[4]}}"
    );
    // The count dropped at 2m: stored as a counter reset.
    let Value::Vector(v) = instant(&st, "lat offset 10s", 130_000).await else {
        panic!()
    };
    let got = format_histogram(v[0].histogram.as_ref().unwrap());
    assert_eq!(
        got,
        "{{count:1 sum:1 counter_reset_hint:reset buckets:[1]}}"
    );
    // The first sample keeps the unknown hint.
    let Value::Vector(v) = instant(&st, "lat", 0).await else {
        panic!()
    };
    assert_eq!(
        format_histogram(v[0].histogram.as_ref().unwrap()),
        "{{count:2 sum:3 buckets:[2]}}"
    );
    // Stale from 3m on.
    assert_eq!(instant(&st, "lat", 200_000).await, Value::Vector(vec![]));
    // Float series beside histograms still work.
    let Value::Vector(v) = instant(&st, "up == 1", 60_000).await else {
        panic!()
    };
    assert_eq!(v.len(), 1);
}

#[tokio::test]
async fn histogram_count_sum_avg_over_instants_and_ranges() {
    let st = store();
    let Value::Vector(v) = instant(&st, "histogram_avg(lat)", 60_000).await else {
        panic!()
    };
    assert_eq!((v[0].value, v[0].labels.metric_name()), (1.5, None));
    let r = Engine::default()
        .range_query(&st, "histogram_count(lat)", 0, 240_000, 60_000)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else { panic!() };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].timestamps, vec![0, 60_000, 120_000]);
    assert_eq!(m[0].values, vec![2.0, 4.0, 1.0]);
    let Value::Vector(v) = instant(&st, "histogram_sum((lat))", 120_000).await else {
        panic!()
    };
    assert_eq!(v[0].value, 1.0);
}

#[tokio::test]
async fn unsupported_expressions_fail_clearly() {
    let st = store();
    for q in [
        "rate(lat[5m])",
        "sum(lat)",
        "lat * 2",
        "histogram_quantile(0.9, rate(lat[5m]))",
    ] {
        let e = Engine::default()
            .instant_query(&st, q, 60_000)
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with(NOT_SUPPORTED), "{q}: {e}");
        assert_eq!(e.http_status(), 422);
    }
    let e = Engine::default()
        .range_query(&st, "lat", 0, 60_000, 60_000)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("range query results"), "{e}");
}
