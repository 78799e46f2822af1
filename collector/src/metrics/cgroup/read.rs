//! Reading cgroup v2 and v1 interface files into one [`Stats`] per cgroup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::layout::{Kind, classify};

/// I/O of one block device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Io {
    /// `major:minor`.
    pub device: String,
    /// Bytes read.
    pub read_bytes: f64,
    /// Bytes written.
    pub write_bytes: f64,
    /// Read operations.
    pub reads: f64,
    /// Write operations.
    pub writes: f64,
}

/// What one cgroup reports (fields absent in a version stay `None`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// CPU seconds.
    pub cpu_usage: Option<f64>,
    /// User CPU seconds.
    pub cpu_user: Option<f64>,
    /// System CPU seconds.
    pub cpu_system: Option<f64>,
    /// CFS periods.
    pub cfs_periods: Option<f64>,
    /// Throttled periods.
    pub cfs_throttled_periods: Option<f64>,
    /// Throttled seconds.
    pub cfs_throttled_seconds: Option<f64>,
    /// Memory usage bytes.
    pub mem_usage: Option<f64>,
    /// Peak usage (v1).
    pub mem_max_usage: Option<f64>,
    /// Anonymous memory.
    pub mem_rss: Option<f64>,
    /// Page cache.
    pub mem_cache: Option<f64>,
    /// Mapped files.
    pub mem_mapped_file: Option<f64>,
    /// Swap.
    pub mem_swap: Option<f64>,
    /// Inactive file pages (for the working set).
    pub mem_inactive_file: Option<f64>,
    /// Limit hits (v1).
    pub mem_failcnt: Option<f64>,
    /// OOM kills.
    pub oom_events: Option<f64>,
    /// Memory limit (absent when unlimited).
    pub mem_limit: Option<f64>,
    /// CFS quota in µs (absent when unlimited).
    pub cpu_quota: Option<f64>,
    /// CFS period in µs.
    pub cpu_period: Option<f64>,
    /// CPU shares (v2 weight converted as the kubelet does).
    pub cpu_shares: Option<f64>,
    /// Block I/O per device.
    pub io: Vec<Io>,
    /// A process in the cgroup (for network namespace stats).
    pub first_pid: Option<u32>,
}

impl Stats {
    /// Working set: usage minus inactive file pages, never negative.
    pub fn working_set(&self) -> Option<f64> {
        let u = self.mem_usage?;
        Some((u - self.mem_inactive_file.unwrap_or(0.0)).max(0.0))
    }
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn num(p: &Path) -> Option<f64> {
    read(p)?.trim().parse().ok()
}

/// `key value` lines.
fn kv(text: &str) -> BTreeMap<&str, f64> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_ascii_whitespace();
            Some((f.next()?, f.next()?.parse().ok()?))
        })
        .collect()
}

