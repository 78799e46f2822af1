//! Finds the files each input reads and the labels of their records.
//!
//! - `container-log`: `<pods_root>/<namespace>_<pod>_<uid>/<container>/<n>.log`
//!   (the kubelet's layout). Without an API server on the node the workload
//!   is derived from the pod name the way its controller builds it
//!   (`<deployment>-<rs hash>-<5>`, `<statefulset>-<ordinal>`,
//!   `<daemonset|job>-<5>`).
//! - `host-log`: a glob, plus static labels and `filename`.
//! - `pod-log`: containerd task directories
//!   (`…/k8s.io/<container id>/{config.json,rootfs}`): the OCI
//!   `config.json` annotations name the pod, namespace and container; the
//!   configured in-container paths are read under `rootfs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;
use tidewatch_common::Labels;

use super::config::{InputConfig, NamespaceSelector, WorkloadRef};

/// A file to tail.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// Path.
    pub path: PathBuf,
    /// Labels of its records (`stream` is added per line for containers).
    pub labels: Labels,
    /// CRI / docker json-file lines.
    pub container: bool,
    /// Multiline start pattern.
    pub multiline: Option<Arc<Regex>>,
}

/// An input ready for discovery.
pub struct Input {
    config: InputConfig,
    multiline: Option<Arc<Regex>>,
    cluster_id: String,
    node: String,
}

/// `(kind, name)` of the workload owning a pod, from the pod name.
pub fn workload_of(pod: &str) -> (&'static str, String) {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    let alnum = |s: &str, lo: usize, hi: usize| {
        (lo..=hi).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    if parts.len() == 3 && alnum(parts[0], 5, 5) && alnum(parts[1], 6, 10) {
        return ("Deployment", parts[2].to_string());
    }
    if parts.len() >= 2 {
        let base = pod[..pod.len() - parts[0].len() - 1].to_string();
        if parts[0].chars().all(|c| c.is_ascii_digit()) && !parts[0].is_empty() {
            return ("StatefulSet", base);
        }
        if alnum(parts[0], 5, 5) {
            return ("DaemonSet", base);
        }
    }
    ("Pod", pod.to_string())
}

fn workload_selected(sel: &[WorkloadRef], kind: &str, name: &str) -> bool {
    sel.iter()
        .any(|w| w.name == name && w.kind.eq_ignore_ascii_case(kind))
}

impl Input {
    /// Prepares an input (the config is validated already).
    pub fn new(config: InputConfig, cluster_id: &str, node: &str) -> Input {
        let pattern = match &config {
            InputConfig::ContainerLog { multiline, .. }
            | InputConfig::HostLog { multiline, .. }
            | InputConfig::PodLog { multiline, .. } => multiline.start_pattern.clone(),
        };
        Input {
            multiline: pattern.and_then(|p| Regex::new(&p).ok()).map(Arc::new),
            config,
            cluster_id: cluster_id.to_string(),
            node: node.to_string(),
        }
    }

    /// Directories worth watching for changes.
    pub fn watch_roots(&self) -> Vec<PathBuf> {
        match &self.config {
            InputConfig::ContainerLog { pods_root, .. } => vec![PathBuf::from(pods_root)],
            InputConfig::HostLog { path, .. } => {
                vec![glob_root(path)]
            }
            InputConfig::PodLog { rootfs_glob, .. } => vec![glob_root(rootfs_glob)],
        }
    }

