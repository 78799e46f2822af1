//! `/sys` parts of the node source.

use super::{Emitter, NodeSource};

impl NodeSource {
    /// `/sys/class/net/<dev>/{operstate,mtu}`: `node_network_up`,
    /// `node_network_mtu_bytes`.
    pub(super) fn netclass(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
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
