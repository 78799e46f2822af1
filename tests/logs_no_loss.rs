//! The no-loss test: a writer produces N numbered lines across several
//! files while the test rotates them both ways (rename + create, and
//! copytruncate), kills the collector with `kill -9` twice, and stops the
//! sinks for a while (the aggregator killed, Kafka and the Elasticsearch
//! stand-in frozen with SIGSTOP). At the end every line is in the
//! aggregator, in the Kafka topic and in the Elasticsearch stand-in (osmem,
//! not a real Elasticsearch) exactly once.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use serde_json::{Value, json};
use support::{Proc, Tidewatch, read_topic, start_es_standin, start_kafka, wait_until};

const N: usize = 9000;
const TOPIC: &str = "tidewatch-logs";
const PARTITIONS: i32 = 3;
/// Records per sink request (per Kafka transaction).
const BATCH: usize = 500;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(p.pid().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {}", p.name);
}

/// Appends lines `from..to` round-robin to `files`.
struct Writer {
    dir: PathBuf,
    next: usize,
}

impl Writer {
    fn write(&mut self, count: usize) {
        let names = ["a.log", "b.log", "c.log"];
        let mut files: Vec<_> = names
            .iter()
            .map(|n| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(n))
                    .unwrap()
            })
            .collect();
        for _ in 0..count {
            let i = self.next;
            self.next += 1;
            let k = i % files.len();
            let f = &mut files[k];
            writeln!(f, "line-{i:06} {}", "x".repeat(40 + i % 300)).unwrap();
        }
    }
}

fn line_number(line: &str) -> usize {
    line.strip_prefix("line-")
        .and_then(|r| r.get(..6))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
}

/// Offset the collector checkpointed for the file now at `path`.
fn checkpointed(data: &Path, path: &Path) -> Option<u64> {
    let raw = std::fs::read(data.join("collector/logs/checkpoints.json")).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).ok()?);
    v["files"]
        .as_array()?
        .iter()
        .find(|f| f["id"]["ino"].as_u64() == Some(ino))
        .and_then(|f| f["offset"].as_u64())
}

fn check_exactly_once(what: &str, numbers: &[usize]) {
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for &n in numbers {
        *seen.entry(n).or_default() += 1;
    }
    let missing: Vec<usize> = (0..N).filter(|n| !seen.contains_key(n)).collect();
    let dups: Vec<(usize, usize)> = seen
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, c)| (*n, *c))
        .collect();
    assert!(
        missing.is_empty() && dups.is_empty() && numbers.len() == N,
        "{what}: {} lines, missing {} (first {:?}), duplicated {} (first {:?})",
        numbers.len(),
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        dups.len(),
        dups.iter().take(5).collect::<Vec<_>>()
    );
}

fn aggregator_lines(agg: &Tidewatch) -> Vec<usize> {
    let r = client()
        .post(agg.url("/api/v1/sql"))
        .json(&json!({"query": "SELECT line FROM logs WHERE job = 'no-loss'"}))
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    v["data"]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|r| line_number(r["line"].as_str().unwrap()))
        .collect()
}

