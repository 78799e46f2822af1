//! `POST /api/v1/read` speaks Prometheus remote-read: a real Prometheus
//! configured with `remote_read` against Tidewatch answers PromQL with the
//! same series and values as Tidewatch itself.

mod distributed_support;
mod support;

use std::time::Duration;

use distributed_support::{api_data, enc, now_ms, request};
use support::{Tidewatch, post_remote_write, start_prometheus, wait_until};

#[test]
fn prometheus_reads_tidewatch_through_remote_read() {
    let tmp = tempfile::tempdir().unwrap();
    let tw = Tidewatch::start("aggregator", &tmp.path().join("tw"), &[]);
    let base = now_ms() - 120_000;
    let client = support::reqwest::blocking_client();
    for r in 0..4 {
        let req = request("rr_test", "p0", 5, 10, r, base);
        assert_eq!(
            post_remote_write(&client, &tw.url("/api/v1/write"), &req),
            204
        );
    }
    let (_prom, pport) = start_prometheus(
        &tmp.path().join("prom"),
        &format!(
            "global: {{scrape_interval: 1h}}\nremote_read:\n  - url: http://{}/api/v1/read\n    read_recent: true\n",
            tw.addr
        ),
        &[],
    );
    let t = (base + 39_000) as f64 / 1000.0;
    for q in [
        "rr_test",
        "sum by (s) (rate(rr_test[1m]))",
        "rr_test{s=~\"1|3\"}",
        "count(rr_test{s!=\"0\"})",
    ] {
        let path = format!("/api/v1/query?query={}&time={t}", enc(q));
        let mine = api_data(&client, &tw.url(&path)).unwrap();
        assert!(!mine["result"].as_array().unwrap().is_empty(), "{q}");
        let prom = format!("http://127.0.0.1:{pport}{path}");
        wait_until(
            &format!("Prometheus to answer {q} like Tidewatch"),
            Duration::from_secs(30),
            || {
                let mut theirs = api_data(&client, &prom);
                let mut want = Some(mine.clone());
                for v in [&mut theirs, &mut want].into_iter().flatten() {
                    sort_result(v);
                }
                theirs == want
            },
        );
    }
    // A malformed body is refused with the reason.
    let r = client
        .post(tw.url("/api/v1/read"))
        .body(vec![0xffu8; 8])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

/// Orders a vector result by labels (the two servers may list series in a
/// different order).
fn sort_result(data: &mut serde_json::Value) {
    if let Some(r) = data["result"].as_array_mut() {
        r.sort_by_key(|s| s["metric"].to_string());
    }
}
