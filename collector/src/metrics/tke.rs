//! The TKEStack metric catalogue (`k8s_node_*`, `k8s_cluster_*`), derived at
//! collection time from the node source's samples, so it is queryable by
//! name with no recording rules. Rates are computed between consecutive
//! cycles. Without Kubernetes the machine is node `<hostname>` (role
//! `Node`) of a one-node cluster `cluster_id` (`local` in `tidewatch up`).
//!
//! Units follow TKEStack's catalogue: percentages 0–100, cores, bytes,
//! bytes/s for `fs_*_bytes`, operations/s for `fs_*_times`, bits/s for
//! `*_bw`.

use super::cluster_usage;
use super::pods::ClusterCapacity;
use super::sample::{Emitter, Sample};

/// Counter totals of one cycle (summed over CPUs, devices, interfaces).
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    ts_ms: i64,
    cpu_idle: f64,
    cpu_all: f64,
    disk_read_bytes: f64,
    disk_write_bytes: f64,
    disk_reads: f64,
    disk_writes: f64,
    net_rx_bytes: f64,
    net_tx_bytes: f64,
    net_rx_packets: f64,
    net_tx_packets: f64,
}

/// Gauges of one cycle.
#[derive(Clone, Copy, Debug, Default)]
struct Gauges {
    cpus: f64,
    mem_total: f64,
    mem_free: f64,
    mem_available: f64,
    fs_size: f64,
    fs_avail: f64,
    boot_time: f64,
    gpus: f64,
    gpu_util_sum: f64,
    gpu_mem_used: f64,
    gpu_mem_total: f64,
}

/// Derives the node and (single-node) cluster catalogue.
pub struct TkeDeriver {
    node: String,
    cluster_id: String,
    prev: Option<Totals>,
}

fn is_loopback(dev: Option<&str>) -> bool {
    dev == Some("lo")
}

impl TkeDeriver {
    /// A deriver for node `node` of cluster `cluster_id`.
    pub fn new(node: &str, cluster_id: &str) -> Self {
        TkeDeriver {
            node: node.to_string(),
            cluster_id: cluster_id.to_string(),
            prev: None,
        }
    }

