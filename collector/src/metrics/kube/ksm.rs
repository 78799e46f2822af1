//! kube-state-metrics-compatible series for pods, nodes, namespaces and
//! workloads (cluster mode), plus the per-node TKEStack status series that
//! fall out of the same pass.

use std::collections::BTreeMap;

use super::ClusterView;
use super::state::{b, controller, phase, pod_ready, q};
use crate::metrics::sample::Emitter;

/// One workload: (kind, namespace, name, desired, current/available).
pub type Workload = (&'static str, String, String, f64, f64);

/// What the inventory catalogue needs from this pass.
pub struct Summary {
    /// Pods per phase.
    pub phases: BTreeMap<&'static str, f64>,
    /// Nodes not Ready.
    pub not_ready: f64,
    /// Nodes.
    pub nodes: f64,
    /// Summed node CPU capacity (cores).
    pub cpu_total: f64,
    /// Summed node memory capacity (bytes).
    pub mem_total: f64,
    /// Deployments, StatefulSets and DaemonSets.
    pub workloads: Vec<Workload>,
}

/// Appends the kube_* series; returns the summary.
pub fn emit(view: &dyn ClusterView, cluster_id: &str, e: &mut Emitter<'_>) -> Summary {
    let cid = ("cluster_id", cluster_id);
    let pods = view.pods();
    let nodes = view.nodes();

    // Pods.
    let mut phases: BTreeMap<&str, f64> = ["Pending", "Running", "Succeeded", "Failed", "Unknown"]
        .iter()
        .map(|p| (*p, 0.0))
        .collect();
    for p in &pods {
        let ns = p.metadata.namespace.as_deref().unwrap_or("");
        let name = p.metadata.name.as_deref().unwrap_or("");
        let uid = p.metadata.uid.as_deref().unwrap_or("");
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("");
        let base = [("namespace", ns), ("pod", name), ("uid", uid)];
        let (ck, cn) = controller(p.metadata.owner_references.as_ref())
            .map(|o| (o.kind.as_str(), o.name.as_str()))
            .unwrap_or(("<none>", "<none>"));
        let pod_ip = p
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .unwrap_or("");
        let host_ip = p
            .status
            .as_ref()
            .and_then(|s| s.host_ip.as_deref())
            .unwrap_or("");
        e.emit(
            "kube_pod_info",
            &[
                base[0],
                base[1],
                base[2],
                ("node", node),
                ("pod_ip", pod_ip),
                ("host_ip", host_ip),
                ("created_by_kind", ck),
                ("created_by_name", cn),
            ],
            1.0,
        );
        e.emit(
            "kube_pod_owner",
            &[
                base[0],
                base[1],
                base[2],
                ("owner_kind", ck),
                ("owner_name", cn),
                ("owner_is_controller", "true"),
            ],
            1.0,
        );
        let ph = phase(p);
        if let Some(c) = phases.get_mut(ph) {
            *c += 1.0;
        }
        for candidate in ["Pending", "Running", "Succeeded", "Failed", "Unknown"] {
            e.emit(
                "kube_pod_status_phase",
                &[base[0], base[1], base[2], ("phase", candidate)],
                b(ph == candidate),
            );
        }
        let ready = pod_ready(p);
        e.emit(
            "kube_pod_status_ready",
            &[base[0], base[1], base[2], ("condition", "true")],
            b(ready),
        );
        e.emit(
            "kube_pod_status_ready",
            &[base[0], base[1], base[2], ("condition", "false")],
            b(!ready),
        );
        if let Some(spec) = &p.spec {
            for c in &spec.containers {
                let r = c.resources.as_ref();
                for (metric, map) in [
                    (
                        "kube_pod_container_resource_requests",
                        r.and_then(|r| r.requests.as_ref()),
                    ),
                    (
                        "kube_pod_container_resource_limits",
                        r.and_then(|r| r.limits.as_ref()),
                    ),
                ] {
                    for (res, unit) in [("cpu", "core"), ("memory", "byte")] {
                        if map.is_some_and(|m| m.contains_key(res)) {
                            e.emit(
                                metric,
                                &[
                                    base[0],
                                    base[1],
                                    base[2],
                                    ("container", &c.name),
                                    ("node", node),
                                    ("resource", res),
                                    ("unit", unit),
                                ],
                                q(map, res),
                            );
                        }
                    }
                }
            }
        }
        for st in p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
        {
            e.emit(
                "kube_pod_container_status_restarts_total",
                &[base[0], base[1], base[2], ("container", &st.name)],
                st.restart_count as f64,
            );
            e.emit(
                "kube_pod_container_status_ready",
                &[base[0], base[1], base[2], ("container", &st.name)],
                b(st.ready),
            );
        }
    }

    // Nodes.
    let mut not_ready = 0.0;
    let (mut cpu_total, mut mem_total) = (0.0, 0.0);
    for n in &nodes {
        let name = n.metadata.name.as_deref().unwrap_or("");
        let role = if super::state::is_master(n) {
            "Master"
        } else {
            "Node"
        };
        let st = n.status.as_ref();
        let info = st.and_then(|s| s.node_info.as_ref());
        e.emit(
            "kube_node_info",
            &[
                ("node", name),
                (
                    "kernel_version",
                    info.map(|i| i.kernel_version.as_str()).unwrap_or(""),
                ),
                ("os_image", info.map(|i| i.os_image.as_str()).unwrap_or("")),
                (
                    "container_runtime_version",
                    info.map(|i| i.container_runtime_version.as_str())
                        .unwrap_or(""),
                ),
                (
                    "kubelet_version",
                    info.map(|i| i.kubelet_version.as_str()).unwrap_or(""),
                ),
            ],
            1.0,
        );
        for (metric, map) in [
            (
                "kube_node_status_capacity",
                st.and_then(|s| s.capacity.as_ref()),
            ),
            (
                "kube_node_status_allocatable",
                st.and_then(|s| s.allocatable.as_ref()),
            ),
        ] {
            for (res, unit) in [("cpu", "core"), ("memory", "byte"), ("pods", "integer")] {
                if map.is_some_and(|m| m.contains_key(res)) {
                    e.emit(
                        metric,
                        &[("node", name), ("resource", res), ("unit", unit)],
                        q(map, res),
                    );
                }
            }
        }
        cpu_total += q(st.and_then(|s| s.capacity.as_ref()), "cpu");
        mem_total += q(st.and_then(|s| s.capacity.as_ref()), "memory");
        let mut ready = false;
        for c in st.and_then(|s| s.conditions.as_ref()).into_iter().flatten() {
            for s in ["true", "false", "unknown"] {
                e.emit(
                    "kube_node_status_condition",
                    &[("node", name), ("condition", &c.type_), ("status", s)],
                    b(c.status.eq_ignore_ascii_case(s)),
                );
            }
            if c.type_ == "Ready" && c.status == "True" {
                ready = true;
            }
        }
        let unsched = n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        e.emit(
            "kube_node_spec_unschedulable",
            &[("node", name)],
            b(unsched),
        );
        if !ready {
            not_ready += 1.0;
        }
        let nl = [cid, ("node", name), ("node_role", role)];
        e.emit("k8s_node_status_ready", &nl, b(ready));
        e.emit("k8s_node_status_ready_with_node_role", &nl, b(ready));
        e.emit("k8s_node_not_ready", &nl, b(!ready));
        let on_node = pods
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name))
            .count();
        e.emit("k8s_node_pod_num", &nl, on_node as f64);
        super::node_catalogue::emit(n, &pods, &nl, e);
    }

    // Namespaces.
    for n in view.namespaces() {
        let name = n.metadata.name.as_deref().unwrap_or("");
        let ph = n
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Active");
        for candidate in ["Active", "Terminating"] {
            e.emit(
                "kube_namespace_status_phase",
                &[("namespace", name), ("phase", candidate)],
                b(ph == candidate),
            );
        }
        let labels = n.metadata.labels.clone().unwrap_or_default();
        let mut l: Vec<(String, String)> = vec![("namespace".into(), name.into())];
        for (k, v) in &labels {
            let key: String = k
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            l.push((format!("label_{key}"), v.clone()));
        }
        let refs: Vec<(&str, &str)> = l.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        e.emit("kube_namespace_labels", &refs, 1.0);
    }

    // Workloads: (kind, namespace, name, desired, current/available).
    let mut workloads: Vec<(&str, String, String, f64, f64)> = Vec::new();
    for d in view.deployments() {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let name = d.metadata.name.clone().unwrap_or_default();
        let spec = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) as f64;
        let st = d.status.clone().unwrap_or_default();
        let l = [("namespace", ns.as_str()), ("deployment", name.as_str())];
        e.emit("kube_deployment_spec_replicas", &l, spec);
        e.emit(
            "kube_deployment_status_replicas",
            &l,
            st.replicas.unwrap_or(0) as f64,
        );
        e.emit(
            "kube_deployment_status_replicas_available",
            &l,
            st.available_replicas.unwrap_or(0) as f64,
        );
        e.emit(
            "kube_deployment_status_replicas_unavailable",
            &l,
            st.unavailable_replicas.unwrap_or(0) as f64,
        );
        e.emit(
            "kube_deployment_status_replicas_updated",
            &l,
            st.updated_replicas.unwrap_or(0) as f64,
        );
        e.emit(
            "kube_deployment_status_replicas_ready",
            &l,
            st.ready_replicas.unwrap_or(0) as f64,
        );
        workloads.push((
            "Deployment",
            ns,
            name,
            spec,
            st.available_replicas.unwrap_or(0) as f64,
        ));
    }
    for r in view.replicasets() {
        let ns = r.metadata.namespace.as_deref().unwrap_or("");
        let name = r.metadata.name.as_deref().unwrap_or("");
        let (ok, on) = controller(r.metadata.owner_references.as_ref())
            .map(|o| (o.kind.as_str(), o.name.as_str()))
            .unwrap_or(("<none>", "<none>"));
        e.emit(
            "kube_replicaset_owner",
            &[
                ("namespace", ns),
                ("replicaset", name),
                ("owner_kind", ok),
                ("owner_name", on),
                ("owner_is_controller", "true"),
            ],
            1.0,
        );
        e.emit(
            "kube_replicaset_spec_replicas",
            &[("namespace", ns), ("replicaset", name)],
            r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) as f64,
        );
        e.emit(
            "kube_replicaset_status_replicas",
            &[("namespace", ns), ("replicaset", name)],
            r.status.as_ref().map(|s| s.replicas).unwrap_or(0) as f64,
        );
    }
    for s in view.statefulsets() {
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        let name = s.metadata.name.clone().unwrap_or_default();
        let spec = s.spec.as_ref().and_then(|x| x.replicas).unwrap_or(1) as f64;
        let st = s.status.clone().unwrap_or_default();
        let l = [("namespace", ns.as_str()), ("statefulset", name.as_str())];
        e.emit("kube_statefulset_replicas", &l, spec);
        e.emit("kube_statefulset_status_replicas", &l, st.replicas as f64);
        e.emit(
            "kube_statefulset_status_replicas_ready",
            &l,
            st.ready_replicas.unwrap_or(0) as f64,
        );
        e.emit(
            "kube_statefulset_status_replicas_current",
            &l,
            st.current_replicas.unwrap_or(0) as f64,
        );
        workloads.push((
            "StatefulSet",
            ns,
            name,
            spec,
            st.ready_replicas.unwrap_or(0) as f64,
        ));
    }
    for d in view.daemonsets() {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let name = d.metadata.name.clone().unwrap_or_default();
        let st = d.status.clone().unwrap_or_default();
        let l = [("namespace", ns.as_str()), ("daemonset", name.as_str())];
        e.emit(
            "kube_daemonset_status_desired_number_scheduled",
            &l,
            st.desired_number_scheduled as f64,
        );
        e.emit(
            "kube_daemonset_status_current_number_scheduled",
            &l,
            st.current_number_scheduled as f64,
        );
        e.emit(
            "kube_daemonset_status_number_ready",
            &l,
            st.number_ready as f64,
        );
        e.emit(
            "kube_daemonset_status_number_available",
            &l,
            st.number_available.unwrap_or(0) as f64,
        );
        e.emit(
            "kube_daemonset_status_number_misscheduled",
            &l,
            st.number_misscheduled as f64,
        );
        workloads.push((
            "DaemonSet",
            ns,
            name,
            st.desired_number_scheduled as f64,
            st.number_available.unwrap_or(0) as f64,
        ));
    }
    for j in view.jobs() {
        let ns = j.metadata.namespace.as_deref().unwrap_or("");
        let name = j.metadata.name.as_deref().unwrap_or("");
        let st = j.status.clone().unwrap_or_default();
        let l = [("namespace", ns), ("job_name", name)];
        e.emit("kube_job_status_active", &l, st.active.unwrap_or(0) as f64);
        e.emit(
            "kube_job_status_succeeded",
            &l,
            st.succeeded.unwrap_or(0) as f64,
        );
        e.emit("kube_job_status_failed", &l, st.failed.unwrap_or(0) as f64);
        let (ok, on) = controller(j.metadata.owner_references.as_ref())
            .map(|o| (o.kind.as_str(), o.name.as_str()))
            .unwrap_or(("<none>", "<none>"));
        e.emit(
            "kube_job_owner",
            &[
                l[0],
                l[1],
                ("owner_kind", ok),
                ("owner_name", on),
                ("owner_is_controller", "true"),
            ],
            1.0,
        );
    }
    for c in view.cronjobs() {
        let ns = c.metadata.namespace.as_deref().unwrap_or("");
        let name = c.metadata.name.as_deref().unwrap_or("");
        let sched = c.spec.as_ref().map(|s| s.schedule.as_str()).unwrap_or("");
        e.emit(
            "kube_cronjob_info",
            &[("namespace", ns), ("cronjob", name), ("schedule", sched)],
            1.0,
        );
        let active = c
            .status
            .as_ref()
            .and_then(|s| s.active.as_ref())
            .map(|a| a.len())
            .unwrap_or(0);
        e.emit(
            "kube_cronjob_status_active",
            &[("namespace", ns), ("cronjob", name)],
            active as f64,
        );
    }

    Summary {
        phases,
        not_ready,
        nodes: nodes.len() as f64,
        cpu_total,
        mem_total,
        workloads,
    }
}
