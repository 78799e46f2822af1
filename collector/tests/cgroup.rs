//! Container metrics from cgroup trees laid out exactly as the kubelet lays
//! them out (v2 + systemd driver + containerd; v1 + cgroupfs driver +
//! CRI-O), and from this machine's real cgroup hierarchy.

use std::path::Path;

use tidewatch_collector::metrics::cgroup::{CgroupConfig, CgroupSource};
use tidewatch_collector::metrics::pods::{ContainerMeta, PodIndex, PodMeta};
use tidewatch_collector::metrics::sample::{Emitter, Sample};

const UID: &str = "5f3c1e2a-1111-2222-3333-444455556666";
const CID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn write(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (f, c) in files {
        std::fs::write(dir.join(f), c).unwrap();
    }
}

fn pods() -> PodIndex {
    let idx = PodIndex::default();
    idx.upsert(
        UID,
        PodMeta {
            namespace: "shop".into(),
            name: "web-7d4b9-x2x".into(),
            containers: vec![ContainerMeta {
                name: "nginx".into(),
                id: CID.into(),
                ..ContainerMeta::default()
            }],
            ..PodMeta::default()
        },
    );
    idx
}

fn collect(root: &Path, proc: &Path, idx: PodIndex) -> Vec<Sample> {
    let cfg = CgroupConfig {
        root: root.to_path_buf(),
        ..CgroupConfig::default()
    };
    let mut src = CgroupSource::new(&cfg, proc.to_path_buf(), idx);
    let mut out = Vec::new();
    src.collect(&mut Emitter::new(&mut out, 1));
    out
}

fn get(out: &[Sample], name: &str, container: &str) -> Option<f64> {
    out.iter()
        .find(|s| {
            s.labels.metric_name() == Some(name)
                && s.labels.get("container").unwrap_or("") == container
                && s.labels.get("pod").is_some()
        })
        .map(|s| s.value)
}

#[test]
fn cgroup_v2_systemd_driver_containerd() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("cgroup");
    write(
        &root,
        &[
            ("cgroup.controllers", "cpu memory io\n"),
            ("cpu.stat", "usage_usec 99000000\n"),
        ],
    );
    let us = UID.replace('-', "_");
    let pod = root.join(format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{us}.slice"
    ));
    write(
        &pod,
        &[
            ("cpu.stat", "usage_usec 3000000\n"),
            ("memory.current", "3000\n"),
            ("cgroup.procs", ""),
        ],
    );
    let ctr = pod.join(format!("cri-containerd-{CID}.scope"));
    write(
        &ctr,
        &[
            (
                "cpu.stat",
                "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\nnr_throttled 4\nthrottled_usec 1500000\n",
            ),
            ("memory.current", "10485760\n"),
            (
                "memory.stat",
                "anon 4194304\nfile 6291456\nfile_mapped 1024\ninactive_file 2097152\n",
            ),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n"),
            ("memory.max", "268435456\n"),
            ("memory.swap.current", "0\n"),
            ("cpu.max", "50000 100000\n"),
            ("cpu.weight", "10\n"),
            (
                "io.stat",
                "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
            ),
            ("cgroup.procs", "4242\n"),
        ],
    );
    // The pod's network namespace, through one of its processes.
    write(
        &d.path().join("proc/4242/net"),
        &[(
            "dev",
            "Inter-|\n face |\n    lo: 5 5 0 0 0 0 0 0 5 5 0 0 0 0 0 0\n  eth0: 1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0\n",
        )],
    );
    let out = collect(&root, &d.path().join("proc"), pods());
    let c = |n| get(&out, n, "nginx");
    assert_eq!(c("container_cpu_usage_seconds_total"), Some(2.5));
    assert_eq!(c("container_cpu_system_seconds_total"), Some(0.5));
    assert_eq!(c("container_cpu_cfs_throttled_periods_total"), Some(4.0));
    assert_eq!(c("container_cpu_cfs_throttled_seconds_total"), Some(1.5));
    assert_eq!(c("container_memory_usage_bytes"), Some(10_485_760.0));
    assert_eq!(c("container_memory_working_set_bytes"), Some(8_388_608.0));
    assert_eq!(c("container_memory_rss"), Some(4_194_304.0));
    assert_eq!(c("container_memory_cache"), Some(6_291_456.0));
    assert_eq!(c("container_oom_events_total"), Some(1.0));
    assert_eq!(c("container_spec_memory_limit_bytes"), Some(268_435_456.0));
    assert_eq!(c("container_spec_cpu_quota"), Some(50_000.0));
    assert_eq!(c("container_spec_cpu_shares"), Some(238.0));
    assert_eq!(c("container_fs_writes_bytes_total"), Some(8192.0));
    let s = out
        .iter()
        .find(|s| {
            s.labels.metric_name() == Some("container_memory_usage_bytes")
                && s.labels.get("container") == Some("nginx")
        })
        .unwrap();
    assert_eq!(s.labels.get("namespace"), Some("shop"));
    assert_eq!(s.labels.get("pod"), Some("web-7d4b9-x2x"));
    assert!(
        s.labels
            .get("id")
            .unwrap()
            .ends_with(&format!("cri-containerd-{CID}.scope"))
    );
    // Pod level: container="" and the pod's network (lo excluded).
    assert_eq!(
        get(&out, "container_cpu_usage_seconds_total", ""),
        Some(3.0)
    );
    assert_eq!(
        get(&out, "container_network_receive_bytes_total", ""),
        Some(1000.0)
    );
    assert_eq!(
        get(&out, "container_network_transmit_packets_dropped_total", ""),
        Some(4.0)
    );
    assert!(!out.iter().any(|s| s.labels.get("interface") == Some("lo")));
    // The root cgroup is reported too.
    assert!(out.iter().any(|s| s.labels.get("id") == Some("/")
        && s.labels.metric_name() == Some("container_cpu_usage_seconds_total")
        && s.value == 99.0));
}

