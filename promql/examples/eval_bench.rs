//! In-memory range-query timings of the PromQL engine over a generated,
//! realistic workload (the figures in `docs/benchmarks.md`, "PromQL engine"):
//!
//! ```text
//! cargo run --release -p tidewatch-promql --example eval_bench -- \
//!     [--series N] [--runs R] [--only QUERY] [--dump-remote-write DIR]
//! ```
//!
//! The workload holds `N` counter series `http_requests_total{job,instance,
//! method,status}` (with occasional counter resets) and `N` classic-histogram
//! bucket series `http_request_duration_seconds_bucket{job,instance,le}`
//! (10 buckets per instance), 3 h of samples every 15 s. Each query runs
//! over the last hour at a 15 s step (241 steps) `R` times; the bench prints
//! the median process CPU time (`getrusage`) and wall time per query, plus a
//! checksum of the result so that engine changes can be checked for
//! identical output. The machine this runs on is shared, hence CPU time.
//!
//! `--dump-remote-write DIR` writes the same workload as snappy-compressed
//! remote-write 1.0 requests (5-minute batches, in time order) to
//! `DIR/NNNN.pb` and the queries to `DIR/queries.txt`, for
//! `promql/examples/prometheus_compare.sh`, which loads them into Debian's
//! Prometheus and times the same queries there.

use std::time::Instant;

use tidewatch_common::Labels;
use tidewatch_common::remote_write as rw;
use tidewatch_promql::{Engine, MemStorage, Value};

/// Base timestamp of the generated data (ms).
const BASE_MS: i64 = 1_700_000_000_000;
/// Scrape interval (ms).
const SCRAPE_MS: i64 = 15_000;
/// Samples per series (3 h).
const SAMPLES: usize = 720;
/// Histogram bucket bounds.
const LE: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
];

/// The benchmarked range queries.
pub const QUERIES: [&str; 7] = [
    "http_requests_total",
    "rate(http_requests_total[5m])",
    "sum by (job) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.9, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
    "topk(5, rate(http_requests_total[5m]))",
    "http_requests_total / ignoring(status) group_left sum without (status) (http_requests_total)",
];

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Every generated series: labels and values (timestamps are implicit).
fn workload(series: usize) -> Vec<(Labels, Vec<f64>)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(2 * series);
    let methods = ["GET", "POST", "PUT", "DELETE"];
    let statuses = ["200", "201", "404", "500", "503"];
    for i in 0..series {
        let labels = Labels::from_pairs([
            ("__name__", "http_requests_total".to_string()),
            ("job", format!("api-{}", i % 20)),
            (
                "instance",
                format!("10.0.{}.{}:9090", (i / 20) / 250, (i / 20) % 250),
            ),
            ("method", methods[(i / 5) % 4].to_string()),
            ("status", statuses[i % 5].to_string()),
        ]);
        let rate = 1 + rng.below(50);
        let (mut v, mut vals) = (rng.below(1000) as f64, Vec::with_capacity(SAMPLES));
        for _ in 0..SAMPLES {
            if rng.below(2000) == 0 {
                v = 0.0; // process restart: counter reset
            }
            v += (rate * 15 + rng.below(rate * 5 + 1)) as f64;
            vals.push(v);
        }
        out.push((labels, vals));
    }
    let instances = series / LE.len();
    for i in 0..instances {
        let per_s = 1 + rng.below(100);
        let mut counts = [0.0f64; LE.len()];
        let mut cols: Vec<Vec<f64>> = vec![Vec::with_capacity(SAMPLES); LE.len()];
        for _ in 0..SAMPLES {
            let n = per_s * 15;
            // Observations spread over the buckets; `acc` grows with the
            // bucket, so the counts stay cumulative.
            let mut acc = 0.0;
            for (b, c) in counts.iter_mut().enumerate() {
                acc += (n * (b as u64 + 1) / LE.len() as u64 + rng.below(3)) as f64;
                *c += acc;
                cols[b].push(*c);
            }
        }
        for (b, vals) in cols.into_iter().enumerate() {
            let labels = Labels::from_pairs([
                (
                    "__name__",
                    "http_request_duration_seconds_bucket".to_string(),
                ),
                ("job", format!("api-{}", i % 20)),
                ("instance", format!("10.1.{}.{}:9090", i / 250, i % 250)),
                ("le", LE[b].to_string()),
            ]);
            out.push((labels, vals));
        }
    }
    out
}