    /// Lists the files of this input now.
    pub fn discover(&self, out: &mut Vec<Discovered>) {
        match &self.config {
            InputConfig::ContainerLog {
                all_namespaces,
                namespaces,
                pods_root,
                ..
            } => self.discover_containers(*all_namespaces, namespaces, pods_root, out),
            InputConfig::HostLog { path, labels, .. } => {
                for p in glob_files(path) {
                    let mut pairs: Vec<(String, String)> =
                        labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    pairs.push(("filename".into(), p.display().to_string()));
                    if !self.node.is_empty() {
                        pairs.push(("node".into(), self.node.clone()));
                    }
                    out.push(Discovered {
                        path: p,
                        labels: Labels::from_pairs(pairs),
                        container: false,
                        multiline: self.multiline.clone(),
                    });
                }
            }
            InputConfig::PodLog {
                workload,
                namespace,
                container_log_files,
                rootfs_glob,
                metadata,
                ..
            } => self.discover_pod_files(
                workload,
                namespace,
                container_log_files,
                rootfs_glob,
                *metadata,
                out,
            ),
        }
    }

    fn k8s_labels(&self, ns: &str, pod: &str, container: &str) -> Vec<(String, String)> {
        let (kind, name) = workload_of(pod);
        vec![
            ("cluster_id".into(), self.cluster_id.clone()),
            ("namespace".into(), ns.into()),
            ("pod".into(), pod.into()),
            ("container".into(), container.into()),
            ("workload_kind".into(), kind.into()),
            ("workload_name".into(), name),
            ("node".into(), self.node.clone()),
        ]
    }

    fn discover_containers(
        &self,
        all: bool,
        namespaces: &[NamespaceSelector],
        root: &str,
        out: &mut Vec<Discovered>,
    ) {
        let pattern = format!("{}/*/*/*.log", glob::Pattern::escape(root));
        for p in glob_files(&pattern) {
            let Some(container) = p
                .parent()
                .and_then(|d| d.file_name())
                .and_then(|s| s.to_str())
            else {
                continue;
            };
            let Some(pod_dir) = p
                .parent()
                .and_then(Path::parent)
                .and_then(|d| d.file_name())
                .and_then(|s| s.to_str())
            else {
                continue;
            };
            let mut it = pod_dir.splitn(3, '_');
            let (Some(ns), Some(pod), Some(_uid)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let (kind, wname) = workload_of(pod);
            let selected = all
                || namespaces.iter().any(|s| {
                    s.namespace == ns
                        && (s.all_containers || workload_selected(&s.workloads, kind, &wname))
                });
            if !selected {
                continue;
            }
            out.push(Discovered {
                labels: Labels::from_pairs(self.k8s_labels(ns, pod, container)),
                path: p.clone(),
                container: true,
                multiline: self.multiline.clone(),
            });
        }
    }

    fn discover_pod_files(
        &self,
        workload: &WorkloadRef,
        namespace: &str,
        files: &BTreeMap<String, Vec<super::config::PodLogFile>>,
        rootfs_glob: &str,
        metadata: bool,
        out: &mut Vec<Discovered>,
    ) {
        for rootfs in glob_files_any(rootfs_glob) {
            let Some(task) = rootfs.parent() else {
                continue;
            };
            let Some((ns, pod, container)) = oci_pod_identity(&task.join("config.json")) else {
                continue;
            };
            let (kind, wname) = workload_of(&pod);
            if ns != namespace
                || wname != workload.name
                || !kind.eq_ignore_ascii_case(&workload.kind)
            {
                continue;
            }
            let Some(paths) = files.get(&container) else {
                continue;
            };
            for f in paths {
                let inner = f.path.trim_start_matches('/');
                let pattern = format!(
                    "{}/{inner}",
                    glob::Pattern::escape(&rootfs.to_string_lossy())
                );
                for p in glob_files(&pattern) {
                    let mut pairs = if metadata {
                        self.k8s_labels(&ns, &pod, &container)
                    } else {
                        vec![]
                    };
                    pairs.push(("filename".into(), f.path.clone()));
                    out.push(Discovered {
                        path: p,
                        labels: Labels::from_pairs(pairs),
                        container: false,
                        multiline: self.multiline.clone(),
                    });
                }
            }
        }
    }
}

/// `(namespace, pod, container)` from a containerd task's OCI spec.
fn oci_pod_identity(config_json: &Path) -> Option<(String, String, String)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(config_json).ok()?).ok()?;
    let a = v.get("annotations")?;
    let get = |k: &str| a.get(k).and_then(|v| v.as_str()).map(String::from);
    Some((
        get("io.kubernetes.cri.sandbox-namespace")?,
        get("io.kubernetes.cri.sandbox-name")?,
        get("io.kubernetes.cri.container-name")?,
    ))
}

