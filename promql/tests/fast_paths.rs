//! The engine's shortcuts give exactly the results of its general paths:
//! each query is compared, bit for bit, with an equivalent formulation that
//! the shortcut does not apply to.

use tidewatch_common::Labels;
use tidewatch_promql::storage::STALE_NAN_BITS;
use tidewatch_promql::{Engine, MemStorage, Value};

/// 60 counters `c{job, instance, status}` over 20 minutes with jittered
/// scrape times, counter resets and a few staleness gaps.
fn storage() -> MemStorage {
    let s = MemStorage::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for i in 0..60 {
        let labels = Labels::from_pairs([
            ("__name__", "c".to_string()),
            ("job", format!("j{}", i % 3)),
            ("instance", format!("i{}", i / 6)),
            ("status", format!("s{}", (i / 3) % 2)),
        ]);
        let mut v = rnd(100) as f64;
        let mut samples = Vec::new();
        for k in 0..80i64 {
            let t = k * 15_000 + rnd(5_000) as i64;
            if rnd(25) == 0 {
                v = rnd(3) as f64; // reset
            }
            v += rnd(40) as f64 / 4.0;
            let stale = i % 7 == 0 && (30..34).contains(&k);
            samples.push((
                t,
                if stale {
                    f64::from_bits(STALE_NAN_BITS)
                } else {
                    v
                },
            ));
        }
        s.append(labels, samples);
    }
    s
}

/// The matrix as text with exact value bits.
fn exact(v: &Value) -> String {
    let Value::Matrix(m) = v else {
        panic!("expected a matrix, got {v:?}")
    };
    m.iter()
        .map(|s| {
            let pts: Vec<String> = s
                .timestamps
                .iter()
                .zip(&s.values)
                .map(|(t, v)| format!("{t}:{:x}", v.to_bits()))
                .collect();
            format!("{} {}\n", s.labels, pts.join(" "))
        })
        .collect()
}

async fn same(s: &MemStorage, fast: &str, general: &str) {
    let e = Engine::default();
    let a = e
        .range_query(s, fast, 120_000, 1_140_000, 10_000)
        .await
        .unwrap();
    let b = e
        .range_query(s, general, 120_000, 1_140_000, 10_000)
        .await
        .unwrap();
    let (a, b) = (exact(&a.value), exact(&b.value));
    assert!(!a.is_empty(), "{fast} returned nothing");
    assert_eq!(a, b, "{fast} differs from {general}");
}

#[tokio::test]
async fn aggregations_folded_into_range_functions_match_materialised_input() {
    let s = storage();
    for op in [
        "sum", "avg", "count", "group", "min", "max", "stddev", "stdvar",
    ] {
        for m in ["by (job)", "without (instance)", ""] {
            // `* 1` leaves the values alone but puts a binary operator
            // between the aggregation and the range function.
            same(
                &s,
                &format!("{op} {m} (rate(c[1m]))"),
                &format!("{op} {m} (rate(c[1m]) * 1)"),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn series_by_series_matching_matches_step_by_step_matching() {
    let s = storage();
    // `fill` forces the step-by-step loop; every series has its partner
    // whenever it has a value, so the fill values are never used.
    same(
        &s,
        "c / ignoring(status) group_left sum without (status) (c)",
        "c / ignoring(status) group_left fill(12345) sum without (status) (c)",
    )
    .await;
    same(&s, "c - c", "c - fill(12345) c").await;
    same(
        &s,
        "c > bool on(job, instance, status) c",
        "c > bool on(job, instance, status) fill(12345) c",
    )
    .await;
}
