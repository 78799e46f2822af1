//! Log collection settings (`collector.logs`): inputs modelled on TKEStack's
//! `LogCollector` (`container-log`, `host-log`, `pod-log`) and outputs
//! (the aggregator's Loki API, Kafka, Elasticsearch), each output with its
//! own bounded disk buffer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate, join};

/// `collector.logs`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// Where records come from.
    pub inputs: Vec<InputConfig>,
    /// Where records go; every record goes to every output.
    pub outputs: Vec<OutputConfig>,
    /// Cluster id attached to container records.
    pub cluster_id: String,
    /// Node name attached to records (default: the host name).
    pub node: Option<String>,
    /// How often files are polled (notify events wake the tailer earlier).
    #[serde(with = "tidewatch_common::duration::serde_duration")]
    pub poll_interval: Duration,
    /// Most files kept open at once; idle files beyond it are closed and
    /// reopened by path when they grow.
    pub max_open_files: usize,
    /// Largest record; longer records are cut and the cut counted.
    pub max_record_bytes: usize,
    /// How long a CRI partial line or multiline record waits for its
    /// continuation before it is emitted as is.
    #[serde(with = "tidewatch_common::duration::serde_duration")]
    pub flush_timeout: Duration,
    /// Most bytes read from one file per pass (fairness between files).
    pub read_chunk_bytes: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            inputs: Vec::new(),
            outputs: Vec::new(),
            cluster_id: String::new(),
            node: None,
            poll_interval: Duration::from_millis(250),
            max_open_files: 512,
            max_record_bytes: 256 << 10,
            flush_timeout: Duration::from_secs(1),
            read_chunk_bytes: 1 << 20,
        }
    }
}

/// A workload reference (`{name, type}` in TKEStack's CR).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadRef {
    /// Workload name.
    pub name: String,
    /// Kind: `deployment`, `statefulset`, `daemonset`, `job`, `cronjob`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// One namespace selection of a `container-log` input.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamespaceSelector {
    /// Namespace.
    pub namespace: String,
    /// Every container of the namespace (otherwise only `workloads`).
    pub all_containers: bool,
    /// Selected workloads.
    pub workloads: Vec<WorkloadRef>,
}

/// How lines of a file are grouped into records.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultilineConfig {
    /// Regular expression matching the first line of a record; other lines
    /// are appended to the record before them (stack traces).
    pub start_pattern: Option<String>,
}

/// One input.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum InputConfig {
    /// Container stdout/stderr from `/var/log/pods` (CRI format) or
    /// `/var/log/containers` (CRI or docker json-file).
    ContainerLog {
        /// Every namespace.
        #[serde(default)]
        all_namespaces: bool,
        /// Selected namespaces and workloads.
        #[serde(default)]
        namespaces: Vec<NamespaceSelector>,
        /// Root of the pod log tree (default `/var/log/pods`).
        #[serde(default = "default_pods_root")]
        pods_root: String,
        /// Multiline grouping.
        #[serde(default)]
        multiline: MultilineConfig,
    },
    /// Node files by glob, with static labels.
    HostLog {
        /// Glob of files.
        path: String,
        /// Labels added to every record.
        #[serde(default)]
        labels: BTreeMap<String, String>,
        /// Multiline grouping.
        #[serde(default)]
        multiline: MultilineConfig,
    },
    /// Files inside the containers of one workload, read through the
    /// container root filesystems or volume paths on the node.
    PodLog {
        /// The workload.
        workload: WorkloadRef,
        /// Namespace of the workload.
        namespace: String,
        /// Per container name, paths inside the container.
        container_log_files: BTreeMap<String, Vec<PodLogFile>>,
        /// Glob of container root filesystems on the node; `{container_id}`
        /// is not needed: every match whose metadata names a container of the
        /// workload is used.
        #[serde(default = "default_rootfs_glob")]
        rootfs_glob: String,
        /// Attach Kubernetes metadata labels.
        #[serde(default = "yes")]
        metadata: bool,
        /// Multiline grouping.
        #[serde(default)]
        multiline: MultilineConfig,
    },
}

/// A file inside a container.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PodLogFile {
    /// Path (glob) inside the container.
    pub path: String,
}

fn default_pods_root() -> String {
    "/var/log/pods".into()
}
fn default_rootfs_glob() -> String {
    "/run/containerd/io.containerd.runtime.v2.task/k8s.io/*/rootfs".into()
}
fn yes() -> bool {
    true
}

/// Buffer settings of one output.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BufferConfig {
    /// Bound of the bytes on disk; tailers wait when it is reached.
    pub max_bytes: u64,
    /// Most records per request to the sink.
    pub batch_records: usize,
    /// About the most bytes per request to the sink.
    pub batch_bytes: usize,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_bytes: 256 << 20,
            batch_records: 5000,
            batch_bytes: 4 << 20,
        }
    }
}

