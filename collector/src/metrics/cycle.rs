//! The collection cycle: every source, run in order each `interval`, the
//! derived catalogue appended, the batch enqueued for every endpoint and
//! published as the latest snapshot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;

use super::node::NodeSource;
use super::sample::{Emitter, Sample};
use super::{cgroup, encode, gpu, kube, podcat, pods, tke};

/// Collection self-metrics.
#[derive(Clone, Default)]
pub(super) struct CycleMetrics {
    pub cycles: Counter,
    pub samples: Gauge,
    pub duration_ms: Gauge,
    pub push_failures: Counter,
    /// Timestamp (ms) of the newest cycle counted in `cycles`.
    pub last_timestamp_ms: Gauge,
}

/// Every source, owned by the collection loop.
pub struct Sources {
    pub kube: Option<(Arc<kube::KubeWatch>, kube::Mode)>,
    pub pods: pods::PodIndex,
    pub podcat: podcat::PodCatalogue,
    pub cluster_id: String,
    pub node_name: String,
    /// Control-plane probe results (cluster-reporting modes).
    pub components: Option<kube::components::Components>,
    pub project_label: String,
    pub node: Option<NodeSource>,
    pub cgroup: Option<cgroup::CgroupSource>,
    pub gpu: Option<gpu::GpuSource>,
    pub tke: tke::TkeDeriver,
    /// `elected` mode: whether this collector holds the Lease.
    pub leader: Arc<std::sync::atomic::AtomicBool>,
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
            self.pods
                .set_capacity(kube::state::capacity(view.as_ref(), &self.node_name));
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
            let capacity = self.kube.as_ref().map(|_| self.pods.capacity());
            self.tke.derive(out, capacity, &mut d);
            if self.kube.is_some() {
                self.podcat.derive(out, &self.pods, &mut d);
            }
            let reports_cluster = match &self.kube {
                Some((_, kube::Mode::Cluster)) => true,
                Some((_, kube::Mode::Elected)) => {
                    self.leader.load(std::sync::atomic::Ordering::SeqCst)
                }
                _ => false,
            };
            if let (true, Some((view, _)), Some(owners)) = (reports_cluster, &self.kube, &owners) {
                kube::state::emit_cluster(view.as_ref(), owners, &self.cluster_id, &mut d);
                if let Some(c) = &self.components {
                    let state = c.read().clone();
                    kube::components::emit(&state, view.as_ref(), &self.cluster_id, &mut d);
                }
            }
        }
        out.append(&mut derived);
    }
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// One cycle every `interval` (changed by a reload through `interval`):
/// collect, enqueue to every endpoint, publish the snapshot.
pub(super) async fn collect_loop(
    sources: Arc<Mutex<Sources>>,
    mut interval: tokio::sync::watch::Receiver<Duration>,
    shared: Arc<super::live::Shared>,
    latest: Arc<RwLock<Arc<Vec<Sample>>>>,
    cm: CycleMetrics,
    stop: CancellationToken,
) {
    let ticker_for = |d: Duration| {
        let mut t = tokio::time::interval(d);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        t
    };
    let mut ticker = ticker_for(*interval.borrow_and_update());
    let mut capacity = 1024;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
            Ok(()) = interval.changed() => {
                ticker = ticker_for(*interval.borrow_and_update());
                continue;
            }
        }
        let started = Instant::now();
        let src = sources.clone();
        let ts = now_ms();
        let batch = tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(capacity);
            src.lock().collect(&mut out, ts);
            out
        })
        .await
        .unwrap_or_default();
        capacity = batch.len() + 64;
        let extra = shared.extra();
        for ep in shared.endpoints().iter() {
            let records = encode::encode_records(&batch, &extra, ep.series_per_record());
            if let Err(e) = ep.push(&records).await {
                cm.push_failures.inc();
                tracing::error!(error = %e, "writing the metrics queue failed");
            }
        }
        cm.cycles.inc();
        cm.last_timestamp_ms.set(ts);
        cm.samples.set(batch.len() as i64);
        cm.duration_ms.set(started.elapsed().as_millis() as i64);
        *latest.write() = Arc::new(batch);
    }
}
