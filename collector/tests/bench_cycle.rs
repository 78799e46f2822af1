//! One collection cycle (node + cgroup sources, TKEStack derivation,
//! remote-write encoding) against Debian's node_exporter serving one scrape,
//! both on this machine's real /proc, /sys and cgroups: CPU time per cycle
//! and resident memory. Ignored by default (a benchmark); run with
//! `cargo test -p tidewatch-collector --test bench_cycle -- --ignored --nocapture`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tidewatch_collector::metrics::cgroup::{CgroupConfig, CgroupSource};
use tidewatch_collector::metrics::encode::encode_records;
use tidewatch_collector::metrics::node::{NodeConfig, NodeSource};
use tidewatch_collector::metrics::pods::PodIndex;
use tidewatch_collector::metrics::sample::Emitter;
use tidewatch_collector::metrics::tke::TkeDeriver;

/// CPU seconds (user + system) of a process from /proc/<pid>/stat.
fn cpu_seconds(pid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn rss_kib(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
#[ignore = "benchmark"]
fn collection_cycle_vs_node_exporter_scrape() {
    const N: usize = 200;
    let pods = PodIndex::default();
    let mut node = NodeSource::new(&NodeConfig::default()).unwrap();
    let mut cg = CgroupSource::new(&CgroupConfig::default(), PathBuf::from("/proc"), pods);
    let mut tke = TkeDeriver::new("bench", "local");
    let extra = vec![("cluster_id".to_string(), "local".to_string())];
    let rss0 = rss_kib("self");
    let cpu0 = cpu_seconds("self");
    let t0 = Instant::now();
    let mut samples = 0;
    let mut bytes = 0;
    for i in 0..N {
        let mut out = Vec::with_capacity(samples + 64);
        let mut e = Emitter::new(&mut out, i as i64 * 1000);
        node.collect(&mut e);
        cg.collect(&mut e);
        let mut derived = Vec::new();
        tke.derive(&out, None, &mut Emitter::new(&mut derived, i as i64 * 1000));
        out.append(&mut derived);
        samples = out.len();
        bytes = encode_records(&out, &extra, 500).iter().map(Vec::len).sum();
    }
    let cpu = (cpu_seconds("self") - cpu0) / N as f64;
    let wall = t0.elapsed().as_secs_f64() / N as f64;
    println!(
        "tidewatch cycle: {samples} samples, {bytes} bytes encoded; {:.2} ms CPU, {:.2} ms wall per cycle; test process RSS {} KiB (grew {} KiB)",
        cpu * 1e3,
        wall * 1e3,
        rss_kib("self"),
        rss_kib("self").saturating_sub(rss0)
    );

    // node_exporter: CPU per scrape and RSS.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let get = || -> std::io::Result<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while get().is_err() {
        assert!(Instant::now() < deadline, "node_exporter did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let scrapes = 50;
    let c0 = cpu_seconds(&pid);
    let t0 = Instant::now();
    let mut ne_samples = 0;
    for _ in 0..scrapes {
        let body = get().unwrap();
        ne_samples = body.lines().filter(|l| !l.starts_with('#')).count();
    }
    let ne_cpu = (cpu_seconds(&pid) - c0) / scrapes as f64;
    let ne_wall = t0.elapsed().as_secs_f64() / scrapes as f64;
    println!(
        "node_exporter scrape: {ne_samples} samples; {:.2} ms CPU, {:.2} ms wall per scrape; RSS {} KiB",
        ne_cpu * 1e3,
        ne_wall * 1e3,
        rss_kib(&pid)
    );
    let _ = child.kill();
    let _ = child.wait();
}