fn glob_root(pattern: &str) -> PathBuf {
    let mut root = PathBuf::new();
    for c in Path::new(pattern).components() {
        let s = c.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[']) {
            break;
        }
        root.push(c);
    }
    root
}

fn glob_files(pattern: &str) -> Vec<PathBuf> {
    glob_files_any(pattern)
        .into_iter()
        .filter(|p| p.is_file())
        .collect()
}

fn glob_files_any(pattern: &str) -> Vec<PathBuf> {
    match glob::glob(pattern) {
        Ok(paths) => paths.filter_map(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::config::MultilineConfig;

    #[test]
    fn workloads_from_pod_names() {
        assert_eq!(
            workload_of("api-7d9f8b6c5d-x2x4z"),
            ("Deployment", "api".into())
        );
        assert_eq!(workload_of("db-0"), ("StatefulSet", "db".into()));
        assert_eq!(
            workload_of("node-agent-abcde"),
            ("DaemonSet", "node-agent".into())
        );
        assert_eq!(workload_of("standalone"), ("Pod", "standalone".into()));
    }

    #[test]
    fn container_layout_and_selection() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (ns, pod) in [("prod", "api-7d9f8b6c5d-x2x4z"), ("dev", "db-0")] {
            let d = root.join(format!("{ns}_{pod}_uid-1/app"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("0.log"), "").unwrap();
        }
        let input = Input::new(
            InputConfig::ContainerLog {
                all_namespaces: false,
                namespaces: vec![NamespaceSelector {
                    namespace: "prod".into(),
                    all_containers: false,
                    workloads: vec![WorkloadRef {
                        name: "api".into(),
                        kind: "deployment".into(),
                    }],
                }],
                pods_root: root.display().to_string(),
                multiline: MultilineConfig::default(),
            },
            "c1",
            "n1",
        );
        let mut out = Vec::new();
        input.discover(&mut out);
        assert_eq!(out.len(), 1);
        let l = &out[0].labels;
        assert_eq!(l.get("namespace"), Some("prod"));
        assert_eq!(l.get("workload_kind"), Some("Deployment"));
        assert_eq!(l.get("workload_name"), Some("api"));
        assert_eq!(l.get("container"), Some("app"));
        assert_eq!(l.get("cluster_id"), Some("c1"));
        assert_eq!(l.get("node"), Some("n1"));
    }

    #[test]
    fn pod_log_through_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let task = dir.path().join("k8s.io/abc123");
        std::fs::create_dir_all(task.join("rootfs/data/logdir")).unwrap();
        std::fs::write(task.join("rootfs/data/logdir/app.log"), "x\n").unwrap();
        std::fs::write(
            task.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-namespace":"prod","io.kubernetes.cri.sandbox-name":"web-0","io.kubernetes.cri.container-name":"main"}}"#,
        )
        .unwrap();
        let input = Input::new(
            InputConfig::PodLog {
                workload: WorkloadRef {
                    name: "web".into(),
                    kind: "statefulset".into(),
                },
                namespace: "prod".into(),
                container_log_files: [(
                    "main".to_string(),
                    vec![super::super::config::PodLogFile {
                        path: "/data/logdir/*.log".into(),
                    }],
                )]
                .into(),
                rootfs_glob: format!("{}/k8s.io/*/rootfs", dir.path().display()),
                metadata: true,
                multiline: MultilineConfig::default(),
            },
            "c1",
            "n1",
        );
        let mut out = Vec::new();
        input.discover(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels.get("pod"), Some("web-0"));
        assert_eq!(out[0].labels.get("filename"), Some("/data/logdir/*.log"));
    }
}
