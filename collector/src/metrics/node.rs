//! Node metrics from `/proc` and `/sys`, named as node_exporter names them
//! (`node_cpu_seconds_total{cpu,mode}`, `node_memory_MemAvailable_bytes`,
//! `node_filesystem_avail_bytes{device,fstype,mountpoint}`, …) so existing
//! dashboards and rules work unchanged.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate, join};

use super::sample::Emitter;
use super::statvfs;

/// `USER_HZ`: the unit of `/proc/stat` CPU times on every Linux ABI.
const USER_HZ: f64 = 100.0;

/// Node source settings (`collector.node`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Collect node metrics.
    pub enabled: bool,
    /// procfs mount point.
    pub proc_path: PathBuf,
    /// sysfs mount point.
    pub sys_path: PathBuf,
    /// Where the host's root filesystem is visible (`/host` in a DaemonSet).
    pub rootfs_path: PathBuf,
    /// Filesystem types to skip (node_exporter's default list).
    pub filesystem_exclude_fstypes: String,
    /// Mount points to skip (node_exporter's default).
    pub filesystem_exclude_mountpoints: String,
    /// Block devices to skip (node_exporter's default).
    pub disk_exclude_devices: String,
    /// Network interfaces to skip (none by default).
    pub netdev_exclude_devices: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            enabled: true,
            proc_path: "/proc".into(),
            sys_path: "/sys".into(),
            rootfs_path: "/".into(),
            filesystem_exclude_fstypes: "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$".into(),
            filesystem_exclude_mountpoints: "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)".into(),
            disk_exclude_devices: r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$".into(),
            netdev_exclude_devices: String::new(),
        }
    }
}

impl Validate for NodeConfig {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        for (field, re) in [
            (
                "filesystem_exclude_fstypes",
                &self.filesystem_exclude_fstypes,
            ),
            (
                "filesystem_exclude_mountpoints",
                &self.filesystem_exclude_mountpoints,
            ),
            ("disk_exclude_devices", &self.disk_exclude_devices),
            ("netdev_exclude_devices", &self.netdev_exclude_devices),
        ] {
            if let Err(e) = Regex::new(re) {
                errors.push(FieldError {
                    path: join(path, field),
                    message: format!("invalid regular expression: {e}"),
                    line: None,
                });
            }
        }
    }
}

/// Reads node metrics; keeps one read buffer across cycles.
pub struct NodeSource {
    proc: PathBuf,
    sys: PathBuf,
    rootfs: PathBuf,
    fs_types: Regex,
    mountpoints: Regex,
    disks: Option<Regex>,
    netdevs: Option<Regex>,
    buf: String,
}

fn opt_regex(s: &str) -> anyhow::Result<Option<Regex>> {
    Ok(if s.is_empty() {
        None
    } else {
        Some(Regex::new(s)?)
    })
}

impl NodeSource {
    /// A source reading the paths in `cfg`.
    pub fn new(cfg: &NodeConfig) -> anyhow::Result<Self> {
        Ok(NodeSource {
            proc: cfg.proc_path.clone(),
            sys: cfg.sys_path.clone(),
            rootfs: cfg.rootfs_path.clone(),
            fs_types: Regex::new(&cfg.filesystem_exclude_fstypes)?,
            mountpoints: Regex::new(&cfg.filesystem_exclude_mountpoints)?,
            disks: opt_regex(&cfg.disk_exclude_devices)?,
            netdevs: opt_regex(&cfg.netdev_exclude_devices)?,
            buf: String::with_capacity(64 * 1024),
        })
    }

