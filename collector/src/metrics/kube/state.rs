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

fn controller(refs: Option<&Vec<OwnerReference>>) -> Option<&OwnerReference> {
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

fn q(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    k: &str,
) -> f64 {
    map.and_then(|m| m.get(k))
        .and_then(|v| quantity::parse(&v.0))
        .unwrap_or(0.0)
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
type WorkloadKey = (String, String, String);
/// (cpu request, memory request, cpu limit, memory limit).
type Resources = (f64, f64, f64, f64);

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Unknown")
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn b(v: bool) -> f64 {
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
        let labels = n.metadata.labels.clone().unwrap_or_default();
        let role = if labels.keys().any(|k| {
            k == "node-role.kubernetes.io/master" || k == "node-role.kubernetes.io/control-plane"
        }) {
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

    // TKEStack workload and cluster inventory.
    let mut restarts: HashMap<(String, String, String), f64> = HashMap::new();
    let mut requests: HashMap<WorkloadKey, Resources> = HashMap::new();
    let (mut cpu_req, mut mem_req) = (0.0, 0.0);
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
            }
        }
    }
    let (mut expected, mut unexpected, mut zero) = (0.0, 0.0, 0.0);
    for (kind, ns, name, desired, current) in &workloads {
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
    let n = nodes.len() as f64;
    e.emit("k8s_cluster_node_num", &cl, n);
    e.emit("k8s_cluster_node_not_ready_num", &cl, not_ready);
    e.emit(
        "k8s_cluster_node_not_ready_rate",
        &cl,
        if n > 0.0 { not_ready / n * 100.0 } else { 0.0 },
    );
    let total = pods.len() as f64;
    e.emit("k8s_cluster_pod_num", &cl, total);
    for (ph, c) in &phases {
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
