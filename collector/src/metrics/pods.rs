//! What the collector knows about the pods on its node, filled by the
//! Kubernetes watcher and read by the container (cgroup) source and the
//! TKEStack catalogue: pod UID → namespace, name, workload, containers.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

/// One container of a pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerMeta {
    /// Container name.
    pub name: String,
    /// Runtime id without the `containerd://` prefix.
    pub id: String,
    /// CPU request in cores.
    pub cpu_request: f64,
    /// CPU limit in cores (0: none).
    pub cpu_limit: f64,
    /// Memory request in bytes.
    pub mem_request: f64,
    /// Memory limit in bytes (0: none).
    pub mem_limit: f64,
    /// Restarts.
    pub restarts: f64,
    /// GPU request in cards (`tencent.com/vcuda-core` / 100 plus
    /// `nvidia.com/gpu`).
    pub gpu_request: f64,
    /// GPU memory request in bytes (`tencent.com/vcuda-memory` × 256 MiB).
    pub gpu_memory_request: f64,
}

/// One pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodMeta {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Node it runs on.
    pub node: String,
    /// Resolved top-level owner kind (`Deployment`, `StatefulSet`, …).
    pub workload_kind: String,
    /// Resolved top-level owner name.
    pub workload_name: String,
    /// Containers.
    pub containers: Vec<ContainerMeta>,
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    pub phase: String,
    /// Ready condition.
    pub ready: bool,
}

/// Cluster-wide capacity (summed over nodes) and this node's role, the
/// denominators of the `rate_*_cluster` catalogue series.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClusterCapacity {
    /// CPU cores.
    pub cpu: f64,
    /// Memory bytes.
    pub memory: f64,
    /// GPU cards.
    pub gpu: f64,
    /// GPU memory bytes.
    pub gpu_memory: f64,
    /// Whether this node is a control-plane (`Master`) node.
    pub master: bool,
}

/// Pod UID → metadata, shared between the watcher and the sources; also
/// namespace → business (project) name and the cluster's capacity.
#[derive(Clone, Default)]
pub struct PodIndex(
    Arc<RwLock<HashMap<String, PodMeta>>>,
    Arc<RwLock<HashMap<String, String>>>,
    Arc<RwLock<ClusterCapacity>>,
);

impl PodIndex {
    /// Replaces the cluster capacity.
    pub fn set_capacity(&self, c: ClusterCapacity) {
        *self.2.write() = c;
    }

    /// The cluster capacity (zero before the nodes are known).
    pub fn capacity(&self) -> ClusterCapacity {
        *self.2.read()
    }

    /// Replaces the namespace → project map.
    pub fn set_projects(&self, projects: HashMap<String, String>) {
        *self.1.write() = projects;
    }

    /// Namespace → project (business) name.
    pub fn projects(&self) -> HashMap<String, String> {
        self.1.read().clone()
    }

    /// Replaces or inserts a pod.
    pub fn upsert(&self, uid: &str, meta: PodMeta) {
        self.0.write().insert(uid.to_string(), meta);
    }

    /// Removes a pod.
    pub fn remove(&self, uid: &str) {
        self.0.write().remove(uid);
    }

    /// Replaces the whole index (after a re-list).
    pub fn replace_all(&self, pods: HashMap<String, PodMeta>) {
        *self.0.write() = pods;
    }

    /// A pod by UID.
    pub fn get(&self, uid: &str) -> Option<PodMeta> {
        self.0.read().get(uid).cloned()
    }

    /// Every pod (a snapshot).
    pub fn all(&self) -> Vec<(String, PodMeta)> {
        self.0
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
