//! The per-node TKEStack series that come from the Node object and the
//! pods scheduled on it (cluster-scoped reporting): `k8s_node_info`,
//! `k8s_node_age`, `k8s_node_status_{capacity,allocatable}` and
//! `k8s_node_resource_{request,limit}` per resource (`cpu` cores, `memory`
//! bytes, `gpu` cards, `gpu_memory` bytes).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::state::{gpu_cards, gpu_memory, phase, q};
use crate::metrics::sample::Emitter;

type ResourceList =
    std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>;

/// (cpu, memory, gpu, gpu_memory) of a resource list.
fn amounts(map: Option<&ResourceList>) -> [f64; 4] {
    [
        q(map, "cpu"),
        q(map, "memory"),
        gpu_cards(map),
        gpu_memory(map),
    ]
}

const RESOURCES: [&str; 4] = ["cpu", "memory", "gpu", "gpu_memory"];

/// Appends the series of node `n`; `nl` are its catalogue labels
/// (`cluster_id`, `node`, `node_role`).
pub fn emit(n: &Node, pods: &[Arc<Pod>], nl: &[(&str, &str); 3], e: &mut Emitter<'_>) {
    let name = nl[1].1;
    let st = n.status.as_ref();
    let info = st.and_then(|s| s.node_info.as_ref());
    let addr = st
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address.as_str())
        .unwrap_or("");
    e.emit(
        "k8s_node_info",
        &[
            nl[0],
            nl[1],
            nl[2],
            ("internal_ip", addr),
            (
                "kubelet_version",
                info.map(|i| i.kubelet_version.as_str()).unwrap_or(""),
            ),
            ("os_image", info.map(|i| i.os_image.as_str()).unwrap_or("")),
        ],
        1.0,
    );
    if let Some(created) = &n.metadata.creation_timestamp {
        let age = (chrono::Utc::now() - created.0).num_milliseconds() as f64 / 1000.0;
        e.emit("k8s_node_age", nl, age.max(0.0));
    }
    let cap = amounts(st.and_then(|s| s.capacity.as_ref()));
    let alloc = amounts(st.and_then(|s| s.allocatable.as_ref()));
    let (mut req, mut lim) = ([0.0; 4], [0.0; 4]);
    for p in pods {
        let spec = p.spec.as_ref();
        if spec.and_then(|s| s.node_name.as_deref()) != Some(name)
            || matches!(phase(p), "Succeeded" | "Failed")
        {
            continue;
        }
        for c in spec.map(|s| s.containers.as_slice()).unwrap_or(&[]) {
            let r = c.resources.as_ref();
            let (a, b) = (
                amounts(r.and_then(|r| r.requests.as_ref())),
                amounts(r.and_then(|r| r.limits.as_ref())),
            );
            for i in 0..4 {
                req[i] += a[i];
                lim[i] += b[i];
            }
        }
    }
    for (i, res) in RESOURCES.iter().enumerate() {
        let l = [nl[0], nl[1], nl[2], ("resource", *res)];
        e.emit("k8s_node_status_capacity", &l, cap[i]);
        e.emit("k8s_node_status_allocatable", &l, alloc[i]);
        e.emit("k8s_node_resource_request", &l, req[i]);
        e.emit("k8s_node_resource_limit", &l, lim[i]);
    }
}
