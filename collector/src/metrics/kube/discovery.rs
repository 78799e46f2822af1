//! Kubernetes service discovery for scraping, with Prometheus's meta labels
//! (`__meta_kubernetes_pod_annotation_prometheus_io_scrape`, …), and the
//! default annotation-driven relabelling used when a job gives none.

use std::collections::BTreeMap;

use tidewatch_common::labels::Labels;

use super::ClusterView;
use crate::metrics::scrape::relabel::{Action, RelabelConfig};

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn add_map(out: &mut Vec<(String, String)>, prefix: &str, map: Option<&BTreeMap<String, String>>) {
    for (k, v) in map.into_iter().flatten() {
        let k = sanitize(k);
        out.push((format!("{prefix}_{k}"), v.clone()));
        out.push((format!("{prefix}present_{k}"), "true".into()));
    }
}

fn in_namespaces(ns: &str, namespaces: &[String]) -> bool {
    namespaces.is_empty() || namespaces.iter().any(|n| n == ns)
}

/// One target per declared container port of every running pod (or the
/// pod IP alone when it declares none); with `node`, only that node's pods.
pub fn pod_targets(
    view: &dyn ClusterView,
    namespaces: &[String],
    node: Option<&str>,
) -> Vec<Labels> {
    let mut out = Vec::new();
    for p in view.pods() {
        if node.is_some_and(|n| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(n)) {
            continue;
        }
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        if !in_namespaces(&ns, namespaces) {
            continue;
        }
        let st = p.status.as_ref();
        let Some(ip) = st.and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        let phase = st.and_then(|s| s.phase.clone()).unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let ready = st
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let mut base: Vec<(String, String)> = vec![
            ("__meta_kubernetes_namespace".into(), ns),
            (
                "__meta_kubernetes_pod_name".into(),
                p.metadata.name.clone().unwrap_or_default(),
            ),
            ("__meta_kubernetes_pod_ip".into(), ip.clone()),
            (
                "__meta_kubernetes_pod_uid".into(),
                p.metadata.uid.clone().unwrap_or_default(),
            ),
            ("__meta_kubernetes_pod_phase".into(), phase),
            ("__meta_kubernetes_pod_ready".into(), ready.to_string()),
            (
                "__meta_kubernetes_pod_node_name".into(),
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
            ),
            (
                "__meta_kubernetes_pod_host_ip".into(),
                st.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
            ),
        ];
        if let Some(o) = p
            .metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.iter().find(|o| o.controller == Some(true)))
        {
            base.push((
                "__meta_kubernetes_pod_controller_kind".into(),
                o.kind.clone(),
            ));
            base.push((
                "__meta_kubernetes_pod_controller_name".into(),
                o.name.clone(),
            ));
        }
        add_map(
            &mut base,
            "__meta_kubernetes_pod_label",
            p.metadata.labels.as_ref(),
        );
        add_map(
            &mut base,
            "__meta_kubernetes_pod_annotation",
            p.metadata.annotations.as_ref(),
        );
        let containers = p
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let mut any_port = false;
        for c in &containers {
            for port in c.ports.iter().flatten() {
                any_port = true;
                let mut l = base.clone();
                l.push((
                    "__address__".into(),
                    format!("{ip}:{}", port.container_port),
                ));
                l.push((
                    "__meta_kubernetes_pod_container_name".into(),
                    c.name.clone(),
                ));
                l.push((
                    "__meta_kubernetes_pod_container_port_name".into(),
                    port.name.clone().unwrap_or_default(),
                ));
                l.push((
                    "__meta_kubernetes_pod_container_port_number".into(),
                    port.container_port.to_string(),
                ));
                l.push((
                    "__meta_kubernetes_pod_container_port_protocol".into(),
                    port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ));
                out.push(Labels::from_pairs(l));
            }
        }
        if !any_port {
            let mut l = base;
            l.push(("__address__".into(), ip));
            out.push(Labels::from_pairs(l));
        }
    }
    out
}

