//! `tidewatch up` on a machine without Kubernetes: the collector ships to the
//! aggregator over loopback and the TKEStack node catalogue is queryable by
//! name with no setup — this machine is node `<hostname>` of cluster `local`.

mod support;

use std::time::Duration;

use support::{Tidewatch, blocking_get, wait_until};

fn query(tw: &Tidewatch, q: &str) -> Vec<serde_json::Value> {
    let q = q
        .replace('{', "%7B")
        .replace('}', "%7D")
        .replace('"', "%22")
        .replace('=', "%3D");
    let (status, body) = blocking_get(&tw.url(&format!("/api/v1/query?query={q}")));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[test]
fn node_catalogue_is_queryable_in_up_with_no_setup() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tw.yml");
    std::fs::write(&cfg, "collector:\n  interval: 1s\n").unwrap();
    let c = cfg.display().to_string();
    let tw = Tidewatch::start("up", &dir.path().join("data"), &["--config", &c]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    for metric in [
        "k8s_node_cpu_usage",
        "k8s_node_mem_usage",
        "k8s_node_mem_usage_no_cache",
        "k8s_cluster_cpu_core_total",
    ] {
        wait_until(metric, Duration::from_secs(60), || {
            query(&tw, &format!("{metric}{{cluster_id=\"local\"}}")).len() == 1
        });
    }
    let r = query(&tw, "k8s_node_mem_usage{cluster_id=\"local\"}");
    assert_eq!(r[0]["metric"]["node"], host.as_str());
    let v: f64 = r[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(v > 0.0 && v <= 100.0, "{v}");
    assert!(!query(&tw, "node_memory_MemAvailable_bytes").is_empty());
}

/// Without Kubernetes, every node- and cluster-level name of the TKEStack
/// catalogue (A.5, the list in `tidewatch_collector::metrics::catalogue`)
/// is queryable through the aggregator's PromQL in `tidewatch up`. Not
/// expected here: the pod, container, workload, namespace, business and
/// component levels (they need Kubernetes objects; covered against the test
/// API server stand-in by `collector/tests/catalogue.rs`) and GPU usage (no
/// NVIDIA driver on this machine).
#[test]
fn node_and_cluster_catalogue_complete_in_up() {
    use tidewatch_collector::metrics::catalogue::{CATALOGUE, expand};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tw.yml");
    std::fs::write(&cfg, "collector:\n  interval: 500ms\n").unwrap();
    let c = cfg.display().to_string();
    let tw = Tidewatch::start("up", &dir.path().join("data"), &["--config", &c]);
    let wanted: std::collections::BTreeSet<String> = CATALOGUE
        .iter()
        .flat_map(|p| expand(p))
        .filter(|n| n.starts_with("k8s_node_") || n.starts_with("k8s_cluster_"))
        .filter(|n| {
            !(n.contains("gpu_used")
                || n.contains("gpu_memory_used")
                || n.ends_with("gpu_usage")
                || n.ends_with("gpu_memory_usage"))
        })
        .collect();
    assert!(wanted.len() >= 60, "{}", wanted.len());
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let names: std::collections::BTreeSet<String> = query(
            &tw,
            "count%20by(__name__)({__name__=~\"k8s_(node|cluster)_.*\",cluster_id=\"local\"})",
        )
        .iter()
        .filter_map(|s| s["metric"]["__name__"].as_str().map(str::to_string))
        .collect();
        let missing: Vec<&String> = wanted.iter().filter(|n| !names.contains(*n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never queryable in up ({}): {missing:?}",
            missing.len()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
