//! End-to-end tests of the aggregator's log store through its HTTP API:
//! Loki push (JSON and snappy protobuf), Elasticsearch-style bulk ingest,
//! event ingest, LogQL queries with Loki's response shapes, SQL over the
//! `logs` and `events` tables, Parquet flush and `kill -9` durability.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use serde_json::{Value, json};
use support::{Tidewatch, wait_until};

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn get_json(tw: &Tidewatch, path: &str, query: &[(&str, String)]) -> (u16, Value) {
    let r = client().get(tw.url(path)).query(query).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn push_json(tw: &Tidewatch, body: &Value) -> (u16, String) {
    let r = client()
        .post(tw.url("/loki/api/v1/push"))
        .json(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn sql(tw: &Tidewatch, q: &str) -> Value {
    let r = client()
        .post(tw.url("/api/v1/sql"))
        .json(&json!({ "query": q }))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap();
    assert_eq!(status, 200, "{q}: {body}");
    body
}

/// Mirrors Loki's `logproto` push messages independently of the crate
/// under test (field numbers from Loki's `push.proto`).
mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<Stream>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Stream {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<Entry>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Ts>,
        #[prost(string, tag = "2")]
        pub line: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Ts {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

fn range(tw: &Tidewatch, q: &str, start: i64, end: i64, extra: &[(&str, &str)]) -> Value {
    let mut params = vec![
        ("query", q.to_string()),
        ("start", start.to_string()),
        ("end", end.to_string()),
    ];
    params.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let (status, body) = get_json(tw, "/loki/api/v1/query_range", &params);
    assert_eq!(status, 200, "{q}: {body}");
    assert_eq!(body["status"], "success");
    body["data"].clone()
}

fn count_lines(data: &Value) -> usize {
    data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_array().unwrap().len())
        .sum()
}

#[test]
fn push_query_sql_events_and_durability() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tidewatch.yml");
    std::fs::write(
        &cfg,
        "aggregator:\n  logs:\n    flush_interval: 1s\n    max_line_bytes: 1000\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let cfg_arg = cfg.to_str().unwrap();
    let mut tw = Tidewatch::start("aggregator", &data, &["--config", cfg_arg]);

    let base = (now_ns() / 1_000_000_000 - 120) * 1_000_000_000;
    let api_lines = [
        r#"level=info msg="started" dur=5"#,
        r#"{"level":"error","status":503,"req":{"path":"/x"}}"#,
        r#"level=error msg="disk full" dur=250"#,
        r#"{"level":"info","status":200,"req":{"path":"/y"}}"#,
    ];
    let values: Vec<Value> = api_lines
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(base + i as i64 * 1_000_000_000).to_string(), l]))
        .collect();
    let body = json!({"streams": [{"stream": {"app": "api", "env": "prod"}, "values": values}]});
    let (status, text) = push_json(&tw, &body);
    assert_eq!(status, 204, "{text}");
    // The same entries again (a sender retrying): stored once.
    assert_eq!(push_json(&tw, &body).0, 204);

    // Snappy protobuf push.
    let req = wire::PushRequest {
        streams: vec![wire::Stream {
            labels: r#"{app="web", env="prod"}"#.into(),
            entries: (0..3)
                .map(|i| wire::Entry {
                    timestamp: Some(wire::Ts {
                        seconds: base / 1_000_000_000 + 10 + i,
                        nanos: 0,
                    }),
                    line: format!("GET /page/{i} 200"),
                })
                .collect(),
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let r = client()
        .post(tw.url("/loki/api/v1/push"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);

    // A stream ten hours old: outside the label endpoints' default range.
    let old = base - 10 * 3600 * 1_000_000_000;
    let (status, text) = push_json(
        &tw,
        &json!({"streams": [{"stream": {"app": "legacy", "old_only": "yes"}, "values": [[old.to_string(), "from yesterday"]]}]}),
    );
    assert_eq!(status, 204, "{text}");

    // Bad input: 400 naming the field.
    let (status, text) = push_json(
        &tw,
        &json!({"streams": [{"stream": {"app": "x"}, "values": [["nope", "line"]]}]}),
    );
    assert_eq!(status, 400);
    assert!(text.contains("streams[0].values[0]"), "{text}");
    let long = "x".repeat(1001);
    let (status, text) = push_json(
        &tw,
        &json!({"streams": [{"stream": {"app": "x"}, "values": [["1", long]]}]}),
    );
    assert_eq!(status, 400);
    assert!(text.contains("max_line_bytes"), "{text}");

    let (start, end) = (base - 1, base + 60 * 1_000_000_000);
    let check = |tw: &Tidewatch| {
        // Log query: streams, newest first, exact values.
        let d = range(tw, r#"{app="api"} |= "error""#, start, end, &[]);
        assert_eq!(d["resultType"], "streams");
        let r = d["result"].as_array().unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["stream"], json!({"app": "api", "env": "prod"}));
        assert_eq!(
            r[0]["values"],
            json!([
                [(base + 2_000_000_000).to_string(), api_lines[2]],
                [(base + 1_000_000_000).to_string(), api_lines[1]],
            ])
        );
        // Forward with a limit.
        let d = range(
            tw,
            r#"{env="prod"}"#,
            start,
            end,
            &[("direction", "forward"), ("limit", "2")],
        );
        assert_eq!(count_lines(&d), 2);
        // Parsers, label filters, line_format.
        let d = range(
            tw,
            r#"{app="api"} | json | status >= 500 | line_format "{{.req_path}} {{.status}}""#,
            start,
            end,
            &[],
        );
        let r = d["result"].as_array().unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["stream"]["level"], "error");
        assert_eq!(r[0]["values"][0][1], "/x 503");
        let d = range(
            tw,
            r#"{app="api"} | logfmt | dur > 100 | line_format "{{.msg}}""#,
            start,
            end,
            &[],
        );
        assert_eq!(d["result"][0]["values"][0][1], "disk full");
        let d = range(tw, r#"{app="web"} |~ "page/[12]" != "/2""#, start, end, &[]);
        assert_eq!(count_lines(&d), 1);
        // Metric query: matrix, one point per step where lines exist.
        let d = range(
            tw,
            r#"sum by (app) (count_over_time({env="prod"}[2m]))"#,
            base + 60 * 1_000_000_000,
            base + 60 * 1_000_000_000,
            &[("step", "60")],
        );
        assert_eq!(d["resultType"], "matrix");
        let r = d["result"].as_array().unwrap();
        let find = |app: &str| {
            r.iter()
                .find(|s| s["metric"] == json!({"app": app}))
                .unwrap_or_else(|| panic!("{app} in {d}"))["values"]
                .clone()
        };
        let t = (base + 60 * 1_000_000_000) / 1_000_000_000;
        assert_eq!(find("api"), json!([[t, "4"]]));
        assert_eq!(find("web"), json!([[t, "3"]]));
        // Instant query: vector; rate and bytes.
        let (status, body) = get_json(
            tw,
            "/loki/api/v1/query",
            &[
                ("query", r#"bytes_over_time({app="web"}[5m])"#.into()),
                ("time", (base + 60 * 1_000_000_000).to_string()),
            ],
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["resultType"], "vector");
        let bytes: usize = (0..3).map(|i| format!("GET /page/{i} 200").len()).sum();
        assert_eq!(body["data"]["result"][0]["value"][1], bytes.to_string());
        // Labels: by default the last six hours, as Loki.
        let (_, body) = get_json(tw, "/loki/api/v1/labels", &[]);
        let names = body["data"].as_array().unwrap();
        assert!(
            names.contains(&json!("app")) && names.contains(&json!("env")),
            "{body}"
        );
        assert!(!names.contains(&json!("old_only")), "{body}");
        let (_, body) = get_json(tw, "/loki/api/v1/label/app/values", &[]);
        assert_eq!(body["data"], json!(["api", "web"]));
        let (_, body) = get_json(
            tw,
            "/loki/api/v1/label/app/values",
            &[("start", start.to_string()), ("end", end.to_string())],
        );
        assert_eq!(body["data"], json!(["api", "web"]));
        // An explicit range around the old stream sees only it.
        let around_old = [
            ("start", (old - 60_000_000_000).to_string()),
            ("end", (old + 60_000_000_000).to_string()),
        ];
        let (_, body) = get_json(tw, "/loki/api/v1/labels", &around_old);
        assert_eq!(body["data"], json!(["app", "old_only"]), "{body}");
        let (_, body) = get_json(tw, "/loki/api/v1/label/app/values", &around_old);
        assert_eq!(body["data"], json!(["legacy"]), "{body}");
        let (_, body) = get_json(tw, "/loki/api/v1/label/env/values", &around_old);
        assert_eq!(body["data"], json!([]), "{body}");
        // Bad times are refused naming the parameter.
        let (status, body) = get_json(tw, "/loki/api/v1/labels", &[("start", "soon".into())]);
        assert_eq!(status, 400);
        assert!(body["error"].as_str().unwrap().contains("start"), "{body}");
        let (status, body) = get_json(
            tw,
            "/loki/api/v1/label/app/values",
            &[("start", end.to_string()), ("end", start.to_string())],
        );
        assert_eq!(status, 400);
        assert!(body["error"].as_str().unwrap().contains("end"), "{body}");
        // SQL over the logs table: labels are columns.
        let rows = sql(
            tw,
            "SELECT app, count(*) AS n FROM logs WHERE env = 'prod' GROUP BY app ORDER BY app",
        );
        assert_eq!(
            rows["data"]["rows"],
            json!([{"app": "api", "n": 4}, {"app": "web", "n": 3}]),
            "{rows}"
        );
    };
    check(&tw);

    // Errors name the problem.
    let (status, body) = get_json(
        &tw,
        "/loki/api/v1/query_range",
        &[("query", r#"{app="api"} |~ "(""#.into())],
    );
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("regular expression"),
        "{body}"
    );

    // Elasticsearch-style bulk ingest.
    let bulk = format!(
        "{}\n{}\n{}\n{}\n",
        json!({"index": {"_index": "shop"}}),
        json!({"@timestamp": chrono_rfc3339(base + 30_000_000_000), "message": "order 1 paid", "namespace": "prod"}),
        json!({"create": {"_index": "shop"}}),
        "[\"not an object\"]",
    );
    let r = client()
        .post(tw.url("/api/v1/logs/_bulk"))
        .header("content-type", "application/x-ndjson")
        .body(bulk)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let b: Value = r.json().unwrap();
    assert_eq!(b["errors"], true);
    assert_eq!(b["items"][0]["index"]["status"], 201);
    assert_eq!(b["items"][1]["create"]["status"], 400);
    let d = range(&tw, r#"{index="shop", namespace="prod"}"#, start, end, &[]);
    assert_eq!(d["result"][0]["values"][0][1], "order 1 paid");

    // Events: deduplicated by uid + count, queryable with SQL.
    // Recent enough to be inside retention (7 days by default).
    let first_ts = chrono_rfc3339(base);
    let last_ts = chrono_rfc3339(base + 60_000_000_000);
    let ev = |uid: &str, count: i64| {
        json!({"cluster_id": "cls-1", "namespace": "prod", "name": format!("api.{uid}"), "uid": uid,
               "reason": "BackOff", "message": "Back-off restarting failed container", "type": "Warning",
               "count": count, "first_timestamp": first_ts, "last_timestamp": last_ts,
               "involved_object": {"kind": "Pod", "name": "api-1", "namespace": "prod", "uid": "p1"},
               "source_component": "kubelet", "resource_version": "42"})
    };
    let post_events = |events: Value| {
        let r = client()
            .post(tw.url("/api/v1/events"))
            .json(&json!({ "events": events }))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let (s, b) = post_events(json!([ev("e1", 1), ev("e1", 2), ev("e2", 1)]));
    assert_eq!((s, b["data"]["stored"].clone()), (200, json!(3)), "{b}");
    let (s, b) = post_events(json!([ev("e1", 2)]));
    assert_eq!((s, b["data"]["stored"].clone()), (200, json!(0)));
    let (s, b) = post_events(
        json!([{"cluster_id": "c", "uid": "", "first_timestamp": "2026-01-01T00:00:00Z", "last_timestamp": "2026-01-01T00:00:00Z"}]),
    );
    assert_eq!(s, 400);
    assert!(
        b["error"].as_str().unwrap().contains("events[0].uid"),
        "{b}"
    );
    let rows = sql(
        &tw,
        "SELECT uid, max(count) AS c FROM events WHERE involved_kind = 'Pod' GROUP BY uid ORDER BY uid",
    );
    assert_eq!(
        rows["data"]["rows"],
        json!([{"uid": "e1", "c": 2}, {"uid": "e2", "c": 1}])
    );

    // The head reaches Parquet (flush_interval 1s)...
    let parts = data.join("aggregator/logs/parts");
    wait_until("a Parquet partition file", Duration::from_secs(30), || {
        walk(&parts)
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "parquet"))
    });
    // ...and a line acknowledged just before kill -9 survives in the WAL.
    let (status, _) = push_json(
        &tw,
        &json!({"streams": [{"stream": {"job": "late"}, "values": [[(base + 40_000_000_000i64).to_string(), "acked before the crash"]]}]}),
    );
    assert_eq!(status, 204);
    tw.proc.kill9();
    let tw = Tidewatch::start_on("aggregator", &data, tw.port(), &["--config", cfg_arg]);
    check(&tw);
    let d = range(&tw, r#"{job="late"}"#, start, end, &[]);
    assert_eq!(d["result"][0]["values"][0][1], "acked before the crash");
    let rows = sql(&tw, "SELECT count(*) AS n FROM events");
    assert_eq!(rows["data"]["rows"], json!([{"n": 3}]));
}

fn chrono_rfc3339(ns: i64) -> String {
    let secs = ns / 1_000_000_000;
    // Civil-from-days (UTC), to stay independent of the crate under test.
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A minimal websocket client (RFC 6455 handshake, unmasked server text
/// frames), enough to follow `/loki/api/v1/tail`.
struct WsClient {
    stream: std::net::TcpStream,
}

impl WsClient {
    fn connect(addr: &str, path_and_query: &str) -> Result<WsClient, String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        if head.starts_with("HTTP/1.1 101") {
            Ok(WsClient { stream })
        } else {
            Err(head)
        }
    }

    /// Next text message.
    fn next_text(&mut self) -> String {
        use std::io::Read;
        loop {
            let mut h = [0u8; 2];
            self.stream.read_exact(&mut h).unwrap();
            let opcode = h[0] & 0x0f;
            let mut len = (h[1] & 0x7f) as u64;
            if len == 126 {
                let mut e = [0u8; 2];
                self.stream.read_exact(&mut e).unwrap();
                len = u16::from_be_bytes(e) as u64;
            } else if len == 127 {
                let mut e = [0u8; 8];
                self.stream.read_exact(&mut e).unwrap();
                len = u64::from_be_bytes(e);
            }
            let mut payload = vec![0u8; len as usize];
            self.stream.read_exact(&mut payload).unwrap();
            if opcode == 1 {
                return String::from_utf8(payload).unwrap();
            }
        }
    }
}

#[test]
fn tail_streams_history_then_live_lines() {
    let dir = tempfile::tempdir().unwrap();
    let tw = Tidewatch::start("aggregator", dir.path(), &[]);
    let t0 = now_ns();
    let line = |i: i64, text: &str| json!([(t0 + i).to_string(), text]);
    let (s, _) = push_json(
        &tw,
        &json!({"streams": [{"stream": {"app": "tail"}, "values": [line(0, "old error"), line(1, "old info")]}]}),
    );
    assert_eq!(s, 204);
    let q = "/loki/api/v1/tail?query=%7Bapp%3D%22tail%22%7D%20%7C%3D%20%22error%22";
    let mut ws = WsClient::connect(&tw.addr, q).unwrap();
    let first: Value = serde_json::from_str(&ws.next_text()).unwrap();
    assert_eq!(first["streams"][0]["stream"], json!({"app": "tail"}));
    assert_eq!(first["streams"][0]["values"][0][1], "old error");
    // Live lines (after the subscription), filtered by the query.
    let (s, _) = push_json(
        &tw,
        &json!({"streams": [{"stream": {"app": "tail"}, "values": [line(2, "new info"), line(3, "new error")]}]}),
    );
    assert_eq!(s, 204);
    let live: Value = serde_json::from_str(&ws.next_text()).unwrap();
    assert_eq!(
        live["streams"][0]["values"],
        json!([[(t0 + 3).to_string(), "new error"]])
    );
    // A metric query cannot be tailed.
    let err = WsClient::connect(
        &tw.addr,
        "/loki/api/v1/tail?query=rate(%7Bapp%3D%22tail%22%7D%5B1m%5D)",
    )
    .err()
    .unwrap();
    assert!(err.starts_with("HTTP/1.1 400"), "{err}");
}
