//! `tidewatch-bench metrics`: the same generated workload remote-written
//! into Tidewatch and into Debian's Prometheus in one run, side by side.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidewatch_common::remote_write::{
    Label, Sample, TimeSeries, WriteRequest, encode_write_request,
};

use crate::procs::{Server, dir_bytes, free_port, tidewatch_bin};

/// Workload and run options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Simulated hosts; each exposes 94 series (series = 94 × instances).
    #[arg(long, default_value_t = 100)]
    instances: usize,
    /// Time span of the data (ending now).
    #[arg(long, default_value = "2h", value_parser = parse_dur)]
    span: Duration,
    /// Scrape interval.
    #[arg(long, default_value = "15s", value_parser = parse_dur)]
    interval: Duration,
    /// Concurrent senders (each owns a shard of series, sends in time order).
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Runs of each query (the median is printed).
    #[arg(long, default_value_t = 5)]
    query_runs: usize,
    /// Keep the data directories (printed) instead of deleting them.
    #[arg(long)]
    keep: bool,
}

fn parse_dur(s: &str) -> Result<Duration, String> {
    tidewatch_common::duration::parse_duration(s)
}

/// One generated series: labels and a value model.
struct GenSeries {
    labels: Vec<Label>,
    kind: Kind,
    value: f64,
}

#[derive(Clone, Copy)]
enum Kind {
    /// Increases by about `rate` per second, integer steps.
    Counter(f64),
    /// Increases by about `rate` per second, centisecond resolution.
    Seconds(f64),
    /// Random walk from a level: half the scrapes unchanged, byte gauges in
    /// 4 KiB pages, others at centi resolution.
    Gauge(f64),
    /// Cumulative bucket: increases by `rate` × fraction below `le`.
    Bucket(f64, f64),
}

/// Deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn lbl(n: &str, v: impl Into<String>) -> Label {
    Label {
        name: n.to_string(),
        value: v.into(),
    }
}

/// 94 series per instance, node_exporter- and HTTP-service-like.
fn workload(instances: usize) -> Vec<GenSeries> {
    let mut out = Vec::new();
    for i in 0..instances {
        let inst = format!("host-{i:05}:9100");
        let mut add = |name: &str, extra: Vec<Label>, kind: Kind| {
            let mut labels = vec![
                lbl("__name__", name),
                lbl("instance", inst.clone()),
                lbl("job", "node"),
            ];
            labels.extend(extra);
            labels.sort();
            out.push(GenSeries {
                labels,
                kind,
                value: 0.0,
            });
        };
        for cpu in 0..4 {
            for mode in [
                "idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice",
            ] {
                let rate = if mode == "idle" { 0.8 } else { 0.03 };
                add(
                    "node_cpu_seconds_total",
                    vec![lbl("cpu", cpu.to_string()), lbl("mode", mode)],
                    Kind::Seconds(rate),
                );
            }
        }
        for method in ["GET", "POST"] {
            for le in [
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
                "+Inf",
            ] {
                let frac = match le.parse::<f64>() {
                    Ok(v) => (1.0 - (-v * 8.0).exp()).min(1.0),
                    Err(_) => 1.0,
                };
                add(
                    "http_request_duration_seconds_bucket",
                    vec![lbl("method", method), lbl("le", le)],
                    Kind::Bucket(20.0, frac),
                );
            }
            add(
                "http_request_duration_seconds_count",
                vec![lbl("method", method)],
                Kind::Counter(20.0),
            );
            add(
                "http_request_duration_seconds_sum",
                vec![lbl("method", method)],
                Kind::Seconds(2.0),
            );
            for code in ["200", "404", "500"] {
                add(
                    "http_requests_total",
                    vec![lbl("method", method), lbl("code", code)],
                    Kind::Counter(if code == "200" { 20.0 } else { 0.5 }),
                );
            }
        }
        for dev in 0..8 {
            let d = format!("eth{dev}");
            add(
                "node_network_receive_bytes_total",
                vec![lbl("device", d.clone())],
                Kind::Counter(50_000.0),
            );
            add(
                "node_network_transmit_bytes_total",
                vec![lbl("device", d)],
                Kind::Counter(20_000.0),
            );
        }
        for fs in 0..6 {
            add(
                "node_filesystem_avail_bytes",
                vec![lbl("mountpoint", format!("/mnt/d{fs}"))],
                Kind::Gauge(5e10),
            );
        }
        for name in [
            "node_memory_Active_bytes",
            "node_memory_MemAvailable_bytes",
            "node_load1",
            "node_load5",
            "node_load15",
            "process_resident_memory_bytes",
        ] {
            let level = if name.contains("load") { 2.0 } else { 4e9 };
            add(name, vec![], Kind::Gauge(level));
        }
    }
    out
}

