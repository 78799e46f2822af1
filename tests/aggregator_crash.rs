//! Crash safety: `kill -9` during heavy remote-write ingest (with flushes
//! into blocks and WAL truncation running) loses no sample that was
//! acknowledged with 204.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Tidewatch, wait_until};
use tidewatch_common::remote_write::{
    Label, Sample, TimeSeries, WriteRequest, encode_write_request,
};

const WRITERS: usize = 4;
const SERIES_PER_REQUEST: usize = 10;
const SAMPLES_PER_SERIES: i64 = 10;

fn request(writer: usize, req: i64, base: i64) -> WriteRequest {
    let timeseries = (0..SERIES_PER_REQUEST)
        .map(|s| TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: "crash_test".into(),
                },
                Label {
                    name: "s".into(),
                    value: s.to_string(),
                },
                Label {
                    name: "writer".into(),
                    value: writer.to_string(),
                },
            ],
            samples: (0..SAMPLES_PER_SERIES)
                .map(|i| Sample {
                    value: (req * 100 + i) as f64,
                    timestamp: base + req * SAMPLES_PER_SERIES + i,
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

/// (writer, s) → acknowledged timestamps.
type Acked = BTreeMap<(String, String), BTreeSet<i64>>;

fn block_count(data_dir: &std::path::Path) -> usize {
    std::fs::read_dir(data_dir.join("aggregator/blocks"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn kill_9_during_ingest_loses_no_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tidewatch.yml");
    std::fs::write(
        &cfg,
        "aggregator:\n  flush_interval: 500ms\n  compact_min_blocks: 3\n",
    )
    .unwrap();
    let cfg_s = cfg.to_string_lossy().to_string();
    let mut tw = Tidewatch::start("aggregator", dir.path(), &["--config", &cfg_s]);
    let url = tw.url("/api/v1/write");
    let base = chrono_like_now_ms();

    let acked: Arc<Mutex<Acked>> = Arc::default();
    let acked_requests = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (url, acked, n, stop) = (
                url.clone(),
                acked.clone(),
                acked_requests.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let client = support::reqwest::blocking_client();
                let mut req = 0i64;
                while !stop.load(Ordering::SeqCst) {
                    let body = encode_write_request(&request(w, req, base));
                    let res = client
                        .post(&url)
                        .header("Content-Type", "application/x-protobuf")
                        .header("Content-Encoding", "snappy")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .body(body)
                        .send();
                    match res {
                        Ok(r) if r.status().as_u16() == 204 => {
                            let mut a = acked.lock().unwrap();
                            for s in 0..SERIES_PER_REQUEST {
                                let e = a.entry((w.to_string(), s.to_string())).or_default();
                                for i in 0..SAMPLES_PER_SERIES {
                                    e.insert(base + req * SAMPLES_PER_SERIES + i);
                                }
                            }
                            n.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => panic!("unexpected status {}: {:?}", r.status(), r.text()),
                        // The server was killed.
                        Err(_) => break,
                    }
                    req += 1;
                }
            })
        })
        .collect();

    // Heavy ingest with at least two flushes behind us, then kill -9 while
    // the writers are still sending.
    wait_until("ingest and flushes", Duration::from_secs(120), || {
        acked_requests.load(Ordering::SeqCst) >= 300 && block_count(dir.path()) >= 2
    });
    tw.proc.kill9();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let total: usize = acked.values().map(|s| s.len()).sum();
    assert!(total >= 300 * SERIES_PER_REQUEST * SAMPLES_PER_SERIES as usize);

    let tw = Tidewatch::start("aggregator", dir.path(), &["--config", &cfg_s]);
    let client = support::reqwest::blocking_client();
    let resp: serde_json::Value = client
        .post(tw.url("/api/v1/sql"))
        .header("Content-Type", "application/json")
        .body(
            serde_json::json!({"query":
                "SELECT labels, CAST(timestamp AS BIGINT) AS t FROM metrics WHERE metric = 'crash_test'"})
            .to_string(),
        )
        .timeout(Duration::from_secs(120))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(resp["status"], "success", "{resp}");
    let mut stored: Acked = BTreeMap::new();
    for row in resp["data"]["rows"].as_array().unwrap() {
        let labels: serde_json::Value =
            serde_json::from_str(row["labels"].as_str().unwrap()).unwrap();
        let key = (
            labels["writer"].as_str().unwrap().to_string(),
            labels["s"].as_str().unwrap().to_string(),
        );
        stored
            .entry(key)
            .or_default()
            .insert(row["t"].as_i64().unwrap());
    }
    let mut missing = 0;
    for (k, ts) in &acked {
        let have = stored.get(k).cloned().unwrap_or_default();
        missing += ts.difference(&have).count();
    }
    assert_eq!(
        missing, 0,
        "{missing} of {total} acknowledged samples are missing after kill -9 and restart"
    );
}

fn chrono_like_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
