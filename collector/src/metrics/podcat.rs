//! The TKEStack pod, container, workload and namespace catalogue
//! (`k8s_pod_*`, `k8s_container_*`, `k8s_workload_*`, `k8s_namespace_*`
//! usage series) derived each cycle from the container (cgroup) samples of
//! this node and the pod index. Rates are taken between consecutive cycles.
//!
//! Workload and namespace usage series carry a `node` label: each node's
//! collector reports its share (exact for a one-node cluster such as
//! `tidewatch up`; `sum without(node)` gives the cluster-wide value).

use std::collections::HashMap;

use super::pods::{ClusterCapacity, PodIndex};
use super::sample::{Emitter, Sample};

/// Counters of one cgroup at one cycle.
#[derive(Clone, Copy, Default)]
struct Counters {
    cpu: f64,
    fs_rb: f64,
    fs_wb: f64,
    fs_r: f64,
    fs_w: f64,
    rx_b: f64,
    tx_b: f64,
    rx_p: f64,
    tx_p: f64,
}

/// Usage of one cgroup at one cycle.
#[derive(Clone, Default)]
struct Usage {
    uid_pod: (String, String),
    container: String,
    mem: f64,
    ws: f64,
    c: Counters,
}

/// Usage summed over pods (per workload, namespace, project).
#[derive(Clone, Copy, Default)]
struct Agg {
    cpu: f64,
    mem: f64,
    ws: f64,
    rx_b: f64,
    tx_b: f64,
    rx_p: f64,
    tx_p: f64,
    fs_rb: f64,
    fs_wb: f64,
    fs_r: f64,
    fs_w: f64,
    /// GPU cards used (utilisation / 100).
    gpu: f64,
    /// GPU memory bytes used.
    gpu_mem: f64,
}

/// What the aggregate series are measured against.
#[derive(Clone, Copy)]
struct Ctx {
    cap: ClusterCapacity,
    /// NVML reported devices this cycle: GPU usage series are meaningful.
    gpu: bool,
}

/// Which optional series an aggregate level has.
#[derive(Clone, Copy)]
struct Level {
    /// `fs_{read,write}_times`.
    times: bool,
    /// `rate_*_cluster` (share of the cluster's capacity, additive over
    /// nodes).
    rates: bool,
}

impl Agg {
    fn add_rates(&mut self, r: &Counters) {
        self.cpu += r.cpu;
        self.rx_b += r.rx_b;
        self.tx_b += r.tx_b;
        self.rx_p += r.rx_p;
        self.tx_p += r.tx_p;
        self.fs_rb += r.fs_rb;
        self.fs_wb += r.fs_wb;
        self.fs_r += r.fs_r;
        self.fs_w += r.fs_w;
    }

    fn add(&mut self, o: &Agg) {
        self.add_rates(&Counters {
            cpu: o.cpu,
            fs_rb: o.fs_rb,
            fs_wb: o.fs_wb,
            fs_r: o.fs_r,
            fs_w: o.fs_w,
            rx_b: o.rx_b,
            tx_b: o.tx_b,
            rx_p: o.rx_p,
            tx_p: o.tx_p,
        });
        self.mem += o.mem;
        self.ws += o.ws;
        self.gpu += o.gpu;
        self.gpu_mem += o.gpu_mem;
    }

