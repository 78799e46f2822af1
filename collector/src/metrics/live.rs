//! What a config reload can change while the collector runs, and applying
//! it: the collection interval, sources (enabled and their settings),
//! `cluster_id` and external labels, the business label, remote-write
//! endpoints (added, removed, or changed: URL, timeouts, backoff, batch
//! sizes, headers) and scrape jobs. Fields that cannot change without a
//! restart (`node_name`, `kubernetes` other than `project_label`, `queue`,
//! `logs`) keep their running values; each such change is logged with the
//! field's path and counted in
//! `tidewatch_collector_config_reload_restart_required_total{field}`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::cycle::Sources;
use super::scrape::ScrapeManager;
use super::ship::{Endpoint, QueueConfig, RemoteWriteConfig, ShipMetrics};
use super::{cgroup, gpu, node, podcat, tke};
use crate::Config;

/// State read by the collection loop and the scrape forwarder on every
/// batch (cheap `Arc` clones; replaced whole on reload).
#[derive(Default)]
pub struct Shared {
    extra: RwLock<Arc<Vec<(String, String)>>>,
    endpoints: RwLock<Arc<Vec<Arc<Endpoint>>>>,
}

impl Shared {
    /// Labels added to every shipped sample unless present.
    pub fn extra(&self) -> Arc<Vec<(String, String)>> {
        self.extra.read().clone()
    }

    /// The endpoints every batch is queued for.
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.read().clone()
    }
}

/// `external_labels` plus `cluster_id`, `instance` and `job` defaults.
pub fn extra_labels(cfg: &Config, node_name: &str) -> Vec<(String, String)> {
    let mut extra = cfg.external_labels.clone();
    extra
        .entry("cluster_id".into())
        .or_insert(cfg.cluster_id.clone());
    extra
        .entry("instance".into())
        .or_insert(node_name.to_string());
    extra
        .entry("job".into())
        .or_insert("tidewatch-collector".into());
    extra.into_iter().collect()
}

struct Runner {
    ep: Arc<Endpoint>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

struct Applied {
    cfg: Config,
    runners: BTreeMap<String, Runner>,
    /// Endpoints removed by a reload: their queues stay open (and on disk)
    /// so that adding the name back resumes them, never opening one
    /// directory twice.
    retired: HashMap<String, Arc<Endpoint>>,
}

/// The reloadable runtime.
pub struct Live {
    shared: Arc<Shared>,
    applied: tokio::sync::Mutex<Applied>,
    sources: Arc<Mutex<Sources>>,
    interval: tokio::sync::watch::Sender<Duration>,
    scrapes: Arc<tokio::sync::Mutex<ScrapeManager>>,
    node_name: String,
    aggregator_url: String,
    queue_dir: PathBuf,
    ship_metrics: ShipMetrics,
    client: reqwest::Client,
    stop: CancellationToken,
    restart_required: Family<Vec<(String, String)>, Counter>,
}

/// Everything [`Live::new`] needs.
pub struct Parts {
    /// The collection loop's sources.
    pub sources: Arc<Mutex<Sources>>,
    /// The collection loop's interval.
    pub interval: tokio::sync::watch::Sender<Duration>,
    /// Scrape jobs.
    pub scrapes: Arc<tokio::sync::Mutex<ScrapeManager>>,
    /// This node's name.
    pub node_name: String,
    /// Default remote-write target base URL.
    pub aggregator_url: String,
    /// Directory of the endpoints' queues.
    pub queue_dir: PathBuf,
    /// Shipping self-metrics.
    pub ship_metrics: ShipMetrics,
    /// HTTP client of the senders.
    pub client: reqwest::Client,
    /// Stops everything.
    pub stop: CancellationToken,
    /// `config_reload_restart_required_total{field}`.
    pub restart_required: Family<Vec<(String, String)>, Counter>,
}

fn same<T: Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

impl Live {
    /// Opens the endpoints of `cfg` and publishes the labels.
    pub async fn new(cfg: &Config, p: Parts) -> anyhow::Result<Live> {
        let live = Live {
            shared: Arc::new(Shared::default()),
            applied: tokio::sync::Mutex::new(Applied {
                cfg: cfg.clone(),
                runners: BTreeMap::new(),
                retired: HashMap::new(),
            }),
            sources: p.sources,
            interval: p.interval,
            scrapes: p.scrapes,
            node_name: p.node_name,
            aggregator_url: p.aggregator_url,
            queue_dir: p.queue_dir,
            ship_metrics: p.ship_metrics,
            client: p.client,
            stop: p.stop,
            restart_required: p.restart_required,
        };
        *live.shared.extra.write() = Arc::new(extra_labels(cfg, &live.node_name));
        {
            let mut a = live.applied.lock().await;
            live.set_endpoints(&mut a, cfg).await?;
        }
        Ok(live)
    }

    /// The state the loops read.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Records still queued, summed over endpoints.
    pub fn pending(&self) -> u64 {
        self.shared.endpoints().iter().map(|e| e.pending()).sum()
    }

    /// Stops the senders (queues stay on disk).
    pub async fn close(&self) {
        let mut a = self.applied.lock().await;
        for (_, r) in std::mem::take(&mut a.runners) {
            r.stop.cancel();
            let _ = r.task.await;
        }
    }

