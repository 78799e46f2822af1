//! Collector configuration (`collector:` section).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate, join};
use tidewatch_common::duration::serde_duration;

use crate::metrics::cgroup::CgroupConfig;
use crate::metrics::kube::KubeConfig;
use crate::metrics::node::NodeConfig;
use crate::metrics::scrape::ScrapeConfig;
use crate::metrics::ship::{QueueConfig, RemoteWriteConfig};

/// Collector settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    // --- metrics (collector/src/metrics) ---
    /// Collection interval of node/container/Kubernetes metrics.
    #[serde(with = "serde_duration")]
    pub interval: Duration,
    /// `cluster_id` label on every shipped sample (`local` in `tidewatch up`).
    pub cluster_id: String,
    /// This node's name (default: the hostname).
    pub node_name: String,
    /// Labels added to every shipped sample unless it has them.
    pub external_labels: BTreeMap<String, String>,
    /// Node metrics from /proc and /sys.
    pub node: NodeConfig,
    /// Container metrics from cgroups.
    pub cgroup: CgroupConfig,
    /// GPU metrics through NVML when an NVIDIA driver is present.
    pub gpu: bool,
    /// Remote-write endpoints; empty means the aggregator (`/api/v1/write`).
    pub remote_write: Vec<RemoteWriteConfig>,
    /// Disk queue bound per endpoint.
    pub queue: QueueConfig,
    /// Prometheus-compatible scrape jobs.
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Kubernetes objects (list + watch).
    pub kubernetes: KubeConfig,
    // --- logs (collector/src/logs) ---
    /// Log tailing and shipping.
    pub logs: crate::logs::LogsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: Duration::from_secs(15),
            cluster_id: "local".into(),
            node_name: String::new(),
            external_labels: BTreeMap::new(),
            node: NodeConfig::default(),
            cgroup: CgroupConfig::default(),
            gpu: true,
            remote_write: Vec::new(),
            queue: QueueConfig::default(),
            scrape_configs: Vec::new(),
            kubernetes: KubeConfig::default(),
            logs: crate::logs::LogsConfig::default(),
        }
    }
}

impl Validate for Config {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        if self.interval < Duration::from_millis(100) {
            errors.push(FieldError {
                path: join(path, "interval"),
                message: "must be at least 100ms".into(),
                line: None,
            });
        }
        if self.cluster_id.is_empty() {
            errors.push(FieldError {
                path: join(path, "cluster_id"),
                message: "must not be empty".into(),
                line: None,
            });
        }
        for k in self.external_labels.keys() {
            if !tidewatch_common::labels::is_valid_label_name(k) {
                errors.push(FieldError {
                    path: join(&join(path, "external_labels"), k),
                    message: "invalid label name".into(),
                    line: None,
                });
            }
        }
        self.node.validate(&join(path, "node"), errors);
        for (i, rw) in self.remote_write.iter().enumerate() {
            rw.validate(
                &join(&join(path, "remote_write"), &format!("[{i}]")),
                errors,
            );
        }
        self.queue.validate(&join(path, "queue"), errors);
        self.kubernetes.validate(&join(path, "kubernetes"), errors);
        let mut jobs = std::collections::HashSet::new();
        for (i, sc) in self.scrape_configs.iter().enumerate() {
            let p = join(&join(path, "scrape_configs"), &format!("[{i}]"));
            sc.validate(&p, errors);
            if !jobs.insert(&sc.job_name) {
                errors.push(FieldError {
                    path: join(&p, "job_name"),
                    message: format!("duplicate job name {:?}", sc.job_name),
                    line: None,
                });
            }
        }
        self.logs.validate(&join(path, "logs"), errors);
    }
}
