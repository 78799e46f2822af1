//! Scraping Prometheus endpoints: scrape configs (static targets and
//! Kubernetes discovery), target and metric relabelling, the `up` /
//! `scrape_*` report series, staleness markers and `sample_limit`.

pub mod relabel;
mod target;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate, join};
use tidewatch_common::duration::serde_duration;
use tidewatch_common::labels::Labels;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use target::{STALE_NAN_BITS, TargetHealth};

use super::sample::Sample;
use relabel::RelabelConfig;

/// Static targets of a job.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels added to every target of the group.
    pub labels: BTreeMap<String, String>,
}

/// Kubernetes discovery role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SdRole {
    /// One target per pod container port (or the pod IP without ports).
    #[default]
    Pod,
    /// One target per endpoint address and port of each Endpoints object.
    Endpoints,
}

/// Kubernetes service discovery (`kubernetes_sd_configs[]`), served by the
/// collector's Kubernetes watcher (see `collector.kubernetes`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesSdConfig {
    /// `pod` or `endpoints`.
    pub role: SdRole,
    /// Restrict to these namespaces (empty: all).
    pub namespaces: Vec<String>,
}

/// One scrape job (`collector.scrape_configs[]`), Prometheus-compatible.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label.
    pub job_name: String,
    /// How often to scrape.
    #[serde(with = "serde_duration")]
    pub scrape_interval: Duration,
    /// Per-scrape timeout.
    #[serde(with = "serde_duration")]
    pub scrape_timeout: Duration,
    /// Path (default `/metrics`).
    pub metrics_path: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Keep scraped labels that clash with target labels.
    pub honor_labels: bool,
    /// Use timestamps the target exposes.
    pub honor_timestamps: bool,
    /// Fail the scrape when more samples than this survive relabelling (0: no limit).
    pub sample_limit: usize,
    /// Static targets.
    pub static_configs: Vec<StaticConfig>,
    /// Kubernetes discovery.
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// Target relabelling.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Sample relabelling.
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig {
            job_name: String::new(),
            scrape_interval: Duration::from_secs(15),
            scrape_timeout: Duration::from_secs(10),
            metrics_path: "/metrics".into(),
            scheme: "http".into(),
            honor_labels: false,
            honor_timestamps: true,
            sample_limit: 0,
            static_configs: Vec::new(),
            kubernetes_sd_configs: Vec::new(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
        }
    }
}

impl Validate for ScrapeConfig {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        let mut err = |f: &str, m: String| {
            errors.push(FieldError {
                path: join(path, f),
                message: m,
                line: None,
            })
        };
        if self.job_name.is_empty() {
            err("job_name", "required".into());
        }
        if self.scrape_interval < Duration::from_millis(100) {
            err("scrape_interval", "must be at least 100ms".into());
        }
        if self.scrape_timeout > self.scrape_interval {
            err("scrape_timeout", "must not exceed scrape_interval".into());
        }
        if !matches!(self.scheme.as_str(), "http" | "https") {
            err(
                "scheme",
                format!("must be http or https, got {:?}", self.scheme),
            );
        }
        if !self.metrics_path.starts_with('/') {
            err("metrics_path", "must start with '/'".into());
        }
        for (i, sc) in self.static_configs.iter().enumerate() {
            for (j, t) in sc.targets.iter().enumerate() {
                if t.is_empty() || t.contains('/') {
                    errors.push(FieldError {
                        path: format!("{}.static_configs[{i}].targets[{j}]", path),
                        message: format!("expected host:port, got {t:?}"),
                        line: None,
                    });
                }
            }
        }
        for (i, r) in self.relabel_configs.iter().enumerate() {
            r.validate(&format!("{path}.relabel_configs[{i}]"), errors);
        }
        for (i, r) in self.metric_relabel_configs.iter().enumerate() {
            r.validate(&format!("{path}.metric_relabel_configs[{i}]"), errors);
        }
    }
}

/// A discovered target before relabelling: `__address__`, `__meta_*`, …
pub type TargetGroup = Vec<Labels>;

/// Compiles jobs (Kubernetes jobs without rules get the annotation-driven
/// defaults).
fn compile_jobs(configs: &[ScrapeConfig]) -> anyhow::Result<Vec<Arc<Job>>> {
    configs
        .iter()
        .map(|c| {
            let rules = match c.kubernetes_sd_configs.first() {
                Some(sd) if c.relabel_configs.is_empty() => {
                    crate::metrics::kube::discovery::default_relabel(sd.role == SdRole::Endpoints)
                }
                _ => c.relabel_configs.clone(),
            };
            Ok(Arc::new(Job {
                cfg: c.clone(),
                relabel: relabel::compile(&rules)?,
                metric_relabel: relabel::compile(&c.metric_relabel_configs)?,
            }))
        })
        .collect()
}

/// Compiled job.
pub(crate) struct Job {
    cfg: ScrapeConfig,
    relabel: Vec<relabel::Rule>,
    metric_relabel: Vec<relabel::Rule>,
}

