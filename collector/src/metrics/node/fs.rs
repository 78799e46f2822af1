//! Mounted filesystems: mount table parsing and `statvfs` sizes.

use super::{Emitter, NodeSource};
use crate::metrics::statvfs;

impl NodeSource {
    /// Mounted filesystems from `/proc/1/mountinfo` (or `/proc/mounts`),
    /// sized with `statvfs` under `rootfs_path`.
    pub(super) fn filesystems(&mut self, e: &mut Emitter<'_>) -> std::io::Result<()> {
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