    /// Appends the catalogue derived from this cycle's `batch`. `cluster`
    /// is the Kubernetes cluster's capacity (`None` without Kubernetes: the
    /// machine is the whole cluster).
    pub fn derive(
        &mut self,
        batch: &[Sample],
        cluster: Option<ClusterCapacity>,
        e: &mut Emitter<'_>,
    ) {
        let mut t = Totals {
            ts_ms: e.timestamp_ms(),
            ..Totals::default()
        };
        let mut g = Gauges::default();
        let mut cpus = std::collections::BTreeSet::new();
        for s in batch {
            let Some(name) = s.labels.metric_name() else {
                continue;
            };
            if !name.starts_with("node_") && !name.starts_with("gpu_") {
                continue;
            }
            let v = s.value;
            match name {
                "node_cpu_seconds_total" => {
                    t.cpu_all += v;
                    if s.labels.get("mode") == Some("idle") {
                        t.cpu_idle += v;
                    }
                    if let Some(c) = s.labels.get("cpu") {
                        cpus.insert(c.to_string());
                    }
                }
                "node_disk_read_bytes_total" => t.disk_read_bytes += v,
                "node_disk_written_bytes_total" => t.disk_write_bytes += v,
                "node_disk_reads_completed_total" => t.disk_reads += v,
                "node_disk_writes_completed_total" => t.disk_writes += v,
                "node_network_receive_bytes_total" if !is_loopback(s.labels.get("device")) => {
                    t.net_rx_bytes += v
                }
                "node_network_transmit_bytes_total" if !is_loopback(s.labels.get("device")) => {
                    t.net_tx_bytes += v
                }
                "node_network_receive_packets_total" if !is_loopback(s.labels.get("device")) => {
                    t.net_rx_packets += v
                }
                "node_network_transmit_packets_total" if !is_loopback(s.labels.get("device")) => {
                    t.net_tx_packets += v
                }
                "node_memory_MemTotal_bytes" => g.mem_total = v,
                "node_memory_MemFree_bytes" => g.mem_free = v,
                "node_memory_MemAvailable_bytes" => g.mem_available = v,
                "node_filesystem_size_bytes" => g.fs_size += v,
                "node_filesystem_avail_bytes" => g.fs_avail += v,
                "node_boot_time_seconds" => g.boot_time = v,
                "gpu_utilization_percent" => {
                    g.gpus += 1.0;
                    g.gpu_util_sum += v;
                }
                "gpu_memory_used_bytes" => g.gpu_mem_used += v,
                "gpu_memory_total_bytes" => g.gpu_mem_total += v,
                _ => {}
            }
        }
        g.cpus = cpus.len() as f64;
        if g.mem_total == 0.0 && g.cpus == 0.0 {
            return; // no node source this cycle
        }
        let standalone = cluster.is_none();
        let cap = cluster.unwrap_or(ClusterCapacity {
            cpu: g.cpus,
            memory: g.mem_total,
            gpu: g.gpus,
            gpu_memory: g.gpu_mem_total,
            master: false,
        });
        let node = self.node.clone();
        let cid = self.cluster_id.clone();
        let role = if cap.master { "Master" } else { "Node" };
        let nl: [(&str, &str); 3] = [("cluster_id", &cid), ("node", &node), ("node_role", role)];
        let now_s = t.ts_ms as f64 / 1000.0;

        // Node gauges.
        e.emit(
            "k8s_node_mem_usage",
            &nl,
            pct(g.mem_total - g.mem_free, g.mem_total),
        );
        e.emit(
            "k8s_node_mem_usage_no_cache",
            &nl,
            pct(g.mem_total - g.mem_available, g.mem_total),
        );
        if g.gpus > 0.0 {
            e.emit("k8s_node_gpu_usage", &nl, g.gpu_util_sum / g.gpus);
            e.emit(
                "k8s_node_gpu_memory_usage",
                &nl,
                pct(g.gpu_mem_used, g.gpu_mem_total),
            );
        }
        e.emit("k8s_node_filesystem_size_bytes", &nl, g.fs_size);
        e.emit("k8s_node_filesystem_avail_bytes", &nl, g.fs_avail);
        let fs_used = pct(g.fs_size - g.fs_avail, g.fs_size);
        e.emit("k8s_node_filesystem_usage", &nl, fs_used);
        e.emit("k8s_node_disk_space_rate", &nl, fs_used);
        if standalone {
            self.standalone_node(&g, now_s, &nl, e);
        }

        // Cluster usage: the whole cluster without Kubernetes; with it,
        // this node's share (`node:<name>:share` with a `node` label; shares
        // and their percentages of the cluster's capacity add up over nodes,
        // and built-in recording rules sum them: `cluster_usage`).
        let cl_standalone = [("cluster_id", cid.as_str())];
        let cl_share = [("cluster_id", cid.as_str()), ("node", node.as_str())];
        let cl: &[(&str, &str)] = if standalone {
            &cl_standalone
        } else {
            &cl_share
        };
        let cu = |name: &str| cluster_usage::emitted_name(name, !standalone);
        let used_mem = g.mem_total - g.mem_free;
        let no_cache = g.mem_total - g.mem_available;
        e.emit(cu("k8s_cluster_mem_usage_bytes"), cl, used_mem);
        e.emit(cu("k8s_cluster_mem_no_cache_bytes"), cl, no_cache);
        e.emit(
            cu("k8s_cluster_rate_mem_usage_bytes_cluster"),
            cl,
            pct(used_mem, cap.memory),
        );
        e.emit(
            cu("k8s_cluster_rate_mem_no_cache_bytes_cluster"),
            cl,
            pct(no_cache, cap.memory),
        );
        if g.gpus > 0.0 {
            let cards = g.gpu_util_sum / 100.0;
            e.emit(cu("k8s_cluster_gpu_used"), cl, cards);
            e.emit(cu("k8s_cluster_gpu_memory_used"), cl, g.gpu_mem_used);
            e.emit(
                cu("k8s_cluster_rate_gpu_used_cluster"),
                cl,
                pct(cards, cap.gpu),
            );
            e.emit(
                cu("k8s_cluster_rate_gpu_memory_used_cluster"),
                cl,
                pct(g.gpu_mem_used, cap.gpu_memory),
            );
        }

        // Rates between this cycle and the previous one.
        let prev = self.prev.replace(t);
        let Some((p, dt)) = prev.and_then(|p| {
            let dt = (t.ts_ms - p.ts_ms) as f64 / 1000.0;
            (dt > 0.0).then_some((p, dt))
        }) else {
            return;
        };
        let r = |a: f64, b: f64| ((a - b) / dt).max(0.0);
        let all = t.cpu_all - p.cpu_all;
        let idle = t.cpu_idle - p.cpu_idle;
        let busy_frac = if all > 0.0 {
            (1.0 - idle / all).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let cores = busy_frac * g.cpus;
        e.emit("k8s_node_cpu_usage", &nl, busy_frac * 100.0);
        e.emit(cu("k8s_cluster_cpu_core_used"), cl, cores);
        e.emit(
            cu("k8s_cluster_rate_cpu_core_used_cluster"),
            cl,
            pct(cores, cap.cpu),
        );
        let fs = [
            ("fs_read_bytes", r(t.disk_read_bytes, p.disk_read_bytes)),
            ("fs_write_bytes", r(t.disk_write_bytes, p.disk_write_bytes)),
            ("fs_read_times", r(t.disk_reads, p.disk_reads)),
            ("fs_write_times", r(t.disk_writes, p.disk_writes)),
        ];
        let rx = r(t.net_rx_bytes, p.net_rx_bytes);
        let tx = r(t.net_tx_bytes, p.net_tx_bytes);
        for (suffix, v) in fs {
            e.emit(&format!("k8s_node_{suffix}"), &nl, v);
            e.emit(cu(&format!("k8s_cluster_{suffix}")), cl, v);
        }
        e.emit("k8s_node_network_receive_bytes_bw", &nl, 8.0 * rx);
        e.emit("k8s_node_network_transmit_bytes_bw", &nl, 8.0 * tx);
        for (suffix, v) in [
            ("network_receive_bytes_bw", 8.0 * rx),
            ("network_transmit_bytes_bw", 8.0 * tx),
            ("network_receive_bytes", rx),
            ("network_transmit_bytes", tx),
            (
                "network_receive_packets",
                r(t.net_rx_packets, p.net_rx_packets),
            ),
            (
                "network_transmit_packets",
                r(t.net_tx_packets, p.net_tx_packets),
            ),
        ] {
            e.emit(cu(&format!("k8s_cluster_{suffix}")), cl, v);
        }
    }

    /// Without Kubernetes: the node's status and resources, and the
    /// one-node cluster's inventory.
    fn standalone_node(&self, g: &Gauges, now_s: f64, nl: &[(&str, &str); 3], e: &mut Emitter<'_>) {
        e.emit("k8s_node_status_ready", nl, 1.0);
        e.emit("k8s_node_status_ready_with_node_role", nl, 1.0);
        e.emit("k8s_node_not_ready", nl, 0.0);
        e.emit("k8s_node_pod_num", nl, 0.0);
        e.emit("k8s_node_pod_restart_total", nl, 0.0);
        e.emit("k8s_node_info", nl, 1.0);
        if g.boot_time > 0.0 {
            e.emit("k8s_node_age", nl, now_s - g.boot_time);
        }
        for (resource, v) in [
            ("cpu", g.cpus),
            ("memory", g.mem_total),
            ("gpu", g.gpus),
            ("gpu_memory", g.gpu_mem_total),
        ] {
            let l = [nl[0], nl[1], nl[2], ("resource", resource)];
            e.emit("k8s_node_status_capacity", &l, v);
            e.emit("k8s_node_status_allocatable", &l, v);
            e.emit("k8s_node_resource_request", &l, 0.0);
            e.emit("k8s_node_resource_limit", &l, 0.0);
        }
        let cl = [nl[0]];
        e.emit("k8s_cluster_cpu_core_total", &cl, g.cpus);
        e.emit("k8s_cluster_memory_total", &cl, g.mem_total);
        e.emit("k8s_cluster_gpu_total", &cl, g.gpus);
        e.emit("k8s_cluster_gpu_memory_total", &cl, g.gpu_mem_total);
        for name in [
            "k8s_cluster_cpu_core_request",
            "k8s_cluster_mem_request_bytes",
            "k8s_cluster_rate_cpu_core_request_cluster",
            "k8s_cluster_rate_mem_request_bytes_cluster",
            "k8s_cluster_rate_gpu_request_cluster",
            "k8s_cluster_rate_gpu_memory_request_cluster",
            "k8s_cluster_node_not_ready_num",
            "k8s_cluster_node_not_ready_rate",
            "k8s_cluster_pod_num",
            "k8s_cluster_workload_num",
            "k8s_cluster_workload_replicas_expected_num",
            "k8s_cluster_workload_replicas_unexpected_num",
            "k8s_cluster_workload_replicas_zero_num",
        ] {
            e.emit(name, &cl, 0.0);
        }
        for phase in ["failed", "pending", "running", "succeeded", "unknown"] {
            e.emit(
                &format!("k8s_cluster_pod_status_phase_{phase}_num"),
                &cl,
                0.0,
            );
            e.emit(
                &format!("k8s_cluster_pod_status_phase_{phase}_rate"),
                &cl,
                0.0,
            );
        }
        e.emit("k8s_cluster_node_num", &cl, 1.0);
        if g.boot_time > 0.0 {
            e.emit("k8s_cluster_age", &cl, now_s - g.boot_time);
        }
    }
}

/// `a` as a percentage of `b` (0 when `b` is 0).
fn pct(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b * 100.0 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn node_batch(idle: f64, user: f64, rx: f64) -> Vec<Sample> {
        vec![
            s(
                "node_cpu_seconds_total",
                &[("cpu", "0"), ("mode", "idle")],
                idle,
            ),
            s(
                "node_cpu_seconds_total",
                &[("cpu", "0"), ("mode", "user")],
                user,
            ),
            s(
                "node_cpu_seconds_total",
                &[("cpu", "1"), ("mode", "idle")],
                idle,
            ),
            s(
                "node_cpu_seconds_total",
                &[("cpu", "1"), ("mode", "user")],
                user,
            ),
            s("node_memory_MemTotal_bytes", &[], 1000.0),
            s("node_memory_MemFree_bytes", &[], 200.0),
            s("node_memory_MemAvailable_bytes", &[], 600.0),
            s("node_filesystem_size_bytes", &[("mountpoint", "/")], 100.0),
            s("node_filesystem_avail_bytes", &[("mountpoint", "/")], 25.0),
            s(
                "node_network_receive_bytes_total",
                &[("device", "eth0")],
                rx,
            ),
            s("node_network_receive_bytes_total", &[("device", "lo")], 1e9),
        ]
    }

    fn get(out: &[Sample], name: &str) -> Option<f64> {
        out.iter()
            .find(|x| x.labels.metric_name() == Some(name))
            .map(|x| x.value)
    }

    #[test]
    fn node_and_cluster_catalogue_from_two_cycles() {
        let mut d = TkeDeriver::new("host1", "local");
        let mut out = Vec::new();
        d.derive(
            &node_batch(100.0, 100.0, 0.0),
            None,
            &mut Emitter::new(&mut out, 10_000),
        );
        assert_eq!(get(&out, "k8s_node_mem_usage"), Some(80.0));
        assert_eq!(get(&out, "k8s_node_mem_usage_no_cache"), Some(40.0));
        assert_eq!(get(&out, "k8s_node_filesystem_usage"), Some(75.0));
        assert_eq!(get(&out, "k8s_cluster_cpu_core_total"), Some(2.0));
        assert_eq!(
            get(&out, "k8s_node_cpu_usage"),
            None,
            "no rate after one cycle"
        );
        let n = out
            .iter()
            .find(|x| x.labels.metric_name() == Some("k8s_node_mem_usage"))
            .unwrap();
        assert_eq!(n.labels.get("node"), Some("host1"));
        assert_eq!(n.labels.get("cluster_id"), Some("local"));
        // 10 s later: each CPU spent 2.5 s busy and 7.5 s idle; eth0 got 1000 B.
        let mut out = Vec::new();
        d.derive(
            &node_batch(107.5, 102.5, 1000.0),
            None,
            &mut Emitter::new(&mut out, 20_000),
        );
        assert_eq!(get(&out, "k8s_node_cpu_usage"), Some(25.0));
        assert_eq!(get(&out, "k8s_cluster_cpu_core_used"), Some(0.5));
        assert_eq!(
            get(&out, "k8s_node_network_receive_bytes_bw"),
            Some(800.0),
            "bits/s, lo excluded"
        );
    }

    #[test]
    fn node_mode_emits_exactly_the_shares_the_rules_sum() {
        use super::cluster_usage::{CLUSTER_USAGE, recording_rules, share_of};
        use std::collections::BTreeSet;
        let cap = ClusterCapacity {
            cpu: 8.0,
            memory: 4000.0,
            gpu: 2.0,
            gpu_memory: 2000.0,
            master: false,
        };
        let gpu = |mut b: Vec<Sample>| {
            b.push(s("gpu_utilization_percent", &[("gpu", "0")], 50.0));
            b.push(s("gpu_memory_used_bytes", &[("gpu", "0")], 300.0));
            b.push(s("gpu_memory_total_bytes", &[("gpu", "0")], 1000.0));
            b
        };
        let mut d = TkeDeriver::new("node-a", "c1");
        let mut out = Vec::new();
        d.derive(
            &gpu(node_batch(100.0, 100.0, 0.0)),
            Some(cap),
            &mut Emitter::new(&mut out, 10_000),
        );
        d.derive(
            &gpu(node_batch(107.5, 102.5, 1000.0)),
            Some(cap),
            &mut Emitter::new(&mut out, 20_000),
        );
        let usage: BTreeSet<&str> = CLUSTER_USAGE.iter().map(|(n, _)| *n).collect();
        let mut shares = BTreeSet::new();
        for x in &out {
            let name = x.labels.metric_name().unwrap();
            assert!(!usage.contains(name), "{name}: only its share in node mode");
            if let Some(full) = share_of(name) {
                assert_eq!(x.labels.get("node"), Some("node-a"), "{name}");
                assert_eq!(x.labels.get("cluster_id"), Some("c1"), "{name}");
                shares.insert(full);
            }
        }
        let recorded: BTreeSet<&str> = recording_rules().iter().map(|r| r.record).collect();
        assert_eq!(
            shares, recorded,
            "the rule group covers exactly the emitted shares"
        );
        assert_eq!(get(&out, "node:k8s_cluster_cpu_core_used:share"), Some(0.5));
    }
}
