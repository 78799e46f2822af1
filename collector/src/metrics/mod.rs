//! The metrics half of the collector: sources (node, …), the collection
//! loop, the latest snapshot served on `/collector/metrics`, shipping
//! through durable queues with remote-write, and the state a config reload
//! changes at run time (`live`).

pub mod catalogue;
pub mod cgroup;
pub mod cluster_usage;
mod cycle;
pub mod encode;
pub mod gpu;
pub mod kube;
pub mod live;
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
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Config, Defaults};
use node::NodeSource;
use sample::Sample;
use scrape::ScrapeManager;
use ship::ShipMetrics;

/// The running metrics pipeline.
pub struct MetricsRuntime {
    latest: Arc<RwLock<Arc<Vec<Sample>>>>,
    targets: Arc<RwLock<std::collections::BTreeMap<String, scrape::TargetHealth>>>,
    scrapes: Arc<tokio::sync::Mutex<ScrapeManager>>,
    live: Arc<live::Live>,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
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
        let ship_metrics = ShipMetrics::register(registry);
        let cm = cycle::CycleMetrics::default();
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
            "last_cycle_timestamp_milliseconds",
            "Timestamp of the newest cycle counted in cycles_total",
            cm.last_timestamp_ms.clone(),
        );
        registry.register(
            "queue_push_failures",
            "Cycles that could not be written to a queue",
            cm.push_failures.clone(),
        );

        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let mut tasks = Vec::new();

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
        let leader = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if cfg.kubernetes.enabled && cfg.kubernetes.mode == kube::Mode::Elected {
            let k = &cfg.kubernetes;
            tasks.push(tokio::spawn(kube::lease::campaign(
                kube::client(k).await?,
                k.lease_namespace.clone(),
                k.lease_name.clone(),
                node_name.clone(),
                k.lease_duration,
                leader.clone(),
                stop.clone(),
            )));
        }
        let components = match &kube {
            Some((view, mode)) if *mode != kube::Mode::Node => {
                let state = kube::components::Components::default();
                let view: Arc<dyn kube::ClusterView> = view.clone();
                tasks.push(tokio::spawn(kube::components::run(
                    kube::client(&cfg.kubernetes).await?,
                    view,
                    state.clone(),
                    // `elected`: only the Lease holder probes.
                    if *mode == kube::Mode::Elected {
                        leader.clone()
                    } else {
                        Arc::new(std::sync::atomic::AtomicBool::new(true))
                    },
                    cfg.interval,
                    stop.clone(),
                )));
                Some(state)
            }
            _ => None,
        };
        let sources = cycle::Sources {
            kube,
            pods: pods.clone(),
            podcat: podcat::PodCatalogue::new(&node_name, &cfg.cluster_id),
            cluster_id: cfg.cluster_id.clone(),
            node_name: node_name.clone(),
            components,
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
            leader,
            tke: tke::TkeDeriver::new(&node_name, &cfg.cluster_id),
        };
        let latest = Arc::new(RwLock::new(Arc::new(Vec::new())));

        // Scraping: loops send their batches to one forwarder that enqueues
        // them for every endpoint.
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Sample>>(64);
        let mut scrapes = ScrapeManager::new(&cfg.scrape_configs, tx, stop.child_token())?;
        scrapes.start_static();
        let targets = scrapes.health();
        let scrapes = Arc::new(tokio::sync::Mutex::new(scrapes));
        let reloads = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads by result",
            reloads.clone(),
        );
        let restart_required = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "config_reload_restart_required",
            "Reloaded config fields that need a restart (the running value is kept)",
            restart_required.clone(),
        );
        let sources = Arc::new(Mutex::new(sources));
        let (interval_tx, interval_rx) = tokio::sync::watch::channel(cfg.interval);
        let live = Arc::new(
            live::Live::new(
                cfg,
                live::Parts {
                    sources: sources.clone(),
                    interval: interval_tx,
                    scrapes: scrapes.clone(),
                    node_name: node_name.clone(),
                    aggregator_url: defaults.aggregator_url.clone(),
                    queue_dir: data_dir.join("remote_write"),
                    ship_metrics,
                    client,
                    stop: stop.clone(),
                    restart_required,
                },
            )
            .await?,
        );
        tasks.push(tokio::spawn(ship::forward(rx, live.shared(), stop.clone())));
        if let Some(file) = &defaults.config_file {
            tasks.push(tokio::spawn(reload::run(
                file.clone(),
                live.clone(),
                reloads,
                stop.clone(),
            )));
        }
        if let Some((view, mode)) = &kube_view {
            tasks.push(tokio::spawn(kube::discovery::run(
                view.clone(),
                *mode,
                node_name.clone(),
                scrapes.clone(),
                cfg.interval,
                stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(cycle::collect_loop(
            sources,
            interval_rx,
            live.shared(),
            latest.clone(),
            cm,
            stop.clone(),
        )));
        Ok(MetricsRuntime {
            latest,
            targets,
            scrapes,
            live,
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
        self.live.pending()
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
        self.live.close().await;
    }
}
