//! Every metric name of the TKEStack catalogue (`shared/reference/tkestack.md`
//! A.5: cluster, node, workload, namespace, pod, container, component and
//! business levels) is produced by one collector against the
//! protocol-level test API server (`support::kube_api`, a stand-in, not
//! Kubernetes): this machine's real /proc and /sys as node `node-a`, a
//! kubelet-layout cgroup fixture for its pod, Kubernetes objects with GPU
//! Manager resources, control-plane pods, Leases and health endpoints.
//!
//! Excluded, with reasons (see `excluded`): series measuring GPU *usage*
//! need NVML device readings, which this machine has no driver for. Their
//! derivation is unit-tested (`podcat`, `tke`) and NVML itself was checked
//! on an NVIDIA H200 (docs/collector.md). The KubeVirt `vm_*` series are
//! not part of the catalogue the collector issue covers (no KubeVirt).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde_json::json;
use support::kube_api::{TestApiServer, objects};
use tidewatch_collector::metrics::catalogue::{CATALOGUE, expand};
use tidewatch_collector::metrics::cluster_usage;
use tidewatch_collector::{Collector, Config, Defaults};
use tidewatch_common::exposition::{Format, parse};
use tokio_util::sync::CancellationToken;

const WEB_UID: &str = "5f3c1e2a-1111-2222-3333-444455556666";
const CID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Catalogue names this test cannot observe: GPU *usage* (not capacity or
/// requests — `gpu_total`, `gpu_request`, `rate_gpu_*request*` are checked)
/// needs NVML readings, and this machine has no NVIDIA driver. Their
/// derivation is unit-tested (`podcat`, `tke`); NVML was checked on an H200.
fn excluded(name: &str) -> bool {
    name.contains("gpu_used")
        || name.contains("gpu_memory_used")
        || name.ends_with("gpu_usage")
        || name.ends_with("gpu_memory_usage")
}

fn cgroup_fixture(root: &Path) {
    let w = |dir: &Path, files: &[(&str, &str)]| {
        std::fs::create_dir_all(dir).unwrap();
        for (f, c) in files {
            std::fs::write(dir.join(f), c).unwrap();
        }
    };
    w(root, &[("cgroup.controllers", "cpu memory io\n")]);
    let us = WEB_UID.replace('-', "_");
    let pod = root.join(format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{us}.slice"
    ));
    let io = "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n";
    w(
        &pod,
        &[
            ("cpu.stat", "usage_usec 1000000\n"),
            ("memory.current", "50000000\n"),
            ("io.stat", io),
        ],
    );
    w(
        &pod.join(format!("cri-containerd-{CID}.scope")),
        &[
            ("cpu.stat", "usage_usec 900000\n"),
            ("memory.current", "33554432\n"),
            ("memory.stat", "inactive_file 1048576\n"),
            ("io.stat", io),
        ],
    );
}

fn control_plane_pod(component: &str, image: &str) -> serde_json::Value {
    let mut p = objects::pod(
        "kube-system",
        &format!("{component}-node-a"),
        &format!("uid-{component}"),
        "node-a",
        json!([]),
        "Running",
        component,
        "",
        0,
    );
    p["metadata"]["labels"] = json!({"component": component, "tier": "control-plane"});
    p["spec"]["containers"][0]["image"] = json!(image);
    p
}

