//! GPU metrics through NVML (`nvml-wrapper`), loaded at run time:
//! `libnvidia-ml.so.1` is opened on the first cycle; on a machine without
//! an NVIDIA driver this fails once, quietly, and the source reports
//! nothing. Per device: utilisation and memory; per container: GPU memory
//! of its processes (mapped through `/proc/<pid>/cgroup` to the kubelet's
//! pod/container layout).

use std::ffi::OsStr;
use std::path::PathBuf;

use nvml_wrapper::Nvml;
use nvml_wrapper::enums::device::UsedGpuMemory;

use super::cgroup::layout::{Kind, classify};
use super::pods::PodIndex;
use super::sample::Emitter;

/// Reads NVIDIA GPUs when a driver is present.
pub struct GpuSource {
    nvml: Option<Nvml>,
    tried: bool,
    /// Per device: NVML timestamp (µs) of the newest process utilisation
    /// sample already read.
    last_seen: Vec<u64>,
    proc: PathBuf,
    pods: PodIndex,
}

/// Opens NVML; `None` (with a debug log) when no driver is installed.
fn open() -> Option<Nvml> {
    let first = Nvml::builder()
        .lib_path(OsStr::new("libnvidia-ml.so.1"))
        .init();
    match first.or_else(|_| Nvml::init()) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::debug!(error = %e, "no NVIDIA driver: GPU metrics disabled");
            None
        }
    }
}

impl GpuSource {
    /// A source; NVML is loaded lazily on the first cycle.
    pub fn new(proc: PathBuf, pods: PodIndex) -> Self {
        GpuSource {
            nvml: None,
            tried: false,
            last_seen: Vec::new(),
            proc,
            pods,
        }
    }

    /// Whether NVML was loaded.
    pub fn available(&self) -> bool {
        self.nvml.is_some()
    }

    /// Appends GPU metrics (nothing without a driver).
    pub fn collect(&mut self, e: &mut Emitter<'_>) {
        if !self.tried {
            self.tried = true;
            self.nvml = open();
        }
        let Some(nvml) = &self.nvml else { return };
        let count = nvml.device_count().unwrap_or(0);
        self.last_seen.resize(count as usize, 0);
        for i in 0..count {
            let Ok(dev) = nvml.device_by_index(i) else {
                continue;
            };
            let idx = i.to_string();
            let uuid = dev.uuid().unwrap_or_default();
            let model = dev.name().unwrap_or_default();
            let l = [
                ("gpu", idx.as_str()),
                ("uuid", uuid.as_str()),
                ("model_name", model.as_str()),
            ];
            if let Ok(u) = dev.utilization_rates() {
                e.emit("gpu_utilization_percent", &l, f64::from(u.gpu));
                e.emit("gpu_memory_utilization_percent", &l, f64::from(u.memory));
            }
            if let Ok(m) = dev.memory_info() {
                e.emit("gpu_memory_used_bytes", &l, m.used as f64);
                e.emit("gpu_memory_total_bytes", &l, m.total as f64);
            }
            for p in dev.running_compute_processes().unwrap_or_default() {
                let used = match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => b as f64,
                    UsedGpuMemory::Unavailable => continue,
                };
                let (ns, pod, container) = container_of(&self.proc, &self.pods, p.pid);
                let pid = p.pid.to_string();
                e.emit(
                    "container_gpu_memory_used_bytes",
                    &[
                        ("gpu", idx.as_str()),
                        ("uuid", uuid.as_str()),
                        ("namespace", &ns),
                        ("pod", &pod),
                        ("container", &container),
                        ("pid", &pid),
                    ],
                    used,
                );
            }
            // SM utilisation per process since the last cycle (the newest
            // sample of each process), as GPU Manager's per-container
            // utilisation.
            let since = self.last_seen[i as usize];
            let samples = dev.process_utilization_stats(since).unwrap_or_default();
            let mut newest: std::collections::HashMap<u32, (u64, u32)> = Default::default();
            for s in &samples {
                let n = newest.entry(s.pid).or_insert((s.timestamp, s.sm_util));
                if s.timestamp >= n.0 {
                    *n = (s.timestamp, s.sm_util);
                }
            }
            if let Some(max) = samples.iter().map(|s| s.timestamp).max() {
                self.last_seen[i as usize] = max;
            }
            for (pid, (_, util)) in newest {
                let (ns, pod, container) = container_of(&self.proc, &self.pods, pid);
                let pid = pid.to_string();
                e.emit(
                    "container_gpu_utilization_percent",
                    &[
                        ("gpu", idx.as_str()),
                        ("uuid", uuid.as_str()),
                        ("namespace", &ns),
                        ("pod", &pod),
                        ("container", &container),
                        ("pid", &pid),
                    ],
                    f64::from(util),
                );
            }
        }
    }
}

/// (namespace, pod, container) of a process, empty when unknown.
fn container_of(proc: &std::path::Path, pods: &PodIndex, pid: u32) -> (String, String, String) {
    let Ok(text) = std::fs::read_to_string(proc.join(pid.to_string()).join("cgroup")) else {
        return Default::default();
    };
    for line in text.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        let Kind::Container { uid, id, .. } = classify(path) else {
            continue;
        };
        if let Some(p) = pods.get(&uid) {
            let c = p
                .containers
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            return (p.namespace, p.name, c);
        }
    }
    Default::default()
}
