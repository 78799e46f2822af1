//! Every metric name of the TKEStack catalogue (`shared/reference/tkestack.md`
//! A.5: cluster, node, workload, namespace, pod, container, component and
//! business levels) is produced by one collector against the
//! protocol-level test API server (`support::kube_api`, a stand-in, not
//! Kubernetes): this machine's real /proc and /sys as node `node-a`, a
//! kubelet-layout cgroup fixture for its pod, Kubernetes objects with GPU
//! Manager resources, control-plane pods, Leases and health endpoints.
//!
//! Excluded, with reasons (see `EXCLUDED`): series measuring GPU *usage*
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
use tidewatch_collector::{Collector, Config, Defaults};
use tidewatch_common::exposition::{Format, parse};
use tokio_util::sync::CancellationToken;

const WEB_UID: &str = "5f3c1e2a-1111-2222-3333-444455556666";
const CID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A.5, one entry per line of the reference, brace groups as written there
/// (`{a,b}` expands to both; "the same usage set" spelled out).
const CATALOGUE: &[&str] = &[
    // Cluster.
    "k8s_cluster_{cpu_core_total,memory_total,gpu_total,gpu_memory_total}",
    "k8s_cluster_{cpu_core_used,mem_usage_bytes,mem_no_cache_bytes,cpu_core_request,mem_request_bytes}",
    "k8s_cluster_{rate_cpu_core_used_cluster,rate_mem_usage_bytes_cluster,rate_mem_no_cache_bytes_cluster,rate_cpu_core_request_cluster,rate_mem_request_bytes_cluster}",
    "k8s_cluster_{gpu_used,gpu_memory_used,rate_gpu_used_cluster,rate_gpu_request_cluster,rate_gpu_memory_used_cluster,rate_gpu_memory_request_cluster}",
    "k8s_cluster_network_{receive,transmit}_{bytes_bw,bytes,packets}",
    "k8s_cluster_fs_{read,write}_{bytes,times}",
    "k8s_cluster_{node_num,node_not_ready_num,node_not_ready_rate,pod_num}",
    "k8s_cluster_pod_status_phase_{failed,pending,running,succeeded,unknown}_{num,rate}",
    "k8s_cluster_{workload_num,workload_replicas_expected_num,workload_replicas_unexpected_num,workload_replicas_zero_num,age}",
    // Node.
    "k8s_node_{cpu_usage,mem_usage,mem_usage_no_cache}",
    "k8s_node_{gpu_usage,gpu_memory_usage}",
    "k8s_node_fs_{read,write}_{bytes,times}",
    "k8s_node_{disk_space_rate,filesystem_avail_bytes,filesystem_size_bytes,filesystem_usage}",
    "k8s_node_network_{receive,transmit}_bytes_bw",
    "k8s_node_{pod_num,pod_restart_total}",
    "k8s_node_{status_ready,status_ready_with_node_role,not_ready}",
    "k8s_node_{resource_request,resource_limit,status_capacity,status_allocatable}",
    "k8s_node_{info,age}",
    // Workload and namespace (the same usage set).
    "k8s_{workload,namespace}_{cpu_core_used,rate_cpu_core_used_cluster,mem_usage_bytes,mem_no_cache_bytes,rate_mem_usage_bytes_cluster,rate_mem_no_cache_cluster}",
    "k8s_{workload,namespace}_{gpu_used,rate_gpu_used_cluster,gpu_memory_used,rate_gpu_memory_used_cluster}",
    "k8s_{workload,namespace}_network_{receive,transmit}_{bytes_bw,bytes,packets}",
    "k8s_{workload,namespace}_fs_{read,write}_{bytes,times}",
    "k8s_workload_{pod_restart_total,resource_request,resource_limit,replicas_desire,replicas_current,abnormal}",
    // Pod.
    "k8s_pod_{cpu_core_used,rate_cpu_core_used_request,rate_cpu_core_used_limit,rate_cpu_core_used_node}",
    "k8s_pod_{mem_usage_bytes,mem_no_cache_bytes}",
    "k8s_pod_rate_{mem_usage,mem_no_cache}_{request,limit,node}",
    "k8s_pod_{gpu_used,gpu_request,rate_gpu_used_request,rate_gpu_used_node,gpu_memory_used,gpu_memory_request,rate_gpu_memory_used_request,rate_gpu_memory_used_node}",
    "k8s_pod_network_{receive,transmit}_{bytes_bw,bytes,packets}",
    "k8s_pod_fs_{read,write}_{bytes,times}",
    "k8s_pod_{resource_request,resource_limit}",
    "k8s_pod_{status_ready,status_phase,restart_total,restart_total_number}",
    // Container.
    "k8s_container_{cpu_core_used,rate_cpu_core_used_request,rate_cpu_core_used_limit,rate_cpu_core_used_node}",
    "k8s_container_{mem_usage_bytes,mem_no_cache_bytes}",
    "k8s_container_rate_{mem_usage,mem_no_cache}_{request,limit,node}",
    "k8s_container_{gpu_used,rate_gpu_used_request,rate_gpu_used_node,gpu_memory_used,rate_gpu_memory_used_request,rate_gpu_memory_used_node}",
    "k8s_container_network_{receive,transmit}_{bytes_bw,bytes,packets}",
    "k8s_container_fs_{read,write}_{bytes,times}",
    // Component.
    "k8s_component_{apiserver,etcd,scheduler,controller_manager}_ready",
    "k8s_component_{apiserver_request_latency,scheduler_scheduling_latency}",
    "k8s_component_{apiserver,scheduler,controller_manager,etcd}_version",
    // Business (project).
    "project_{namespace,cluster}_{cpu_core_used,mem_usage_bytes,mem_no_cache_bytes,gpu_used,gpu_memory_used}",
    "project_{namespace,cluster}_network_{receive,transmit}_{bytes_bw,bytes,packets}",
    "project_{namespace,cluster}_fs_{read,write}_bytes",
    "project_cluster_rate_{cpu_core_used,mem_usage_bytes,mem_no_cache,gpu_used,gpu_memory_used}_cluster",
];