async fn names(url: &str) -> (BTreeSet<String>, HashMap<String, f64>) {
    let body = reqwest::get(format!("{url}/collector/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let samples = parse(&body, Format::PrometheusText).unwrap().samples;
    let names = samples
        .iter()
        .filter_map(|s| s.labels.metric_name().map(str::to_string))
        .collect();
    let values = samples
        .into_iter()
        .map(|s| (s.labels.to_string(), s.value))
        .collect();
    (names, values)
}

fn find(m: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    m.iter()
        .find(|(k, _)| {
            k.starts_with(&format!("{name}{{"))
                && labels
                    .iter()
                    .all(|(a, b)| k.contains(&format!("{a}=\"{b}\"")))
        })
        .map(|(_, v)| *v)
}

#[test]
fn expand_follows_the_reference_notation() {
    assert_eq!(
        expand("k8s_pod_rate_{mem_usage,mem_no_cache}_{request,limit}"),
        [
            "k8s_pod_rate_mem_usage_request",
            "k8s_pod_rate_mem_usage_limit",
            "k8s_pod_rate_mem_no_cache_request",
            "k8s_pod_rate_mem_no_cache_limit"
        ]
    );
    let all: BTreeSet<String> = CATALOGUE.iter().flat_map(|p| expand(p)).collect();
    // 236 public recording rules in TKEStack, of which the VM ones (13) are
    // out of scope; the list here is A.5 as written.
    assert!(all.len() > 200, "{}", all.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalogue_name_is_produced() {
    let api = TestApiServer::start().await;
    let mut node = objects::node("node-a", "4", "8Gi");
    node["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] = json!("");
    for k in ["capacity", "allocatable"] {
        node["status"][k]["tencent.com/vcuda-core"] = json!("200");
        node["status"][k]["tencent.com/vcuda-memory"] = json!("64");
    }
    node["status"]["addresses"] = json!([{"type": "InternalIP", "address": "192.168.1.10"}]);
    api.apply("api/v1/nodes", node);
    for ns in ["shop", "kube-system"] {
        let mut n = objects::namespace(ns);
        n["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        api.apply("api/v1/namespaces", n);
    }
    api.apply(
        "apis/apps/v1/deployments",
        objects::deployment("shop", "web", 2, 1),
    );
    api.apply(
        "apis/apps/v1/replicasets",
        objects::replicaset("shop", "web-7d4b9", "web"),
    );
    let mut web = objects::pod(
        "shop",
        "web-7d4b9-x2x",
        WEB_UID,
        "node-a",
        objects::owner("ReplicaSet", "apps/v1", "web-7d4b9"),
        "Running",
        "nginx",
        CID,
        2,
    );
    for k in ["requests", "limits"] {
        web["spec"]["containers"][0]["resources"][k]["tencent.com/vcuda-core"] = json!("50");
        web["spec"]["containers"][0]["resources"][k]["tencent.com/vcuda-memory"] = json!("8");
    }
    api.apply("api/v1/pods", web);
    for (c, image) in [
        ("kube-scheduler", "registry.k8s.io/kube-scheduler:v1.32.0"),
        (
            "kube-controller-manager",
            "registry.k8s.io/kube-controller-manager:v1.32.0",
        ),
        ("etcd", "registry.k8s.io/etcd:3.5.16-0"),
    ] {
        api.apply("api/v1/pods", control_plane_pod(c, image));
    }
    api.put_lease("kube-system", "kube-scheduler", "node-a_1", 3600);
    api.put_lease("kube-system", "kube-controller-manager", "node-a_2", 3600);

    let dir = tempfile::tempdir().unwrap();
    cgroup_fixture(&dir.path().join("cgroup"));
    let cfg: Config = serde_yaml::from_str(&format!(
        "interval: 200ms\nnode_name: node-a\ncluster_id: c-test\ngpu: false\ncgroup:\n  root: {}\nkubernetes:\n  enabled: true\n  api_url: {}\n  mode: cluster\nremote_write:\n- url: http://127.0.0.1:9/api/v1/write\n",
        dir.path().join("cgroup").display(),
        api.url
    ))
    .unwrap();
    let stop = CancellationToken::new();
    let mut reg = Registry::default();
    let c = Collector::start(
        cfg,
        Defaults {
            aggregator_url: "http://127.0.0.1:9".into(),
            config_file: None,
        },
        &dir.path().join("data"),
        &mut reg,
        stop.clone(),
    )
    .await
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let app = c.router();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    // Cluster usage is emitted as this node's share (`node:<name>:share`);
    // the catalogue names are the built-in recording rules' sums over
    // nodes (tests/cluster_rules_up.rs).
    let wanted: BTreeSet<String> = CATALOGUE
        .iter()
        .flat_map(|p| expand(p))
        .filter(|n| !excluded(n))
        .map(|n| cluster_usage::share_name(&n).map_or(n, str::to_string))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let values = loop {
        let (seen, values) = names(&url).await;
        let missing: Vec<&String> = wanted.iter().filter(|n| !seen.contains(*n)).collect();
        if missing.is_empty() {
            break values;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "catalogue names never produced ({}): {missing:?}",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Meanings and units of the series added for this test's fixture.
    let cl = [("cluster_id", "c-test")];
    assert_eq!(
        find(&values, "k8s_cluster_gpu_total", &cl),
        Some(2.0),
        "cards"
    );
    assert_eq!(
        find(&values, "k8s_cluster_gpu_memory_total", &cl),
        Some(64.0 * 256.0 * 1048576.0)
    );
    assert_eq!(
        find(&values, "k8s_cluster_rate_gpu_request_cluster", &cl),
        Some(25.0),
        "0.5 of 2 cards requested"
    );
    assert_eq!(
        find(
            &values,
            "k8s_pod_gpu_request",
            &[("pod_name", "web-7d4b9-x2x")]
        ),
        Some(0.5)
    );
    assert_eq!(
        find(
            &values,
            "k8s_node_status_capacity",
            &[
                ("node", "node-a"),
                ("resource", "gpu"),
                ("node_role", "Master")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        find(
            &values,
            "k8s_node_resource_request",
            &[("node", "node-a"), ("resource", "cpu")]
        ),
        Some(4.0 * 0.25),
        "four running pods request 250m each"
    );
    let close = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() < 1e-6);
    let api_ms = find(&values, "k8s_component_apiserver_request_latency", &cl);
    assert!(close(api_ms, 50.0), "ms, WATCH excluded: {api_ms:?}");
    let sched_ms = find(&values, "k8s_component_scheduler_scheduling_latency", &cl);
    assert!(close(sched_ms, 20.0), "{sched_ms:?}");
    assert_eq!(
        find(
            &values,
            "k8s_component_etcd_version",
            &[("version", "3.5.16-0")]
        ),
        Some(1.0)
    );
    assert_eq!(
        find(
            &values,
            "k8s_component_apiserver_version",
            &[("version", "v1.32.0")]
        ),
        Some(1.0)
    );
    assert_eq!(find(&values, "k8s_component_etcd_ready", &cl), Some(1.0));
    assert_eq!(
        find(&values, "k8s_component_scheduler_ready", &cl),
        Some(1.0)
    );
    let share = find(
        &values,
        "node:k8s_cluster_rate_mem_usage_bytes_cluster:share",
        &[("node", "node-a")],
    )
    .unwrap();
    let mem = find(
        &values,
        "node:k8s_cluster_mem_usage_bytes:share",
        &[("node", "node-a")],
    )
    .unwrap();
    assert!(
        (share - mem / (8.0 * 1073741824.0) * 100.0).abs() < 1e-6,
        "this node's share of the cluster's memory capacity: {share} vs {mem}"
    );

    // Component health follows the control plane: etcd fails its check.
    api.set_etcd_down(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = names(&url).await;
        if find(&v, "k8s_component_etcd_ready", &cl) == Some(0.0) {
            assert_eq!(find(&v, "k8s_component_apiserver_ready", &cl), Some(1.0));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "etcd_ready never went to 0"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Not permitted to look (403) is not "down": the series goes away.
    api.set_readyz_forbidden(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = names(&url).await;
        if find(&v, "k8s_component_apiserver_ready", &cl).is_none() {
            assert_eq!(find(&v, "k8s_component_etcd_ready", &cl), Some(0.0));
            break;
        }
        assert_eq!(find(&v, "k8s_component_apiserver_ready", &cl), Some(1.0));
        assert!(
            tokio::time::Instant::now() < deadline,
            "apiserver_ready still reported after a 403"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    c.close().await.unwrap();
}