/// Builds every request body: per shard, one request per scrape time.
fn bodies(args: &Args, series: &mut [GenSeries]) -> (Vec<Vec<Vec<u8>>>, usize) {
    let step = args.interval.as_millis() as i64;
    let now = chrono_now_ms() / step * step;
    let points = (args.span.as_millis() as i64 / step).max(1);
    let start = now - points * step;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut shards: Vec<Vec<Vec<u8>>> = vec![Vec::new(); args.shards];
    let mut samples = 0;
    let secs = step as f64 / 1000.0;
    for p in 0..points {
        let t = start + p * step;
        let mut reqs: Vec<WriteRequest> = (0..args.shards)
            .map(|_| WriteRequest {
                timeseries: Vec::new(),
                metadata: Vec::new(),
            })
            .collect();
        for (i, s) in series.iter_mut().enumerate() {
            s.value = match s.kind {
                Kind::Counter(r) => s.value + (r * secs * (0.5 + rng.next())).round(),
                Kind::Seconds(r) => {
                    ((s.value + r * secs * (0.5 + rng.next())) * 100.0).round() / 100.0
                }
                Kind::Gauge(level) => {
                    if s.value == 0.0 {
                        level
                    } else if rng.next() < 0.5 {
                        // Half of the scrapes see an unchanged gauge.
                        s.value
                    } else if level > 100.0 {
                        // Byte gauges move in 4 KiB pages.
                        s.value + ((rng.next() - 0.5) * 2000.0).round() * 4096.0
                    } else {
                        ((s.value + (rng.next() - 0.5) * 0.2).max(0.0) * 100.0).round() / 100.0
                    }
                }
                Kind::Bucket(r, frac) => s.value + (r * secs * frac).round(),
            };
            reqs[i % args.shards].timeseries.push(TimeSeries {
                labels: s.labels.clone(),
                samples: vec![Sample {
                    value: s.value,
                    timestamp: t,
                }],
                ..Default::default()
            });
            samples += 1;
        }
        for (shard, req) in reqs.iter().enumerate() {
            shards[shard].push(encode_write_request(req));
        }
    }
    (shards, samples)
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What one target measured.
#[derive(Default)]
struct Figures {
    samples_per_s: f64,
    cpu_s: f64,
    peak_rss: u64,
    errors: usize,
    bytes_per_sample: Option<f64>,
    query_ms: Vec<Option<f64>>,
    /// After a restart (Tidewatch: from the Parquet blocks).
    restarted_query_ms: Vec<Option<f64>>,
}

async fn ingest(
    client: &reqwest::Client,
    server: &Server,
    shards: &Arc<Vec<Vec<Vec<u8>>>>,
) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for shard in 0..shards.len() {
        let (client, url, shards) = (
            client.clone(),
            format!("{}/api/v1/write", server.url),
            shards.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut errors = 0;
            for body in &shards[shard] {
                let r = client
                    .post(&url)
                    .header("Content-Type", "application/x-protobuf")
                    .header("Content-Encoding", "snappy")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        if errors == 0 {
                            eprintln!(
                                "  {url}: {} {}",
                                r.status(),
                                r.text().await.unwrap_or_default().trim()
                            );
                        }
                        errors += 1;
                    }
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("  {url}: {e}");
                        }
                        errors += 1;
                    }
                }
            }
            errors
        }));
    }
    let mut errors = 0;
    for t in tasks {
        errors += t.await?;
    }
    Ok((started.elapsed(), errors))
}

