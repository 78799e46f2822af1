//! The metrics half of the collector: sources (node, …), the collection
//! loop, the latest snapshot served on `/collector/metrics`, and shipping
//! through durable queues with remote-write.

pub mod cgroup;
pub mod encode;
pub mod gpu;
pub mod kube;
pub mod node;
pub mod podcat;
pub mod pods;
pub mod reload;
pub mod sample;
pub mod scrape;
pub mod ship;
mod statvfs;
pub mod tke;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Config, Defaults};
use node::NodeSource;
use sample::{Emitter, Sample};
use scrape::ScrapeManager;
use ship::{Endpoint, RemoteWriteConfig, ShipMetrics};

/// Collection self-metrics.
#[derive(Clone, Default)]
struct CycleMetrics {
    cycles: Counter,
    samples: Gauge,
    duration_ms: Gauge,
    push_failures: Counter,
}

/// Every source, owned by the collection loop.
struct Sources {
    kube: Option<(Arc<kube::KubeWatch>, kube::Mode)>,
    pods: pods::PodIndex,
    podcat: podcat::PodCatalogue,
    cluster_id: String,
    project_label: String,
    node: Option<NodeSource>,
    cgroup: Option<cgroup::CgroupSource>,
    gpu: Option<gpu::GpuSource>,
    tke: tke::TkeDeriver,
}

impl Sources {
    fn collect(&mut self, out: &mut Vec<Sample>, ts: i64) {
        let mut e = Emitter::new(out, ts);
        let owners = self.kube.as_ref().map(|(view, _)| {
            let owners = kube::state::Owners::new(view.as_ref());
            self.pods
                .replace_all(kube::state::pod_index(view.as_ref(), &owners));
            self.pods
                .set_projects(kube::state::projects(view.as_ref(), &self.project_label));
            owners
        });
        if let Some(n) = &mut self.node {
            n.collect(&mut e);
        }
        if let Some(c) = &mut self.cgroup {
            c.collect(&mut e);
        }
        if let Some(g) = &mut self.gpu {
            g.collect(&mut e);
        }
        let mut derived = Vec::new();
        {
            let mut d = Emitter::new(&mut derived, ts);
            self.tke.derive(out, &mut d);
            if self.kube.is_some() {
                self.podcat.derive(out, &self.pods, &mut d);
            }
            if let (Some((view, kube::Mode::Cluster)), Some(owners)) = (&self.kube, &owners) {
                kube::state::emit_cluster(view.as_ref(), owners, &self.cluster_id, &mut d);
            }
        }
        out.append(&mut derived);
    }
}

