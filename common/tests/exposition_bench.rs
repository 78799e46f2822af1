//! Exposition parsing throughput on `shared/textparse/` (ignored by default;
//! run with `cargo test -p tidewatch-common --test exposition_bench
//! --release -- --ignored --nocapture`). Figures go to docs/benchmarks.md.

use std::path::PathBuf;
use std::time::Instant;

use tidewatch_common::exposition::{Format, ParseOptions, parse_with};

fn shared_dir() -> PathBuf {
    match std::env::var_os("TIDEWATCH_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../shared"),
    }
}

#[test]
#[ignore = "benchmark; run explicitly with --release"]
fn parsing_throughput() {
    for (file, format) in [
        ("alltypes.237mfs.prom.txt", Format::PrometheusText),
        ("alltypes.237mfs.nometa.prom.txt", Format::PrometheusText),
        ("alltypes.5mfs.om.txt", Format::OpenMetrics),
        ("1histogram.om.txt", Format::OpenMetrics),
    ] {
        let body = std::fs::read_to_string(shared_dir().join("textparse").join(file)).unwrap();
        let lines = body.lines().count();
        let opts = ParseOptions { strict: false };
        // Warm up, then run for at least a second.
        parse_with(&body, format, opts).unwrap();
        let start = Instant::now();
        let mut n = 0u64;
        let mut samples = 0usize;
        while start.elapsed().as_secs_f64() < 1.0 {
            samples = parse_with(&body, format, opts).unwrap().samples.len();
            n += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{file}: {lines} lines, {samples} samples: {:.0} lines/s, {:.0} samples/s, {:.1} MB/s",
            lines as f64 * n as f64 / secs,
            samples as f64 * n as f64 / secs,
            body.len() as f64 * n as f64 / secs / 1e6
        );
    }
}