    /// Appends every node metric; a part that fails is reported in
    /// `node_scrape_collector_success{collector}` and the rest still runs.
    pub fn collect(&mut self, e: &mut Emitter<'_>) {
        type Part = fn(&mut NodeSource, &mut Emitter<'_>) -> std::io::Result<()>;
        let parts: [(&str, Part); 11] = [
            ("stat", NodeSource::stat),
            ("loadavg", NodeSource::loadavg),
            ("meminfo", NodeSource::meminfo),
            ("filesystem", NodeSource::filesystems),
            ("diskstats", NodeSource::diskstats),
            ("netdev", NodeSource::netdev),
            ("filefd", NodeSource::filefd),
            ("time", NodeSource::time),
            ("uname", NodeSource::uname),
            ("vmstat", NodeSource::vmstat),
            ("netclass", NodeSource::netclass),
        ];
        for (name, part) in parts {
            let ok = match part(self, e) {
                Ok(()) => 1.0,
                Err(err) => {
                    tracing::debug!(collector = name, error = %err, "node collector part failed");
                    0.0
                }
            };
            e.emit("node_scrape_collector_success", &[("collector", name)], ok);
        }
    }

    fn read(&mut self, path: &Path) -> std::io::Result<()> {
        use std::io::Read;
        self.buf.clear();
        std::fs::File::open(path)?.read_to_string(&mut self.buf)?;
        Ok(())
    }

    fn read_proc(&mut self, rel: &str) -> std::io::Result<String> {
        let p = self.proc.join(rel);
        self.read(&p)?;
        Ok(std::mem::take(&mut self.buf))
    }

    fn give_back(&mut self, s: String) {
        self.buf = s;
    }

    /// `/proc/stat`: CPU times per mode, context switches, forks,
    /// interrupts, running/blocked processes, boot time.
    fn stat(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
        let text = self.read_proc("stat")?;
        const MODES: [&str; 8] = [
            "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
        ];
        for line in text.lines() {
            let mut f = line.split_ascii_whitespace();
            let Some(key) = f.next() else { continue };
            if let Some(cpu) = key.strip_prefix("cpu") {
                if cpu.is_empty() {
                    continue; // the aggregate line
                }
                let vals: Vec<f64> = f.filter_map(|v| v.parse().ok()).collect();
                for (i, mode) in MODES.iter().enumerate() {
                    if let Some(v) = vals.get(i) {
                        e.emit(
                            "node_cpu_seconds_total",
                            &[("cpu", cpu), ("mode", mode)],
                            v / USER_HZ,
                        );
                    }
                }
                for (i, mode) in [(8, "user"), (9, "nice")] {
                    if let Some(v) = vals.get(i) {
                        e.emit(
                            "node_cpu_guest_seconds_total",
                            &[("cpu", cpu), ("mode", mode)],
                            v / USER_HZ,
                        );
                    }
                }
                continue;
            }
            let first = f.next().and_then(|v| v.parse::<f64>().ok());
            let Some(v) = first else { continue };
            match key {
                "ctxt" => e.emit("node_context_switches_total", &[], v),
                "btime" => e.emit("node_boot_time_seconds", &[], v),
                "processes" => e.emit("node_forks_total", &[], v),
                "intr" => e.emit("node_intr_total", &[], v),
                "procs_running" => e.emit("node_procs_running", &[], v),
                "procs_blocked" => e.emit("node_procs_blocked", &[], v),
                _ => {}
            }
        }
        self.give_back(text);
        Ok(())
    }

    /// `/proc/loadavg`.
    fn loadavg(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
        let text = self.read_proc("loadavg")?;
        let mut f = text.split_ascii_whitespace();
        for name in ["node_load1", "node_load5", "node_load15"] {
            let v = f
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| std::io::Error::other("malformed loadavg"))?;
            e.emit(name, &[], v);
        }
        self.give_back(text);
        Ok(())
    }

    /// `/proc/meminfo` → `node_memory_<Field>_bytes` (kB × 1024) or
    /// `node_memory_<Field>` for unitless fields, `(x)` → `_x`.
    fn meminfo(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
        let text = self.read_proc("meminfo")?;
        let mut name = String::with_capacity(64);
        for line in text.lines() {
            let Some((key, rest)) = line.split_once(':') else {
                continue;
            };
            let mut f = rest.split_ascii_whitespace();
            let Some(v) = f.next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            name.clear();
            name.push_str("node_memory_");
            for ch in key.chars() {
                match ch {
                    '(' => name.push('_'),
                    ')' => {}
                    c => name.push(c),
                }
            }
            if f.next() == Some("kB") {
                name.push_str("_bytes");
                e.emit(&name, &[], v * 1024.0);
            } else {
                e.emit(&name, &[], v);
            }
        }
        self.give_back(text);
        Ok(())
    }

