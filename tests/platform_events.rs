//! Cluster events end to end through the `tidewatch` binaries: the
//! platform watches the Kubernetes API stand-in (`tidewatch_platform::
//! testing`, in the test process) and delivers through durable disk buffers
//! to the aggregator's `events` table, Elasticsearch (the osmem stand-in)
//! and Kafka (Tansu); per-cluster retention on the `events` table.

mod platform_support;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use platform_support::{Api, P, kube, metric, sql};
use serde_json::{Value, json};
use support::{Tidewatch, free_port, read_topic, wait_until};

const KUBE_TOKEN: &str = "cluster-admin-token";

fn import(api: &Api, name: &str, url: &str) -> String {
    let c = api.admin(
        "POST",
        &format!("{P}/clusters"),
        Some(json!({"name": name, "api_server": url, "token": KUBE_TOKEN})),
        201,
    );
    c["id"].as_str().unwrap().to_string()
}

/// `(uid, count)` → rows in the aggregator's events table.
fn stored(agg: &Api) -> BTreeMap<(String, i64), usize> {
    let mut out = BTreeMap::new();
    for r in sql(agg, None, "SELECT uid, count FROM events") {
        let k = (
            r["uid"].as_str().unwrap().to_string(),
            r["count"].as_i64().unwrap(),
        );
        *out.entry(k).or_insert(0) += 1;
    }
    out
}

fn key(uid: &str, count: i64) -> (String, i64) {
    (uid.to_string(), count)
}

fn start_aggregator(dir: &Path, port: u16) -> Api {
    let tw = Tidewatch::start_on("aggregator", &dir.join("agg"), port, &[]);
    Api {
        tw,
        http: support::reqwest::blocking_client(),
        admin: String::new(),
    }
}

#[test]
fn events_watched_while_the_aggregator_is_down_arrive_once_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let k = kube(&rt);
    let agg_port = free_port();
    let plat_port = free_port();
    let agg = start_aggregator(dir.path(), agg_port);
    let extra = format!("  aggregator_url: http://127.0.0.1:{agg_port}\n");
    let plat = Api::start("platform", dir.path(), plat_port, &extra);
    import(&plat, "prod", &k.url());

    k.put_event("shop", "e1", "BackOff", 1);
    wait_until("e1 stored", Duration::from_secs(60), || {
        stored(&agg).contains_key(&key("uid-shop-e1", 1))
    });

    // The aggregator dies; the platform keeps watching into its buffer.
    let mut agg = agg;
    agg.tw.proc.kill9();
    k.put_event("shop", "e2", "Pulled", 1);
    k.put_event("shop", "e1", "BackOff", 2);
    k.put_event("bank", "e3", "Killing", 1);
    wait_until("4 events buffered", Duration::from_secs(60), || {
        metric(&plat, "tidewatch_platform_events_buffered_total") >= 4.0
    });
    // The platform dies too, and Kubernetes expires the events meanwhile:
    // only the platform's disk buffer still has e2, e1#2 and e3.
    let mut plat = plat;
    plat.tw.proc.kill9();
    k.delete_event("shop", "e2");
    k.delete_event("shop", "e1");
    k.delete_event("bank", "e3");

    let agg = start_aggregator(dir.path(), agg_port);
    let plat = Api::start("platform", dir.path(), plat_port, &extra);
    wait_until("buffered events stored", Duration::from_secs(60), || {
        let s = stored(&agg);
        s.contains_key(&key("uid-shop-e2", 1))
            && s.contains_key(&key("uid-shop-e1", 2))
            && s.contains_key(&key("uid-bank-e3", 1))
    });
    // The watcher resumed: a new event arrives too.
    k.put_event("bank", "e4", "Started", 1);
    wait_until("e4 stored", Duration::from_secs(60), || {
        stored(&agg).contains_key(&key("uid-bank-e4", 1))
    });
    let s = stored(&agg);
    assert_eq!(
        s.keys().cloned().collect::<Vec<_>>(),
        vec![
            key("uid-bank-e3", 1),
            key("uid-bank-e4", 1),
            key("uid-shop-e1", 1),
            key("uid-shop-e1", 2),
            key("uid-shop-e2", 1),
        ]
    );
    assert!(s.values().all(|&n| n == 1), "duplicates: {s:?}");
    assert_eq!(
        metric(&plat, "tidewatch_platform_events_buffered_total"),
        1.0
    );
}

