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