    /// Mounted filesystems from `/proc/1/mountinfo` (or `/proc/mounts`),
    /// sized with `statvfs` under `rootfs_path`.
    fn filesystems(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
        let (text, mountinfo) = match self.read_proc("1/mountinfo") {
            Ok(t) => (t, true),
            Err(_) => (self.read_proc("mounts")?, false),
        };
        let mut seen: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            let Some(m) = parse_mount(line, mountinfo) else {
                continue;
            };
            if self.fs_types.is_match(m.fstype) || self.mountpoints.is_match(&m.mountpoint) {
                continue;
            }
            if seen
                .iter()
                .any(|(d, mp)| d == m.device && *mp == m.mountpoint)
            {
                continue;
            }
            seen.push((m.device.to_string(), m.mountpoint.clone()));
            let labels = [
                ("device", m.device),
                ("fstype", m.fstype),
                ("mountpoint", m.mountpoint.as_str()),
            ];
            let rel = m.mountpoint.trim_start_matches('/');
            match statvfs::stat(&self.rootfs.join(rel)) {
                Ok(s) => {
                    e.emit("node_filesystem_size_bytes", &labels, s.size);
                    e.emit("node_filesystem_free_bytes", &labels, s.free);
                    e.emit("node_filesystem_avail_bytes", &labels, s.avail);
                    e.emit("node_filesystem_files", &labels, s.files);
                    e.emit("node_filesystem_files_free", &labels, s.files_free);
                    let ro = s.readonly || m.readonly;
                    e.emit("node_filesystem_readonly", &labels, f64::from(u8::from(ro)));
                    e.emit("node_filesystem_device_error", &labels, 0.0);
                }
                Err(_) => e.emit("node_filesystem_device_error", &labels, 1.0),
            }
        }
        self.give_back(text);
        Ok(())
    }

    /// `/proc/diskstats`.
    fn diskstats(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
        let text = self.read_proc("diskstats")?;
        // (field index after the device name, metric, scale)
        const FIELDS: [(usize, &str, f64); 11] = [
            (0, "node_disk_reads_completed_total", 1.0),
            (1, "node_disk_reads_merged_total", 1.0),
            (2, "node_disk_read_bytes_total", 512.0),
            (3, "node_disk_read_time_seconds_total", 0.001),
            (4, "node_disk_writes_completed_total", 1.0),
            (5, "node_disk_writes_merged_total", 1.0),
            (6, "node_disk_written_bytes_total", 512.0),
            (7, "node_disk_write_time_seconds_total", 0.001),
            (8, "node_disk_io_now", 1.0),
            (9, "node_disk_io_time_seconds_total", 0.001),
            (10, "node_disk_io_time_weighted_seconds_total", 0.001),
        ];
        let mut vals = [0f64; 11];
        for line in text.lines() {
            let mut f = line.split_ascii_whitespace();
            let (Some(_), Some(_), Some(dev)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if self.disks.as_ref().is_some_and(|r| r.is_match(dev)) {
                continue;
            }
            let mut n = 0;
            for (slot, v) in vals.iter_mut().zip(f.by_ref()) {
                *slot = v.parse().unwrap_or(0.0);
                n += 1;
            }
            if n < FIELDS.len() {
                continue;
            }
            for (i, name, scale) in FIELDS {
                e.emit(name, &[("device", dev)], vals[i] * scale);
            }
        }
        self.give_back(text);
        Ok(())
    }

    /// `/proc/net/dev`.
    fn netdev(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
        let text = self.read_proc("net/dev")?;
        const NAMES: [&str; 16] = [
            "node_network_receive_bytes_total",
            "node_network_receive_packets_total",
            "node_network_receive_errs_total",
            "node_network_receive_drop_total",
            "node_network_receive_fifo_total",
            "node_network_receive_frame_total",
            "node_network_receive_compressed_total",
            "node_network_receive_multicast_total",
            "node_network_transmit_bytes_total",
            "node_network_transmit_packets_total",
            "node_network_transmit_errs_total",
            "node_network_transmit_drop_total",
            "node_network_transmit_fifo_total",
            "node_network_transmit_colls_total",
            "node_network_transmit_carrier_total",
            "node_network_transmit_compressed_total",
        ];
        for line in text.lines().skip(2) {
            let Some((dev, rest)) = line.split_once(':') else {
                continue;
            };
            let dev = dev.trim();
            if self.netdevs.as_ref().is_some_and(|r| r.is_match(dev)) {
                continue;
            }
            for (name, v) in NAMES.iter().zip(rest.split_ascii_whitespace()) {
                if let Ok(v) = v.parse::<f64>() {
                    e.emit(name, &[("device", dev)], v);
                }
            }
        }
        self.give_back(text);
        Ok(())
    }

    /// `/proc/sys/fs/file-nr`: allocated and maximum file descriptors.
    fn filefd(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
        let text = self.read_proc("sys/fs/file-nr")?;
        let f: Vec<f64> = text
            .split_ascii_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if f.len() < 3 {
            return Err(std::io::Error::other("malformed file-nr"));
        }
        e.emit("node_filefd_allocated", &[], f[0]);
        e.emit("node_filefd_maximum", &[], f[2]);
        self.give_back(text);
        Ok(())
    }

    /// `node_time_seconds` and, from `/proc/uptime`, `node_uptime_seconds`
    /// (not a node_exporter name; node_exporter users compute
    /// `node_time_seconds - node_boot_time_seconds`).
    fn time(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        e.emit("node_time_seconds", &[], now);
        let text = self.read_proc("uptime")?;
        if let Some(up) = text
            .split_ascii_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            e.emit("node_uptime_seconds", &[], up);
        }
        self.give_back(text);
        Ok(())
    }
}

