//! Kubernetes: the collector's thin layer over the API server. Objects are
//! kept current with `kube`'s list + watch reflectors (resourceVersion,
//! bookmarks, re-list after `410 Gone`); everything else reads them through
//! the [`ClusterView`] trait, so metric generation is plain functions over
//! `k8s-openapi` types.
//!
//! Modes: `node` (every collector: pods on this node, for container
//! metadata and the pod/container catalogue) and `cluster` (one collector
//! per cluster, a dedicated Deployment: kube-state-metrics and the cluster,
//! workload and namespace catalogue).

pub mod components;
pub mod discovery;
pub mod inventory;
pub mod ksm;
pub mod lease;
pub mod node_catalogue;
pub mod quantity;
pub mod state;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate, join};
use tokio_util::sync::CancellationToken;

/// Which objects this collector reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Pods on this node only (DaemonSet collectors).
    #[default]
    Node,
    /// Every object of the cluster (exactly one collector per cluster).
    Cluster,
    /// Every collector watches the cluster; the holder of a Lease reports
    /// the cluster-scoped series (leader election).
    Elected,
}

/// `collector.kubernetes`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubeConfig {
    /// Watch the Kubernetes API.
    pub enabled: bool,
    /// API server URL; empty: in-cluster service account or kubeconfig.
    pub api_url: String,
    /// Bearer token for `api_url` (empty: none).
    pub token: String,
    /// `node` or `cluster`.
    pub mode: Mode,
    /// Namespace label naming the namespace's business (project), for the
    /// `project_*` catalogue.
    pub project_label: String,
    /// `elected` mode: namespace of the Lease.
    pub lease_namespace: String,
    /// `elected` mode: name of the Lease.
    pub lease_name: String,
    /// `elected` mode: how long a holder keeps the lease without renewing.
    #[serde(with = "tidewatch_common::duration::serde_duration")]
    pub lease_duration: std::time::Duration,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            enabled: false,
            api_url: String::new(),
            token: String::new(),
            mode: Mode::Node,
            project_label: "project_name".into(),
            lease_namespace: "kube-system".into(),
            lease_name: "tidewatch-collector".into(),
            lease_duration: std::time::Duration::from_secs(15),
        }
    }
}

impl Validate for KubeConfig {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        if !self.api_url.is_empty() && self.api_url.parse::<http::Uri>().is_err() {
            errors.push(FieldError {
                path: join(path, "api_url"),
                message: format!("invalid URL {:?}", self.api_url),
                line: None,
            });
        }
    }
}

/// Read access to the cluster's current objects.
pub trait ClusterView: Send + Sync {
    /// Pods (in node mode: this node's).
    fn pods(&self) -> Vec<Arc<Pod>>;
    /// Nodes.
    fn nodes(&self) -> Vec<Arc<Node>>;
    /// Namespaces.
    fn namespaces(&self) -> Vec<Arc<Namespace>>;
    /// Deployments.
    fn deployments(&self) -> Vec<Arc<Deployment>>;
    /// ReplicaSets.
    fn replicasets(&self) -> Vec<Arc<ReplicaSet>>;
    /// StatefulSets.
    fn statefulsets(&self) -> Vec<Arc<StatefulSet>>;
    /// DaemonSets.
    fn daemonsets(&self) -> Vec<Arc<DaemonSet>>;
    /// Jobs.
    fn jobs(&self) -> Vec<Arc<Job>>;
    /// CronJobs.
    fn cronjobs(&self) -> Vec<Arc<CronJob>>;
    /// Services.
    fn services(&self) -> Vec<Arc<Service>>;
    /// Endpoints.
    fn endpoints(&self) -> Vec<Arc<Endpoints>>;
}