/// Runs one scrape loop per target; keeps the set in sync with discovery.
pub struct ScrapeManager {
    jobs: Vec<Arc<Job>>,
    client: reqwest::Client,
    out: mpsc::Sender<Vec<Sample>>,
    /// (job name, target labels hash) → loop.
    running: HashMap<(String, u64), (CancellationToken, tokio::task::JoinHandle<()>)>,
    health: Arc<RwLock<BTreeMap<String, TargetHealth>>>,
    stop: CancellationToken,
}

impl ScrapeManager {
    /// A manager for `configs`, sending each scrape's samples to `out`.
    pub fn new(
        configs: &[ScrapeConfig],
        out: mpsc::Sender<Vec<Sample>>,
        stop: CancellationToken,
    ) -> anyhow::Result<ScrapeManager> {
        Ok(ScrapeManager {
            jobs: compile_jobs(configs)?,
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            out,
            running: HashMap::new(),
            health: Arc::default(),
            stop,
        })
    }

    /// Applies new scrape configs (config reload): loops of removed or
    /// changed jobs stop and mark their series stale; unchanged jobs keep
    /// their loops; static targets of new/changed jobs start.
    pub fn reload(&mut self, configs: &[ScrapeConfig]) -> anyhow::Result<()> {
        let jobs = compile_jobs(configs)?;
        let same = |name: &str| {
            let old = self.jobs.iter().find(|j| j.cfg.job_name == name);
            let new = jobs.iter().find(|j| j.cfg.job_name == name);
            match (old, new) {
                (Some(o), Some(n)) => {
                    serde_json::to_string(&o.cfg).ok() == serde_json::to_string(&n.cfg).ok()
                }
                _ => false,
            }
        };
        let stop: Vec<(String, u64)> = self
            .running
            .keys()
            .filter(|(j, _)| !same(j))
            .cloned()
            .collect();
        for k in stop {
            if let Some((tok, _)) = self.running.remove(&k) {
                tok.cancel();
            }
        }
        self.jobs = jobs;
        self.start_static();
        Ok(())
    }

    /// Health of every running target loop (keyed by job, URL and loop).
    pub fn health(&self) -> Arc<RwLock<BTreeMap<String, TargetHealth>>> {
        self.health.clone()
    }

    /// Static targets of job `i` as discovery groups.
    fn static_groups(&self, i: usize) -> TargetGroup {
        let cfg = &self.jobs[i].cfg;
        let mut out = Vec::new();
        for sc in &cfg.static_configs {
            for t in &sc.targets {
                let mut l: Vec<(String, String)> = sc
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                l.push(("__address__".into(), t.clone()));
                out.push(Labels::from_pairs(l));
            }
        }
        out
    }

    /// Whether job `i` uses Kubernetes discovery with `role`.
    pub fn kubernetes_roles(&self) -> Vec<(usize, SdRole, Vec<String>)> {
        let mut v = Vec::new();
        for (i, j) in self.jobs.iter().enumerate() {
            for sd in &j.cfg.kubernetes_sd_configs {
                v.push((i, sd.role, sd.namespaces.clone()));
            }
        }
        v
    }

    /// Starts the static targets of every job.
    pub fn start_static(&mut self) {
        for i in 0..self.jobs.len() {
            if self.jobs[i].cfg.kubernetes_sd_configs.is_empty() {
                let g = self.static_groups(i);
                self.sync(i, g);
            }
        }
    }

    /// Replaces job `i`'s targets by `discovered` (relabelled here); loops
    /// of targets that disappeared stop and mark their series stale.
    pub fn sync(&mut self, i: usize, discovered: TargetGroup) {
        let job = self.jobs[i].clone();
        let mut want: HashMap<u64, target::Target> = HashMap::new();
        for d in discovered {
            if let Some(t) = target::Target::from_discovered(&job.cfg, &job.relabel, d) {
                want.insert(t.labels.stable_hash(), t);
            }
        }
        let name = job.cfg.job_name.clone();
        let gone: Vec<(String, u64)> = self
            .running
            .keys()
            .filter(|(j, h)| *j == name && !want.contains_key(h))
            .cloned()
            .collect();
        for k in gone {
            if let Some((tok, _)) = self.running.remove(&k) {
                tok.cancel();
            }
        }
        for (h, t) in want {
            if self.running.contains_key(&(name.clone(), h)) {
                continue;
            }
            let tok = self.stop.child_token();
            let task = tokio::spawn(target::run(
                t,
                job.clone(),
                self.client.clone(),
                self.out.clone(),
                self.health.clone(),
                tok.clone(),
                self.stop.clone(),
            ));
            self.running.insert((name.clone(), h), (tok, task));
        }
    }

    /// Stops every loop and waits (no staleness markers: `stop` must be
    /// cancelled first, as on process shutdown).
    pub async fn shutdown(&mut self) {
        self.stop.cancel();
        for (_, (tok, task)) in self.running.drain() {
            tok.cancel();
            let _ = task.await;
        }
    }

    /// Number of running target loops.
    pub fn targets(&self) -> usize {
        self.running.len()
    }
}
