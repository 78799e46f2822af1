//! Durability of the Kafka ingest bus: one aggregator replica is killed
//! with SIGKILL while writes flow (ingester → Kafka → two consumer
//! replicas); after it restarts, every sample the ingester acknowledged
//! with 204 is answered by the query replica.

mod distributed_support;
mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distributed_support::{api_data, enc, kafka_yaml, now_ms, request_step, write_config};
use support::{Tidewatch, post_remote_write, start_kafka, wait_until};

const SERIES: usize = 8;
const SAMPLES: i64 = 5;
/// Samples are 10ms apart: 100 000 requests span 5 000 s, inside `[2h]`.
const STEP_MS: i64 = 10;
const MAX_REQUESTS: i64 = 100_000;

#[test]
fn kill_9_of_a_replica_loses_no_acknowledged_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_kafka, kport) = start_kafka(dir);
    let kafka = kafka_yaml(kport);
    let consumer_cfg = |name: &str| {
        let d = dir.join(name);
        let cfg = write_config(
            &d,
            &format!("    mode: consumer\n    replica: {name}\n{kafka}"),
        );
        (d, cfg.to_string_lossy().to_string())
    };
    let (dir_a, cfg_a) = consumer_cfg("agg-a");
    let (dir_b, cfg_b) = consumer_cfg("agg-b");
    let mut agg_a = Tidewatch::start("aggregator", &dir_a, &["--config", &cfg_a]);
    let agg_b = Tidewatch::start("aggregator", &dir_b, &["--config", &cfg_b]);
    let ing_dir = dir.join("ingester");
    let ing_cfg = write_config(&ing_dir, &format!("    mode: ingester\n{kafka}"));
    let ingester = Tidewatch::start(
        "aggregator",
        &ing_dir,
        &["--config", &ing_cfg.to_string_lossy()],
    );
    let query_dir = dir.join("query");
    let query_cfg = write_config(
        &query_dir,
        &format!(
            "    mode: query\n    query: {{replicas: ['http://{}', 'http://{}']}}\n",
            agg_a.addr, agg_b.addr
        ),
    );
    let query = Tidewatch::start(
        "aggregator",
        &query_dir,
        &["--config", &query_cfg.to_string_lossy()],
    );

    // A writer acknowledging request numbers until told to stop.
    let base = now_ms() - 7_200_000;
    let acked: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, sent, stop) = (acked.clone(), sent.clone(), stop.clone());
        let url = ingester.url("/api/v1/write");
        std::thread::spawn(move || {
            let client = support::reqwest::blocking_client();
            let mut r = 0i64;
            while !stop.load(Ordering::SeqCst) && r < MAX_REQUESTS {
                let req = request_step("crash_test", "p0", SERIES, SAMPLES, r, base, STEP_MS);
                if post_remote_write(&client, &url, &req) == 204 {
                    acked.lock().unwrap().insert(r);
                }
                sent.fetch_add(1, Ordering::SeqCst);
                r += 1;
            }
        })
    };
    let client = support::reqwest::blocking_client();
    let held_by = |agg: &Tidewatch| -> usize {
        api_data(
            &client,
            &agg.url(&format!(
                "/api/v1/query?query={}&time={}",
                enc("count(count_over_time(crash_test[2h]))"),
                (base + 7_000_000) as f64 / 1000.0
            )),
        )
        .and_then(|d| d["result"][0]["value"][1].as_str()?.parse().ok())
        .unwrap_or(0)
    };
    // Kill A once it is consuming (it owns some partitions).
    wait_until("replica A to consume", Duration::from_secs(60), || {
        held_by(&agg_a) > 0
    });
    let port_a = agg_a.port();
    agg_a.proc.kill9();
    let acked_at_kill = acked.lock().unwrap().len();
    // Writes keep being acknowledged while A is down (Kafka holds them).
    wait_until("more acknowledged writes", Duration::from_secs(60), || {
        acked.lock().unwrap().len() > acked_at_kill + 20
    });
    let agg_a = Tidewatch::start_on("aggregator", &dir_a, port_a, &["--config", &cfg_a]);
    wait_until(
        "more writes after the restart",
        Duration::from_secs(60),
        || acked.lock().unwrap().len() > acked_at_kill + 40,
    );
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 40,
        "{} of {} acknowledged",
        acked.len(),
        sent.load(Ordering::SeqCst)
    );

    // Every acknowledged (series, timestamp) is answered by the query
    // replica once both replicas caught up.
    let last = base + ((*acked.iter().next_back().unwrap() + 1) * SAMPLES) * STEP_MS;
    let url = query.url(&format!(
        "/api/v1/query?query={}&time={}",
        enc("crash_test[2h]"),
        last as f64 / 1000.0
    ));
    let mut missing = usize::MAX;
    wait_until("every acknowledged sample", Duration::from_secs(90), || {
        let Some(data) = api_data(&client, &url) else {
            return false;
        };
        let mut have: BTreeSet<(String, i64)> = BTreeSet::new();
        for s in data["result"].as_array().into_iter().flatten() {
            let sid = s["metric"]["s"].as_str().unwrap_or("").to_string();
            for v in s["values"].as_array().into_iter().flatten() {
                let t = (v[0].as_f64().unwrap() * 1000.0).round() as i64;
                have.insert((sid.clone(), t));
            }
        }
        missing = 0;
        for r in &acked {
            for s in 0..SERIES {
                for i in 0..SAMPLES {
                    let t = base + (r * SAMPLES + i) * STEP_MS;
                    if !have.contains(&(s.to_string(), t)) {
                        missing += 1;
                    }
                }
            }
        }
        missing == 0
    });
    assert_eq!(missing, 0);
    // Both replicas serve data (the partitions were shared).
    assert!(held_by(&agg_a) > 0 && held_by(&agg_b) > 0);
}
