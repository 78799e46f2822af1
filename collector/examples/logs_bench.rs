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
//! line. Without `--loki`/`--kafka` the sink is a Loki push endpoint that
//! decodes every push and counts the entries (a stand-in for the
//! aggregator), run as a child process (this program with `--serve`) so
//! that its CPU is not counted as the collector's. Prints MiB/s and lines/s
//! (wall clock), the same per CPU-second of the collector ("per core"),
//! and the collector's peak RSS.

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

/// `--serve`: a Loki push endpoint that decodes and counts entries
/// (aggregator stand-in); prints its URL, answers the count at `GET /count`,
/// exits when stdin closes (the parent is gone).
async fn serve() -> anyhow::Result<()> {
    use axum::routing::{get, post};
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let app = axum::Router::new()
        .route(
            "/loki/api/v1/push",
            post(move |body: axum::body::Bytes| {
                let count = c.clone();
                async move {
                    let req = tidewatch_common::loki::decode_push_request(&body, 1 << 30).unwrap();
                    let n: usize = req.streams.iter().map(|s| s.entries.len()).sum();
                    count.fetch_add(n as u64, Ordering::Relaxed);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        )
        .route(
            "/count",
            get(move || async move { count.load(Ordering::Relaxed).to_string() }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("http://{}", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await?;
    Ok(())
}

/// Starts the stand-in as a child process; returns it and its URL.
fn spawn_stand_in() -> anyhow::Result<(std::process::Child, String)> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut url = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut url)?;
    Ok((child, url.trim().to_string()))
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
    if std::env::args().any(|a| a == "--serve") {
        return serve().await;
    }
    let lines: usize = arg("--lines")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(200_000);
    let size: usize = arg("--size").map(|v| v.parse()).transpose()?.unwrap_or(200);
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("in"))?;
    let bytes = write_input(&dir.path().join("in/bench.log"), lines, size);
    let mut stand_in = None;
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
                None => {
                    let (child, url) = spawn_stand_in()?;
                    stand_in = Some((child, url.clone()));
                    (
                        "Loki endpoint that decodes and counts (aggregator stand-in, own process)"
                            .to_string(),
                        url,
                    )
                }
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
    if let Some((mut child, url)) = stand_in {
        let got: u64 = reqwest::get(format!("{url}/count"))
            .await?
            .text()
            .await?
            .parse()?;
        assert_eq!(got, lines as u64, "entries the stand-in received");
        drop(child.stdin.take());
        child.wait()?;
    }
    Ok(())
}
