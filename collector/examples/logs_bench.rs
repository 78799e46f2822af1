//! Log shipping throughput: file → aggregator (Loki push) and file → Kafka.
//!
//! ```text
//! cargo run --release -p tidewatch-collector --example logs_bench -- \
//!     [--lines 200000] [--size 200] [--loki http://127.0.0.1:9800 | --kafka 127.0.0.1:9092]
//! ```
//!
//! Writes `--lines` lines of `--size` bytes into a file, runs the collector's
//! log shipper in this process (tailer → disk buffer → sink, exactly as
//! `tidewatch collector` does) and waits until the sink acknowledged every
//! line. Without `--loki`/`--kafka` the sink is an in-process endpoint that
//! decodes Loki pushes and counts them (a stand-in for the aggregator).
//! Prints MiB/s and lines/s (wall clock), the same per CPU-second of this
//! process ("per core"), and the peak RSS.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use tidewatch_collector::logs::LogShipper;
use tidewatch_collector::logs::config::{
    BufferConfig, InputConfig, LogsConfig, MultilineConfig, OutputConfig,
};
use tokio_util::sync::CancellationToken;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn write_input(path: &Path, lines: usize, size: usize) -> u64 {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let pad = "x".repeat(size);
    let mut total = 0u64;
    for i in 0..lines {
        let head = format!("{i:010} level=info msg=\"request served\" ");
        let body = &pad[..size.saturating_sub(head.len() + 1)];
        writeln!(w, "{head}{body}").unwrap();
        total += (head.len() + body.len() + 1) as u64;
    }
    w.flush().unwrap();
    total
}

/// A Loki push endpoint that counts entries (aggregator stand-in).
async fn counting_endpoint(count: Arc<AtomicU64>) -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/loki/api/v1/push",
        post(move |body: axum::body::Bytes| {
            let count = count.clone();
            async move {
                let req = tidewatch_common::loki::decode_push_request(&body, 1 << 30).unwrap();
                let n: usize = req.streams.iter().map(|s| s.entries.len()).sum();
                count.fetch_add(n as u64, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

fn sent(registry: &Registry) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|l| l.starts_with("log_records_sent_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let lines: usize = arg("--lines")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(200_000);
    let size: usize = arg("--size").map(|v| v.parse()).transpose()?.unwrap_or(200);
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("in"))?;
    let bytes = write_input(&dir.path().join("in/bench.log"), lines, size);
    let counted = Arc::new(AtomicU64::new(0));
    let buffer = BufferConfig {
        max_bytes: 1 << 30,
        batch_records: 10_000,
        batch_bytes: 8 << 20,
    };
    let (target, output) = match (arg("--loki"), arg("--kafka")) {
        (_, Some(brokers)) => (
            format!("kafka {brokers}"),
            OutputConfig::Kafka {
                name: "kafka".into(),
                brokers,
                topic: arg("--topic").unwrap_or_else(|| "tidewatch-bench".into()),
                compression: "lz4".into(),
                properties: Default::default(),
                buffer,
            },
        ),
        (url, None) => {
            let (what, url) = match url {
                Some(u) => (format!("aggregator {u}"), u),
                None => (
                    "in-process Loki endpoint (aggregator stand-in)".to_string(),
                    counting_endpoint(counted.clone()).await,
                ),
            };
            (
                what,
                OutputConfig::Loki {
                    name: "loki".into(),
                    url: Some(url),
                    buffer,
                },
            )
        }
    };
    let config = LogsConfig {
        inputs: vec![InputConfig::HostLog {
            path: format!("{}/in/*.log", dir.path().display()),
            labels: [("job".to_string(), "bench".to_string())].into(),
            multiline: MultilineConfig::default(),
        }],
        outputs: vec![output],
        node: Some("bench".into()),
        poll_interval: Duration::from_millis(20),
        read_chunk_bytes: 4 << 20,
        ..LogsConfig::default()
    };
    let mut registry = Registry::default();
    let stop = CancellationToken::new();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let shipper = LogShipper::start(
        config,
        "",
        &dir.path().join("state"),
        &mut registry,
        stop.clone(),
    )
    .await?
    .expect("configured");
    while sent(&registry) < lines as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    shipper.close().await;
    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!("target: {target}");
    println!("lines: {lines} x {size} B = {mib:.1} MiB");
    println!(
        "wall: {wall:.2} s → {:.1} MiB/s, {:.0} lines/s",
        mib / wall,
        lines as f64 / wall
    );
    println!(
        "cpu: {cpu:.2} s → {:.1} MiB/s per core, {:.0} lines/s per core",
        mib / cpu,
        lines as f64 / cpu
    );
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    if arg("--loki").is_none() && arg("--kafka").is_none() {
        assert_eq!(counted.load(Ordering::Relaxed), lines as u64);
    }
    Ok(())
}
