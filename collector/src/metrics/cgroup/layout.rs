//! How the kubelet lays out pod and container cgroups, for both cgroup
//! drivers and the common runtimes:
//!
//! | driver | example path |
//! |---|---|
//! | cgroupfs | `/kubepods/burstable/pod<uid>/<container-id>` (containerd), `/kubepods/pod<uid>/crio-<id>` (CRI-O) |
//! | systemd | `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope` (containerd), `…/crio-<id>.scope` (CRI-O), `…/docker-<id>.scope` |
//!
//! Guaranteed pods sit directly under `kubepods` (`kubepods-pod<uid>.slice`).

/// What a cgroup path is, Kubernetes-wise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A pod's cgroup (`pod<uid>`).
    Pod {
        /// Pod UID with dashes.
        uid: String,
        /// QoS class: `guaranteed`, `burstable` or `besteffort`.
        qos: &'static str,
    },
    /// A container inside a pod.
    Container {
        /// Pod UID with dashes.
        uid: String,
        /// QoS class.
        qos: &'static str,
        /// Runtime container id (64 hex).
        id: String,
        /// `containerd`, `cri-o` or `docker` (`""` when the cgroupfs
        /// driver gives no prefix).
        runtime: &'static str,
    },
    /// Anything else (system slices, the root, …).
    Other,
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Extracts a pod UID from a `pod<uid>` or `kubepods-…pod<uid>.slice` component.
fn pod_uid(c: &str) -> Option<String> {
    let c = c.strip_suffix(".slice").unwrap_or(c);
    let i = c.rfind("pod")?;
    let uid = &c[i + 3..];
    if uid.len() < 32
        || !uid
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_')
    {
        return None;
    }
    Some(uid.replace('_', "-"))
}

/// Extracts (runtime, id) from a container component.
fn container_id(c: &str) -> Option<(&'static str, String)> {
    let c = c.strip_suffix(".scope").unwrap_or(c);
    for (prefix, rt) in [
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
        ("docker-", "docker"),
        ("", ""),
    ] {
        if let Some(id) = c.strip_prefix(prefix).filter(|id| is_hex_id(id)) {
            return Some((rt, id.to_string()));
        }
    }
    None
}

/// Classifies a cgroup path (relative to the hierarchy root, `/`-separated).
pub fn classify(path: &str) -> Kind {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let Some(kp) = parts
        .iter()
        .position(|p| *p == "kubepods" || *p == "kubepods.slice")
    else {
        return Kind::Other;
    };
    let mut qos = "guaranteed";
    let mut i = kp + 1;
    if let Some(p) = parts.get(i) {
        for q in ["burstable", "besteffort"] {
            if *p == q || *p == format!("kubepods-{q}.slice") {
                qos = q;
                i += 1;
            }
        }
    }
    let Some(uid) = parts.get(i).and_then(|p| pod_uid(p)) else {
        return Kind::Other;
    };
    match parts.get(i + 1) {
        None => Kind::Pod { uid, qos },
        Some(c) if parts.len() == i + 2 => match container_id(c) {
            Some((runtime, id)) => Kind::Container {
                uid,
                qos,
                id,
                runtime,
            },
            None => Kind::Other,
        },
        Some(_) => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn kubelet_layouts() {
        let uid = "1b2c3d4e-0000-1111-2222-333344445555";
        let us = uid.replace('-', "_");
        let cases = [
            (
                format!("/kubepods/burstable/pod{uid}/{ID}"),
                "burstable",
                "",
            ),
            (
                format!("/kubepods/pod{uid}/crio-{ID}"),
                "guaranteed",
                "cri-o",
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{us}.slice/cri-containerd-{ID}.scope"
                ),
                "besteffort",
                "containerd",
            ),
            (
                format!("/kubepods.slice/kubepods-pod{us}.slice/crio-{ID}.scope"),
                "guaranteed",
                "cri-o",
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{us}.slice/docker-{ID}.scope"
                ),
                "burstable",
                "docker",
            ),
        ];
        for (path, q, rt) in cases {
            assert_eq!(
                classify(&path),
                Kind::Container {
                    uid: uid.into(),
                    qos: q,
                    id: ID.into(),
                    runtime: rt
                },
                "{path}"
            );
        }
        assert_eq!(
            classify(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{us}.slice"
            )),
            Kind::Pod {
                uid: uid.into(),
                qos: "burstable"
            }
        );
        assert_eq!(
            classify(&format!("/kubepods/pod{uid}/crio-conmon-{ID}")),
            Kind::Other
        );
        assert_eq!(classify("/system.slice/containerd.service"), Kind::Other);
        assert_eq!(
            classify("/kubepods.slice/kubepods-burstable.slice"),
            Kind::Other
        );
    }
}
