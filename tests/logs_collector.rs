//! End-to-end tests of the collector's log inputs with real-format
//! fixtures: containerd's CRI log format (partial `P` lines merged, size
//! cap, flush timeout), docker's json-file format (16 KiB split lines),
//! multiline records by start pattern, Kubernetes labels from the kubelet's
//! `/var/log/pods` layout, and invalid UTF-8 in a host file — each checked
//! through the aggregator's Loki API.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use support::{Tidewatch, wait_until};

/// What containerd writes for a line split in three (`P`, `P`, `F`), a
/// Java stack trace on stderr, and a partial line never completed.
const CRI: &str = "\
2024-05-01T10:00:00.000000001Z stdout P first part of a long \n\
2024-05-01T10:00:00.000000002Z stdout P line that containerd \n\
2024-05-01T10:00:00.000000003Z stdout F split in three\n\
2024-05-01T10:00:01.000000000Z stderr F Exception in thread \"main\" java.lang.IllegalStateException: boom\n\
2024-05-01T10:00:01.000000001Z stderr F \tat com.example.App.run(App.java:42)\n\
2024-05-01T10:00:01.000000002Z stderr F \tat com.example.App.main(App.java:7)\n\
2024-05-01T10:00:02.000000000Z stdout F next record\n\
2024-05-01T10:00:03.000000000Z stdout P dangling\n";

/// docker's json-file: a line over 16 KiB arrives in pieces without `\n`.
const DOCKER: &str = r#"{"log":"hello from ","stream":"stdout","time":"2024-05-01T10:00:05.000000000Z"}
{"log":"docker\n","stream":"stdout","time":"2024-05-01T10:00:05.000000001Z"}
{"log":"oops\n","stream":"stderr","time":"2024-05-01T10:00:06.5Z"}
"#;

/// Runs a log query over the fixtures' day.
fn query(tw: &Tidewatch, q: &str) -> Vec<(BTreeMap<String, String>, Vec<String>)> {
    query_range(
        tw,
        q,
        &[
            ("start", "2024-05-01T00:00:00Z"),
            ("end", "2024-05-02T00:00:00Z"),
        ],
    )
}

/// Runs a log query over the last hour (Loki's default range).
fn query_recent(tw: &Tidewatch, q: &str) -> Vec<(BTreeMap<String, String>, Vec<String>)> {
    query_range(tw, q, &[])
}