/// One target per endpoint address and port; with `node`, only addresses
/// on that node (so each node's collector scrapes its own share).
pub fn endpoint_targets(
    view: &dyn ClusterView,
    namespaces: &[String],
    node: Option<&str>,
) -> Vec<Labels> {
    let services: BTreeMap<(String, String), _> = view
        .services()
        .into_iter()
        .map(|s| {
            (
                (
                    s.metadata.namespace.clone().unwrap_or_default(),
                    s.metadata.name.clone().unwrap_or_default(),
                ),
                s,
            )
        })
        .collect();
    let mut out = Vec::new();
    for ep in view.endpoints() {
        let ns = ep.metadata.namespace.clone().unwrap_or_default();
        if !in_namespaces(&ns, namespaces) {
            continue;
        }
        let name = ep.metadata.name.clone().unwrap_or_default();
        let mut base: Vec<(String, String)> = vec![
            ("__meta_kubernetes_namespace".into(), ns.clone()),
            ("__meta_kubernetes_endpoints_name".into(), name.clone()),
            ("__meta_kubernetes_service_name".into(), name.clone()),
        ];
        if let Some(svc) = services.get(&(ns, name)) {
            add_map(
                &mut base,
                "__meta_kubernetes_service_label",
                svc.metadata.labels.as_ref(),
            );
            add_map(
                &mut base,
                "__meta_kubernetes_service_annotation",
                svc.metadata.annotations.as_ref(),
            );
        }
        for subset in ep.subsets.iter().flatten() {
            let ready = subset.addresses.iter().flatten().map(|a| (a, true));
            let not_ready = subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| (a, false));
            for (addr, is_ready) in ready.chain(not_ready) {
                if node.is_some_and(|n| addr.node_name.as_deref() != Some(n)) {
                    continue;
                }
                for port in subset.ports.iter().flatten() {
                    let mut l = base.clone();
                    l.push(("__address__".into(), format!("{}:{}", addr.ip, port.port)));
                    l.push((
                        "__meta_kubernetes_endpoint_ready".into(),
                        is_ready.to_string(),
                    ));
                    l.push((
                        "__meta_kubernetes_endpoint_port_name".into(),
                        port.name.clone().unwrap_or_default(),
                    ));
                    l.push((
                        "__meta_kubernetes_endpoint_port_protocol".into(),
                        port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    ));
                    l.push((
                        "__meta_kubernetes_endpoint_node_name".into(),
                        addr.node_name.clone().unwrap_or_default(),
                    ));
                    if let Some(t) = &addr.target_ref {
                        l.push((
                            "__meta_kubernetes_endpoint_address_target_kind".into(),
                            t.kind.clone().unwrap_or_default(),
                        ));
                        l.push((
                            "__meta_kubernetes_endpoint_address_target_name".into(),
                            t.name.clone().unwrap_or_default(),
                        ));
                    }
                    out.push(Labels::from_pairs(l));
                }
            }
        }
    }
    out
}

/// The relabelling applied to a Kubernetes job that gives no
/// `relabel_configs`: scrape only objects annotated
/// `prometheus.io/scrape: "true"`, honouring `prometheus.io/port`, `/path`
/// and `/scheme`, with `namespace`, `pod`/`service` and the object's labels.
pub fn default_relabel(endpoints: bool) -> Vec<RelabelConfig> {
    let kind = if endpoints { "service" } else { "pod" };
    let a = |s: &str| format!("__meta_kubernetes_{kind}_annotation_prometheus_io_{s}");
    let r = |src: Vec<String>, regex: &str, target: &str, replacement: &str, action: Action| {
        RelabelConfig {
            source_labels: src,
            regex: regex.into(),
            target_label: target.into(),
            replacement: replacement.into(),
            action,
            ..RelabelConfig::default()
        }
    };
    let mut v = vec![
        r(vec![a("scrape")], "true", "", "$1", Action::Keep),
        r(
            vec![a("path")],
            "(.+)",
            "__metrics_path__",
            "$1",
            Action::Replace,
        ),
        r(
            vec![a("scheme")],
            "(https?)",
            "__scheme__",
            "$1",
            Action::Replace,
        ),
        r(
            vec!["__address__".into(), a("port")],
            r"([^:]+)(?::\d+)?;(\d+)",
            "__address__",
            "$1:$2",
            Action::Replace,
        ),
        r(
            vec![],
            &format!("__meta_kubernetes_{kind}_label_(.+)"),
            "",
            "$1",
            Action::Labelmap,
        ),
        r(
            vec!["__meta_kubernetes_namespace".into()],
            "(.*)",
            "namespace",
            "$1",
            Action::Replace,
        ),
    ];
    if endpoints {
        v.push(r(
            vec!["__meta_kubernetes_service_name".into()],
            "(.*)",
            "service",
            "$1",
            Action::Replace,
        ));
    } else {
        v.push(r(
            vec!["__meta_kubernetes_pod_name".into()],
            "(.*)",
            "pod",
            "$1",
            Action::Replace,
        ));
    }
    v
}

/// Keeps Kubernetes scrape targets in sync with the watched pods and
/// endpoints (each cycle; unchanged targets keep their loops).
pub(crate) async fn run(
    view: std::sync::Arc<super::KubeWatch>,
    mode: super::Mode,
    node: String,
    scrapes: std::sync::Arc<tokio::sync::Mutex<crate::metrics::scrape::ScrapeManager>>,
    interval: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
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
                crate::metrics::scrape::SdRole::Pod => pod_targets(
                    view.as_ref(),
                    namespaces,
                    (mode != super::Mode::Cluster).then_some(node.as_str()),
                ),
                crate::metrics::scrape::SdRole::Endpoints => endpoint_targets(
                    view.as_ref(),
                    namespaces,
                    (mode != super::Mode::Cluster).then_some(node.as_str()),
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