/// One output.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OutputConfig {
    /// The aggregator's `POST /loki/api/v1/push` (any Loki-compatible URL).
    Loki {
        /// Name (buffer directory and metrics label).
        name: String,
        /// Base URL; default: the aggregator the collector ships to.
        #[serde(default)]
        url: Option<String>,
        /// Buffer.
        #[serde(default)]
        buffer: BufferConfig,
    },
    /// A Kafka topic.
    Kafka {
        /// Name.
        name: String,
        /// `host:port,…`.
        brokers: String,
        /// Topic.
        topic: String,
        /// `none`, `gzip`, `snappy`, `lz4` or `zstd`.
        #[serde(default = "default_compression")]
        compression: String,
        /// Extra librdkafka properties.
        #[serde(default)]
        properties: BTreeMap<String, String>,
        /// Buffer.
        #[serde(default)]
        buffer: BufferConfig,
    },
    /// An Elasticsearch (or OpenSearch) index through the bulk API.
    Elasticsearch {
        /// Name.
        name: String,
        /// Base URLs.
        hosts: Vec<String>,
        /// Index name; `%Y`, `%m`, `%d` are replaced from the record time.
        index: String,
        /// Basic-auth user.
        #[serde(default)]
        user: Option<String>,
        /// Basic-auth password (or `TIDEWATCH_ES_PASSWORD`).
        #[serde(default)]
        password: Option<String>,
        /// Attempts for an item the server rejected with 429/5xx before it
        /// is dead-lettered.
        #[serde(default = "default_item_retries")]
        max_item_retries: u32,
        /// Buffer.
        #[serde(default)]
        buffer: BufferConfig,
    },
}

fn default_compression() -> String {
    "lz4".into()
}
fn default_item_retries() -> u32 {
    10
}

impl OutputConfig {
    /// The output's name.
    pub fn name(&self) -> &str {
        match self {
            OutputConfig::Loki { name, .. }
            | OutputConfig::Kafka { name, .. }
            | OutputConfig::Elasticsearch { name, .. } => name,
        }
    }
    /// Its buffer settings.
    pub fn buffer(&self) -> &BufferConfig {
        match self {
            OutputConfig::Loki { buffer, .. }
            | OutputConfig::Kafka { buffer, .. }
            | OutputConfig::Elasticsearch { buffer, .. } => buffer,
        }
    }
}

impl Validate for LogsConfig {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        let mut err = |p: String, m: String| {
            errors.push(FieldError {
                path: p,
                message: m,
                line: None,
            })
        };
        for (i, input) in self.inputs.iter().enumerate() {
            let p = join(path, &format!("inputs[{i}]"));
            let ml = match input {
                InputConfig::ContainerLog {
                    all_namespaces,
                    namespaces,
                    multiline,
                    ..
                } => {
                    if !all_namespaces && namespaces.is_empty() {
                        err(
                            join(&p, "namespaces"),
                            "select namespaces or set all_namespaces".into(),
                        );
                    }
                    multiline
                }
                InputConfig::HostLog {
                    path: glob_path,
                    labels,
                    multiline,
                } => {
                    if let Err(e) = glob::Pattern::new(glob_path) {
                        err(join(&p, "path"), format!("invalid glob: {e}"));
                    }
                    for k in labels.keys() {
                        if !tidewatch_common::labels::is_valid_label_name(k) {
                            err(join(&p, "labels"), format!("invalid label name {k:?}"));
                        }
                    }
                    multiline
                }
                InputConfig::PodLog {
                    container_log_files,
                    multiline,
                    ..
                } => {
                    if container_log_files.is_empty() {
                        err(
                            join(&p, "container_log_files"),
                            "name at least one container and file".into(),
                        );
                    }
                    multiline
                }
            };
            if let Some(re) = &ml.start_pattern
                && let Err(e) = regex::Regex::new(re)
            {
                err(
                    join(&p, "multiline.start_pattern"),
                    format!("invalid regex: {e}"),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, o) in self.outputs.iter().enumerate() {
            let p = join(path, &format!("outputs[{i}]"));
            let name = o.name();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                err(
                    join(&p, "name"),
                    "must be lowercase letters, digits and '-'".into(),
                );
            }
            if !names.insert(name.to_string()) {
                err(join(&p, "name"), format!("duplicate output name {name:?}"));
            }
            if o.buffer().max_bytes < 1 << 20 {
                err(join(&p, "buffer.max_bytes"), "must be at least 1MiB".into());
            }
            match o {
                OutputConfig::Kafka {
                    brokers,
                    topic,
                    compression,
                    ..
                } => {
                    if brokers.is_empty() {
                        err(join(&p, "brokers"), "must not be empty".into());
                    }
                    if topic.is_empty() {
                        err(join(&p, "topic"), "must not be empty".into());
                    }
                    if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&compression.as_str()) {
                        err(
                            join(&p, "compression"),
                            format!("unknown compression {compression:?}"),
                        );
                    }
                }
                OutputConfig::Elasticsearch { hosts, index, .. } => {
                    if hosts.is_empty() {
                        err(join(&p, "hosts"), "name at least one host".into());
                    }
                    let plain = index.replace("%Y", "").replace("%m", "").replace("%d", "");
                    if index.is_empty()
                        || index.len() > 60
                        || !plain.chars().all(|c| {
                            c.is_ascii_lowercase()
                                || c.is_ascii_digit()
                                || matches!(c, '-' | '_' | '+' | '.')
                        })
                    {
                        err(
                            join(&p, "index"),
                            "at most 60 characters: lowercase, digits, '-', '_', '+', '.' and %Y %m %d".into(),
                        );
                    }
                }
                OutputConfig::Loki { .. } => {}
            }
        }
        if self.max_open_files == 0 {
            err(join(path, "max_open_files"), "must be positive".into());
        }
        if self.max_record_bytes < 64 {
            err(join(path, "max_record_bytes"), "must be at least 64".into());
        }
    }
}