impl NodeSource {
    /// `node_uname_info` from `/proc/sys/kernel/*`.
    fn uname(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
        let k = |f: &str| -> std::io::Result<String> {
            Ok(
                std::fs::read_to_string(self.proc.join("sys/kernel").join(f))?
                    .trim()
                    .to_string(),
            )
        };
        let (sysname, release, version, nodename) =
            (k("ostype")?, k("osrelease")?, k("version")?, k("hostname")?);
        let domain = k("domainname").unwrap_or_default();
        e.emit(
            "node_uname_info",
            &[
                ("sysname", &sysname),
                ("release", &release),
                ("version", &version),
                ("machine", std::env::consts::ARCH),
                ("nodename", &nodename),
                ("domainname", &domain),
            ],
            1.0,
        );
        Ok(())
    }

    /// `/proc/vmstat`: node_exporter's default fields (paging, swapping,
    /// faults, OOM kills) as `node_vmstat_<field>`.
    fn vmstat(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
        let text = self.read_proc("vmstat")?;
        let mut name = String::with_capacity(48);
        for line in text.lines() {
            let Some((k, v)) = line.split_once(' ') else {
                continue;
            };
            let wanted = k == "oom_kill"
                || k.starts_with("pgpg")
                || k.starts_with("pswp")
                || (k.starts_with("pg") && k.ends_with("fault"));
            if !wanted {
                continue;
            }
            if let Ok(v) = v.trim().parse::<f64>() {
                name.clear();
                name.push_str("node_vmstat_");
                name.push_str(k);
                e.emit(&name, &[], v);
            }
        }
        self.give_back(text);
        Ok(())
    }

    /// `/sys/class/net/<dev>/{operstate,mtu}`: `node_network_up`,
    /// `node_network_mtu_bytes`.
    fn netclass(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
        let dir = self.sys.join("class/net");
        let mut devs: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|d| d.ok())
            .map(|d| d.file_name().to_string_lossy().into_owned())
            .collect();
        devs.sort();
        for dev in devs {
            if self.netdevs.as_ref().is_some_and(|r| r.is_match(&dev)) {
                continue;
            }
            let read = |f: &str| std::fs::read_to_string(dir.join(&dev).join(f)).ok();
            if let Some(state) = read("operstate") {
                let up = if state.trim() == "up" { 1.0 } else { 0.0 };
                e.emit("node_network_up", &[("device", &dev)], up);
            }
            if let Some(mtu) = read("mtu").and_then(|m| m.trim().parse::<f64>().ok()) {
                e.emit("node_network_mtu_bytes", &[("device", &dev)], mtu);
            }
        }
        Ok(())
    }
}

/// One mount entry.
struct Mount<'a> {
    device: &'a str,
    fstype: &'a str,
    mountpoint: String,
    readonly: bool,
}

