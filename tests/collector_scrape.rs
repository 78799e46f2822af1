//! Scraping end to end: `tidewatch collector` scrapes Debian's node_exporter
//! and remote-writes to Debian's Prometheus; when the job is removed (config
//! reload) its staleness markers make Prometheus drop the series at once
//! instead of after the 5-minute lookback.

mod support;

use std::time::Duration;

use support::{Tidewatch, blocking_get, start_node_exporter, start_prometheus, wait_until};

fn query(port: u16, q: &str) -> Vec<serde_json::Value> {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}",
        q.replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace('=', "%3D")
    );
    let (status, body) = blocking_get(&url);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"].as_array().unwrap().clone()
}

fn config(prom: u16, ne: Option<u16>) -> String {
    let mut c = format!(
        "collector:\n  interval: 1s\n  remote_write:\n  - url: http://127.0.0.1:{prom}/api/v1/write\n    min_backoff: 50ms\n    max_backoff: 500ms\n"
    );
    if let Some(ne) = ne {
        c.push_str(&format!(
            "  scrape_configs:\n  - job_name: ne\n    scrape_interval: 500ms\n    scrape_timeout: 400ms\n    static_configs:\n    - targets: ['127.0.0.1:{ne}']\n      labels: {{team: infra}}\n    metric_relabel_configs:\n    - source_labels: [__name__]\n      regex: 'node_(load1|boot_time_seconds)'\n      action: keep\n"
        ));
    }
    c
}

#[test]
fn scraped_series_reach_prometheus_and_go_stale_when_the_job_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (_ne, ne) = start_node_exporter(dir.path());
    let (_prom, prom) = start_prometheus(
        &dir.path().join("prom"),
        "global:\n  scrape_interval: 1h\n",
        &[],
    );
    let file = dir.path().join("tw.yml");
    std::fs::write(&file, config(prom, Some(ne))).unwrap();
    let f = file.display().to_string();
    let _tw = Tidewatch::start("collector", &dir.path().join("data"), &["--config", &f]);

    wait_until(
        "up{job=\"ne\"} at Prometheus",
        Duration::from_secs(60),
        || {
            query(prom, "up{job=\"ne\"}")
                .first()
                .is_some_and(|r| r["value"][1] == "1")
        },
    );
    let load = query(prom, "node_load1{job=\"ne\"}");
    assert_eq!(load.len(), 1);
    assert_eq!(load[0]["metric"]["team"], "infra");
    assert_eq!(
        load[0]["metric"]["cluster_id"], "local",
        "external labels added"
    );
    assert!(
        query(prom, "node_memory_MemTotal_bytes{job=\"ne\"}").is_empty(),
        "dropped by metric_relabel_configs"
    );
    let scraped = query(prom, "scrape_samples_scraped{job=\"ne\"}");
    let post = query(prom, "scrape_samples_post_metric_relabeling{job=\"ne\"}");
    assert_eq!(post[0]["value"][1], "2");
    assert!(
        scraped[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 100.0
    );

    // Remove the job: stale markers end the series well before the lookback.
    std::fs::write(&file, config(prom, None)).unwrap();
    wait_until("series marked stale", Duration::from_secs(60), || {
        query(prom, "up{job=\"ne\"}").is_empty() && query(prom, "node_load1{job=\"ne\"}").is_empty()
    });
}
