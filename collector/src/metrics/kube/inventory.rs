//! The TKEStack cluster and workload inventory catalogue (cluster mode):
//! `k8s_cluster_*` counts and requests, `k8s_workload_*` replicas,
//! restarts and resources.

use std::collections::HashMap;

use super::ClusterView;
use super::ksm::Summary;
use super::state::{Owners, Resources, WorkloadKey, b, gpu_cards, gpu_memory, phase, q};
use crate::metrics::sample::Emitter;

/// Appends the inventory catalogue.
pub fn emit(
    view: &dyn ClusterView,
    owners: &Owners,
    s: &Summary,
    cluster_id: &str,
    e: &mut Emitter<'_>,
) {
    let cid = ("cluster_id", cluster_id);
    let pods = view.pods();
    let (phases, not_ready, cpu_total, mem_total, workloads) = (
        &s.phases,
        s.not_ready,
        s.cpu_total,
        s.mem_total,
        &s.workloads,
    );
    // TKEStack workload and cluster inventory.
    let mut restarts: HashMap<(String, String, String), f64> = HashMap::new();
    let mut requests: HashMap<WorkloadKey, Resources> = HashMap::new();
    let (mut cpu_req, mut mem_req, mut gpu_req, mut gpu_mem_req) = (0.0, 0.0, 0.0, 0.0);
    for p in &pods {
        let (wk, wn) = owners.workload(p);
        let key = (wk, p.metadata.namespace.clone().unwrap_or_default(), wn);
        let r: f64 = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|v| v.iter().map(|c| c.restart_count as f64).sum())
            .unwrap_or(0.0);
        *restarts.entry(key.clone()).or_default() += r;
        let ent = requests.entry(key).or_default();
        for c in p
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or(&[])
        {
            let res = c.resources.as_ref();
            let (cr, mr) = (
                q(res.and_then(|r| r.requests.as_ref()), "cpu"),
                q(res.and_then(|r| r.requests.as_ref()), "memory"),
            );
            ent.0 += cr;
            ent.1 += mr;
            ent.2 += q(res.and_then(|r| r.limits.as_ref()), "cpu");
            ent.3 += q(res.and_then(|r| r.limits.as_ref()), "memory");
            if !matches!(phase(p), "Succeeded" | "Failed") {
                cpu_req += cr;
                mem_req += mr;
                gpu_req += gpu_cards(res.and_then(|r| r.requests.as_ref()));
                gpu_mem_req += gpu_memory(res.and_then(|r| r.requests.as_ref()));
            }
        }
    }
    let (mut expected, mut unexpected, mut zero) = (0.0, 0.0, 0.0);
    for (kind, ns, name, desired, current) in workloads {
        let l = [
            cid,
            ("workload_kind", *kind),
            ("namespace", ns.as_str()),
            ("workload_name", name.as_str()),
        ];
        e.emit("k8s_workload_replicas_desire", &l, *desired);
        e.emit("k8s_workload_replicas_current", &l, *current);
        let abnormal = current < desired;
        e.emit("k8s_workload_abnormal", &l, b(abnormal));
        let key = (kind.to_string(), ns.clone(), name.clone());
        e.emit(
            "k8s_workload_pod_restart_total",
            &l,
            restarts.get(&key).copied().unwrap_or(0.0),
        );
        let (cr, mr, cl, ml) = requests.get(&key).copied().unwrap_or_default();
        for (res, req, lim) in [("cpu", cr, cl), ("memory", mr, ml)] {
            let rl = [l[0], l[1], l[2], l[3], ("resource", res)];
            e.emit("k8s_workload_resource_request", &rl, req);
            e.emit("k8s_workload_resource_limit", &rl, lim);
        }
        if *desired == 0.0 {
            zero += 1.0;
        } else if abnormal {
            unexpected += 1.0;
        } else {
            expected += 1.0;
        }
    }
    let cl = [cid];
    let n = s.nodes;
    e.emit("k8s_cluster_node_num", &cl, n);
    e.emit("k8s_cluster_node_not_ready_num", &cl, not_ready);
    e.emit(
        "k8s_cluster_node_not_ready_rate",
        &cl,
        if n > 0.0 { not_ready / n * 100.0 } else { 0.0 },
    );
    let total = pods.len() as f64;
    e.emit("k8s_cluster_pod_num", &cl, total);
    for (ph, c) in phases {
        let lower = ph.to_lowercase();
        e.emit(
            &format!("k8s_cluster_pod_status_phase_{lower}_num"),
            &cl,
            *c,
        );
        e.emit(
            &format!("k8s_cluster_pod_status_phase_{lower}_rate"),
            &cl,
            if total > 0.0 { c / total * 100.0 } else { 0.0 },
        );
    }
    e.emit("k8s_cluster_workload_num", &cl, workloads.len() as f64);
    e.emit("k8s_cluster_workload_replicas_expected_num", &cl, expected);
    e.emit(
        "k8s_cluster_workload_replicas_unexpected_num",
        &cl,
        unexpected,
    );
    e.emit("k8s_cluster_workload_replicas_zero_num", &cl, zero);
    e.emit("k8s_cluster_cpu_core_total", &cl, cpu_total);
    e.emit("k8s_cluster_memory_total", &cl, mem_total);
    e.emit("k8s_cluster_cpu_core_request", &cl, cpu_req);
    e.emit("k8s_cluster_mem_request_bytes", &cl, mem_req);
    e.emit(
        "k8s_cluster_rate_cpu_core_request_cluster",
        &cl,
        if cpu_total > 0.0 {
            cpu_req / cpu_total * 100.0
        } else {
            0.0
        },
    );
    let pct = |a: f64, b: f64| if b > 0.0 { a / b * 100.0 } else { 0.0 };
    let cap = super::state::capacity(view, "");
    e.emit("k8s_cluster_gpu_total", &cl, cap.gpu);
    e.emit("k8s_cluster_gpu_memory_total", &cl, cap.gpu_memory);
    e.emit(
        "k8s_cluster_rate_gpu_request_cluster",
        &cl,
        pct(gpu_req, cap.gpu),
    );
    e.emit(
        "k8s_cluster_rate_gpu_memory_request_cluster",
        &cl,
        pct(gpu_mem_req, cap.gpu_memory),
    );
    // Age: since the oldest namespace (`default`/`kube-system` are
    // created when the cluster is bootstrapped).
    if let Some(oldest) = view
        .namespaces()
        .iter()
        .filter_map(|n| n.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .min()
    {
        let age = (chrono::Utc::now() - oldest).num_milliseconds() as f64 / 1000.0;
        e.emit("k8s_cluster_age", &cl, age.max(0.0));
    }
    e.emit(
        "k8s_cluster_rate_mem_request_bytes_cluster",
        &cl,
        if mem_total > 0.0 {
            mem_req / mem_total * 100.0
        } else {
            0.0
        },
    );
}
