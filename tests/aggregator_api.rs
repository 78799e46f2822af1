//! The aggregator's HTTP API end to end: remote-write and import with bad
//! payloads and limits (clear 4xx naming the problem, nothing stored),
//! the metadata endpoints, SQL, and error shapes of the Prometheus API.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Tidewatch, blocking_get};
use tidewatch_common::remote_write::{
    Label, MetricMetadata, Sample, TimeSeries, WriteRequest, encode_write_request,
};

fn series(name: &str, extra: &[(&str, &str)], t: i64, v: f64) -> TimeSeries {
    let mut labels = vec![Label {
        name: "__name__".into(),
        value: name.into(),
    }];
    labels.extend(extra.iter().map(|(n, v)| Label {
        name: n.to_string(),
        value: v.to_string(),
    }));
    TimeSeries {
        labels,
        samples: vec![Sample {
            value: v,
            timestamp: t,
        }],
        ..Default::default()
    }
}

fn post(url: &str, ct: &str, body: Vec<u8>) -> (u16, String) {
    let r = support::reqwest::blocking_client()
        .post(url)
        .header("Content-Type", ct)
        .body(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn write(tw: &Tidewatch, req: &WriteRequest) -> (u16, String) {
    post(
        &tw.url("/api/v1/write"),
        "application/x-protobuf",
        encode_write_request(req),
    )
}

fn get_json(url: &str) -> (u16, Value) {
    let (s, b) = blocking_get(url);
    (s, serde_json::from_str(&b).unwrap_or_else(|e| panic!("{url}: {e}: {b}")))
}

fn series_names(tw: &Tidewatch) -> Vec<String> {
    let (s, v) = get_json(&tw.url("/api/v1/label/__name__/values"));
    assert_eq!(s, 200, "{v}");
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ingest_limits_metadata_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tidewatch.yml");
    std::fs::write(
        &cfg,
        "aggregator:\n  limits:\n    max_series_per_request: 5\n    max_label_value_length: 20\n    max_body_bytes: 4000\n    max_active_series: 13\n",
    )
    .unwrap();
    let cfg = cfg.to_string_lossy().to_string();
    let mut tw = Tidewatch::start("aggregator", dir.path(), &["--config", &cfg]);
    let t = 1_700_000_000_000;

    // A good request, with metadata.
    let good = WriteRequest {
        timeseries: vec![
            series("good", &[("job", "a")], t, 1.0),
            series("good", &[("job", "b")], t, 2.0),
        ],
        metadata: vec![MetricMetadata {
            r#type: 1,
            metric_family_name: "good".into(),
            help: "A good counter.".into(),
            unit: String::new(),
        }],
    };
    assert_eq!(write(&tw, &good), (204, String::new()));

    // Unsupported content type.
    let (s, m) = post(&tw.url("/api/v1/write"), "application/json", b"{}".to_vec());
    assert_eq!(s, 415, "{m}");
    assert!(m.contains("application/x-protobuf"), "{m}");
    // Not snappy.
    let (s, m) = post(
        &tw.url("/api/v1/write"),
        "application/x-protobuf",
        b"definitely not snappy".to_vec(),
    );
    assert_eq!(s, 400, "{m}");
    assert!(m.contains("snappy"), "{m}");
    // Snappy, not protobuf.
    let junk = snap::raw::Encoder::new().compress_vec(&[0xff; 32]).unwrap();
    let (s, m) = post(&tw.url("/api/v1/write"), "application/x-protobuf", junk);
    assert_eq!(s, 400, "{m}");
    assert!(m.contains("protobuf"), "{m}");
    // Too many series.
    let many = WriteRequest {
        timeseries: (0..6)
            .map(|i| series("bad_many", &[("i", &i.to_string())], t, 0.0))
            .collect(),
        metadata: vec![],
    };
    let (s, m) = write(&tw, &many);
    assert_eq!(s, 400, "{m}");
    assert!(m.contains("aggregator.limits.max_series_per_request=5"), "{m}");
    // Label value too long.
    let long = WriteRequest {
        timeseries: vec![series("bad_long", &[("v", &"x".repeat(21))], t, 0.0)],
        metadata: vec![],
    };
    let (s, m) = write(&tw, &long);
    assert_eq!(s, 400, "{m}");
    assert!(m.contains("aggregator.limits.max_label_value_length=20"), "{m}");
    // No metric name.
    let (s, m) = write(
        &tw,
        &WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "job".into(),
                    value: "x".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: t,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        },
    );
    assert_eq!(s, 400, "{m}");
    assert!(m.contains("__name__"), "{m}");
    // Body too large.
    let (s, m) = post(
        &tw.url("/api/v1/write"),
        "application/x-protobuf",
        vec![0u8; 5000],
    );
    assert_eq!(s, 413, "{m}");
    assert!(m.contains("aggregator.limits.max_body_bytes=4000"), "{m}");
    // Text import (placeholder parser: `name value [timestamp]`).
    let (s, m) = post(
        &tw.url("/api/v1/import/prometheus"),
        "text/plain; version=0.0.4",
        format!("imported 42 {t}\n").into_bytes(),
    );
    assert_eq!(s, 204, "{m}");
    // Active series budget: 3 exist, 10 more fit, the 14th is refused.
    for r in 0..2 {
        let req = WriteRequest {
            timeseries: (0..5)
                .map(|i| series("budget", &[("i", &(r * 5 + i).to_string())], t, 0.0))
                .collect(),
            metadata: vec![],
        };
        assert_eq!(write(&tw, &req).0, 204);
    }
    let (s, m) = write(
        &tw,
        &WriteRequest {
            timeseries: vec![series("bad_budget", &[], t, 0.0)],
            metadata: vec![],
        },
    );
    assert_eq!(s, 429, "{m}");
    assert!(m.contains("aggregator.limits.max_active_series=13"), "{m}");
    // Existing series still accept samples at the budget.
    let again = WriteRequest {
        timeseries: vec![series("good", &[("job", "a")], t + 1000, 3.0)],
        metadata: vec![],
    };
    assert_eq!(write(&tw, &again).0, 204);

    // Nothing from the refused requests was stored.
    assert_eq!(series_names(&tw), vec!["budget", "good", "imported"]);

    let (s, m) = post(
        &tw.url("/api/v1/import/prometheus"),
        "application/x-protobuf",
        b"x".to_vec(),
    );
    assert_eq!(s, 415, "{m}");
    let (s, m) = post(
        &tw.url("/api/v1/import/prometheus"),
        "text/plain",
        b"good{} not_a_number\n".to_vec(),
    );
    assert_eq!(s, 400, "{m}");
    assert!(m.contains("line 1"), "{m}");

    // Series, labels, metadata.
    let (s, v) = get_json(&tw.url("/api/v1/series?match[]=good"));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["data"],
        json!([{"__name__": "good", "job": "a"}, {"__name__": "good", "job": "b"}])
    );
    let (_, v) = get_json(&tw.url(&format!(
        "/api/v1/series?match[]={{job=%22b%22}}&start={}&end={}",
        t / 1000 - 1,
        t / 1000 + 1
    )));
    assert_eq!(v["data"], json!([{"__name__": "good", "job": "b"}]));
    let (_, v) = get_json(&tw.url(&format!("/api/v1/series?match[]=good&start={}", t / 1000 + 10)));
    assert_eq!(v["data"], json!([]));
    let (_, v) = get_json(&tw.url("/api/v1/labels"));
    assert_eq!(v["data"], json!(["__name__", "i", "job"]));
    let (_, v) = get_json(&tw.url("/api/v1/label/job/values?match[]=good"));
    assert_eq!(v["data"], json!(["a", "b"]));
    let (_, v) = get_json(&tw.url("/api/v1/metadata?metric=good"));
    assert_eq!(
        v["data"],
        json!({"good": [{"type": "counter", "help": "A good counter.", "unit": ""}]})
    );
    let (_, v) = get_json(&tw.url("/api/v1/status/buildinfo"));
    assert_eq!(v["status"], "success");
    assert!(v["data"]["version"].is_string());
    let (s, v) = get_json(&tw.url("/api/v1/format_query?query=sum(rate(x%5B5m%5D))by(job)"));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"], "sum by (job) (rate(x[5m]))");

    // Error shapes.
    let (s, v) = get_json(&tw.url("/api/v1/series"));
    assert_eq!((s, &v["errorType"]), (400, &json!("bad_data")), "{v}");
    assert_eq!(v["error"], "no match[] parameter provided");
    let (s, v) = get_json(&tw.url("/api/v1/series?match[]=rate(x[5m])"));
    assert_eq!(s, 400, "{v}");
    let (s, v) = get_json(&tw.url("/api/v1/query?query=up&time=yesterday"));
    assert_eq!((s, &v["errorType"]), (400, &json!("bad_data")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("\"time\""), "{v}");
    let (s, v) = get_json(&tw.url("/api/v1/query_range?query=up&start=10&end=20&step=0"));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("step"), "{v}");
    let (s, v) = get_json(&tw.url("/api/v1/query_range?query=up&start=20&end=10&step=1"));
    assert_eq!(s, 400, "{v}");
    let (s, v) = get_json(&tw.url("/api/v1/label/1bad/values"));
    assert_eq!(s, 400, "{v}");

    // SQL, text and JSON bodies.
    let (s, body) = post(
        &tw.url("/api/v1/sql"),
        "text/plain",
        b"SELECT metric, count(*) AS n, sum(value) AS total FROM metrics GROUP BY metric ORDER BY metric"
            .to_vec(),
    );
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["data"]["rows"],
        json!([
            {"metric": "budget", "n": 10, "total": 0.0},
            {"metric": "good", "n": 3, "total": 6.0},
            {"metric": "imported", "n": 1, "total": 42.0}
        ])
    );
    let (s, body) = post(
        &tw.url("/api/v1/sql"),
        "application/json",
        json!({"query": "SELECT nope FROM metrics"}).to_string().into_bytes(),
    );
    assert_eq!(s, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errorType"], "bad_data");

    // A restart keeps everything (WAL replay) and flushes on clean stop.
    assert_eq!(tw.proc.terminate(Duration::from_secs(30)), Some(0));
    let tw = Tidewatch::start("aggregator", dir.path(), &["--config", &cfg]);
    assert_eq!(series_names(&tw), vec!["budget", "good", "imported"]);
    let (_, v) = get_json(&tw.url("/api/v1/metadata"));
    assert_eq!(v["data"]["good"][0]["type"], "counter");
    let (_, body) = post(
        &tw.url("/api/v1/sql"),
        "text/plain",
        b"SELECT count(*) AS n FROM metrics WHERE metric = 'good'".to_vec(),
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["rows"], json!([{"n": 3}]), "{body}");
}
