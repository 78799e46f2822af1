//! A consumer whose limits are stricter than the ingester's drops only the
//! series it refuses (logged and counted in `/metrics`); the rest of the
//! same request is stored.

mod distributed_support;
mod support;

use std::time::Duration;

use distributed_support::{api_data, enc, kafka_yaml, now_ms, write_retrying};
use support::{Tidewatch, start_kafka, wait_until};
use tidewatch_common::remote_write::{Label, Sample, TimeSeries, WriteRequest};

fn series(extra_labels: usize, t: i64) -> TimeSeries {
    let mut labels = vec![Label {
        name: "__name__".into(),
        value: "limits_test".into(),
    }];
    labels.extend((0..extra_labels).map(|i| Label {
        name: format!("l{i}"),
        value: "v".into(),
    }));
    TimeSeries {
        labels,
        samples: vec![Sample {
            value: extra_labels as f64,
            timestamp: t,
        }],
        ..Default::default()
    }
}

#[test]
fn stricter_consumer_drops_only_the_refused_series() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_kafka, kport) = start_kafka(dir);
    let kafka = kafka_yaml(kport);
    let start = |name: &str, yaml: String| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let cfg = d.join("tidewatch.yml");
        std::fs::write(&cfg, yaml).unwrap();
        Tidewatch::start("aggregator", &d, &["--config", &cfg.to_string_lossy()])
    };
    let consumer = start(
        "agg",
        format!(
            "aggregator:\n  limits: {{max_labels_per_series: 3}}\n  distributed:\n    mode: consumer\n    replica: agg\n{kafka}"
        ),
    );
    let ingester = start(
        "ing",
        format!("aggregator:\n  distributed:\n    mode: ingester\n{kafka}"),
    );
    let t = now_ms();
    // Series with 1..=6 labels (the name included): the ingester's default
    // limit accepts all, the consumer's accepts up to 3.
    let req = WriteRequest {
        timeseries: (0..6).map(|n| series(n, t)).collect(),
        metadata: vec![],
    };
    let client = support::reqwest::blocking_client();
    assert_eq!(
        write_retrying(&client, &ingester.url("/api/v1/write"), &req),
        204
    );
    let url = consumer.url(&format!(
        "/api/v1/query?query={}&time={}",
        enc("sort(limits_test)"),
        t as f64 / 1000.0
    ));
    let stored = || -> Vec<String> {
        api_data(&client, &url)
            .and_then(|d| {
                d["result"]
                    .as_array()
                    .map(|r| r.iter().map(|s| s["value"][1].to_string()).collect())
            })
            .unwrap_or_default()
    };
    wait_until(
        "the accepted series stored",
        Duration::from_secs(60),
        || stored().len() == 3,
    );
    assert_eq!(stored(), vec!["\"0\"", "\"1\"", "\"2\""]);
    let dropped = |name: &str| -> f64 {
        let (_, text) = support::blocking_get(&consumer.url("/metrics"));
        text.lines()
            .filter(|l| {
                l.split([' ', '{'])
                    .next()
                    .is_some_and(|n| n.ends_with(name))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(dropped("kafka_series_dropped_total"), 3.0);
}
