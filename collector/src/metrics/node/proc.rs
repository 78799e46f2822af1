//! `/proc` parts of the node source: CPU, load, memory, disks, network
//! devices, file descriptors, time, kernel identity, vmstat.

use super::{Emitter, NodeSource, USER_HZ};

impl NodeSource {
    /// `/proc/stat`: CPU times per mode, context switches, forks,
    /// interrupts, running/blocked processes, boot time.
    pub(super) fn stat(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
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
    pub(super) fn loadavg(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
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
    pub(super) fn meminfo(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
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

    /// `/proc/diskstats`.
    pub(super) fn diskstats(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
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
    pub(super) fn netdev(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
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
    pub(super) fn filefd(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
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
    pub(super) fn time(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
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

    /// `node_uname_info` from `/proc/sys/kernel/*`.
    pub(super) fn uname(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
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
    pub(super) fn vmstat(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
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
}