fn es_lines(port: u16) -> Vec<usize> {
    let r = client()
        .post(format!("http://127.0.0.1:{port}/logs-*/_search"))
        .json(&json!({"size": N + 1000, "query": {"match_all": {}}}))
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    v["hits"]["hits"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|d| line_number(d["_source"]["message"].as_str().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

fn create_topic(brokers: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let res = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    for r in res {
        r.unwrap();
    }
}

fn kafka_lines(brokers: &str) -> Vec<usize> {
    read_topic(brokers, TOPIC, PARTITIONS)
        .iter()
        .map(|(_, payload)| {
            let doc: Value = serde_json::from_slice(payload).unwrap();
            line_number(doc["message"].as_str().unwrap())
        })
        .collect()
}

#[test]
fn every_line_reaches_every_sink_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    // TIDEWATCH_KEEP_TEST_DIR=1 keeps the logs and data for a post-mortem.
    let _tmp = if std::env::var_os("TIDEWATCH_KEEP_TEST_DIR").is_some() {
        eprintln!("keeping {}", tmp.keep().display());
        None
    } else {
        Some(tmp)
    };
    let logs = root.as_path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (kafka, kport) = start_kafka(root.as_path());
    let (es, esport) = start_es_standin(root.as_path());
    let brokers = format!("127.0.0.1:{kport}");
    create_topic(&brokers);
    let agg_dir = root.as_path().join("agg");
    let mut agg = Tidewatch::start("aggregator", &agg_dir, &[]);
    let agg_port = agg.port();

    let cfg = root.as_path().join("collector.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"collector:
  logs:
    cluster_id: test
    node: node-1
    poll_interval: 100ms
    inputs:
      - type: host-log
        path: {logs}/*.log
        labels: {{job: no-loss}}
    outputs:
      - type: loki
        name: aggregator
        url: http://127.0.0.1:{agg_port}
      - type: kafka
        name: kafka
        brokers: {brokers}
        topic: {TOPIC}
        buffer: {{batch_records: {BATCH}}}
      - type: elasticsearch
        name: es
        hosts: [http://127.0.0.1:{esport}]
        index: logs-%Y.%m.%d
        buffer: {{batch_records: {BATCH}}}
"#,
            logs = logs.display()
        ),
    )
    .unwrap();
    let col_dir = root.as_path().join("col");
    let cfg_arg = cfg.to_str().unwrap().to_string();
    let start_collector = || Tidewatch::start("collector", &col_dir, &["--config", &cfg_arg]);

    let mut w = Writer {
        dir: logs.clone(),
        next: 0,
    };
    // A file rotated away before any tailer saw it is lost to every
    // tailer: rotate only files the collector has checkpointed once.
    let a = logs.join("a.log");
    let seen = |a: &Path| {
        wait_until(
            "a.log known to the collector",
            Duration::from_secs(60),
            || checkpointed(&col_dir, a).is_some(),
        )
    };
    let mut col = start_collector();
    w.write(1500);
    seen(&a);
    // Rotation by rename + create.
    std::fs::rename(&a, logs.join("a.log.1")).unwrap();
    w.write(1500);
    seen(&a);

    // kill -9 #1, while lines keep coming; rotate by rename while it is down.
    col.proc.kill9();
    w.write(1000);
    std::fs::rename(logs.join("a.log"), logs.join("a.log.2")).unwrap();
    w.write(500);
    let mut col = start_collector();

    // Sinks down: aggregator killed, Kafka and the ES stand-in frozen.
    agg.proc.kill9();
    signal(&kafka, "STOP");
    signal(&es, "STOP");
    w.write(1500);
    // copytruncate of b.log once the collector has read all of it.
    let b = logs.join("b.log");
    let size = std::fs::metadata(&b).unwrap().len();
    wait_until(
        "b.log checkpointed to its end",
        Duration::from_secs(60),
        || checkpointed(&col_dir, &b) == Some(size),
    );
    std::fs::copy(&b, logs.join("b.log.copy")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&b)
        .unwrap()
        .set_len(0)
        .unwrap();
    w.write(1000);

    // Sinks back, then kill -9 #2.
    signal(&kafka, "CONT");
    signal(&es, "CONT");
    let agg = Tidewatch::start_on("aggregator", &agg_dir, agg_port, &[]);
    col.proc.kill9();
    w.write(500);
    let _col = start_collector();
    w.write(N - w.next);
    assert_eq!(w.next, N);

    wait_until(
        "all lines in the aggregator",
        Duration::from_secs(180),
        || aggregator_lines(&agg).len() >= N,
    );
    wait_until(
        "all lines in the ES stand-in",
        Duration::from_secs(180),
        || es_lines(esport).len() >= N,
    );
    let mut from_kafka = Vec::new();
    wait_until("all lines in Kafka", Duration::from_secs(180), || {
        from_kafka = kafka_lines(&brokers);
        from_kafka.len() >= N
    });
    check_exactly_once("aggregator", &aggregator_lines(&agg));
    let es_numbers = es_lines(esport);
    if es_numbers.len() != N {
        // Show both copies of a duplicated line for the post-mortem.
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = es_numbers.iter().find(|n| !seen.insert(**n)) {
            let r = client()
                .post(format!("http://127.0.0.1:{esport}/logs-*/_search"))
                .json(&json!({"size": 10, "query": {"match_phrase_prefix": {"message": format!("line-{d:06}")}}}))
                .send()
                .unwrap()
                .text()
                .unwrap();
            eprintln!("copies of line {d}: {r}");
        }
    }
    check_exactly_once("Elasticsearch stand-in", &es_numbers);
    check_exactly_once("Kafka", &from_kafka);
    drop((kafka, es));
}
