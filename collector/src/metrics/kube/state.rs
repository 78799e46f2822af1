//! kube-state-metrics-compatible series, owner resolution (ReplicaSet →
//! Deployment, Job → CronJob) and the pod index, as plain functions over a
//! [`ClusterView`].

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::ClusterView;
use super::quantity;
use crate::metrics::pods::{ContainerMeta, PodMeta};
use crate::metrics::sample::Emitter;

pub(super) fn controller(refs: Option<&Vec<OwnerReference>>) -> Option<&OwnerReference> {
    let refs = refs?;
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
}

/// Resolves pods' owners to their top-level workload.
pub struct Owners {
    /// (namespace, ReplicaSet) → Deployment name.
    rs: HashMap<(String, String), String>,
    /// (namespace, Job) → CronJob name.
    jobs: HashMap<(String, String), String>,
}

impl Owners {
    /// Indexes ReplicaSet and Job owners of `view`.
    pub fn new(view: &dyn ClusterView) -> Owners {
        let mut rs = HashMap::new();
        for r in view.replicasets() {
            if let Some(o) =
                controller(r.metadata.owner_references.as_ref()).filter(|o| o.kind == "Deployment")
            {
                rs.insert(
                    (
                        r.metadata.namespace.clone().unwrap_or_default(),
                        r.metadata.name.clone().unwrap_or_default(),
                    ),
                    o.name.clone(),
                );
            }
        }
        let mut jobs = HashMap::new();
        for j in view.jobs() {
            if let Some(o) =
                controller(j.metadata.owner_references.as_ref()).filter(|o| o.kind == "CronJob")
            {
                jobs.insert(
                    (
                        j.metadata.namespace.clone().unwrap_or_default(),
                        j.metadata.name.clone().unwrap_or_default(),
                    ),
                    o.name.clone(),
                );
            }
        }
        Owners { rs, jobs }
    }

    /// (workload kind, workload name) of a pod; a bare pod is its own
    /// workload of kind `Pod`.
    pub fn workload(&self, pod: &Pod) -> (String, String) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        match controller(pod.metadata.owner_references.as_ref()) {
            None => ("Pod".into(), pod.metadata.name.clone().unwrap_or_default()),
            Some(o) => match o.kind.as_str() {
                "ReplicaSet" => match self.rs.get(&(ns, o.name.clone())) {
                    Some(d) => ("Deployment".into(), d.clone()),
                    None => ("ReplicaSet".into(), o.name.clone()),
                },
                "Job" => match self.jobs.get(&(ns, o.name.clone())) {
                    Some(c) => ("CronJob".into(), c.clone()),
                    None => ("Job".into(), o.name.clone()),
                },
                k => (k.to_string(), o.name.clone()),
            },
        }
    }
}

pub(super) fn q(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    k: &str,
) -> f64 {
    map.and_then(|m| m.get(k))
        .and_then(|v| quantity::parse(&v.0))
        .unwrap_or(0.0)
}

/// GPU cards in a resource list: GPU Manager's `tencent.com/vcuda-core`
/// (100 = one card) plus `nvidia.com/gpu`.
pub fn gpu_cards(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> f64 {
    q(map, "tencent.com/vcuda-core") / 100.0 + q(map, "nvidia.com/gpu")
}

/// GPU memory bytes in a resource list: GPU Manager's
/// `tencent.com/vcuda-memory` (one unit = 256 MiB).
pub fn gpu_memory(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> f64 {
    q(map, "tencent.com/vcuda-memory") * 256.0 * 1024.0 * 1024.0
}

/// Whether a node is a control-plane node (TKEStack's `node_role`
/// `Master`).
pub fn is_master(n: &k8s_openapi::api::core::v1::Node) -> bool {
    n.metadata.labels.as_ref().is_some_and(|l| {
        l.keys().any(|k| {
            k == "node-role.kubernetes.io/master" || k == "node-role.kubernetes.io/control-plane"
        })
    })
}

/// Capacity summed over the cluster's nodes; `node` is this collector's
/// node (for its role).
pub fn capacity(view: &dyn ClusterView, node: &str) -> crate::metrics::pods::ClusterCapacity {
    let mut c = crate::metrics::pods::ClusterCapacity::default();
    for n in view.nodes() {
        let cap = n.status.as_ref().and_then(|s| s.capacity.as_ref());
        c.cpu += q(cap, "cpu");
        c.memory += q(cap, "memory");
        c.gpu += gpu_cards(cap);
        c.gpu_memory += gpu_memory(cap);
        if n.metadata.name.as_deref() == Some(node) {
            c.master = is_master(&n);
        }
    }
    c
}

/// Builds the pod index (UID → metadata) from `view`.
pub fn pod_index(view: &dyn ClusterView, owners: &Owners) -> HashMap<String, PodMeta> {
    let mut out = HashMap::new();
    for p in view.pods() {
        let Some(uid) = p.metadata.uid.clone() else {
            continue;
        };
        let (wk, wn) = owners.workload(&p);
        let statuses = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        let containers = p
            .spec
            .as_ref()
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| {
                        let st = statuses.iter().find(|s| s.name == c.name);
                        let id = st
                            .and_then(|s| s.container_id.clone())
                            .map(|id| id.split("://").last().unwrap_or_default().to_string())
                            .unwrap_or_default();
                        let r = c.resources.as_ref();
                        ContainerMeta {
                            name: c.name.clone(),
                            id,
                            cpu_request: q(r.and_then(|r| r.requests.as_ref()), "cpu"),
                            cpu_limit: q(r.and_then(|r| r.limits.as_ref()), "cpu"),
                            mem_request: q(r.and_then(|r| r.requests.as_ref()), "memory"),
                            mem_limit: q(r.and_then(|r| r.limits.as_ref()), "memory"),
                            restarts: st.map(|s| s.restart_count as f64).unwrap_or(0.0),
                            gpu_request: gpu_cards(r.and_then(|r| r.requests.as_ref())),
                            gpu_memory_request: gpu_memory(r.and_then(|r| r.requests.as_ref())),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            uid,
            PodMeta {
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone().unwrap_or_default(),
                node: p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
                workload_kind: wk,
                workload_name: wn,
                containers,
                phase: phase(&p).to_string(),
                ready: pod_ready(&p),
            },
        );
    }
    out
}

/// (kind, namespace, name) of a workload.
pub(super) type WorkloadKey = (String, String, String);
/// (cpu request, memory request, cpu limit, memory limit).
pub(super) type Resources = (f64, f64, f64, f64);

pub(super) fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Unknown")
}

pub(super) fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub(super) fn b(v: bool) -> f64 {
    if v { 1.0 } else { 0.0 }
}

/// Appends kube-state-metrics series (cluster mode) and the TKEStack
/// cluster, node-status and workload inventory catalogue.
pub fn emit_cluster(
    view: &dyn ClusterView,
    owners: &Owners,
    cluster_id: &str,
    e: &mut Emitter<'_>,
) {
    let summary = super::ksm::emit(view, cluster_id, e);
    super::inventory::emit(view, owners, &summary, cluster_id, e);
}

/// Namespace → business (project) name from the namespaces' `label`.
pub fn projects(view: &dyn ClusterView, label: &str) -> HashMap<String, String> {
    view.namespaces()
        .iter()
        .filter_map(|n| {
            let p = n.metadata.labels.as_ref()?.get(label)?;
            Some((n.metadata.name.clone()?, p.clone()))
        })
        .collect()
}
