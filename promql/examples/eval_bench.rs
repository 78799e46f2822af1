//! Rough in-memory evaluation timings (no storage cost):
//! `cargo run --release -p tidewatch-promql --example eval_bench [SERIES [QUERY]]`.

use std::time::Instant;

use tidewatch_common::Labels;
use tidewatch_promql::{Engine, MemStorage};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let series: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let samples = 720; // 3h at 15s
    let s = MemStorage::new();
    for i in 0..series {
        let l = Labels::from_pairs([
            ("__name__", "http_requests_total".to_string()),
            ("job", format!("job{}", i % 10)),
            ("instance", format!("i{i}")),
            ("le", ["0.1", "0.5", "1", "+Inf"][i % 4].to_string()),
        ]);
        s.append(
            l,
            (0..samples).map(|k| (k as i64 * 15_000, (k * (i % 7 + 1)) as f64)),
        );
    }
    let e = Engine::default();
    let end = (samples as i64 - 1) * 15_000;
    let only = std::env::args().nth(2);
    for q in [
        "http_requests_total",
        "rate(http_requests_total[5m])",
        "sum by (job) (rate(http_requests_total[5m]))",
        "histogram_quantile(0.9, sum by (job, le) (rate(http_requests_total[5m])))",
        "topk(5, rate(http_requests_total[5m]))",
        "http_requests_total / ignoring(le) group_left sum without (le) (http_requests_total)",
    ] {
        if only.as_deref().is_some_and(|o| o != q) {
            continue;
        }
        let t = Instant::now();
        let r = e
            .range_query(&s, q, end - 3_600_000, end, 15_000)
            .await
            .unwrap();
        let n = match r.value {
            tidewatch_promql::Value::Matrix(m) => m.len(),
            _ => 0,
        };
        println!(
            "{:>8.1} ms  {n:>6} series  {q}",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
}