#[test]
fn cgroup_v1_cgroupfs_driver_crio() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("cgroup");
    let rel = format!("kubepods/besteffort/pod{UID}/crio-{CID}");
    write(
        &root.join("cpuacct").join(&rel),
        &[
            ("cpuacct.usage", "7000000000\n"),
            ("cpuacct.stat", "user 500\nsystem 200\n"),
        ],
    );
    write(
        &root.join("cpu").join(&rel),
        &[
            (
                "cpu.stat",
                "nr_periods 5\nnr_throttled 1\nthrottled_time 250000000\n",
            ),
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.shares", "2\n"),
        ],
    );
    write(
        &root.join("memory").join(&rel),
        &[
            ("memory.usage_in_bytes", "5000000\n"),
            ("memory.max_usage_in_bytes", "6000000\n"),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.failcnt", "0\n"),
            (
                "memory.stat",
                "cache 100\nrss 200\ntotal_cache 1000000\ntotal_rss 3000000\ntotal_mapped_file 5\ntotal_inactive_file 400000\ntotal_swap 0\n",
            ),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
        ],
    );
    write(
        &root.join("blkio").join(&rel),
        &[
            (
                "blkio.throttle.io_service_bytes",
                "8:0 Read 100\n8:0 Write 200\n8:0 Total 300\nTotal 300\n",
            ),
            (
                "blkio.throttle.io_serviced",
                "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n",
            ),
        ],
    );
    let out = collect(&root, &d.path().join("proc"), pods());
    let c = |n| get(&out, n, "nginx");
    assert_eq!(c("container_cpu_usage_seconds_total"), Some(7.0));
    assert_eq!(c("container_cpu_user_seconds_total"), Some(5.0));
    assert_eq!(c("container_cpu_cfs_throttled_seconds_total"), Some(0.25));
    assert_eq!(c("container_spec_cpu_quota"), None, "unlimited");
    assert_eq!(c("container_spec_cpu_shares"), Some(2.0));
    assert_eq!(c("container_memory_working_set_bytes"), Some(4_600_000.0));
    assert_eq!(
        c("container_memory_rss"),
        Some(3_000_000.0),
        "hierarchical total_ wins"
    );
    assert_eq!(c("container_memory_max_usage_bytes"), Some(6_000_000.0));
    assert_eq!(c("container_spec_memory_limit_bytes"), None, "unlimited");
    assert_eq!(c("container_oom_events_total"), Some(3.0));
    assert_eq!(c("container_fs_reads_bytes_total"), Some(100.0));
    assert_eq!(c("container_fs_writes_total"), Some(2.0));
}

#[test]
fn unknown_pods_keep_their_cgroup_id() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("cgroup");
    write(&root, &[("cgroup.controllers", "")]);
    write(
        &root.join(format!("kubepods/pod{UID}/{CID}")),
        &[("memory.current", "7\n")],
    );
    let out = collect(&root, d.path(), PodIndex::default());
    let s = out
        .iter()
        .find(|s| s.labels.metric_name() == Some("container_memory_usage_bytes") && s.value == 7.0)
        .unwrap();
    assert_eq!(s.labels.get("pod"), None);
    assert_eq!(
        s.labels.get("id"),
        Some(format!("/kubepods/pod{UID}/{CID}").as_str())
    );
}

/// This machine's real hierarchy (cgroup v1 with a v2 `unified` mount here;
/// pure v2 elsewhere): the root reports CPU and memory, and our own
/// process's memory cgroup is found.
#[test]
fn this_machines_real_cgroup() {
    let root = Path::new("/sys/fs/cgroup");
    if !root.exists() {
        panic!("no /sys/fs/cgroup on this machine");
    }
    let out = collect(root, Path::new("/proc"), PodIndex::default());
    let root_cpu = out
        .iter()
        .find(|s| {
            s.labels.get("id") == Some("/")
                && s.labels.metric_name() == Some("container_cpu_usage_seconds_total")
        })
        .expect("root CPU usage");
    assert!(root_cpu.value > 0.0);
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mem_path = own
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
            (ctl == "memory" || ctl.is_empty()).then(|| path.to_string())
        })
        .unwrap();
    let depth = mem_path.split('/').filter(|p| !p.is_empty()).count();
    if depth <= 2 {
        let ours = out
            .iter()
            .find(|s| {
                s.labels.get("id") == Some(mem_path.as_str())
                    && s.labels.metric_name() == Some("container_memory_usage_bytes")
            })
            .unwrap_or_else(|| panic!("our cgroup {mem_path} is reported"));
        assert!(ours.value > 0.0);
    }
}