/// Fixed objects (tests, and a cluster without some resources).
#[derive(Clone, Default)]
pub struct StaticView {
    /// Pods.
    pub pods: Vec<Arc<Pod>>,
    /// Nodes.
    pub nodes: Vec<Arc<Node>>,
    /// Namespaces.
    pub namespaces: Vec<Arc<Namespace>>,
    /// Deployments.
    pub deployments: Vec<Arc<Deployment>>,
    /// ReplicaSets.
    pub replicasets: Vec<Arc<ReplicaSet>>,
    /// StatefulSets.
    pub statefulsets: Vec<Arc<StatefulSet>>,
    /// DaemonSets.
    pub daemonsets: Vec<Arc<DaemonSet>>,
    /// Jobs.
    pub jobs: Vec<Arc<Job>>,
    /// CronJobs.
    pub cronjobs: Vec<Arc<CronJob>>,
    /// Services.
    pub services: Vec<Arc<Service>>,
    /// Endpoints.
    pub endpoints: Vec<Arc<Endpoints>>,
}

impl ClusterView for StaticView {
    fn pods(&self) -> Vec<Arc<Pod>> {
        self.pods.clone()
    }
    fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.clone()
    }
    fn namespaces(&self) -> Vec<Arc<Namespace>> {
        self.namespaces.clone()
    }
    fn deployments(&self) -> Vec<Arc<Deployment>> {
        self.deployments.clone()
    }
    fn replicasets(&self) -> Vec<Arc<ReplicaSet>> {
        self.replicasets.clone()
    }
    fn statefulsets(&self) -> Vec<Arc<StatefulSet>> {
        self.statefulsets.clone()
    }
    fn daemonsets(&self) -> Vec<Arc<DaemonSet>> {
        self.daemonsets.clone()
    }
    fn jobs(&self) -> Vec<Arc<Job>> {
        self.jobs.clone()
    }
    fn cronjobs(&self) -> Vec<Arc<CronJob>> {
        self.cronjobs.clone()
    }
    fn services(&self) -> Vec<Arc<Service>> {
        self.services.clone()
    }
    fn endpoints(&self) -> Vec<Arc<Endpoints>> {
        self.endpoints.clone()
    }
}

/// A client for `cfg.api_url` (or in-cluster / kubeconfig when empty).
pub async fn client(cfg: &KubeConfig) -> anyhow::Result<Client> {
    Ok(if cfg.api_url.is_empty() {
        Client::try_default().await?
    } else {
        let mut kc = kube::Config::new(cfg.api_url.parse()?);
        if !cfg.token.is_empty() {
            kc.auth_info.token = Some(cfg.token.clone().into());
        }
        Client::try_from(kc)?
    })
}

/// Reflector stores kept current by list + watch.
/// In node mode only what this node needs is watched (its pods, plus
/// ReplicaSets and Jobs for owner resolution, namespaces for businesses,
/// plus Services and Endpoints
/// when a scrape job discovers endpoints): absent stores read as empty.
pub struct KubeWatch {
    pods: Store<Pod>,
    nodes: Option<Store<Node>>,
    namespaces: Option<Store<Namespace>>,
    deployments: Option<Store<Deployment>>,
    replicasets: Store<ReplicaSet>,
    statefulsets: Option<Store<StatefulSet>>,
    daemonsets: Option<Store<DaemonSet>>,
    jobs: Store<Job>,
    cronjobs: Option<Store<CronJob>>,
    services: Option<Store<Service>>,
    endpoints: Option<Store<Endpoints>>,
}

/// Runs one reflector until `stop`; errors (including `410 Gone`) are
/// retried by the watcher with backoff, re-listing when needed.
fn reflect<K>(api: Api<K>, cfg: watcher::Config, stop: CancellationToken) -> Store<K>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, cfg).default_backoff().reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                ev = stream.next() => match ev {
                    None => return,
                    Some(Err(e)) => tracing::warn!(kind = std::any::type_name::<K>(), error = %e, "kubernetes watch error (retrying)"),
                    Some(Ok(_)) => {}
                },
            }
        }
    });
    reader
}