#[test]
fn event_retention_is_enforced_per_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let short = kube(&rt);
    let long = kube(&rt);
    let agg_port = free_port();
    let agg = start_aggregator(dir.path(), agg_port);
    let extra = format!(
        "  aggregator_url: http://127.0.0.1:{agg_port}\n  events:\n    retention: 7d\n    retention_interval: 1s\n    cluster_retention:\n    - cluster: short\n      retention: 1d\n"
    );
    let plat = Api::start("platform", dir.path(), free_port(), &extra);
    let short_id = import(&plat, "short", &short.url());
    let long_id = import(&plat, "long", &long.url());

    // Events stored earlier (before this retention was configured): two
    // days old in both clusters, and fresh ones.
    let at = |days: i64| {
        (chrono::Utc::now() - chrono::Duration::days(days))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let ev = |cluster: &str, uid: &str, last: &str| {
        json!({"cluster_id": cluster, "namespace": "ns", "name": uid, "uid": uid, "count": 1,
               "first_timestamp": last, "last_timestamp": last})
    };
    let resp = agg
        .http
        .post(agg.tw.url("/api/v1/events"))
        .json(&json!({"events": [
            ev(&short_id, "short-old", &at(2)), ev(&short_id, "short-new", &at(0)),
            ev(&long_id, "long-old", &at(2)), ev(&long_id, "long-new", &at(0)),
            ev(&long_id, "long-ancient", &at(30)),
        ]}))
        .send()
        .unwrap();
    assert!(resp.status().is_success());
    // Watched events two days old: dropped for `short`, kept for `long`.
    short.put_event_at("ns", "w-old", "BackOff", 1, &at(2));
    long.put_event_at("ns", "w-old", "BackOff", 1, &at(2));
    short.put_event("ns", "w-new", "BackOff", 1);

    let uids = || -> Vec<String> { stored(&agg).into_keys().map(|(u, _)| u).collect::<Vec<_>>() };
    wait_until(
        "retention applied per cluster",
        Duration::from_secs(60),
        || {
            uids()
                == [
                    "long-new",
                    "long-old",
                    "short-new",
                    "uid-ns-w-new",
                    "uid-ns-w-old",
                ]
        },
    );
    // `uid-ns-w-old` is long's: short's was never stored.
    let rows = sql(
        &agg,
        None,
        "SELECT cluster_id FROM events WHERE uid = 'uid-ns-w-old'",
    );
    assert_eq!(rows, vec![json!({"cluster_id": long_id})]);
    assert!(metric(&plat, "tidewatch_platform_events_expired_total") >= 1.0);
    // The aggregator's own retention may have taken `long-ancient` first.
    assert!(metric(&plat, "tidewatch_platform_events_retention_deleted_total") >= 1.0);
}

fn create_topic(brokers: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::config::ClientConfig;
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for r in rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap()
    {
        r.unwrap();
    }
}

/// Every message of `topic` as (key, JSON value).
fn kafka_messages(brokers: &str, topic: &str) -> Vec<(String, Value)> {
    read_topic(brokers, topic, 3)
        .into_iter()
        .map(|(k, v)| {
            let k = String::from_utf8(k.expect("keyed message")).unwrap();
            (k, serde_json::from_slice(&v).unwrap())
        })
        .collect()
}

/// osmem (the Elasticsearch API emulator) on a chosen port.
fn start_es_standin_on(dir: &Path, port: u16) -> support::Proc {
    let bin = support::site_packages().join("osmem_server/bin/osmem-server");
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["-addr", &format!("127.0.0.1:{port}"), "-no-stdin-watch"]);
    let p = support::Proc::spawn("osmem", cmd, dir);
    support::wait_http_ok(
        &format!("http://127.0.0.1:{port}/_cluster/health"),
        Duration::from_secs(30),
    );
    p
}

fn es_docs(api: &Api, es: u16) -> Vec<Value> {
    let resp = api
        .http
        .post(format!(
            "http://127.0.0.1:{es}/tw-events-*/_search?size=1000"
        ))
        .json(&json!({"query": {"match_all": {}}}))
        .send()
        .unwrap();
    if !resp.status().is_success() {
        return Vec::new();
    }
    let v: Value = resp.json().unwrap();
    v["hits"]["hits"].as_array().cloned().unwrap_or_default()
}

