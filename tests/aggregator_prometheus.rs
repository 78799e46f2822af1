//! Real clients: Debian's Prometheus scrapes node_exporter and remote-writes
//! into `tidewatch aggregator`; the series, label and metadata APIs, and
//! `promtool query instant/range`, must agree between the two.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{Proc, Tidewatch, blocking_get, start_node_exporter, start_prometheus, wait_until};

/// Node exporter + Tidewatch + Prometheus remote-writing into Tidewatch.
struct Setup {
    _ne: Proc,
    _prom: Proc,
    tw: Tidewatch,
    prom_url: String,
}

fn setup(dir: &Path) -> Setup {
    let (ne, ne_port) = start_node_exporter(dir);
    let tw = Tidewatch::start("aggregator", &dir.join("tw"), &[]);
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{ne_port}']\n\
         remote_write:\n  - url: http://{}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n      max_shards: 2\n    metadata_config:\n      send_interval: 1s\n",
        tw.addr
    );
    let (prom, port) = start_prometheus(&dir.join("prom"), &cfg, &[]);
    Setup {
        _ne: ne,
        _prom: prom,
        tw,
        prom_url: format!("http://127.0.0.1:{port}"),
    }
}

fn data(url: &str) -> Value {
    let (s, body) = blocking_get(url);
    assert_eq!(s, 200, "{url}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{url}: {body}");
    v["data"].clone()
}

fn series_set(base: &str, selector: &str) -> BTreeSet<String> {
    let sel: String = url_encode(selector);
    data(&format!("{base}/api/v1/series?match[]={sel}"))
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const SELECTOR: &str =
    r#"{job="node",__name__=~"up|node_cpu_seconds_total|node_memory_MemTotal_bytes|node_load1|node_network_receive_bytes_total"}"#;

#[test]
fn prometheus_remote_write_series_labels_and_metadata_agree() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let tw_url = format!("http://{}", s.tw.addr);
    let mut last = (BTreeSet::new(), BTreeSet::new());
    wait_until(
        "Tidewatch's series to equal Prometheus's",
        Duration::from_secs(90),
        || {
            let p = series_set(&s.prom_url, SELECTOR);
            let t = series_set(&tw_url, SELECTOR);
            let ok = !p.is_empty() && p == t;
            last = (p, t);
            ok
        },
    );
    assert!(last.0.len() >= 5, "{:?}", last.0);
    let names = |base: &str| {
        data(&format!(
            "{base}/api/v1/label/__name__/values?match[]={}",
            url_encode(SELECTOR)
        ))
    };
    wait_until("metric names to agree", Duration::from_secs(30), || {
        names(&s.prom_url) == names(&tw_url)
    });
    let labels = |base: &str| {
        data(&format!(
            "{base}/api/v1/labels?match[]={}",
            url_encode(SELECTOR)
        ))
    };
    wait_until("label names to agree", Duration::from_secs(30), || {
        labels(&s.prom_url) == labels(&tw_url)
    });
    wait_until("metadata from remote-write", Duration::from_secs(60), || {
        let m = data(&format!("{tw_url}/api/v1/metadata?metric=node_cpu_seconds_total"));
        m["node_cpu_seconds_total"][0]["type"] == "counter"
    });
    // promtool, a real Prometheus API client, sees the same series and
    // label values from both.
    let series = |url: &str| {
        let out = promtool_text(&["series", "--match", SELECTOR, url]);
        out.lines().map(str::to_string).collect::<BTreeSet<_>>()
    };
    wait_until("promtool query series to agree", Duration::from_secs(30), || {
        let p = series(&s.prom_url);
        !p.is_empty() && p == series(&tw_url)
    });
    let values = |url: &str| promtool_text(&["labels", "--match", SELECTOR, url, "__name__"]);
    wait_until("promtool query labels to agree", Duration::from_secs(30), || {
        values(&s.prom_url) == values(&tw_url)
    });
    let p = data(&format!("{}/api/v1/metadata?metric=node_load1", s.prom_url));
    let t = data(&format!("{tw_url}/api/v1/metadata?metric=node_load1"));
    assert_eq!(p["node_load1"][0]["help"], t["node_load1"][0]["help"]);
}

fn promtool_text(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .arg("query")
        .args(args)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn promtool(args: &[&str]) -> Value {
    let out = Command::new("promtool")
        .args(["query"])
        .args(args)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("promtool {args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout))
    })
}

/// Instant results as (labels, value) and range results as labels only.
fn instant_result(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{} {}", s["metric"], s["value"][1]))
        .collect()
}

fn range_series(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"].to_string())
        .collect()
}

#[test]
#[ignore = "needs the PromQL engine (tidewatch-promql, promql branch); run once merged"]
fn promtool_queries_agree() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let tw_url = format!("http://{}", s.tw.addr);
    wait_until("data in both", Duration::from_secs(90), || {
        let p = series_set(&s.prom_url, SELECTOR);
        !p.is_empty() && p == series_set(&tw_url, SELECTOR)
    });
    // Let 30s of scrapes accumulate for the range functions.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let queries = [
        "up",
        "node_load1",
        "node_memory_MemTotal_bytes",
        "count by (mode) (node_cpu_seconds_total)",
        "sum by (mode) (rate(node_cpu_seconds_total[10s]))",
        "topk(3, node_network_receive_bytes_total)",
    ];
    wait_until("scrapes to accumulate", Duration::from_secs(60), || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            >= start + 20
    });
    // Evaluate a few seconds in the past so remote-write has delivered it.
    let at = (start + 15).to_string();
    let range_start = (start + 2).to_string();
    for q in queries {
        wait_until(&format!("instant {q} to agree"), Duration::from_secs(30), || {
            let p = promtool(&["instant", "-o", "json", "--time", &at, &s.prom_url, q]);
            let t = promtool(&["instant", "-o", "json", "--time", &at, &tw_url, q]);
            !p.as_array().unwrap().is_empty() && instant_result(&p) == instant_result(&t)
        });
        let args = |url: &str| {
            promtool(&[
                "range", "-o", "json", "--start", &range_start, "--end", &at, "--step", "1s", url, q,
            ])
        };
        let p = args(&s.prom_url);
        let t = args(&tw_url);
        assert_eq!(range_series(&p), range_series(&t), "range {q}");
        assert!(!range_series(&p).is_empty(), "range {q}");
    }
}