/// Catalogue names this test cannot observe, each with its reason.
const EXCLUDED: &[(&str, &str)] = &[(
    "*gpu_used*|*gpu_memory_used*|*gpu_usage|*gpu_memory_usage",
    "GPU usage needs NVML readings (no NVIDIA driver here); derivation unit-tested in podcat/tke, NVML checked on an H200",
)];

fn excluded(name: &str) -> bool {
    // Usage, not capacity or requests: `gpu_total`, `gpu_request`,
    // `gpu_memory_request`, `rate_gpu_*request*` are produced here.
    let _ = EXCLUDED;
    (name.contains("gpu_used") || name.contains("gpu_memory_used") || name.ends_with("gpu_usage"))
        || name.ends_with("gpu_memory_usage")
}

/// Expands `{a,b}` groups (no nesting).
fn expand(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_string()];
    };
    let close = open + pattern[open..].find('}').unwrap();
    pattern[open + 1..close]
        .split(',')
        .flat_map(|alt| {
            expand(&format!(
                "{}{}{}",
                &pattern[..open],
                alt.trim(),
                &pattern[close + 1..]
            ))
        })
        .collect()
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

    let wanted: BTreeSet<String> = CATALOGUE
        .iter()
        .flat_map(|p| expand(p))
        .filter(|n| !excluded(n))
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
    assert_eq!(
        find(&values, "k8s_component_apiserver_request_latency", &cl),
        Some(50.0),
        "ms, WATCH excluded"
    );
    assert_eq!(
        find(&values, "k8s_component_scheduler_scheduling_latency", &cl),
        Some(20.0)
    );
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
        "k8s_cluster_rate_mem_usage_bytes_cluster",
        &[("node", "node-a")],
    )
    .unwrap();
    let mem = find(
        &values,
        "k8s_cluster_mem_usage_bytes",
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
    stop.cancel();
    c.close().await.unwrap();
}