/// Parses a `/proc/*/mountinfo` (or `/proc/mounts`) line.
fn parse_mount(line: &str, mountinfo: bool) -> Option<Mount<'_>> {
    if mountinfo {
        // id parent maj:min root mountpoint options [optional...] - fstype source superopts
        let (pre, post) = line.split_once(" - ")?;
        let mut a = pre.split(' ');
        let mountpoint = a.nth(4)?;
        let options = a.next()?;
        let mut b = post.split(' ');
        let fstype = b.next()?;
        let device = b.next()?;
        Some(Mount {
            device,
            fstype,
            mountpoint: unescape_octal(mountpoint),
            readonly: options.split(',').any(|o| o == "ro"),
        })
    } else {
        let mut f = line.split(' ');
        let device = f.next()?;
        let mountpoint = f.next()?;
        let fstype = f.next()?;
        let options = f.next()?;
        Some(Mount {
            device,
            fstype,
            mountpoint: unescape_octal(mountpoint),
            readonly: options.split(',').any(|o| o == "ro"),
        })
    }
}

/// Undoes the kernel's `\040`-style escaping of mount paths.
fn unescape_octal(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sample::Sample;

    fn fixture() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("proc");
        std::fs::create_dir_all(p.join("1")).unwrap();
        std::fs::create_dir_all(p.join("net")).unwrap();
        std::fs::create_dir_all(p.join("sys/fs")).unwrap();
        std::fs::write(
            p.join("stat"),
            "cpu  10 0 5 100 1 0 0 0 0 0\ncpu0 250 1 50 1000 3 4 5 6 7 8\nintr 42 1 2\nctxt 999\nbtime 1700000000\nprocesses 77\nprocs_running 2\nprocs_blocked 1\n",
        )
        .unwrap();
        std::fs::write(p.join("loadavg"), "0.50 1.25 2.00 1/100 1234\n").unwrap();
        std::fs::write(
            p.join("meminfo"),
            "MemTotal:        1000 kB\nMemAvailable:     500 kB\nActive(anon):      10 kB\nHugePages_Total:       0\n",
        )
        .unwrap();
        std::fs::write(
            p.join("1/mountinfo"),
            "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n23 22 0:5 / /dev rw - devtmpfs devtmpfs rw\n24 22 0:6 / /my\\040disk ro - tmpfs tmpfs rw\n",
        )
        .unwrap();
        std::fs::write(
            p.join("diskstats"),
            " 254 0 vda 100 2 800 30 50 1 400 20 0 60 90 0 0 0 0\n   7 0 loop0 1 1 1 1 1 1 1 1 1 1 1\n",
        )
        .unwrap();
        std::fs::write(
            p.join("net/dev"),
            "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  eth0: 1000 10 1 2 0 0 0 3 2000 20 0 0 0 0 0 0\n",
        )
        .unwrap();
        std::fs::write(p.join("sys/fs/file-nr"), "640\t0\t9999\n").unwrap();
        std::fs::write(p.join("uptime"), "123.45 200.00\n").unwrap();
        std::fs::create_dir_all(p.join("sys/kernel")).unwrap();
        for (f, v) in [
            ("ostype", "Linux"),
            ("osrelease", "6.1.0"),
            ("version", "#1 SMP"),
            ("hostname", "n1"),
            ("domainname", "(none)"),
        ] {
            std::fs::write(p.join("sys/kernel").join(f), format!("{v}\n")).unwrap();
        }
        std::fs::write(
            p.join("vmstat"),
            "nr_free_pages 5\npgpgin 10\npgmajfault 3\noom_kill 1\npgfault 99\nnuma_hit 7\n",
        )
        .unwrap();
        let net = d.path().join("sys/class/net/eth0");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(net.join("operstate"), "up\n").unwrap();
        std::fs::write(net.join("mtu"), "1400\n").unwrap();
        std::fs::create_dir_all(d.path().join("root/my disk")).unwrap();
        d
    }

    fn value(s: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        s.iter()
            .find(|x| {
                x.labels.metric_name() == Some(name)
                    && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))
            })
            .map(|x| x.value)
    }

    #[test]
    fn reads_a_proc_fixture_with_node_exporter_names() {
        let d = fixture();
        let cfg = NodeConfig {
            proc_path: d.path().join("proc"),
            sys_path: d.path().join("sys"),
            rootfs_path: d.path().join("root"),
            ..NodeConfig::default()
        };
        let mut src = NodeSource::new(&cfg).unwrap();
        let mut out = Vec::new();
        src.collect(&mut Emitter::new(&mut out, 1));
        let v = |n, l: &[(&str, &str)]| value(&out, n, l);
        assert_eq!(
            v("node_cpu_seconds_total", &[("cpu", "0"), ("mode", "user")]),
            Some(2.5)
        );
        assert_eq!(
            v("node_cpu_seconds_total", &[("cpu", "0"), ("mode", "steal")]),
            Some(0.06)
        );
        assert_eq!(
            v(
                "node_cpu_guest_seconds_total",
                &[("cpu", "0"), ("mode", "nice")]
            ),
            Some(0.08)
        );
        assert_eq!(v("node_boot_time_seconds", &[]), Some(1.7e9));
        assert_eq!(v("node_context_switches_total", &[]), Some(999.0));
        assert_eq!(v("node_load5", &[]), Some(1.25));
        assert_eq!(v("node_memory_MemAvailable_bytes", &[]), Some(512_000.0));
        assert_eq!(v("node_memory_Active_anon_bytes", &[]), Some(10_240.0));
        assert_eq!(v("node_memory_HugePages_Total", &[]), Some(0.0));
        assert_eq!(
            v("node_disk_read_bytes_total", &[("device", "vda")]),
            Some(409_600.0)
        );
        assert_eq!(
            v("node_disk_io_time_seconds_total", &[("device", "vda")]),
            Some(0.06)
        );
        assert_eq!(
            v("node_disk_reads_completed_total", &[("device", "loop0")]),
            None
        );
        assert_eq!(
            v("node_network_receive_bytes_total", &[("device", "eth0")]),
            Some(1000.0)
        );
        assert_eq!(
            v("node_network_transmit_packets_total", &[("device", "eth0")]),
            Some(20.0)
        );
        assert_eq!(
            v(
                "node_network_receive_multicast_total",
                &[("device", "eth0")]
            ),
            Some(3.0)
        );
        assert_eq!(v("node_filefd_allocated", &[]), Some(640.0));
        assert_eq!(v("node_filefd_maximum", &[]), Some(9999.0));
        assert_eq!(v("node_uptime_seconds", &[]), Some(123.45));
        assert_eq!(
            v(
                "node_uname_info",
                &[("release", "6.1.0"), ("nodename", "n1")]
            ),
            Some(1.0)
        );
        assert_eq!(v("node_vmstat_pgmajfault", &[]), Some(3.0));
        assert_eq!(v("node_vmstat_oom_kill", &[]), Some(1.0));
        assert_eq!(v("node_vmstat_numa_hit", &[]), None);
        assert_eq!(v("node_network_up", &[("device", "eth0")]), Some(1.0));
        assert_eq!(
            v("node_network_mtu_bytes", &[("device", "eth0")]),
            Some(1400.0)
        );
        // Filesystems: devtmpfs and /dev are excluded; the escaped mount point is decoded.
        let fs = |mp| v("node_filesystem_size_bytes", &[("mountpoint", mp)]);
        assert!(fs("/").unwrap() > 0.0);
        assert!(fs("/my disk").unwrap() > 0.0);
        assert_eq!(
            v("node_filesystem_readonly", &[("mountpoint", "/my disk")]),
            Some(1.0)
        );
        assert_eq!(fs("/dev"), None);
        assert!(
            out.iter()
                .filter(|s| s.labels.metric_name() == Some("node_scrape_collector_success"))
                .all(|s| s.value == 1.0)
        );
    }

    #[test]
    fn a_missing_file_fails_only_its_part() {
        let d = fixture();
        std::fs::remove_file(d.path().join("proc/loadavg")).unwrap();
        let cfg = NodeConfig {
            proc_path: d.path().join("proc"),
            ..NodeConfig::default()
        };
        let mut out = Vec::new();
        NodeSource::new(&cfg)
            .unwrap()
            .collect(&mut Emitter::new(&mut out, 1));
        assert_eq!(
            value(
                &out,
                "node_scrape_collector_success",
                &[("collector", "loadavg")]
            ),
            Some(0.0)
        );
        assert_eq!(value(&out, "node_load1", &[]), None);
        assert!(value(&out, "node_memory_MemTotal_bytes", &[]).is_some());
    }
}
