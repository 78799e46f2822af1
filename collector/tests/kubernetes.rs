//! The Kubernetes sources end to end against the protocol-level test API
//! server (`support::kube_api`, a stand-in: no Kubernetes API server can
//! run here): a collector in cluster mode lists and watches pods, nodes,
//! namespaces and workloads, resolves owners (ReplicaSet → Deployment,
//! Job → CronJob), joins cgroup container metrics to pods, and follows
//! changes through watch events, bookmarks and a `410 Gone` re-list.

mod support;

use std::collections::HashMap;
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
    w(
        &pod,
        &[
            ("cpu.stat", "usage_usec 1000000\n"),
            ("memory.current", "50000000\n"),
        ],
    );
    w(
        &pod.join(format!("cri-containerd-{CID}.scope")),
        &[
            ("cpu.stat", "usage_usec 900000\n"),
            ("memory.current", "33554432\n"),
            ("memory.stat", "inactive_file 1048576\n"),
        ],
    );
}

async fn metrics(url: &str) -> HashMap<String, f64> {
    let body = reqwest::get(format!("{url}/collector/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse(&body, Format::PrometheusText)
        .unwrap()
        .samples
        .into_iter()
        .map(|s| (s.labels.to_string(), s.value))
        .collect()
}

/// Polls `/collector/metrics` until `f` holds (deadline 30 s).
async fn until(
    url: &str,
    what: &str,
    f: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = metrics(url).await;
        if f(&m) {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_against_the_test_api_server() {
    let api = TestApiServer::start().await;
    api.apply("api/v1/nodes", objects::node("node-a", "4", "8Gi"));
    api.apply("api/v1/namespaces", objects::namespace("shop"));
    api.apply(
        "apis/apps/v1/deployments",
        objects::deployment("shop", "web", 2, 1),
    );
    api.apply(
        "apis/apps/v1/replicasets",
        objects::replicaset("shop", "web-7d4b9", "web"),
    );
    api.apply(
        "api/v1/pods",
        objects::pod(
            "shop",
            "web-7d4b9-x2x",
            WEB_UID,
            "node-a",
            objects::owner("ReplicaSet", "apps/v1", "web-7d4b9"),
            "Running",
            "nginx",
            CID,
            2,
        ),
    );
    api.apply(
        "apis/batch/v1/cronjobs",
        objects::cronjob("shop", "nightly"),
    );
    api.apply(
        "apis/batch/v1/jobs",
        objects::job("shop", "nightly-123", "nightly"),
    );
    api.apply(
        "api/v1/pods",
        objects::pod(
            "shop",
            "nightly-123-abc",
            "uid-job-pod",
            "node-a",
            objects::owner("Job", "batch/v1", "nightly-123"),
            "Succeeded",
            "task",
            "",
            0,
        ),
    );

    // A pod exposing metrics, annotated for scraping (its IP is loopback so
    // the stub below is reachable).
    let stub = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stub_port = stub.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/custom",
        axum::routing::get(|| async { "app_requests_total 7\n" }),
    );
    tokio::spawn(async move { axum::serve(stub, app).await.unwrap() });
    let mut annotated = objects::pod(
        "shop",
        "api-1",
        "uid-api-1",
        "node-a",
        json!([]),
        "Running",
        "api",
        "",
        0,
    );
    annotated["metadata"]["annotations"] = json!({"prometheus.io/scrape": "true", "prometheus.io/port": stub_port.to_string(), "prometheus.io/path": "/custom"});
    annotated["metadata"]["labels"] = json!({"app": "api"});
    annotated["status"]["podIP"] = json!("127.0.0.1");
    api.apply("api/v1/pods", annotated);
    // Not annotated: discovered but dropped by the default relabelling.
    api.apply(
        "api/v1/pods",
        objects::pod(
            "shop",
            "quiet",
            "uid-quiet",
            "node-a",
            json!([]),
            "Running",
            "q",
            "",
            0,
        ),
    );

    let dir = tempfile::tempdir().unwrap();
    cgroup_fixture(&dir.path().join("cgroup"));
    let cfg: Config = serde_yaml::from_str(&format!(
        "interval: 200ms\nnode_name: node-a\ncluster_id: c-test\nnode:\n  enabled: false\ncgroup:\n  root: {}\nkubernetes:\n  enabled: true\n  api_url: {}\n  mode: cluster\nremote_write:\n- url: http://127.0.0.1:9/api/v1/write\nscrape_configs:\n- job_name: pods\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n  kubernetes_sd_configs:\n  - role: pod\n",
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

    let m = until(&url, "the initial list", |m| {
        find(m, "kube_pod_info", &[("pod", "web-7d4b9-x2x")]).is_some()
    })
    .await;
    // kube-state-metrics names.
    assert_eq!(
        find(
            &m,
            "kube_pod_info",
            &[
                ("pod", "web-7d4b9-x2x"),
                ("created_by_kind", "ReplicaSet"),
                ("node", "node-a")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        find(
            &m,
            "kube_pod_status_phase",
            &[("pod", "web-7d4b9-x2x"), ("phase", "Running")]
        ),
        Some(1.0)
    );
    assert_eq!(
        find(
            &m,
            "kube_pod_container_status_restarts_total",
            &[("container", "nginx")]
        ),
        Some(2.0)
    );
    assert_eq!(
        find(
            &m,
            "kube_pod_container_resource_requests",
            &[("container", "nginx"), ("resource", "cpu")]
        ),
        Some(0.25)
    );
    assert_eq!(
        find(
            &m,
            "kube_deployment_status_replicas_available",
            &[("deployment", "web")]
        ),
        Some(1.0)
    );
    assert_eq!(
        find(
            &m,
            "kube_node_status_capacity",
            &[("node", "node-a"), ("resource", "memory")]
        ),
        Some(8.0 * 1024f64.powi(3))
    );
    assert_eq!(
        find(
            &m,
            "kube_node_status_condition",
            &[("condition", "Ready"), ("status", "true")]
        ),
        Some(1.0)
    );
    assert_eq!(
        find(
            &m,
            "kube_job_owner",
            &[("job_name", "nightly-123"), ("owner_kind", "CronJob")]
        ),
        Some(1.0)
    );
    // Owner resolution into the TKEStack workload catalogue.
    assert_eq!(
        find(
            &m,
            "k8s_workload_replicas_desire",
            &[
                ("workload_kind", "Deployment"),
                ("workload_name", "web"),
                ("cluster_id", "c-test")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        find(&m, "k8s_workload_abnormal", &[("workload_name", "web")]),
        Some(1.0)
    );
    assert_eq!(
        find(
            &m,
            "k8s_workload_pod_restart_total",
            &[("workload_kind", "Deployment"), ("workload_name", "web")]
        ),
        Some(2.0)
    );
    assert_eq!(
        find(&m, "k8s_cluster_pod_status_phase_succeeded_num", &[]),
        Some(1.0)
    );
    assert_eq!(find(&m, "k8s_cluster_node_num", &[]), Some(1.0));
    assert_eq!(find(&m, "k8s_cluster_cpu_core_total", &[]), Some(4.0));
    assert_eq!(
        find(&m, "k8s_node_status_ready", &[("node", "node-a")]),
        Some(1.0)
    );
    // cgroup metrics joined to the pod, and the pod/container catalogue.
    assert_eq!(
        find(
            &m,
            "container_memory_usage_bytes",
            &[
                ("namespace", "shop"),
                ("pod", "web-7d4b9-x2x"),
                ("container", "nginx")
            ]
        ),
        Some(33_554_432.0)
    );
    assert_eq!(
        find(
            &m,
            "k8s_container_mem_no_cache_bytes",
            &[
                ("container_name", "nginx"),
                ("workload_kind", "Deployment"),
                ("workload_name", "web")
            ]
        ),
        Some(32_505_856.0)
    );
    assert_eq!(
        find(
            &m,
            "k8s_container_rate_mem_usage_limit",
            &[("container_name", "nginx")]
        ),
        Some(25.0)
    );
    assert_eq!(
        find(
            &m,
            "k8s_pod_mem_usage_bytes",
            &[("pod_name", "web-7d4b9-x2x")]
        ),
        Some(50_000_000.0)
    );
    assert_eq!(
        find(&m, "k8s_pod_status_ready", &[("pod_name", "web-7d4b9-x2x")]),
        Some(1.0)
    );

    // Annotation-driven pod discovery: only the annotated pod is scraped,
    // on its annotated port and path, with namespace/pod/app labels.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let targets = loop {
        let t: serde_json::Value = reqwest::get(format!("{url}/collector/targets"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if t.as_array().unwrap().iter().any(|t| t["health"] == "up") {
            break t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no healthy pod target: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let targets = targets.as_array().unwrap();
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(
        targets[0]["url"],
        format!("http://127.0.0.1:{stub_port}/custom")
    );
    assert_eq!(targets[0]["labels"]["pod"], "api-1");
    assert_eq!(targets[0]["labels"]["namespace"], "shop");
    assert_eq!(targets[0]["labels"]["app"], "api");
    assert_eq!(targets[0]["labels"]["job"], "pods");

    // Watch: a new pod appears, one is deleted, a deployment scales.
    api.apply(
        "api/v1/pods",
        objects::pod(
            "shop",
            "web-7d4b9-y3y",
            "uid-y3y",
            "node-a",
            objects::owner("ReplicaSet", "apps/v1", "web-7d4b9"),
            "Pending",
            "nginx",
            "",
            0,
        ),
    );
    api.delete("api/v1/pods", "shop", "nightly-123-abc");
    until(&url, "watch events applied", |m| {
        find(m, "kube_pod_info", &[("pod", "web-7d4b9-y3y")]).is_some()
            && find(m, "kube_pod_info", &[("pod", "nightly-123-abc")]).is_none()
    })
    .await;
    assert!(
        api.watch_requests()
            .iter()
            .any(|q| q.contains("allowWatchBookmarks=true")),
        "{:?}",
        api.watch_requests()
    );
    let lists_before = api.lists("api/v1/pods");

    // 410 Gone: history compacted; the watchers re-list and keep up.
    api.expire_watches();
    api.apply(
        "apis/apps/v1/deployments",
        objects::deployment("shop", "web", 3, 3),
    );
    let mut pod = objects::pod(
        "shop",
        "web-7d4b9-y3y",
        "uid-y3y",
        "node-a",
        objects::owner("ReplicaSet", "apps/v1", "web-7d4b9"),
        "Running",
        "nginx",
        "",
        0,
    );
    pod["metadata"]["labels"] = json!({"after": "410"});
    api.apply("api/v1/pods", pod);
    until(&url, "state after the re-list", |m| {
        find(m, "kube_deployment_spec_replicas", &[("deployment", "web")]) == Some(3.0)
            && find(
                m,
                "kube_pod_status_phase",
                &[("pod", "web-7d4b9-y3y"), ("phase", "Running")],
            ) == Some(1.0)
    })
    .await;
    assert!(
        api.lists("api/v1/pods") > lists_before,
        "a 410 makes the watcher re-list"
    );

    stop.cancel();
    c.close().await.unwrap();
}

/// Node mode (the DaemonSet): only this node's pods (field selector) plus
/// ReplicaSets and Jobs for owner resolution (and Nodes, for the cluster's
/// capacity) are watched — no Deployments; container
/// metrics get pod labels and the pod/container catalogue, but no
/// cluster-scoped kube_* series are reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_mode_watches_only_what_it_needs() {
    let api = TestApiServer::start().await;
    api.apply("api/v1/namespaces", objects::namespace("shop"));
    api.apply(
        "apis/apps/v1/deployments",
        objects::deployment("shop", "web", 2, 2),
    );
    api.apply(
        "apis/apps/v1/replicasets",
        objects::replicaset("shop", "web-7d4b9", "web"),
    );
    api.apply(
        "api/v1/pods",
        objects::pod(
            "shop",
            "web-7d4b9-x2x",
            WEB_UID,
            "node-a",
            objects::owner("ReplicaSet", "apps/v1", "web-7d4b9"),
            "Running",
            "nginx",
            CID,
            0,
        ),
    );
    api.apply(
        "api/v1/pods",
        objects::pod(
            "shop",
            "elsewhere",
            "uid-elsewhere",
            "node-b",
            json!([]),
            "Running",
            "x",
            "",
            0,
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    cgroup_fixture(&dir.path().join("cgroup"));
    let cfg: Config = serde_yaml::from_str(&format!(
        "interval: 200ms\nnode_name: node-a\nnode:\n  enabled: false\ncgroup:\n  root: {}\nkubernetes:\n  enabled: true\n  api_url: {}\nremote_write:\n- url: http://127.0.0.1:9/api/v1/write\n",
        dir.path().join("cgroup").display(),
        api.url
    ))
    .unwrap();
    let stop = CancellationToken::new();
    let mut reg = Registry::default();
    let defaults = Defaults {
        aggregator_url: "http://127.0.0.1:9".into(),
        config_file: None,
    };
    let c = Collector::start(
        cfg,
        defaults,
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

    let m = until(&url, "the pod catalogue", |m| {
        find(
            m,
            "k8s_container_mem_usage_bytes",
            &[("container_name", "nginx")],
        )
        .is_some()
    })
    .await;
    assert_eq!(
        find(
            &m,
            "k8s_container_mem_usage_bytes",
            &[
                ("workload_kind", "Deployment"),
                ("workload_name", "web"),
                ("node", "node-a")
            ]
        ),
        Some(33_554_432.0)
    );
    assert_eq!(
        find(&m, "k8s_node_pod_num", &[("node", "node-a")]),
        Some(1.0),
        "only this node's pods"
    );
    assert!(
        !m.keys().any(|k| k.starts_with("kube_")),
        "no cluster-scoped series in node mode"
    );
    // The business (project) catalogue through the namespace's project label.
    assert_eq!(
        find(
            &m,
            "project_namespace_mem_usage_bytes",
            &[("project_name", "shop-project"), ("namespace", "shop")]
        ),
        Some(50_000_000.0)
    );
    assert_eq!(
        find(
            &m,
            "project_cluster_mem_usage_bytes",
            &[("project_name", "shop-project")]
        ),
        Some(50_000_000.0)
    );
    assert_eq!(
        find(
            &m,
            "k8s_namespace_mem_no_cache_bytes",
            &[("namespace", "shop")]
        ),
        find(
            &m,
            "k8s_pod_mem_no_cache_bytes",
            &[("pod_name", "web-7d4b9-x2x")]
        )
    );
    let watched: Vec<String> = api.watch_requests();
    assert!(
        watched
            .iter()
            .all(|w| !w.starts_with("apis/apps/v1/deployments")),
        "{watched:?}"
    );
    assert!(
        watched
            .iter()
            .any(|w| w.starts_with("api/v1/pods")
                && w.contains("fieldSelector=spec.nodeName=node-a")),
        "{watched:?}"
    );
    stop.cancel();
    c.close().await.unwrap();
}

async fn start_candidate(
    api: &TestApiServer,
    node: &str,
    dir: &Path,
) -> (std::sync::Arc<Collector>, CancellationToken, String) {
    let cfg: Config = serde_yaml::from_str(&format!(
        "interval: 200ms\nnode_name: {node}\nnode:\n  enabled: false\ncgroup:\n  enabled: false\ngpu: false\nkubernetes:\n  enabled: true\n  api_url: {}\n  mode: elected\n  lease_duration: 2s\nremote_write:\n- url: http://127.0.0.1:9/api/v1/write\n",
        api.url
    ))
    .unwrap();
    let stop = CancellationToken::new();
    let mut reg = Registry::default();
    let defaults = Defaults {
        aggregator_url: "http://127.0.0.1:9".into(),
        config_file: None,
    };
    let c = Collector::start(cfg, defaults, &dir.join(node), &mut reg, stop.clone())
        .await
        .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let app = c.router();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (c, stop, url)
}

/// `mode: elected`: two candidates, one Lease; only the holder reports the
/// cluster-scoped series, and when it stops the other takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_through_a_lease() {
    let api = TestApiServer::start().await;
    api.apply("api/v1/nodes", objects::node("node-a", "4", "8Gi"));
    api.apply("api/v1/nodes", objects::node("node-b", "4", "8Gi"));
    let dir = tempfile::tempdir().unwrap();
    let (ca, stop_a, url_a) = start_candidate(&api, "node-a", dir.path()).await;
    let (cb, stop_b, url_b) = start_candidate(&api, "node-b", dir.path()).await;
    let reports = |m: &HashMap<String, f64>| find(m, "k8s_cluster_node_num", &[]).is_some();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let holder = loop {
        if let Some(h) = api.lease_holder("kube-system", "tidewatch-collector") {
            break h;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody took the lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (leader_url, follower_url) = if holder == "node-a" {
        (&url_a, &url_b)
    } else {
        (&url_b, &url_a)
    };
    until(leader_url, "the leader reports the cluster", reports).await;
    // A few cycles later the follower still does not.
    for _ in 0..5 {
        assert!(
            !reports(&metrics(follower_url).await),
            "only the lease holder reports cluster-scoped series"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The leader stops (releasing the lease): the other takes over.
    let (leader, stop_leader, follower, stop_follower) = if holder == "node-a" {
        (ca, stop_a, cb, stop_b)
    } else {
        (cb, stop_b, ca, stop_a)
    };
    stop_leader.cancel();
    leader.close().await.unwrap();
    until(follower_url, "failover", reports).await;
    assert_ne!(
        api.lease_holder("kube-system", "tidewatch-collector")
            .as_deref(),
        Some(holder.as_str())
    );
    stop_follower.cancel();
    follower.close().await.unwrap();
}
