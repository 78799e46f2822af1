//! Config reload of `tidewatch collector`: a changed file applies new scrape
//! jobs (file watch), an invalid file keeps the running jobs, SIGHUP
//! re-reads the file.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Tidewatch, blocking_get, free_port, start_node_exporter, wait_until};

fn jobs(tw: &Tidewatch) -> Vec<(String, String)> {
    let (_, body) = blocking_get(&tw.url("/collector/targets"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["job"].as_str().unwrap().to_string(),
                t["health"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn reloads(tw: &Tidewatch, result: &str) -> f64 {
    let (_, body) = blocking_get(&tw.url("/metrics"));
    let prefix = format!("tidewatch_collector_config_reloads_total{{result=\"{result}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn config(job: &str, target: u16, dead: u16, timeout: &str) -> String {
    format!(
        "collector:\n  interval: 1s\n  remote_write:\n  - url: http://127.0.0.1:{dead}/api/v1/write\n  scrape_configs:\n  - job_name: {job}\n    scrape_interval: 500ms\n    scrape_timeout: {timeout}\n    static_configs:\n    - targets: ['127.0.0.1:{target}']\n"
    )
}

#[test]
fn file_change_and_sighup_reload_scrape_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (_ne, ne) = start_node_exporter(dir.path());
    let dead = free_port();
    let file = dir.path().join("tidewatch.yml");
    std::fs::write(&file, config("first", ne, dead, "400ms")).unwrap();
    let f = file.display().to_string();
    let tw = Tidewatch::start("collector", &dir.path().join("data"), &["--config", &f]);
    wait_until("job first scraped", Duration::from_secs(30), || {
        jobs(&tw) == vec![("first".into(), "up".into())]
    });

    // File change: the new job replaces the old one.
    std::fs::write(&file, config("second", ne, dead, "400ms")).unwrap();
    wait_until("job second replaces first", Duration::from_secs(30), || {
        jobs(&tw) == vec![("second".into(), "up".into())]
    });
    assert!(reloads(&tw, "success") >= 1.0);

    // An invalid file is refused; the running jobs stay.
    let failures = reloads(&tw, "failure");
    std::fs::write(&file, config("third", ne, dead, "5s")).unwrap();
    wait_until(
        "the invalid file is refused",
        Duration::from_secs(30),
        || reloads(&tw, "failure") > failures,
    );
    assert_eq!(jobs(&tw), vec![("second".to_string(), "up".to_string())]);

    // SIGHUP re-reads the (restored) file.
    std::fs::write(&file, config("second", ne, dead, "400ms")).unwrap();
    wait_until("restored", Duration::from_secs(30), || {
        reloads(&tw, "success") >= 2.0
    });
    let before = reloads(&tw, "success");
    let st = Command::new("kill")
        .arg("-HUP")
        .arg(tw.proc.pid().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    wait_until("SIGHUP reload", Duration::from_secs(30), || {
        reloads(&tw, "success") > before
    });
    assert_eq!(jobs(&tw), vec![("second".to_string(), "up".to_string())]);
}

fn restart_required(tw: &Tidewatch, field: &str) -> f64 {
    let (_, body) = blocking_get(&tw.url("/metrics"));
    let prefix =
        format!("tidewatch_collector_config_reload_restart_required_total{{field=\"{field}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Raw samples (timestamp ms) of `node_time_seconds{phase="<phase>"}` at the
/// aggregator over the last hour, with the series' labels.
fn at_aggregator(agg: &Tidewatch, phase: &str) -> Option<(serde_json::Value, Vec<i64>)> {
    let (status, body) = blocking_get(&agg.url(&format!(
        "/api/v1/query?query=node_time_seconds%7Bphase%3D%22{phase}%22%7D%5B1h%5D"
    )));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let s = v["data"]["result"].as_array()?.first()?.clone();
    let ts = s["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap() * 1000.0).round() as i64)
        .collect();
    Some((s["metric"].clone(), ts))
}

fn has_container_series(tw: &Tidewatch) -> bool {
    let (_, body) = blocking_get(&tw.url("/collector/metrics"));
    body.lines().any(|l| l.starts_with("container_"))
}

/// Everything but scrape jobs: the interval, a source switched on, new
/// external labels and a new remote-write endpoint (a real `tidewatch
/// aggregator`) apply live; `node_name` and `queue` need a restart, so they
/// keep their running values and the refusal is counted per field.
#[test]
fn reload_applies_interval_sources_labels_and_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let agg = Tidewatch::start("aggregator", &dir.path().join("agg"), &[]);
    let dead = free_port();
    let file = dir.path().join("tidewatch.yml");
    let first = format!(
        "collector:\n  interval: 2s\n  node_name: first-node\n  gpu: false\n  cgroup:\n    enabled: false\n  external_labels: {{phase: one}}\n  remote_write:\n  - url: http://127.0.0.1:{dead}/api/v1/write\n    name: dead\n"
    );
    std::fs::write(&file, &first).unwrap();
    let f = file.display().to_string();
    let tw = Tidewatch::start("collector", &dir.path().join("data"), &["--config", &f]);
    wait_until("a first cycle", Duration::from_secs(30), || {
        let (_, b) = blocking_get(&tw.url("/collector/metrics"));
        b.contains("node_time_seconds")
    });
    assert!(!has_container_series(&tw), "cgroup source is off");
    assert!(at_aggregator(&agg, "one").is_none());

    let second = format!(
        "collector:\n  interval: 200ms\n  node_name: second-node\n  gpu: false\n  cgroup:\n    enabled: true\n  queue:\n    max_bytes: 1048576\n  external_labels: {{phase: two}}\n  remote_write:\n  - url: {}/api/v1/write\n    name: agg\n    min_backoff: 50ms\n",
        agg.url("")
    );
    std::fs::write(&file, &second).unwrap();
    wait_until("the reload", Duration::from_secs(30), || {
        reloads(&tw, "success") >= 1.0
    });
    // The new endpoint receives samples with the new labels, every 200 ms.
    wait_until(
        "cycles at the new endpoint with the new labels",
        Duration::from_secs(60),
        || at_aggregator(&agg, "two").is_some_and(|(_, ts)| ts.len() >= 10),
    );
    let (labels, ts) = at_aggregator(&agg, "two").unwrap();
    let min_gap = ts.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(
        min_gap < 1000,
        "the 200ms interval applies (was 2s): smallest gap {min_gap} ms"
    );
    assert_eq!(labels["cluster_id"], "local");
    assert_eq!(
        labels["instance"], "first-node",
        "node_name needs a restart: the running value stays"
    );
    assert!(
        at_aggregator(&agg, "one").is_none(),
        "the old endpoint's queue is not re-targeted"
    );
    // The cgroup source was switched on.
    wait_until("container series", Duration::from_secs(30), || {
        has_container_series(&tw)
    });
    // (A file write may raise more than one reload; each counts.)
    assert!(restart_required(&tw, "collector.node_name") >= 1.0);
    assert!(restart_required(&tw, "collector.queue") >= 1.0);
    assert_eq!(restart_required(&tw, "collector.interval"), 0.0);
}