/// Process CPU time (user + system) in seconds, from `getrusage`.
fn cpu_seconds() -> f64 {
    // struct rusage on 64-bit Linux: two timevals then 14 longs.
    unsafe extern "C" {
        fn getrusage(who: i32, usage: *mut [i64; 18]) -> i32;
    }
    let mut ru = [0i64; 18];
    // SAFETY: `ru` is as large as `struct rusage` on 64-bit Linux.
    let rc = unsafe { getrusage(0, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    (ru[0] + ru[2]) as f64 + (ru[1] + ru[3]) as f64 / 1e6
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Writes the workload as remote-write requests in 5-minute batches.
fn dump_remote_write(dir: &str, data: &[(Labels, Vec<f64>)]) {
    std::fs::create_dir_all(dir).expect("create dump dir");
    let batch = 20;
    for (n, k0) in (0..SAMPLES).step_by(batch).enumerate() {
        let k1 = (k0 + batch).min(SAMPLES);
        let req = rw::WriteRequest {
            timeseries: data
                .iter()
                .map(|(l, vals)| rw::TimeSeries {
                    labels: l
                        .iter()
                        .map(|x| rw::Label {
                            name: x.name.clone(),
                            value: x.value.clone(),
                        })
                        .collect(),
                    samples: (k0..k1)
                        .map(|k| rw::Sample {
                            value: vals[k],
                            timestamp: BASE_MS + k as i64 * SCRAPE_MS,
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        std::fs::write(format!("{dir}/{n:04}.pb"), rw::encode_write_request(&req))
            .expect("write dump");
    }
    let (start, end) = query_range();
    let mut q = format!("{} {} {}\n", start / 1000, end / 1000, SCRAPE_MS / 1000);
    for x in QUERIES {
        q.push_str(x);
        q.push('\n');
    }
    std::fs::write(format!("{dir}/queries.txt"), q).expect("write queries");
}

/// The queried range: the last hour of the data.
fn query_range() -> (i64, i64) {
    let end = BASE_MS + (SAMPLES as i64 - 1) * SCRAPE_MS;
    (end - 3_600_000, end)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut series = 10_000usize;
    let mut runs = 7usize;
    let mut only: Option<String> = None;
    let mut dump: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--series" => series = val().parse().expect("--series N"),
            "--runs" => runs = val().parse().expect("--runs R"),
            "--only" => only = Some(val()),
            "--dump-remote-write" => dump = Some(val()),
            other => panic!("unknown argument {other}"),
        }
    }
    let data = workload(series);
    if let Some(dir) = dump {
        dump_remote_write(&dir, &data);
        println!("wrote {} series to {dir}", data.len());
        return;
    }
    let s = MemStorage::new();
    for (l, vals) in data {
        s.append(
            l,
            vals.into_iter()
                .enumerate()
                .map(|(k, v)| (BASE_MS + k as i64 * SCRAPE_MS, v)),
        );
    }
    let e = Engine::default();
    let (start, end) = query_range();
    println!(
        "{} series, {SAMPLES} samples each; {runs} runs per query, medians",
        s.series_count()
    );
    println!(
        "{:>9} {:>9} {:>6} {:>8} {:>22}  query",
        "cpu ms", "wall ms", "series", "points", "checksum"
    );
    for q in QUERIES {
        if only.as_deref().is_some_and(|o| o != q) {
            continue;
        }
        let (mut cpu, mut wall) = (Vec::new(), Vec::new());
        let mut summary = (0usize, 0usize, 0.0f64);
        for _ in 0..runs {
            let (c0, w0) = (cpu_seconds(), Instant::now());
            let r = e.range_query(&s, q, start, end, SCRAPE_MS).await.unwrap();
            cpu.push(cpu_seconds() - c0);
            wall.push(w0.elapsed().as_secs_f64());
            let Value::Matrix(m) = r.value else {
                panic!("range query returned no matrix")
            };
            let points = m.iter().map(|x| x.values.len()).sum();
            let sum = m
                .iter()
                .flat_map(|x| x.values.iter())
                .filter(|v| v.is_finite())
                .sum::<f64>();
            summary = (m.len(), points, sum);
            drop(m);
        }
        println!(
            "{:>9.1} {:>9.1} {:>6} {:>8} {:>22.10e}  {q}",
            median(&mut cpu) * 1000.0,
            median(&mut wall) * 1000.0,
            summary.0,
            summary.1,
            summary.2
        );
    }
}