    /// Emits `<prefix>cpu_core_used`, memory, network, disk, GPU and (per
    /// `level`) rate series.
    fn emit(&self, e: &mut Emitter<'_>, prefix: &str, l: &[(&str, &str)], level: Level, ctx: Ctx) {
        let mut m = |suffix: &str, v: f64| e.emit(&format!("{prefix}{suffix}"), l, v);
        m("cpu_core_used", self.cpu);
        m("mem_usage_bytes", self.mem);
        m("mem_no_cache_bytes", self.ws);
        m("network_receive_bytes_bw", self.rx_b * 8.0);
        m("network_transmit_bytes_bw", self.tx_b * 8.0);
        m("network_receive_bytes", self.rx_b);
        m("network_transmit_bytes", self.tx_b);
        m("network_receive_packets", self.rx_p);
        m("network_transmit_packets", self.tx_p);
        m("fs_read_bytes", self.fs_rb);
        m("fs_write_bytes", self.fs_wb);
        if level.times {
            m("fs_read_times", self.fs_r);
            m("fs_write_times", self.fs_w);
        }
        if ctx.gpu {
            m("gpu_used", self.gpu);
            m("gpu_memory_used", self.gpu_mem);
        }
        if level.rates {
            let c = ctx.cap;
            m("rate_cpu_core_used_cluster", pct(self.cpu, c.cpu));
            m("rate_mem_usage_bytes_cluster", pct(self.mem, c.memory));
            m("rate_mem_no_cache_cluster", pct(self.ws, c.memory));
            if ctx.gpu {
                m("rate_gpu_used_cluster", pct(self.gpu, c.gpu));
                m(
                    "rate_gpu_memory_used_cluster",
                    pct(self.gpu_mem, c.gpu_memory),
                );
            }
        }
    }
}

/// `a` as a percentage of `b` (0 when `b` is 0).
fn pct(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b * 100.0 } else { 0.0 }
}

/// Derives the catalogue; keeps the previous cycle's counters.
pub struct PodCatalogue {
    node: String,
    cluster_id: String,
    prev: HashMap<String, (i64, Counters)>,
    /// Restarts per (namespace, pod) at the previous cycle, for
    /// `k8s_pod_restart_total` (`idelta`: the increase since then).
    prev_restarts: HashMap<(String, String), f64>,
}

impl PodCatalogue {
    /// A deriver for node `node` of `cluster_id`.
    pub fn new(node: &str, cluster_id: &str) -> Self {
        PodCatalogue {
            node: node.into(),
            cluster_id: cluster_id.into(),
            prev: HashMap::new(),
            prev_restarts: HashMap::new(),
        }
    }