/// The fixed range queries (selectors, rate, sum by, histogram_quantile,
/// topk).
const QUERIES: &[&str] = &[
    r#"node_cpu_seconds_total{instance="host-00001:9100"}"#,
    r#"rate(node_network_receive_bytes_total{instance=~"host-0000.*"}[5m])"#,
    "sum by (mode) (rate(node_cpu_seconds_total[5m]))",
    "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "topk(5, node_memory_Active_bytes)",
];

async fn query_latency(client: &reqwest::Client, url: &str, args: &Args) -> Vec<Option<f64>> {
    let end = chrono_now_ms() / 1000;
    let start = end - args.span.as_secs() as i64;
    let mut out = Vec::new();
    for q in QUERIES {
        let mut times = Vec::new();
        for _ in 0..args.query_runs {
            let t0 = Instant::now();
            let r = client
                .post(format!("{url}/api/v1/query_range"))
                .form(&[
                    ("query", q.to_string()),
                    ("start", start.to_string()),
                    ("end", end.to_string()),
                    ("step", "60".to_string()),
                ])
                .send()
                .await;
            let ok = match r {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                Ok(r) => {
                    if times.is_empty() {
                        eprintln!(
                            "  {url} {q}: {} {}",
                            r.status(),
                            r.text().await.unwrap_or_default().trim()
                        );
                    }
                    false
                }
                Err(_) => false,
            };
            if !ok {
                break;
            }
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        if times.len() == args.query_runs {
            times.sort_by(|a, b| a.total_cmp(b));
            out.push(Some(times[times.len() / 2]));
        } else {
            out.push(None);
        }
    }
    out
}

/// Runs the benchmark and prints the comparison.
pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.shards > 0 && args.instances > 0,
        "--shards and --instances must be positive"
    );
    let tmp = tempfile_dir()?;
    let mut series = workload(args.instances);
    println!(
        "workload: {} series × {:?} at {:?}",
        series.len(),
        args.span,
        args.interval
    );
    let (shards, samples) = bodies(&args, &mut series);
    let wire: usize = shards.iter().flatten().map(Vec::len).sum();
    println!(
        "          {samples} samples in {} requests ({:.1} MB snappy)",
        shards.iter().map(Vec::len).sum::<usize>(),
        wire as f64 / 1e6
    );
    let shards = Arc::new(shards);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;

    // Tidewatch.
    let tw_dir = tmp.join("tidewatch");
    let port = free_port()?;
    let tw_cmd = || {
        let mut cmd = Command::new(tidewatch_bin()?);
        cmd.args([
            "aggregator",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&tw_dir)
        .env("RUST_LOG", "warn");
        anyhow::Ok(cmd)
    };
    let mut tw = Server::spawn("tidewatch", tw_cmd()?, port, &tmp)?;
    tw.wait_ready(&client).await?;
    let mut twf = measure(&client, &mut tw, &shards, samples, &args).await?;
    // Shutting down flushes the head into Parquet blocks.
    tw.terminate(Duration::from_secs(300))?;
    let bytes = dir_bytes(&tw_dir.join("aggregator/blocks"), &|_| true);
    twf.bytes_per_sample = Some(bytes as f64 / samples as f64);
    // Restarted, every query reads the blocks.
    let mut tw = Server::spawn("tidewatch", tw_cmd()?, port, &tmp)?;
    tw.wait_ready(&client).await?;
    println!("tidewatch: querying after restart…");
    twf.restarted_query_ms = query_latency(&client, &tw.url, &args).await;
    tw.terminate(Duration::from_secs(300))?;

    // Prometheus.
    let prom_dir = tmp.join("prometheus");
    std::fs::create_dir_all(&prom_dir)?;
    let cfg = prom_dir.join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n")?;
    let port = free_port()?;
    let prom_cmd = || {
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                prom_dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--web.enable-admin-api");
        cmd
    };
    let mut prom = Server::spawn("prometheus", prom_cmd(), port, &tmp)?;
    prom.wait_ready(&client).await?;
    let mut pf = measure(&client, &mut prom, &shards, samples, &args).await?;
    // A snapshot writes the head as a persisted (compacted) block.
    let snap: serde_json::Value = client
        .post(format!("{}/api/v1/admin/tsdb/snapshot", prom.url))
        .send()
        .await?
        .json()
        .await?;
    if let Some(name) = snap["data"]["name"].as_str() {
        let bytes = dir_bytes(&prom_dir.join("tsdb/snapshots").join(name), &|_| true);
        pf.bytes_per_sample = Some(bytes as f64 / samples as f64);
    }
    prom.terminate(Duration::from_secs(120))?;
    // Restarted, Prometheus replays its WAL into the head (2 h of data is
    // not yet compacted into a block): its queries still read memory.
    let mut prom = Server::spawn("prometheus", prom_cmd(), port, &tmp)?;
    prom.wait_ready(&client).await?;
    println!("prometheus: querying after restart…");
    pf.restarted_query_ms = query_latency(&client, &prom.url, &args).await;
    prom.terminate(Duration::from_secs(120))?;

    print_table(&twf, &pf);
    if args.keep {
        println!("data kept in {}", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}

async fn measure(
    client: &reqwest::Client,
    server: &mut Server,
    shards: &Arc<Vec<Vec<Vec<u8>>>>,
    samples: usize,
    args: &Args,
) -> anyhow::Result<Figures> {
    println!("{}: ingesting…", server.name);
    let cpu0 = server.cpu_seconds();
    let (took, errors) = ingest(client, server, shards).await?;
    let cpu = server.cpu_seconds() - cpu0;
    println!("{}: querying…", server.name);
    let query_ms = query_latency(client, &server.url, args).await;
    Ok(Figures {
        samples_per_s: samples as f64 / took.as_secs_f64(),
        cpu_s: cpu,
        peak_rss: server.peak_rss(),
        errors,
        bytes_per_sample: None,
        query_ms,
        restarted_query_ms: Vec::new(),
    })
}

fn print_table(tw: &Figures, p: &Figures) {
    let opt = |v: Option<f64>, prec: usize| v.map_or("n/a".to_string(), |v| format!("{v:.prec$}"));
    println!();
    println!(
        "| {:<44} | {:>14} | {:>14} |",
        "", "Tidewatch", "Prometheus"
    );
    println!("|{:-<46}|{:->16}|{:->16}|", "", "", "");
    let row = |k: &str, a: String, b: String| println!("| {k:<44} | {a:>14} | {b:>14} |");
    row(
        "ingest samples/s",
        format!("{:.0}", tw.samples_per_s),
        format!("{:.0}", p.samples_per_s),
    );
    row(
        "ingest CPU seconds",
        format!("{:.1}", tw.cpu_s),
        format!("{:.1}", p.cpu_s),
    );
    row(
        "peak RSS MiB",
        format!("{:.0}", tw.peak_rss as f64 / 1048576.0),
        format!("{:.0}", p.peak_rss as f64 / 1048576.0),
    );
    row(
        "failed write requests",
        tw.errors.to_string(),
        p.errors.to_string(),
    );
    row(
        "bytes/sample on disk after flush",
        opt(tw.bytes_per_sample, 2),
        opt(p.bytes_per_sample, 2),
    );
    for (what, tq, pq) in [
        ("", &tw.query_ms, &p.query_ms),
        ("restarted ", &tw.restarted_query_ms, &p.restarted_query_ms),
    ] {
        for (i, q) in QUERIES.iter().enumerate() {
            let mut k = format!("{what}median ms: {q}");
            if k.chars().count() > 44 {
                k = k.chars().take(43).collect();
                k.push('…');
            }
            let at = |v: &Vec<Option<f64>>| v.get(i).copied().flatten();
            row(&k, opt(at(tq), 1), opt(at(pq), 1));
        }
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("tidewatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
