//! Control-plane component health and latency (`k8s_component_*`) as seen
//! through the API server, for the collector that reports cluster-scoped
//! series. TKEStack derives these from `up` on the components' ports; a
//! collector reaches them the way `kubectl` does instead:
//!
//! - `apiserver_ready`: `GET /readyz`; `etcd_ready`: `GET /readyz/etcd`
//!   (the API server's own etcd check);
//! - `scheduler_ready`, `controller_manager_ready`: the component's
//!   leader-election Lease (`kube-system/kube-scheduler`,
//!   `kube-system/kube-controller-manager`) renewed within its duration;
//! - `apiserver_version{version}`: `GET /version`; the scheduler,
//!   controller-manager and etcd versions are the image tags of their
//!   `kube-system` pods (`component=kube-scheduler|…` labels, as kubeadm
//!   lays out static pods);
//! - `apiserver_request_latency` (ms): mean of
//!   `apiserver_request_duration_seconds` (verbs other than WATCH and
//!   CONNECT) between two probes, from `GET /metrics`;
//! - `scheduler_scheduling_latency` (ms): mean of
//!   `scheduler_scheduling_attempt_duration_seconds` (older schedulers:
//!   `scheduler_e2e_scheduling_duration_seconds`) between two probes, from
//!   the scheduler pod's `/metrics` through the API server's pod proxy.
//!
//! Probes run in their own task every collection interval; the cycle emits
//! the latest results.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::chrono::{self, Utc};
use kube::{Api, Client};
use parking_lot::RwLock;
use tidewatch_common::exposition::{Format, ParseOptions, parse_with};
use tokio_util::sync::CancellationToken;

use super::ClusterView;
use crate::metrics::sample::Emitter;

/// The latest probe results (`None`: not probed yet, or not permitted —
/// a 401/403 is not reported as the component being down).
#[derive(Clone, Debug, Default)]
pub struct ComponentState {
    /// `/readyz` answered 200.
    pub apiserver: Option<bool>,
    /// `/readyz/etcd` answered 200.
    pub etcd: Option<bool>,
    /// The scheduler's Lease is current.
    pub scheduler: Option<bool>,
    /// The controller manager's Lease is current.
    pub controller_manager: Option<bool>,
    /// `gitVersion` from `/version`.
    pub apiserver_version: Option<String>,
    /// Mean request latency between the last two probes, ms.
    pub apiserver_latency_ms: Option<f64>,
    /// Mean scheduling-attempt latency between the last two probes, ms.
    pub scheduler_latency_ms: Option<f64>,
}

/// Shared between the probe task and the cycle.
pub type Components = Arc<RwLock<ComponentState>>;

/// (sum, count) of a histogram's samples whose `verb` (if any) is not
/// WATCH or CONNECT.
fn histogram_totals(body: &str, family: &str) -> Option<(f64, f64)> {
    let exp = parse_with(body, Format::PrometheusText, ParseOptions { strict: false }).ok()?;
    let (sum_name, count_name) = (format!("{family}_sum"), format!("{family}_count"));
    let (mut sum, mut count, mut seen) = (0.0, 0.0, false);
    for s in &exp.samples {
        let name = s.labels.metric_name().unwrap_or("");
        if matches!(s.labels.get("verb"), Some("WATCH" | "CONNECT")) {
            continue;
        }
        if name == sum_name {
            sum += s.value;
            seen = true;
        } else if name == count_name {
            count += s.value;
        }
    }
    seen.then_some((sum, count))
}

/// Mean in ms between two (sum seconds, count) readings.
fn mean_ms(prev: Option<(f64, f64)>, now: Option<(f64, f64)>) -> Option<f64> {
    let ((s0, c0), (s1, c1)) = (prev?, now?);
    let dc = c1 - c0;
    (dc > 0.0 && s1 >= s0).then(|| (s1 - s0) / dc * 1000.0)
}

/// Result of one probe request.
enum Probe {
    Ok(String),
    /// Error status (other than 401/403) or no answer: the component is down.
    Down,
    /// 401/403: not allowed to look; the series is not reported.
    Denied,
}

async fn probe(client: &Client, path: &str) -> Probe {
    let Ok(req) = http::Request::get(path).body(Vec::new()) else {
        return Probe::Down;
    };
    match client.request_text(req).await {
        Ok(t) => Probe::Ok(t),
        Err(kube::Error::Api(e)) if e.code == 401 || e.code == 403 => {
            tracing::debug!(path, code = e.code, "component probe not permitted");
            Probe::Denied
        }
        Err(_) => Probe::Down,
    }
}

/// Readiness from a probe: `None` when not permitted to look.
fn ready(p: &Probe) -> Option<bool> {
    match p {
        Probe::Ok(_) => Some(true),
        Probe::Down => Some(false),
        Probe::Denied => None,
    }
}

async fn get_text(client: &Client, path: &str) -> Option<String> {
    match probe(client, path).await {
        Probe::Ok(t) => Some(t),
        _ => None,
    }
}

/// Whether the Lease `name` is held and renewed within its duration;
/// `None` when it cannot be read (not permitted).
async fn lease_current(api: &Api<Lease>, name: &str) -> Option<bool> {
    let lease = match api.get_opt(name).await {
        Ok(Some(l)) => l,
        Ok(None) => return Some(false),
        Err(kube::Error::Api(e)) if e.code == 401 || e.code == 403 => return None,
        Err(_) => return Some(false),
    };
    let Some(spec) = lease.spec else {
        return Some(false);
    };
    let held = spec.lease_duration_seconds.unwrap_or(15) as i64;
    Some(
        spec.holder_identity.is_some_and(|h| !h.is_empty())
            && spec
                .renew_time
                .is_some_and(|r| r.0 + chrono::Duration::seconds(held) >= Utc::now()),
    )
}

