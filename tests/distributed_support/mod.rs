//! Shared set-up of the distributed-mode tests: config files for each role
//! and a remote-write request generator.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tidewatch_common::remote_write::{Label, Sample, TimeSeries, WriteRequest};

use crate::support::S3;

/// Writes `tidewatch.yml` into `dir` with an `aggregator:` section made of
/// `flush_interval: 1s` and `distributed:` = `distributed_yaml` (already
/// indented by four spaces).
pub fn write_config(dir: &Path, distributed_yaml: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("tidewatch.yml");
    std::fs::write(
        &p,
        format!("aggregator:\n  flush_interval: 1s\n  distributed:\n{distributed_yaml}"),
    )
    .unwrap();
    p
}

/// The `kafka:` block.
pub fn kafka_yaml(port: u16) -> String {
    format!(
        "    kafka: {{brokers: ['127.0.0.1:{port}'], topic: tw-remote-write, group: tw-aggregators, session_timeout: 6s, ack_timeout: 5s}}\n"
    )
}

/// The `object_store:` block.
pub fn s3_yaml(s3: &S3) -> String {
    format!(
        "    object_store: {{bucket: {}, endpoint: '{}', allow_http: true, access_key_id: {}, secret_access_key: {}, sync_interval: 300ms}}\n",
        s3.bucket, s3.endpoint, s3.access_key, s3.secret_key
    )
}

/// A request of `series` series (`{__name__=metric, producer, s}`) with
/// `samples` samples each, request number `req` (timestamps
/// `base + (req * samples + i) * 1000`).
pub fn request(
    metric: &str,
    producer: &str,
    series: usize,
    samples: i64,
    req: i64,
    base: i64,
) -> WriteRequest {
    request_step(metric, producer, series, samples, req, base, 1000)
}

/// Like [`request`] with samples `step_ms` apart.
pub fn request_step(
    metric: &str,
    producer: &str,
    series: usize,
    samples: i64,
    req: i64,
    base: i64,
    step_ms: i64,
) -> WriteRequest {
    let l = |n: &str, v: &str| Label {
        name: n.into(),
        value: v.into(),
    };
    WriteRequest {
        timeseries: (0..series)
            .map(|s| TimeSeries {
                labels: vec![
                    l("__name__", metric),
                    l("producer", producer),
                    l("s", &s.to_string()),
                ],
                samples: (0..samples)
                    .map(|i| Sample {
                        value: ((req * samples + i) * (s as i64 + 1)) as f64,
                        timestamp: base + (req * samples + i) * step_ms,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// GET `url`, the JSON body's `data` (None unless 200 and `success`).
pub fn api_data(client: &reqwest::blocking::Client, url: &str) -> Option<serde_json::Value> {
    let r = client.get(url).send().ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: serde_json::Value = r.json().ok()?;
    (v["status"] == "success").then(|| v["data"].clone())
}

/// URL-encodes a query parameter value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// POSTs `req` like a remote-write client: retries 5xx and connection
/// errors (the ingester answers 503 until it knows the topic's partitions,
/// or while the broker does not acknowledge) for up to 60 s; returns the
/// final status.
pub fn write_retrying(client: &reqwest::blocking::Client, url: &str, req: &WriteRequest) -> u16 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status = crate::support::post_remote_write(client, url, req);
        if (status != 0 && status < 500) || std::time::Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