#[test]
fn events_reach_elasticsearch_and_kafka_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let k = kube(&rt);
    // Elasticsearch is down at first: its own disk buffer holds the events
    // while Kafka gets them.
    let es_port = free_port();
    let (_kafka, kafka_port) = support::start_kafka(dir.path());
    let brokers = format!("127.0.0.1:{kafka_port}");
    create_topic(&brokers, "tw-events");
    let extra = format!(
        "  events:\n    elasticsearch:\n      hosts: [http://127.0.0.1:{es_port}]\n      index: tw-events-%Y.%m\n    kafka:\n      brokers: {brokers}\n      topic: tw-events\n      properties:\n        message.send.max.retries: '5'\n"
    );
    let port = free_port();
    let plat = Api::start("platform", dir.path(), port, &extra);
    let cid = import(&plat, "prod", &k.url());
    k.put_event("shop", "e1", "BackOff", 1);
    k.put_event("shop", "e2", "Pulled", 1);
    wait_until(
        "2 events in Kafka while Elasticsearch is down",
        Duration::from_secs(60),
        || kafka_messages(&brokers, "tw-events").len() >= 2,
    );
    wait_until(
        "a failed Elasticsearch delivery",
        Duration::from_secs(60),
        || metric(&plat, "tidewatch_platform_events_send_failures_total") >= 1.0,
    );
    let _es = start_es_standin_on(dir.path(), es_port);
    wait_until("2 events in Elasticsearch", Duration::from_secs(60), || {
        es_docs(&plat, es_port).len() >= 2
    });
    // A repeat is a new occurrence (once the first was seen).
    k.put_event("shop", "e1", "BackOff", 2);
    wait_until("3 events in Elasticsearch", Duration::from_secs(60), || {
        es_docs(&plat, es_port).len() >= 3
    });
    // A restart re-lists the cluster: nothing is sent twice.
    let mut plat = plat;
    plat.tw.proc.terminate(Duration::from_secs(30));
    let plat = Api::start("platform", dir.path(), port, &extra);
    k.put_event("bank", "e3", "Killing", 1);
    wait_until("e3 in Elasticsearch", Duration::from_secs(60), || {
        es_docs(&plat, es_port)
            .iter()
            .any(|d| d["_source"]["uid"] == "uid-bank-e3")
    });
    let docs = es_docs(&plat, es_port);
    let mut ids: Vec<String> = docs
        .iter()
        .map(|d| d["_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            format!("{cid}:uid-bank-e3:1"),
            format!("{cid}:uid-shop-e1:1"),
            format!("{cid}:uid-shop-e1:2"),
            format!("{cid}:uid-shop-e2:1"),
        ]
    );
    let e2 = docs
        .iter()
        .find(|d| d["_source"]["uid"] == "uid-shop-e2")
        .unwrap();
    let month = chrono::Utc::now().format("tw-events-%Y.%m").to_string();
    assert_eq!(e2["_index"], month.as_str());
    assert_eq!(e2["_source"]["reason"], "Pulled");
    assert_eq!(e2["_source"]["cluster_id"], cid.as_str());
    assert_eq!(e2["_source"]["@timestamp"], e2["_source"]["last_timestamp"]);

    wait_until("4 events in Kafka", Duration::from_secs(60), || {
        kafka_messages(&brokers, "tw-events").len() >= 4
    });
    let msgs = kafka_messages(&brokers, "tw-events");
    let mut got: Vec<(String, i64)> = msgs
        .iter()
        .map(|(k, v)| {
            assert_eq!(k, &format!("{cid}/{}", v["uid"].as_str().unwrap()));
            (
                v["uid"].as_str().unwrap().to_string(),
                v["count"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            key("uid-bank-e3", 1),
            key("uid-shop-e1", 1),
            key("uid-shop-e1", 2),
            key("uid-shop-e2", 1),
        ]
    );
    // After the restart only e3 was new: the re-list buffered nothing old.
    assert_eq!(
        metric(&plat, "tidewatch_platform_events_buffered_total"),
        1.0
    );
}