/// The running metrics pipeline.
pub struct MetricsRuntime {
    latest: Arc<RwLock<Arc<Vec<Sample>>>>,
    targets: Arc<RwLock<std::collections::BTreeMap<String, scrape::TargetHealth>>>,
    scrapes: Arc<tokio::sync::Mutex<ScrapeManager>>,
    endpoints: Vec<Arc<Endpoint>>,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

impl MetricsRuntime {
    /// Opens the queues and starts collection and the senders.
    pub async fn start(
        cfg: &Config,
        defaults: &Defaults,
        data_dir: &Path,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> anyhow::Result<MetricsRuntime> {
        let stop = shutdown.child_token();
        let node_name = if cfg.node_name.is_empty() {
            hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into())
        } else {
            cfg.node_name.clone()
        };
        let mut extra = cfg.external_labels.clone();
        extra
            .entry("cluster_id".into())
            .or_insert(cfg.cluster_id.clone());
        extra.entry("instance".into()).or_insert(node_name.clone());
        extra
            .entry("job".into())
            .or_insert("tidewatch-collector".into());
        let extra: Vec<(String, String)> = extra.into_iter().collect();

        let ship_metrics = ShipMetrics::register(registry);
        let cm = CycleMetrics::default();
        registry.register("cycles", "Metric collection cycles run", cm.cycles.clone());
        registry.register(
            "cycle_samples",
            "Samples collected in the last cycle",
            cm.samples.clone(),
        );
        registry.register(
            "cycle_duration_milliseconds",
            "Duration of the last collection cycle",
            cm.duration_ms.clone(),
        );
        registry.register(
            "queue_push_failures",
            "Cycles that could not be written to a queue",
            cm.push_failures.clone(),
        );

        let mut rw = cfg.remote_write.clone();
        if rw.is_empty() {
            rw.push(RemoteWriteConfig {
                url: format!(
                    "{}/api/v1/write",
                    defaults.aggregator_url.trim_end_matches('/')
                ),
                name: "aggregator".into(),
                ..RemoteWriteConfig::default()
            });
        }
        let qdir = data_dir.join("remote_write");
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let mut endpoints = Vec::new();
        let mut tasks = Vec::new();
        for (i, mut c) in rw.into_iter().enumerate() {
            if c.name.is_empty() {
                c.name = format!("rw{i}");
            }
            let ep = Endpoint::open(&qdir, c, &cfg.queue, ship_metrics.clone())?;
            tasks.push(tokio::spawn(ep.clone().run(client.clone(), stop.clone())));
            endpoints.push(ep);
        }

        let pods = pods::PodIndex::default();
        let kube = if cfg.kubernetes.enabled {
            let endpoints = cfg.scrape_configs.iter().any(|j| {
                j.kubernetes_sd_configs
                    .iter()
                    .any(|sd| sd.role == scrape::SdRole::Endpoints)
            });
            let w = kube::KubeWatch::start(&cfg.kubernetes, &node_name, endpoints, stop.clone())
                .await?;
            // Owner resolution needs every kind listed; do not block start-up
            // for long on an unreachable API server (the watchers keep trying).
            if tokio::time::timeout(Duration::from_secs(20), w.ready())
                .await
                .is_err()
            {
                tracing::warn!("kubernetes: initial list not complete after 20s; continuing");
            }
            Some((Arc::new(w), cfg.kubernetes.mode))
        } else {
            None
        };
        let kube_view = kube.clone();
        let sources = Sources {
            kube,
            pods: pods.clone(),
            podcat: podcat::PodCatalogue::new(&node_name, &cfg.cluster_id),
            cluster_id: cfg.cluster_id.clone(),
            project_label: cfg.kubernetes.project_label.clone(),
            node: if cfg.node.enabled {
                Some(NodeSource::new(&cfg.node)?)
            } else {
                None
            },
            cgroup: cfg.cgroup.enabled.then(|| {
                cgroup::CgroupSource::new(&cfg.cgroup, cfg.node.proc_path.clone(), pods.clone())
            }),
            gpu: cfg
                .gpu
                .then(|| gpu::GpuSource::new(cfg.node.proc_path.clone(), pods.clone())),
            tke: tke::TkeDeriver::new(&node_name, &cfg.cluster_id, !cfg.kubernetes.enabled),
        };
        let latest = Arc::new(RwLock::new(Arc::new(Vec::new())));

        // Scraping: loops send their batches to one forwarder that enqueues
        // them for every endpoint.
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Sample>>(64);
        let mut scrapes = ScrapeManager::new(&cfg.scrape_configs, tx, stop.child_token())?;
        scrapes.start_static();
        let targets = scrapes.health();
        tasks.push(tokio::spawn(forward(
            rx,
            extra.clone(),
            endpoints.clone(),
            stop.clone(),
        )));
        let scrapes = Arc::new(tokio::sync::Mutex::new(scrapes));
        let reloads = prometheus_client::metrics::family::Family::<
            Vec<(String, String)>,
            prometheus_client::metrics::counter::Counter,
        >::default();
        registry.register(
            "config_reloads",
            "Config reloads by result",
            reloads.clone(),
        );
        if let Some(file) = &defaults.config_file {
            tasks.push(tokio::spawn(reload::run(
                file.clone(),
                scrapes.clone(),
                reloads,
                stop.clone(),
            )));
        }
        if let Some((view, mode)) = &kube_view {
            tasks.push(tokio::spawn(discover_loop(
                view.clone(),
                *mode,
                node_name.clone(),
                scrapes.clone(),
                cfg.interval,
                stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(collect_loop(
            sources,
            cfg.interval,
            extra,
            endpoints.clone(),
            latest.clone(),
            cm,
            stop.clone(),
        )));
        Ok(MetricsRuntime {
            latest,
            targets,
            scrapes,
            endpoints,
            stop,
            tasks: Mutex::new(tasks),
        })
    }

    /// `GET /collector/metrics`: the latest cycle in Prometheus text format.
    pub fn router(&self) -> Router {
        let latest = self.latest.clone();
        let targets = self.targets.clone();
        Router::new()
            .route(
                "/collector/targets",
                get(move || {
                    let t: Vec<scrape::TargetHealth> = targets.read().values().cloned().collect();
                    async move { axum::Json(t) }
                }),
            )
            .route(
                "/collector/metrics",
                get(move || {
                    let snap = latest.read().clone();
                    async move {
                        (
                            [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                            sample::render_text(&snap),
                        )
                    }
                }),
            )
    }

    /// Records still queued, summed over endpoints.
    pub fn pending(&self) -> u64 {
        self.endpoints.iter().map(|e| e.pending()).sum()
    }

    /// Stops collection and senders; queued data stays on disk and is sent
    /// after the next start.
    pub async fn close(&self) {
        self.stop.cancel();
        self.scrapes.lock().await.shutdown().await;
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// One cycle every `interval`: collect, enqueue to every endpoint, publish
/// the snapshot.
async fn collect_loop(
    sources: Sources,
    interval: Duration,
    extra: Vec<(String, String)>,
    endpoints: Vec<Arc<Endpoint>>,
    latest: Arc<RwLock<Arc<Vec<Sample>>>>,
    cm: CycleMetrics,
    stop: CancellationToken,
) {
    let sources = Arc::new(Mutex::new(sources));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut capacity = 1024;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let started = Instant::now();
        let src = sources.clone();
        let batch = tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(capacity);
            src.lock().collect(&mut out, now_ms());
            out
        })
        .await
        .unwrap_or_default();
        capacity = batch.len() + 64;
        for ep in &endpoints {
            let records = encode::encode_records(&batch, &extra, ep.series_per_record());
            if let Err(e) = ep.push(&records).await {
                cm.push_failures.inc();
                tracing::error!(error = %e, "writing the metrics queue failed");
            }
        }
        cm.cycles.inc();
        cm.samples.set(batch.len() as i64);
        cm.duration_ms.set(started.elapsed().as_millis() as i64);
        *latest.write() = Arc::new(batch);
    }
}

/// Enqueues scraped batches for every endpoint.
async fn forward(
    mut rx: tokio::sync::mpsc::Receiver<Vec<Sample>>,
    extra: Vec<(String, String)>,
    endpoints: Vec<Arc<Endpoint>>,
    stop: CancellationToken,
) {
    loop {
        let batch = tokio::select! {
            b = rx.recv() => match b { Some(b) => b, None => return },
            _ = stop.cancelled() => return,
        };
        for ep in &endpoints {
            let records = encode::encode_records(&batch, &extra, ep.series_per_record());
            if let Err(e) = ep.push(&records).await {
                tracing::error!(error = %e, "writing scraped samples to the queue failed");
            }
        }
    }
}

/// Keeps Kubernetes scrape targets in sync with the watched pods and
/// endpoints (each cycle; unchanged targets keep their loops).
async fn discover_loop(
    view: Arc<kube::KubeWatch>,
    mode: kube::Mode,
    node: String,
    scrapes: Arc<tokio::sync::Mutex<ScrapeManager>>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // Read every tick: a config reload may change the jobs.
        let roles = scrapes.lock().await.kubernetes_roles();
        let mut by_job: std::collections::BTreeMap<usize, Vec<tidewatch_common::labels::Labels>> =
            Default::default();
        for (job, role, namespaces) in &roles {
            let targets = match role {
                scrape::SdRole::Pod => kube::discovery::pod_targets(view.as_ref(), namespaces),
                scrape::SdRole::Endpoints => kube::discovery::endpoint_targets(
                    view.as_ref(),
                    namespaces,
                    (mode == kube::Mode::Node).then_some(node.as_str()),
                ),
            };
            by_job.entry(*job).or_default().extend(targets);
        }
        let mut m = scrapes.lock().await;
        for (job, targets) in by_job {
            m.sync(job, targets);
        }
    }
}