fn query_range(
    tw: &Tidewatch,
    q: &str,
    range: &[(&str, &str)],
) -> Vec<(BTreeMap<String, String>, Vec<String>)> {
    let mut params = vec![("query", q), ("direction", "forward"), ("limit", "1000")];
    params.extend_from_slice(range);
    let r = reqwest::blocking::Client::new()
        .get(tw.url("/loki/api/v1/query_range"))
        .query(&params)
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    v["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|s| {
            (
                serde_json::from_value(s["stream"].clone()).unwrap(),
                s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e[1].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn container_formats_multiline_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let api = pods.join("prod_api-7d9f8b6c5d-x2x4z_0b1c/app");
    let db = pods.join("dev_db-0_9f8e/db");
    let host = dir.path().join("host");
    for d in [&api, &db, &host] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(api.join("0.log"), CRI).unwrap();
    std::fs::write(db.join("0.log"), DOCKER).unwrap();
    let mut f = std::fs::File::create(host.join("syslog.log")).unwrap();
    f.write_all(b"valid line\nbad \xff\xfe bytes\n").unwrap();
    // A partial line far beyond max_record_bytes (cut, not fatal).
    let mut big = String::new();
    for i in 0..5 {
        big.push_str(&format!(
            "2024-05-01T10:00:07.00000000{i}Z stdout P {}\n",
            "y".repeat(100)
        ));
    }
    big.push_str("2024-05-01T10:00:07.9Z stdout F end\n");
    std::fs::write(pods.join("prod_api-7d9f8b6c5d-x2x4z_0b1c/app/1.log"), big).unwrap();

    let agg_cfg = dir.path().join("agg.yml");
    std::fs::write(&agg_cfg, "aggregator:\n  logs:\n    retention: 3650d\n").unwrap();
    let agg = Tidewatch::start(
        "aggregator",
        &dir.path().join("agg"),
        &["--config", agg_cfg.to_str().unwrap()],
    );
    let cfg = dir.path().join("collector.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"collector:
  logs:
    cluster_id: cls-test
    node: node-1
    poll_interval: 100ms
    flush_timeout: 300ms
    max_record_bytes: 256
    inputs:
      - type: container-log
        all_namespaces: true
        pods_root: {pods}
        multiline:
          start_pattern: '^\S'
      - type: host-log
        path: {host}/*.log
        labels: {{job: syslog}}
    outputs:
      - type: loki
        name: aggregator
        url: {agg}
"#,
            pods = pods.display(),
            host = host.display(),
            agg = agg.url("")
        ),
    )
    .unwrap();
    let _col = Tidewatch::start(
        "collector",
        &dir.path().join("col"),
        &["--config", cfg.to_str().unwrap()],
    );

    // The unfinished partial line ends up as a record after the timeout.
    wait_until("every container record", Duration::from_secs(60), || {
        let got = query(&agg, r#"{cluster_id="cls-test"}"#);
        let n: usize = got.iter().map(|(_, l)| l.len()).sum();
        if n < 7 {
            eprintln!("{n} records so far: {got:?}");
        }
        n >= 7
    });
    let streams = query(
        &agg,
        r#"{namespace="prod", stream="stdout"} |~ "part|next|dangling""#,
    );
    assert_eq!(streams.len(), 1, "{streams:?}");
    let (labels, lines) = &streams[0];
    let expect: BTreeMap<String, String> = [
        ("cluster_id", "cls-test"),
        ("namespace", "prod"),
        ("pod", "api-7d9f8b6c5d-x2x4z"),
        ("container", "app"),
        ("workload_kind", "Deployment"),
        ("workload_name", "api"),
        ("node", "node-1"),
        ("stream", "stdout"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(labels, &expect);
    assert_eq!(
        lines,
        &[
            "first part of a long line that containerd split in three",
            "next record",
            "dangling",
        ]
    );
    let stderr = query(&agg, r#"{pod="api-7d9f8b6c5d-x2x4z", stream="stderr"}"#);
    assert_eq!(
        stderr[0].1,
        [
            "Exception in thread \"main\" java.lang.IllegalStateException: boom\n\tat com.example.App.run(App.java:42)\n\tat com.example.App.main(App.java:7)"
        ]
    );
    // The oversized P…F line: cut at max_record_bytes (256).
    let big = query(&agg, r#"{pod="api-7d9f8b6c5d-x2x4z"} |= "yyyy""#);
    assert_eq!(big[0].1.len(), 1);
    assert_eq!(big[0].1[0].len(), 256);
    // docker json-file.
    let docker = query(&agg, r#"{namespace="dev", container="db"}"#);
    assert_eq!(docker.len(), 2, "{docker:?}");
    assert_eq!(docker[0].0["workload_kind"], "StatefulSet");
    let all: Vec<&String> = docker.iter().flat_map(|(_, l)| l).collect();
    assert!(all.contains(&&"hello from docker".to_string()), "{all:?}");
    assert!(all.contains(&&"oops".to_string()), "{all:?}");
    // Invalid UTF-8 replaced, the line kept (host lines carry read time).
    wait_until("host lines", Duration::from_secs(30), || {
        query_recent(&agg, r#"{job="syslog"}"#)
            .first()
            .map(|s| s.1.len())
            == Some(2)
    });
    let host = query_recent(&agg, r#"{job="syslog"}"#);
    assert_eq!(host[0].1, ["valid line", "bad \u{fffd}\u{fffd} bytes"]);
    assert_eq!(host[0].0["node"], "node-1");
}
