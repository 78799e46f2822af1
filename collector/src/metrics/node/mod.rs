//! Node metrics from `/proc` and `/sys`, named as node_exporter names them
//! (`node_cpu_seconds_total{cpu,mode}`, `node_memory_MemAvailable_bytes`,
//! `node_filesystem_avail_bytes{device,fstype,mountpoint}`, …) so existing
//! dashboards and rules work unchanged.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate, join};

use super::sample::Emitter;

mod fs;
mod proc;
mod sys;

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