    /// Appends the catalogue for this cycle.
    pub fn derive(&mut self, batch: &[Sample], pods: &PodIndex, e: &mut Emitter<'_>) {
        let ts = e.timestamp_ms();
        let mut node_cpus = std::collections::BTreeSet::new();
        let mut node_mem = 0.0;
        let mut node_gpus = 0.0;
        // (namespace, pod, container) → (GPU cards used, GPU memory bytes).
        let mut gpu_use: HashMap<(String, String, String), (f64, f64)> = HashMap::new();
        let mut by_id: HashMap<&str, Usage> = HashMap::new();
        for s in batch {
            let Some(name) = s.labels.metric_name() else {
                continue;
            };
            if name == "node_cpu_seconds_total" {
                if let Some(c) = s.labels.get("cpu") {
                    node_cpus.insert(c);
                }
                continue;
            }
            if name == "node_memory_MemTotal_bytes" {
                node_mem = s.value;
                continue;
            }
            if name == "gpu_utilization_percent" {
                node_gpus += 1.0;
                continue;
            }
            if name == "container_gpu_utilization_percent"
                || name == "container_gpu_memory_used_bytes"
            {
                let key = (
                    s.labels.get("namespace").unwrap_or("").to_string(),
                    s.labels.get("pod").unwrap_or("").to_string(),
                    s.labels.get("container").unwrap_or("").to_string(),
                );
                if key.1.is_empty() {
                    continue;
                }
                let g = gpu_use.entry(key).or_insert((0.0, 0.0));
                if name == "container_gpu_utilization_percent" {
                    g.0 += s.value / 100.0;
                } else {
                    g.1 += s.value;
                }
                continue;
            }
            if !name.starts_with("container_") {
                continue;
            }
            let (Some(id), Some(pod), Some(ns)) = (
                s.labels.get("id"),
                s.labels.get("pod"),
                s.labels.get("namespace"),
            ) else {
                continue;
            };
            let u = by_id.entry(id).or_insert_with(|| Usage {
                uid_pod: (ns.to_string(), pod.to_string()),
                container: s.labels.get("container").unwrap_or("").to_string(),
                ..Usage::default()
            });
            let v = s.value;
            match name {
                "container_cpu_usage_seconds_total" => u.c.cpu = v,
                "container_memory_usage_bytes" => u.mem = v,
                "container_memory_working_set_bytes" => u.ws = v,
                "container_fs_reads_bytes_total" => u.c.fs_rb += v,
                "container_fs_writes_bytes_total" => u.c.fs_wb += v,
                "container_fs_reads_total" => u.c.fs_r += v,
                "container_fs_writes_total" => u.c.fs_w += v,
                "container_network_receive_bytes_total" => u.c.rx_b += v,
                "container_network_transmit_bytes_total" => u.c.tx_b += v,
                "container_network_receive_packets_total" => u.c.rx_p += v,
                "container_network_transmit_packets_total" => u.c.tx_p += v,
                _ => {}
            }
        }
        let cores = node_cpus.len() as f64;
        let ctx = Ctx {
            cap: pods.capacity(),
            gpu: node_gpus > 0.0,
        };
        let node_gpu_mem: f64 = batch
            .iter()
            .filter(|s| s.labels.metric_name() == Some("gpu_memory_total_bytes"))
            .map(|s| s.value)
            .sum();
        let mut next_restarts = HashMap::new();
        let index: HashMap<(String, String), crate::metrics::pods::PodMeta> = pods
            .all()
            .into_iter()
            .map(|(_, p)| ((p.namespace.clone(), p.name.clone()), p))
            .collect();
        let mut workload: HashMap<(String, String, String), Agg> = HashMap::new();
        let mut namespace: HashMap<String, Agg> = HashMap::new();
        // Rates since the previous cycle, per cgroup; containers share
        // their pod's network namespace, so a container's network series
        // are its pod's (as cAdvisor reports them).
        let mut next_prev = HashMap::with_capacity(by_id.len());
        let mut rates: HashMap<&str, Counters> = HashMap::with_capacity(by_id.len());
        let mut pod_net: HashMap<&(String, String), Counters> = HashMap::new();
        for (id, u) in &by_id {
            next_prev.insert(id.to_string(), (ts, u.c));
            let Some((pts, pc)) = self.prev.get(*id) else {
                continue;
            };
            let dt = (ts - pts) as f64 / 1000.0;
            if dt <= 0.0 {
                continue;
            }
            let r = |a: f64, b: f64| ((a - b) / dt).max(0.0);
            let c = Counters {
                cpu: r(u.c.cpu, pc.cpu),
                fs_rb: r(u.c.fs_rb, pc.fs_rb),
                fs_wb: r(u.c.fs_wb, pc.fs_wb),
                fs_r: r(u.c.fs_r, pc.fs_r),
                fs_w: r(u.c.fs_w, pc.fs_w),
                rx_b: r(u.c.rx_b, pc.rx_b),
                tx_b: r(u.c.tx_b, pc.tx_b),
                rx_p: r(u.c.rx_p, pc.rx_p),
                tx_p: r(u.c.tx_p, pc.tx_p),
            };
            if u.container.is_empty() {
                pod_net.insert(&u.uid_pod, c);
            }
            rates.insert(id, c);
        }
        for (id, u) in &by_id {
            let Some(meta) = index.get(&u.uid_pod) else {
                continue;
            };
            let rate = rates.get(*id).copied();
            let is_pod = u.container.is_empty();
            if !is_pod && u.container == "POD" {
                continue;
            }
            let (cpu_req, cpu_lim, mem_req, mem_lim) = if is_pod {
                meta.containers.iter().fold((0.0, 0.0, 0.0, 0.0), |a, c| {
                    (
                        a.0 + c.cpu_request,
                        a.1 + c.cpu_limit,
                        a.2 + c.mem_request,
                        a.3 + c.mem_limit,
                    )
                })
            } else {
                meta.containers
                    .iter()
                    .find(|c| c.name == u.container)
                    .map(|c| (c.cpu_request, c.cpu_limit, c.mem_request, c.mem_limit))
                    .unwrap_or_default()
            };
            let (gpu_req, gpu_mem_req) = if is_pod {
                meta.containers.iter().fold((0.0, 0.0), |a, c| {
                    (a.0 + c.gpu_request, a.1 + c.gpu_memory_request)
                })
            } else {
                meta.containers
                    .iter()
                    .find(|c| c.name == u.container)
                    .map(|c| (c.gpu_request, c.gpu_memory_request))
                    .unwrap_or_default()
            };
            let (gpu_used, gpu_mem_used) = gpu_use
                .iter()
                .filter(|((ns, pod, c), _)| {
                    *ns == meta.namespace && *pod == meta.name && (is_pod || *c == u.container)
                })
                .fold((0.0, 0.0), |a, (_, g)| (a.0 + g.0, a.1 + g.1));
            let prefix = if is_pod { "k8s_pod_" } else { "k8s_container_" };
            let l: Vec<(&str, &str)> = vec![
                ("cluster_id", &self.cluster_id),
                ("namespace", &meta.namespace),
                ("pod_name", &meta.name),
                ("container_name", &u.container),
                ("workload_kind", &meta.workload_kind),
                ("workload_name", &meta.workload_name),
                ("node", &self.node),
            ];
            let mut m = |suffix: &str, v: f64| e.emit(&format!("{prefix}{suffix}"), &l, v);
            m("mem_usage_bytes", u.mem);
            m("mem_no_cache_bytes", u.ws);
            m("rate_mem_usage_request", pct(u.mem, mem_req));
            m("rate_mem_usage_limit", pct(u.mem, mem_lim));
            m("rate_mem_usage_node", pct(u.mem, node_mem));
            m("rate_mem_no_cache_request", pct(u.ws, mem_req));
            m("rate_mem_no_cache_limit", pct(u.ws, mem_lim));
            m("rate_mem_no_cache_node", pct(u.ws, node_mem));
            if is_pod && (gpu_req > 0.0 || gpu_mem_req > 0.0) {
                m("gpu_request", gpu_req);
                m("gpu_memory_request", gpu_mem_req);
            }
            if ctx.gpu {
                m("gpu_used", gpu_used);
                m("rate_gpu_used_request", pct(gpu_used, gpu_req));
                m("rate_gpu_used_node", pct(gpu_used, node_gpus));
                m("gpu_memory_used", gpu_mem_used);
                m(
                    "rate_gpu_memory_used_request",
                    pct(gpu_mem_used, gpu_mem_req),
                );
                m("rate_gpu_memory_used_node", pct(gpu_mem_used, node_gpu_mem));
            }
            if let Some(r) = rate {
                m("cpu_core_used", r.cpu);
                m("rate_cpu_core_used_request", pct(r.cpu, cpu_req));
                m("rate_cpu_core_used_limit", pct(r.cpu, cpu_lim));
                m("rate_cpu_core_used_node", pct(r.cpu, cores));
                m("fs_read_bytes", r.fs_rb);
                m("fs_write_bytes", r.fs_wb);
                m("fs_read_times", r.fs_r);
                m("fs_write_times", r.fs_w);
                if let Some(n) = pod_net.get(&u.uid_pod) {
                    m("network_receive_bytes_bw", n.rx_b * 8.0);
                    m("network_transmit_bytes_bw", n.tx_b * 8.0);
                    m("network_receive_bytes", n.rx_b);
                    m("network_transmit_bytes", n.tx_b);
                    m("network_receive_packets", n.rx_p);
                    m("network_transmit_packets", n.tx_p);
                }
                if is_pod {
                    workload
                        .entry((
                            meta.workload_kind.clone(),
                            meta.namespace.clone(),
                            meta.workload_name.clone(),
                        ))
                        .or_default()
                        .add_rates(&r);
                    namespace
                        .entry(meta.namespace.clone())
                        .or_default()
                        .add_rates(&r);
                }
            }
            if is_pod {
                let w = workload
                    .entry((
                        meta.workload_kind.clone(),
                        meta.namespace.clone(),
                        meta.workload_name.clone(),
                    ))
                    .or_default();
                w.mem += u.mem;
                w.ws += u.ws;
                w.gpu += gpu_used;
                w.gpu_mem += gpu_mem_used;
                let n = namespace.entry(meta.namespace.clone()).or_default();
                n.mem += u.mem;
                n.ws += u.ws;
                n.gpu += gpu_used;
                n.gpu_mem += gpu_mem_used;
                let restarts: f64 = meta.containers.iter().map(|c| c.restarts).sum();
                e.emit("k8s_pod_restart_total_number", &l, restarts);
                let key = (meta.namespace.clone(), meta.name.clone());
                if let Some(before) = self.prev_restarts.get(&key) {
                    e.emit("k8s_pod_restart_total", &l, (restarts - before).max(0.0));
                }
                next_restarts.insert(key, restarts);
                e.emit(
                    "k8s_pod_status_ready",
                    &l,
                    if meta.ready { 1.0 } else { 0.0 },
                );
                for (res, req, lim) in [("cpu", cpu_req, cpu_lim), ("memory", mem_req, mem_lim)] {
                    let mut rl = l.clone();
                    rl.push(("resource", res));
                    e.emit("k8s_pod_resource_request", &rl, req);
                    e.emit("k8s_pod_resource_limit", &rl, lim);
                }
                let mut pl = l.clone();
                pl.push(("phase", &meta.phase));
                e.emit("k8s_pod_status_phase", &pl, 1.0);
            }
        }
        self.prev = next_prev;
        self.prev_restarts = next_restarts;
        let full = Level {
            times: true,
            rates: true,
        };
        for ((kind, ns, name), agg) in &workload {
            let l = [
                ("cluster_id", self.cluster_id.as_str()),
                ("workload_kind", kind.as_str()),
                ("namespace", ns.as_str()),
                ("workload_name", name.as_str()),
                ("node", self.node.as_str()),
            ];
            agg.emit(e, "k8s_workload_", &l, full, ctx);
        }
        let projects = pods.projects();
        let mut per_project: HashMap<&str, Agg> = HashMap::new();
        for (ns, agg) in &namespace {
            let l = [
                ("cluster_id", self.cluster_id.as_str()),
                ("namespace", ns.as_str()),
                ("node", self.node.as_str()),
            ];
            agg.emit(e, "k8s_namespace_", &l, full, ctx);
            if let Some(project) = projects.get(ns) {
                let pl = [l[0], l[1], l[2], ("project_name", project.as_str())];
                let plain = Level {
                    times: false,
                    rates: false,
                };
                agg.emit(e, "project_namespace_", &pl, plain, ctx);
                per_project.entry(project.as_str()).or_default().add(agg);
            }
        }
        for (project, agg) in &per_project {
            let l = [
                ("cluster_id", self.cluster_id.as_str()),
                ("node", self.node.as_str()),
                ("project_name", *project),
            ];
            let level = Level {
                times: false,
                rates: true,
            };
            agg.emit(e, "project_cluster_", &l, level, ctx);
        }
        let on_node = index.values().filter(|p| p.node == self.node).count();
        let restarts: f64 = index
            .values()
            .filter(|p| p.node == self.node)
            .flat_map(|p| p.containers.iter().map(|c| c.restarts))
            .sum();
        let nl = [
            ("cluster_id", self.cluster_id.as_str()),
            ("node", self.node.as_str()),
            ("node_role", if ctx.cap.master { "Master" } else { "Node" }),
        ];
        if !index.is_empty() {
            e.emit("k8s_node_pod_num", &nl, on_node as f64);
            e.emit("k8s_node_pod_restart_total", &nl, restarts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::pods::{ContainerMeta, PodMeta};
    use tidewatch_common::labels::Labels;

    fn s(name: &str, labels: &[(&str, &str)], v: f64) -> Sample {
        let mut l = vec![("__name__", name)];
        l.extend_from_slice(labels);
        Sample {
            labels: Labels::from_pairs(l),
            value: v,
            timestamp_ms: 0,
        }
    }

    fn get(out: &[Sample], name: &str, container: &str) -> Option<f64> {
        out.iter()
            .find(|x| {
                x.labels.metric_name() == Some(name)
                    && x.labels.get("container_name").unwrap_or("") == container
            })
            .map(|x| x.value)
    }

    /// GPU usage from NVML per-process readings (already mapped to pods by
    /// the GPU source) joined with GPU Manager requests and the node's and
    /// cluster's GPU capacity.
    #[test]
    fn gpu_catalogue_from_process_readings() {
        let pods = PodIndex::default();
        pods.upsert(
            "uid1",
            PodMeta {
                namespace: "ml".into(),
                name: "train-0".into(),
                node: "n1".into(),
                workload_kind: "StatefulSet".into(),
                workload_name: "train".into(),
                containers: vec![ContainerMeta {
                    name: "worker".into(),
                    id: "c1".into(),
                    gpu_request: 0.5,
                    gpu_memory_request: 4.0 * 268435456.0,
                    ..ContainerMeta::default()
                }],
                phase: "Running".into(),
                ready: true,
            },
        );
        pods.set_capacity(ClusterCapacity {
            cpu: 8.0,
            memory: 1e10,
            gpu: 4.0,
            gpu_memory: 4.0 * 8e9,
            master: false,
        });
        let pod_l = [("id", "/p"), ("namespace", "ml"), ("pod", "train-0")];
        let c_l = [
            ("id", "/p/c1"),
            ("namespace", "ml"),
            ("pod", "train-0"),
            ("container", "worker"),
        ];
        let batch = vec![
            s("container_memory_usage_bytes", &pod_l, 1.0),
            s("container_memory_usage_bytes", &c_l, 1.0),
            s("gpu_utilization_percent", &[("gpu", "0")], 30.0),
            s("gpu_utilization_percent", &[("gpu", "1")], 0.0),
            s("gpu_memory_total_bytes", &[("gpu", "0")], 8e9),
            s("gpu_memory_total_bytes", &[("gpu", "1")], 8e9),
            s(
                "container_gpu_utilization_percent",
                &[
                    ("gpu", "0"),
                    ("namespace", "ml"),
                    ("pod", "train-0"),
                    ("container", "worker"),
                    ("pid", "7"),
                ],
                30.0,
            ),
            s(
                "container_gpu_memory_used_bytes",
                &[
                    ("gpu", "0"),
                    ("namespace", "ml"),
                    ("pod", "train-0"),
                    ("container", "worker"),
                    ("pid", "7"),
                ],
                536870912.0,
            ),
        ];
        let mut cat = PodCatalogue::new("n1", "c");
        let mut out = Vec::new();
        cat.derive(&batch, &pods, &mut Emitter::new(&mut out, 1000));
        assert_eq!(
            get(&out, "k8s_container_gpu_used", "worker"),
            Some(0.3),
            "cards"
        );
        assert_eq!(get(&out, "k8s_pod_gpu_used", ""), Some(0.3));
        assert_eq!(get(&out, "k8s_pod_gpu_request", ""), Some(0.5));
        assert_eq!(
            get(&out, "k8s_container_rate_gpu_used_request", "worker"),
            Some(60.0)
        );
        assert_eq!(
            get(&out, "k8s_container_rate_gpu_used_node", "worker"),
            Some(15.0),
            "0.3 of 2 cards"
        );
        assert_eq!(get(&out, "k8s_pod_gpu_memory_used", ""), Some(536870912.0));
        assert_eq!(
            get(&out, "k8s_pod_rate_gpu_memory_used_request", ""),
            Some(50.0)
        );
        let wl = |name: &str| {
            out.iter()
                .find(|x| {
                    x.labels.metric_name() == Some(name)
                        && x.labels.get("workload_name") == Some("train")
                })
                .map(|x| x.value)
        };
        assert_eq!(wl("k8s_workload_gpu_used"), Some(0.3));
        assert!(
            (wl("k8s_workload_rate_gpu_used_cluster").unwrap() - 7.5).abs() < 1e-9,
            "0.3 of 4 cluster cards"
        );
        // Without NVML readings no GPU usage series are made up.
        let mut out = Vec::new();
        cat.derive(&batch[..2], &pods, &mut Emitter::new(&mut out, 2000));
        assert_eq!(get(&out, "k8s_pod_gpu_used", ""), None);
        assert_eq!(get(&out, "k8s_pod_gpu_request", ""), Some(0.5));
    }
}
