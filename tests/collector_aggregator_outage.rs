//! Durable shipping to Tidewatch itself: `tidewatch collector` remote-writes
//! to a real `tidewatch aggregator`; the aggregator is killed (SIGKILL) for
//! a while and restarted on the same data directory and port. Every cycle
//! the collector produced — before, during and after the outage — must be
//! stored exactly once: the aggregator's count of the per-cycle series
//! `node_time_seconds` up to the collector's last counted cycle equals the
//! collector's cycle count, and every such cycle's timestamp is present.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::{Tidewatch, blocking_get, free_port, wait_until};

/// One consistent (`cycles_total`, last cycle timestamp ms) reading of the
/// collector's self-metrics (two equal reads in a row, so a cycle finishing
/// between the two gauges cannot tear it).
fn cycles(tw: &Tidewatch) -> (u64, i64) {
    let read = || {
        let (_, body) = blocking_get(&tw.url("/metrics"));
        let get = |prefix: &str| -> f64 {
            body.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        };
        (
            get("tidewatch_collector_cycles_total ") as u64,
            get("tidewatch_collector_last_cycle_timestamp_milliseconds ") as i64,
        )
    };
    loop {
        let (a, b) = (read(), read());
        if a == b {
            return a;
        }
    }
}

fn queued(tw: &Tidewatch) -> f64 {
    let (_, body) = blocking_get(&tw.url("/metrics"));
    body.lines()
        .filter(|l| l.starts_with("tidewatch_collector_remote_write_queue_records{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Timestamps (ms) of the aggregator's `node_time_seconds` samples in the
/// hour up to `at_ms`.
fn stored(agg: &Tidewatch, at_ms: i64) -> Vec<i64> {
    let url = agg.url(&format!(
        "/api/v1/query?query=node_time_seconds%5B1h%5D&time={}.{:03}",
        at_ms / 1000,
        at_ms % 1000
    ));
    let (status, body) = blocking_get(&url);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
    assert!(result.len() <= 1, "one series expected: {body}");
    let Some(series) = result.first() else {
        return Vec::new();
    };
    assert_eq!(series["metric"]["job"], "tidewatch-collector", "{body}");
    series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap() * 1000.0).round() as i64)
        .collect()
}

#[test]
fn aggregator_killed_and_restarted_loses_no_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let agg_data = dir.path().join("aggregator");
    let port = free_port();
    let mut agg = Tidewatch::start_on("aggregator", &agg_data, port, &[]);
    let cfg = dir.path().join("collector.yml");
    std::fs::write(
        &cfg,
        format!(
            "collector:\n  interval: 500ms\n  cgroup:\n    enabled: false\n  gpu: false\n  remote_write:\n  - url: http://127.0.0.1:{port}/api/v1/write\n    name: aggregator\n    min_backoff: 50ms\n    max_backoff: 500ms\n"
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let collector = Tidewatch::start(
        "collector",
        &dir.path().join("collector"),
        &["--config", &cfg],
    );
    wait_until(
        "first cycles stored by the aggregator",
        Duration::from_secs(60),
        || {
            let (_, last) = cycles(&collector);
            last > 0 && stored(&agg, last + 1).len() >= 3
        },
    );

    // Outage: the aggregator is killed; the collector keeps collecting into
    // its disk queue and retrying.
    agg.proc.kill9();
    let (at_kill, _) = cycles(&collector);
    wait_until(
        "6 cycles during the outage, queued",
        Duration::from_secs(60),
        || cycles(&collector).0 >= at_kill + 6 && queued(&collector) >= 6.0,
    );

    // The aggregator comes back on the same data directory and port.
    let agg = Tidewatch::start_on("aggregator", &agg_data, port, &[]);
    wait_until("the queue drains", Duration::from_secs(120), || {
        queued(&collector) == 0.0
    });
    // Everything counted by now was pushed to the queue before the count
    // moved; once the queue is empty again it was all acknowledged.
    let (produced, last_ts) = cycles(&collector);
    wait_until("the queue drains again", Duration::from_secs(120), || {
        queued(&collector) == 0.0
    });
    assert!(produced >= at_kill + 6);
    let ts = stored(&agg, last_ts);
    let distinct: BTreeSet<i64> = ts.iter().copied().collect();
    assert_eq!(distinct.len(), ts.len(), "no duplicate timestamps");
    assert_eq!(
        ts.len() as u64,
        produced,
        "every cycle up to the last counted one stored exactly once (the outage's included)"
    );
    assert_eq!(ts.last().copied(), Some(last_ts));
}