impl KubeWatch {
    /// Connects and starts the reflectors (in node mode pods are limited
    /// to `node`; `endpoints`: a scrape job discovers endpoints).
    pub async fn start(
        cfg: &KubeConfig,
        node: &str,
        endpoints: bool,
        stop: CancellationToken,
    ) -> anyhow::Result<KubeWatch> {
        let client = client(cfg).await?;
        let wc = watcher::Config::default;
        let pod_cfg = match cfg.mode {
            Mode::Node => wc().fields(&format!("spec.nodeName={node}")),
            Mode::Cluster | Mode::Elected => wc(),
        };
        let cluster = cfg.mode != Mode::Node;
        Ok(KubeWatch {
            pods: reflect(Api::all(client.clone()), pod_cfg, stop.clone()),
            replicasets: reflect(Api::all(client.clone()), wc(), stop.clone()),
            jobs: reflect(Api::all(client.clone()), wc(), stop.clone()),
            // Every mode: the cluster's capacity is the denominator of the
            // `rate_*_cluster` series each node reports its share of.
            nodes: Some(reflect(Api::all(client.clone()), wc(), stop.clone())),
            namespaces: Some(reflect(Api::all(client.clone()), wc(), stop.clone())),
            deployments: cluster.then(|| reflect(Api::all(client.clone()), wc(), stop.clone())),
            statefulsets: cluster.then(|| reflect(Api::all(client.clone()), wc(), stop.clone())),
            daemonsets: cluster.then(|| reflect(Api::all(client.clone()), wc(), stop.clone())),
            cronjobs: cluster.then(|| reflect(Api::all(client.clone()), wc(), stop.clone())),
            services: (cluster || endpoints)
                .then(|| reflect(Api::all(client.clone()), wc(), stop.clone())),
            endpoints: (cluster || endpoints).then(|| reflect(Api::all(client), wc(), stop)),
        })
    }

    /// Waits until every store was listed once.
    pub async fn ready(&self) {
        let _ = futures::join!(
            self.pods.wait_until_ready(),
            ready(&self.nodes),
            ready(&self.namespaces),
            ready(&self.deployments),
            self.replicasets.wait_until_ready(),
            ready(&self.statefulsets),
            ready(&self.daemonsets),
            self.jobs.wait_until_ready(),
            ready(&self.cronjobs),
            ready(&self.services),
            ready(&self.endpoints),
        );
    }
}

fn state<K>(s: &Option<Store<K>>) -> Vec<Arc<K>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    s.as_ref().map(|s| s.state()).unwrap_or_default()
}

async fn ready<K>(s: &Option<Store<K>>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    if let Some(s) = s {
        let _ = s.wait_until_ready().await;
    }
}

impl ClusterView for KubeWatch {
    fn pods(&self) -> Vec<Arc<Pod>> {
        self.pods.state()
    }
    fn nodes(&self) -> Vec<Arc<Node>> {
        state(&self.nodes)
    }
    fn namespaces(&self) -> Vec<Arc<Namespace>> {
        state(&self.namespaces)
    }
    fn deployments(&self) -> Vec<Arc<Deployment>> {
        state(&self.deployments)
    }
    fn replicasets(&self) -> Vec<Arc<ReplicaSet>> {
        self.replicasets.state()
    }
    fn statefulsets(&self) -> Vec<Arc<StatefulSet>> {
        state(&self.statefulsets)
    }
    fn daemonsets(&self) -> Vec<Arc<DaemonSet>> {
        state(&self.daemonsets)
    }
    fn jobs(&self) -> Vec<Arc<Job>> {
        self.jobs.state()
    }
    fn cronjobs(&self) -> Vec<Arc<CronJob>> {
        state(&self.cronjobs)
    }
    fn services(&self) -> Vec<Arc<Service>> {
        state(&self.services)
    }
    fn endpoints(&self) -> Vec<Arc<Endpoints>> {
        state(&self.endpoints)
    }
}