    /// The endpoints' settings, named (`aggregator` by default).
    fn endpoint_configs(&self, cfg: &Config) -> Vec<RemoteWriteConfig> {
        let mut rw = cfg.remote_write.clone();
        if rw.is_empty() {
            rw.push(RemoteWriteConfig {
                url: format!("{}/api/v1/write", self.aggregator_url.trim_end_matches('/')),
                name: "aggregator".into(),
                ..RemoteWriteConfig::default()
            });
        }
        for (i, c) in rw.iter_mut().enumerate() {
            if c.name.is_empty() {
                c.name = format!("rw{i}");
            }
        }
        rw
    }

    async fn set_endpoints(&self, a: &mut Applied, cfg: &Config) -> anyhow::Result<()> {
        let wanted = self.endpoint_configs(cfg);
        let names: Vec<&str> = wanted.iter().map(|c| c.name.as_str()).collect();
        let gone: Vec<String> = a
            .runners
            .keys()
            .filter(|n| !names.contains(&n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(r) = a.runners.remove(&name) {
                r.stop.cancel();
                let _ = r.task.await;
                tracing::info!(endpoint = %name, "remote-write endpoint removed; its queue stays on disk");
                a.retired.insert(name, r.ep);
            }
        }
        for c in wanted {
            if let Some(r) = a.runners.get(&c.name) {
                if !same(&r.ep.config(), &c) {
                    tracing::info!(endpoint = %c.name, url = %c.url, "remote-write endpoint updated");
                    r.ep.update(c);
                }
                continue;
            }
            let ep = match a.retired.remove(&c.name) {
                Some(ep) => {
                    ep.update(c.clone());
                    ep
                }
                None => Endpoint::open(
                    &self.queue_dir,
                    c.clone(),
                    &a.cfg.queue,
                    self.ship_metrics.clone(),
                )?,
            };
            let stop = self.stop.child_token();
            let task = tokio::spawn(ep.clone().run(self.client.clone(), stop.clone()));
            a.runners.insert(c.name.clone(), Runner { ep, stop, task });
        }
        let eps: Vec<Arc<Endpoint>> = a.runners.values().map(|r| r.ep.clone()).collect();
        *self.shared.endpoints.write() = Arc::new(eps);
        Ok(())
    }

    /// Keeps the running value of fields that need a restart, logging and
    /// counting each change.
    fn keep_restart_only(&self, old: &Config, new: &mut Config) {
        let note = |field: &str| {
            tracing::warn!(
                field,
                "collector config: {field} changed but needs a restart; keeping the running value"
            );
            self.restart_required
                .get_or_create(&vec![("field".to_string(), field.to_string())])
                .inc();
        };
        if old.node_name != new.node_name {
            note("collector.node_name");
            new.node_name = old.node_name.clone();
        }
        let mut k = new.kubernetes.clone();
        k.project_label = old.kubernetes.project_label.clone();
        if !same(&old.kubernetes, &k) {
            note("collector.kubernetes");
            let label = new.kubernetes.project_label.clone();
            new.kubernetes = old.kubernetes.clone();
            new.kubernetes.project_label = label;
        }
        if !same::<QueueConfig>(&old.queue, &new.queue) {
            note("collector.queue");
            new.queue = old.queue.clone();
        }
        if !same(&old.logs, &new.logs) {
            note("collector.logs");
            new.logs = old.logs.clone();
        }
    }

    /// Applies a validated config.
    pub async fn apply(&self, mut new: Config) -> anyhow::Result<()> {
        let mut a = self.applied.lock().await;
        let old = a.cfg.clone();
        self.keep_restart_only(&old, &mut new);
        self.scrapes.lock().await.reload(&new.scrape_configs)?;
        if new.interval != old.interval {
            tracing::info!(interval = ?new.interval, "collection interval changed");
            let _ = self.interval.send(new.interval);
        }
        *self.shared.extra.write() = Arc::new(extra_labels(&new, &self.node_name));
        let prev = std::mem::replace(&mut a.cfg, new.clone());
        if let Err(e) = self.set_endpoints(&mut a, &new).await {
            a.cfg = prev;
            return Err(e);
        }
        self.apply_sources(&old, &new)?;
        Ok(())
    }

    fn apply_sources(&self, old: &Config, new: &Config) -> anyhow::Result<()> {
        let node_src = if new.node.enabled {
            Some(node::NodeSource::new(&new.node)?)
        } else {
            None
        };
        let mut s = self.sources.lock();
        if !same(&old.node, &new.node) {
            s.node = node_src;
        }
        if !same(&old.cgroup, &new.cgroup) || old.node.proc_path != new.node.proc_path {
            s.cgroup = new.cgroup.enabled.then(|| {
                cgroup::CgroupSource::new(&new.cgroup, new.node.proc_path.clone(), s.pods.clone())
            });
        }
        if old.gpu != new.gpu || old.node.proc_path != new.node.proc_path {
            s.gpu = new
                .gpu
                .then(|| gpu::GpuSource::new(new.node.proc_path.clone(), s.pods.clone()));
        }
        if old.cluster_id != new.cluster_id {
            s.cluster_id = new.cluster_id.clone();
            s.tke = tke::TkeDeriver::new(&self.node_name, &new.cluster_id);
            s.podcat = podcat::PodCatalogue::new(&self.node_name, &new.cluster_id);
        }
        s.project_label = new.kubernetes.project_label.clone();
        Ok(())
    }
}
