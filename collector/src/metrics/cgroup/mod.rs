//! Container metrics from cgroup v2 (and v1), named as cAdvisor names them
//! (`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`,
//! …) with `id` (the cgroup path) and, when the Kubernetes watcher knows the
//! pod, `namespace`, `pod` and `container` labels.

pub mod layout;
mod read;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::pods::PodIndex;
use super::sample::Emitter;
use layout::Kind;
pub use read::Stats;

/// Container source settings (`collector.cgroup`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CgroupConfig {
    /// Collect container metrics.
    pub enabled: bool,
    /// cgroup mount point (`/sys/fs/cgroup`).
    pub root: PathBuf,
    /// Besides pods and containers, report cgroups up to this depth (0:
    /// only the root).
    pub max_depth: usize,
}

impl Default for CgroupConfig {
    fn default() -> Self {
        CgroupConfig {
            enabled: true,
            root: "/sys/fs/cgroup".into(),
            max_depth: 2,
        }
    }
}

/// Reads every interesting cgroup each cycle.
pub struct CgroupSource {
    cfg: CgroupConfig,
    proc: PathBuf,
    pods: PodIndex,
}

impl CgroupSource {
    /// A source over `cfg.root`; `proc` is used for per-pod network stats.
    pub fn new(cfg: &CgroupConfig, proc: PathBuf, pods: PodIndex) -> Self {
        CgroupSource {
            cfg: cfg.clone(),
            proc,
            pods,
        }
    }

    /// Appends container metrics.
    pub fn collect(&mut self, e: &mut Emitter<'_>) {
        let tree = read::read_tree(&self.cfg.root, self.cfg.max_depth);
        for (path, st) in &tree {
            let kind = layout::classify(path);
            let (mut ns, mut pod, mut container) = (String::new(), String::new(), String::new());
            match &kind {
                Kind::Pod { uid, .. } => {
                    if let Some(p) = self.pods.get(uid) {
                        ns = p.namespace;
                        pod = p.name;
                    }
                }
                Kind::Container { uid, id, .. } => {
                    if let Some(p) = self.pods.get(uid) {
                        container = p
                            .containers
                            .iter()
                            .find(|c| c.id == *id)
                            .map(|c| c.name.clone())
                            .unwrap_or_else(|| "POD".into());
                        ns = p.namespace;
                        pod = p.name;
                    }
                }
                Kind::Other => {}
            }
            let labels: [(&str, &str); 4] = [
                ("id", path),
                ("namespace", &ns),
                ("pod", &pod),
                ("container", &container),
            ];
            emit_stats(e, &labels, st);
            let pid = match kind {
                Kind::Pod { .. } => st.first_pid.or_else(|| first_child_pid(&tree, path)),
                _ => None,
            };
            if let Some(pid) = pid {
                emit_network(e, &labels, &self.proc.join(pid.to_string()).join("net/dev"));
            }
        }
    }
}

/// A pid from any child cgroup of `path` (containers of a pod).
fn first_child_pid(tree: &[(String, Stats)], path: &str) -> Option<u32> {
    tree.iter()
        .filter(|(p, _)| {
            p.len() > path.len() && p.starts_with(path) && p.as_bytes()[path.len()] == b'/'
        })
        .find_map(|(_, s)| s.first_pid)
}

fn emit_stats(e: &mut Emitter<'_>, l: &[(&str, &str)], st: &Stats) {
    let mut g = |name: &str, v: Option<f64>| {
        if let Some(v) = v {
            e.emit(name, l, v);
        }
    };
    g("container_cpu_usage_seconds_total", st.cpu_usage);
    g("container_cpu_user_seconds_total", st.cpu_user);
    g("container_cpu_system_seconds_total", st.cpu_system);
    g("container_cpu_cfs_periods_total", st.cfs_periods);
    g(
        "container_cpu_cfs_throttled_periods_total",
        st.cfs_throttled_periods,
    );
    g(
        "container_cpu_cfs_throttled_seconds_total",
        st.cfs_throttled_seconds,
    );
    g("container_memory_usage_bytes", st.mem_usage);
    g("container_memory_max_usage_bytes", st.mem_max_usage);
    g("container_memory_working_set_bytes", st.working_set());
    g("container_memory_rss", st.mem_rss);
    g("container_memory_cache", st.mem_cache);
    g("container_memory_mapped_file", st.mem_mapped_file);
    g("container_memory_swap", st.mem_swap);
    g("container_memory_failcnt", st.mem_failcnt);
    g("container_oom_events_total", st.oom_events);
    g("container_spec_memory_limit_bytes", st.mem_limit);
    g("container_spec_cpu_quota", st.cpu_quota);
    g("container_spec_cpu_period", st.cpu_period);
    g("container_spec_cpu_shares", st.cpu_shares);
    for io in &st.io {
        let mut dl: Vec<(&str, &str)> = l.to_vec();
        dl.push(("device", &io.device));
        e.emit("container_fs_reads_bytes_total", &dl, io.read_bytes);
        e.emit("container_fs_writes_bytes_total", &dl, io.write_bytes);
        e.emit("container_fs_reads_total", &dl, io.reads);
        e.emit("container_fs_writes_total", &dl, io.writes);
    }
}

/// Pod network counters from a pod process's `/proc/<pid>/net/dev`.
fn emit_network(e: &mut Emitter<'_>, l: &[(&str, &str)], netdev: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(netdev) else {
        return;
    };
    for line in text.lines().skip(2) {
        let Some((dev, rest)) = line.split_once(':') else {
            continue;
        };
        let dev = dev.trim();
        if dev == "lo" {
            continue;
        }
        let v: Vec<f64> = rest
            .split_ascii_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 16 {
            continue;
        }
        let mut il: Vec<(&str, &str)> = l.to_vec();
        il.push(("interface", dev));
        for (name, i) in [
            ("container_network_receive_bytes_total", 0),
            ("container_network_receive_packets_total", 1),
            ("container_network_receive_errors_total", 2),
            ("container_network_receive_packets_dropped_total", 3),
            ("container_network_transmit_bytes_total", 8),
            ("container_network_transmit_packets_total", 9),
            ("container_network_transmit_errors_total", 10),
            ("container_network_transmit_packets_dropped_total", 11),
        ] {
            e.emit(name, &il, v[i]);
        }
    }
}