/// Probes every `interval` until `stop`.
pub async fn run(
    client: Client,
    view: Arc<dyn ClusterView>,
    state: Components,
    active: Arc<std::sync::atomic::AtomicBool>,
    interval: Duration,
    stop: CancellationToken,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let (mut api_prev, mut sched_prev) = (None, None);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !active.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        let apiserver = ready(&probe(&client, "/readyz").await);
        let etcd = ready(&probe(&client, "/readyz/etcd").await);
        let version = get_text(&client, "/version")
            .await
            .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
            .and_then(|v| v["gitVersion"].as_str().map(str::to_string));
        let api_now = get_text(&client, "/metrics")
            .await
            .and_then(|b| histogram_totals(&b, "apiserver_request_duration_seconds"));
        let sched_now = match scheduler_pod(view.as_ref()) {
            Some(pod) => get_text(
                &client,
                &format!("/api/v1/namespaces/kube-system/pods/https:{pod}:10259/proxy/metrics"),
            )
            .await
            .and_then(|b| {
                histogram_totals(&b, "scheduler_scheduling_attempt_duration_seconds")
                    .or_else(|| histogram_totals(&b, "scheduler_e2e_scheduling_duration_seconds"))
            }),
            None => None,
        };
        let scheduler = lease_current(&leases, "kube-scheduler").await;
        let controller_manager = lease_current(&leases, "kube-controller-manager").await;
        let next = ComponentState {
            apiserver,
            etcd,
            scheduler,
            controller_manager,
            apiserver_version: version,
            apiserver_latency_ms: mean_ms(api_prev, api_now),
            scheduler_latency_ms: mean_ms(sched_prev, sched_now),
        };
        (api_prev, sched_prev) = (api_now, sched_now);
        *state.write() = next;
    }
}

/// Name of a running kube-scheduler pod in `kube-system`.
fn scheduler_pod(view: &dyn ClusterView) -> Option<String> {
    view.pods()
        .iter()
        .find(|p| {
            p.metadata.namespace.as_deref() == Some("kube-system")
                && component(p) == Some("kube-scheduler")
                && super::state::phase(p) == "Running"
        })
        .and_then(|p| p.metadata.name.clone())
}

fn component(p: &k8s_openapi::api::core::v1::Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("component"))
        .map(String::as_str)
}

/// Image tag of the first `kube-system` pod labelled `component=<c>`.
fn pod_version(view: &dyn ClusterView, c: &str) -> Option<String> {
    view.pods().iter().find_map(|p| {
        if p.metadata.namespace.as_deref() != Some("kube-system") || component(p) != Some(c) {
            return None;
        }
        let image = p.spec.as_ref()?.containers.first()?.image.clone()?;
        let tag = image.rsplit_once(':')?.1;
        (!tag.contains('/')).then(|| tag.to_string())
    })
}

/// Appends the `k8s_component_*` series.
pub fn emit(state: &ComponentState, view: &dyn ClusterView, cluster_id: &str, e: &mut Emitter<'_>) {
    let cl = [("cluster_id", cluster_id)];
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    for (name, v) in [
        ("k8s_component_apiserver_ready", state.apiserver),
        ("k8s_component_etcd_ready", state.etcd),
        ("k8s_component_scheduler_ready", state.scheduler),
        (
            "k8s_component_controller_manager_ready",
            state.controller_manager,
        ),
    ] {
        if let Some(v) = v {
            e.emit(name, &cl, b(v));
        }
    }
    if let Some(ms) = state.apiserver_latency_ms {
        e.emit("k8s_component_apiserver_request_latency", &cl, ms);
    }
    if let Some(ms) = state.scheduler_latency_ms {
        e.emit("k8s_component_scheduler_scheduling_latency", &cl, ms);
    }
    let versions = [
        (
            "k8s_component_apiserver_version",
            state.apiserver_version.clone(),
        ),
        (
            "k8s_component_scheduler_version",
            pod_version(view, "kube-scheduler"),
        ),
        (
            "k8s_component_controller_manager_version",
            pod_version(view, "kube-controller-manager"),
        ),
        ("k8s_component_etcd_version", pod_version(view, "etcd")),
    ];
    for (name, v) in versions {
        if let Some(v) = v {
            e.emit(name, &[cl[0], ("version", v.as_str())], 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_means_between_probes_skip_watches() {
        let a = "apiserver_request_duration_seconds_sum{verb=\"GET\"} 1\napiserver_request_duration_seconds_count{verb=\"GET\"} 10\napiserver_request_duration_seconds_sum{verb=\"WATCH\"} 500\napiserver_request_duration_seconds_count{verb=\"WATCH\"} 1\n";
        let b = "apiserver_request_duration_seconds_sum{verb=\"GET\"} 1.5\napiserver_request_duration_seconds_count{verb=\"GET\"} 20\napiserver_request_duration_seconds_sum{verb=\"WATCH\"} 900\napiserver_request_duration_seconds_count{verb=\"WATCH\"} 2\n";
        let f = "apiserver_request_duration_seconds";
        let (p, n) = (histogram_totals(a, f), histogram_totals(b, f));
        assert_eq!(p, Some((1.0, 10.0)));
        assert_eq!(mean_ms(p, n), Some(50.0));
        assert_eq!(mean_ms(n, n), None, "no requests between probes");
        assert_eq!(histogram_totals("x 1\n", f), None);
    }
}
