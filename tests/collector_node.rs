//! Node metrics of `tidewatch collector` against Debian's node_exporter on
//! the same machine, both scraped over HTTP.
//!
//! Tolerances: counters must lie between node_exporter's value just before
//! and just after our collection cycle (±1% and a small absolute slack);
//! gauges between node_exporter's two readings, or else memory gauges within
//! 1% of MemTotal, filesystem sizes within 1%, other gauges within 5% (load
//! averages ±0.5, process counts ±16).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::{Tidewatch, blocking_get, free_port, start_node_exporter, wait_until};
use tidewatch_common::exposition::{Format, parse};

fn scrape(url: &str) -> HashMap<String, f64> {
    let (status, body) = blocking_get(url);
    assert_eq!(status, 200, "{url}: {body}");
    parse(&body, Format::PrometheusText)
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .samples
        .into_iter()
        .map(|s| (s.labels.to_string(), s.value))
        .collect()
}

fn cycles(tw: &Tidewatch) -> f64 {
    let (_, body) = blocking_get(&tw.url("/metrics"));
    body.lines()
        .find_map(|l| l.strip_prefix("tidewatch_collector_cycles_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn collector_config(dir: &std::path::Path) -> String {
    let cfg = dir.join("collector.yml");
    std::fs::write(
        &cfg,
        format!(
            "collector:\n  interval: 1s\n  remote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n",
            free_port()
        ),
    )
    .unwrap();
    cfg.display().to_string()
}

#[test]
fn node_metrics_agree_with_node_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let (_ne, ne_port) = start_node_exporter(dir.path());
    let cfg = collector_config(dir.path());
    let tw = Tidewatch::start("collector", &dir.path().join("data"), &["--config", &cfg]);
    let ne_url = format!("http://127.0.0.1:{ne_port}/metrics");

    // ne_before, then a cycle that starts after it, then ne_after.
    let before = scrape(&ne_url);
    let c0 = cycles(&tw);
    wait_until("two collection cycles", Duration::from_secs(30), || {
        cycles(&tw) >= c0 + 2.0
    });
    let ours = scrape(&tw.url("/collector/metrics"));
    let after = scrape(&ne_url);

    let mem_total = ours["node_memory_MemTotal_bytes"];
    let mut compared = 0;
    let mut failures = Vec::new();
    let mut seen_names = std::collections::BTreeSet::new();
    for (series, &v) in &ours {
        let (Some(&a), Some(&b)) = (before.get(series), after.get(series)) else {
            continue;
        };
        let name = series.split('{').next().unwrap();
        if name == "node_time_seconds" || name == "node_scrape_collector_success" {
            continue;
        }
        let (lo, hi) = (a.min(b), a.max(b));
        let between = v >= lo && v <= hi;
        let ok = if name.ends_with("_total") {
            let slack = if name.starts_with("node_cpu") {
                0.5
            } else {
                64.0
            };
            v >= lo * 0.99 - slack && v <= hi * 1.01 + slack
        } else if between {
            // A gauge between node_exporter's readings before and after.
            true
        } else if name.starts_with("node_memory_") {
            (v - lo).abs().min((v - hi).abs()) <= 0.01 * mem_total
        } else if name.starts_with("node_load") {
            (v - lo).abs().min((v - hi).abs()) <= 0.5 + 0.1 * hi
        } else if name == "node_filefd_allocated" {
            // Open file handles of the whole machine move with every process
            // other tests start in parallel: 20% (documented in
            // docs/collector.md).
            (v - lo).abs().min((v - hi).abs()) <= 0.2 * hi.abs() + 64.0
        } else if name.starts_with("node_procs_") || name == "node_disk_io_now" {
            (v - hi).abs() <= 16.0
        } else if name.starts_with("node_filesystem_") {
            (v - lo).abs().min((v - hi).abs()) <= 0.01 * hi.abs() + 4096.0 * 64.0
        } else {
            (v - lo).abs().min((v - hi).abs()) <= 0.05 * hi.abs() + 1.0
        };
        compared += 1;
        seen_names.insert(name.to_string());
        if !ok {
            failures.push(format!("{series}: ours {v}, node_exporter {a} .. {b}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} series disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for required in [
        "node_cpu_seconds_total",
        "node_load1",
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
        "node_memory_Cached_bytes",
        "node_memory_Buffers_bytes",
        "node_memory_SwapTotal_bytes",
        "node_filesystem_avail_bytes",
        "node_filesystem_size_bytes",
        "node_filesystem_files_free",
        "node_disk_read_bytes_total",
        "node_disk_written_bytes_total",
        "node_network_receive_bytes_total",
        "node_network_transmit_packets_total",
        "node_network_receive_errs_total",
        "node_network_receive_drop_total",
        "node_boot_time_seconds",
        "node_filefd_allocated",
        "node_filefd_maximum",
        "node_context_switches_total",
        "node_uname_info",
        "node_vmstat_pgmajfault",
        "node_network_up",
        "node_network_mtu_bytes",
    ] {
        assert!(
            seen_names.contains(required),
            "{required} not compared; compared: {seen_names:?}"
        );
    }
    assert!(compared >= 100, "only {compared} series in common");
}