fn first_pid(dir: &Path) -> Option<u32> {
    read(&dir.join("cgroup.procs"))?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Walks the hierarchy; returns the cgroups worth reporting (depth ≤
/// `max_depth`, or pods and containers at any depth), keyed by their path.
pub fn read_tree(root: &Path, max_depth: usize) -> Vec<(String, Stats)> {
    let v2 = root.join("cgroup.controllers").exists();
    let mut out: BTreeMap<String, Stats> = BTreeMap::new();
    if v2 {
        walk(root, "", 0, max_depth, &mut |rel, dir| {
            out.insert(rel.to_string(), read_v2(dir));
        });
    } else {
        let hier = |names: &[&str]| names.iter().map(|n| root.join(n)).find(|p| p.is_dir());
        if let Some(cpu) = hier(&["cpu,cpuacct", "cpuacct,cpu", "cpuacct"]) {
            walk(&cpu, "", 0, max_depth, &mut |rel, dir| {
                read_v1_cpuacct(dir, out.entry(rel.to_string()).or_default());
            });
        }
        if let Some(cpu) = hier(&["cpu,cpuacct", "cpuacct,cpu", "cpu"]) {
            walk(&cpu, "", 0, max_depth, &mut |rel, dir| {
                read_v1_cpu(dir, out.entry(rel.to_string()).or_default());
            });
        }
        if let Some(mem) = hier(&["memory"]) {
            walk(&mem, "", 0, max_depth, &mut |rel, dir| {
                read_v1_memory(dir, out.entry(rel.to_string()).or_default());
            });
        }
        if let Some(blk) = hier(&["blkio"]) {
            walk(&blk, "", 0, max_depth, &mut |rel, dir| {
                read_v1_blkio(dir, out.entry(rel.to_string()).or_default());
            });
        }
    }
    out.into_iter()
        .map(|(k, v)| (if k.is_empty() { "/".to_string() } else { k }, v))
        .collect()
}

/// Visits `dir` and its descendants (bounded at depth 12).
fn walk(dir: &Path, rel: &str, depth: usize, max_depth: usize, f: &mut dyn FnMut(&str, &Path)) {
    let wanted = depth <= max_depth || !matches!(classify(rel), Kind::Other);
    if wanted {
        f(rel, dir);
    }
    if depth >= 12 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    children.sort();
    for c in children {
        let name = c.file_name().unwrap().to_string_lossy().into_owned();
        walk(&c, &format!("{rel}/{name}"), depth + 1, max_depth, f);
    }
}

fn read_v2(dir: &Path) -> Stats {
    let mut s = Stats::default();
    if let Some(t) = read(&dir.join("cpu.stat")) {
        let m = kv(&t);
        s.cpu_usage = m.get("usage_usec").map(|v| v / 1e6);
        s.cpu_user = m.get("user_usec").map(|v| v / 1e6);
        s.cpu_system = m.get("system_usec").map(|v| v / 1e6);
        s.cfs_periods = m.get("nr_periods").copied();
        s.cfs_throttled_periods = m.get("nr_throttled").copied();
        s.cfs_throttled_seconds = m.get("throttled_usec").map(|v| v / 1e6);
    }
    s.mem_usage = num(&dir.join("memory.current"));
    s.mem_swap = num(&dir.join("memory.swap.current"));
    if let Some(t) = read(&dir.join("memory.stat")) {
        let m = kv(&t);
        s.mem_rss = m.get("anon").copied();
        s.mem_cache = m.get("file").copied();
        s.mem_mapped_file = m.get("file_mapped").copied();
        s.mem_inactive_file = m.get("inactive_file").copied();
    }
    if let Some(t) = read(&dir.join("memory.events")) {
        s.oom_events = kv(&t).get("oom_kill").copied();
    }
    s.mem_limit = read(&dir.join("memory.max")).and_then(|v| v.trim().parse().ok());
    if let Some(t) = read(&dir.join("cpu.max")) {
        let mut f = t.split_ascii_whitespace();
        s.cpu_quota = f.next().and_then(|q| q.parse().ok());
        s.cpu_period = f.next().and_then(|p| p.parse().ok());
    }
    // The kubelet maps shares to weight as 1 + (shares-2)*9999/262142.
    s.cpu_shares =
        num(&dir.join("cpu.weight")).map(|w| ((w - 1.0) * 262_142.0 / 9_999.0 + 2.0).round());
    if let Some(t) = read(&dir.join("io.stat")) {
        for line in t.lines() {
            let mut f = line.split_ascii_whitespace();
            let Some(dev) = f.next() else { continue };
            let mut io = Io {
                device: dev.to_string(),
                ..Io::default()
            };
            for kv in f {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let v: f64 = v.parse().unwrap_or(0.0);
                match k {
                    "rbytes" => io.read_bytes = v,
                    "wbytes" => io.write_bytes = v,
                    "rios" => io.reads = v,
                    "wios" => io.writes = v,
                    _ => {}
                }
            }
            s.io.push(io);
        }
    }
    s.first_pid = first_pid(dir);
    s
}

fn read_v1_cpuacct(dir: &Path, s: &mut Stats) {
    s.cpu_usage = num(&dir.join("cpuacct.usage")).map(|ns| ns / 1e9);
    if let Some(t) = read(&dir.join("cpuacct.stat")) {
        let m = kv(&t);
        s.cpu_user = m.get("user").map(|v| v / 100.0);
        s.cpu_system = m.get("system").map(|v| v / 100.0);
    }
    if s.first_pid.is_none() {
        s.first_pid = first_pid(dir);
    }
}

fn read_v1_cpu(dir: &Path, s: &mut Stats) {
    if let Some(t) = read(&dir.join("cpu.stat")) {
        let m = kv(&t);
        s.cfs_periods = m.get("nr_periods").copied();
        s.cfs_throttled_periods = m.get("nr_throttled").copied();
        s.cfs_throttled_seconds = m.get("throttled_time").map(|v| v / 1e9);
    }
    s.cpu_quota = num(&dir.join("cpu.cfs_quota_us")).filter(|q| *q > 0.0);
    s.cpu_period = num(&dir.join("cpu.cfs_period_us"));
    s.cpu_shares = num(&dir.join("cpu.shares"));
}

/// v1 "unlimited" is a huge page-aligned number.
const V1_UNLIMITED: f64 = 9.0e18;

fn read_v1_memory(dir: &Path, s: &mut Stats) {
    s.mem_usage = num(&dir.join("memory.usage_in_bytes"));
    s.mem_max_usage = num(&dir.join("memory.max_usage_in_bytes"));
    s.mem_failcnt = num(&dir.join("memory.failcnt"));
    s.mem_limit = num(&dir.join("memory.limit_in_bytes")).filter(|l| *l < V1_UNLIMITED);
    if let Some(t) = read(&dir.join("memory.stat")) {
        let m = kv(&t);
        let pick = |a: &str, b: &str| m.get(a).or_else(|| m.get(b)).copied();
        s.mem_rss = pick("total_rss", "rss");
        s.mem_cache = pick("total_cache", "cache");
        s.mem_mapped_file = pick("total_mapped_file", "mapped_file");
        s.mem_swap = pick("total_swap", "swap");
        s.mem_inactive_file = pick("total_inactive_file", "inactive_file");
    }
    if let Some(t) = read(&dir.join("memory.oom_control")) {
        s.oom_events = kv(&t).get("oom_kill").copied();
    }
    if s.first_pid.is_none() {
        s.first_pid = first_pid(dir);
    }
}

fn read_v1_blkio(dir: &Path, s: &mut Stats) {
    let mut by_dev: BTreeMap<String, Io> = BTreeMap::new();
    for (file, bytes) in [
        ("blkio.throttle.io_service_bytes", true),
        ("blkio.throttle.io_serviced", false),
    ] {
        let Some(t) = read(&dir.join(file)) else {
            continue;
        };
        for line in t.lines() {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            if f.len() != 3 {
                continue;
            }
            let v: f64 = f[2].parse().unwrap_or(0.0);
            let io = by_dev.entry(f[0].to_string()).or_insert_with(|| Io {
                device: f[0].to_string(),
                ..Io::default()
            });
            match (f[1], bytes) {
                ("Read", true) => io.read_bytes = v,
                ("Write", true) => io.write_bytes = v,
                ("Read", false) => io.reads = v,
                ("Write", false) => io.writes = v,
                _ => {}
            }
        }
    }
    s.io = by_dev.into_values().collect();
}
