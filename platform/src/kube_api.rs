//! The thin Kubernetes layer: everything the platform asks of a cluster,
//! behind the [`ClusterApi`] trait, implemented with `kube` ([`KubeCluster`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod, ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::quantity::Hard;

/// Name of the ResourceQuota the platform manages in each namespace.
pub const QUOTA_NAME: &str = "tidewatch-business-quota";
/// Label on namespaces naming the owning business.
pub const BUSINESS_LABEL: &str = "tidewatch.io/business";
/// Field manager for server-side apply.
const MANAGER: &str = "tidewatch-platform";

/// How to reach a cluster's API server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credential {
    /// `https://host:port`.
    pub api_server: String,
    /// Bearer token (an admin service account token).
    pub token: String,
    /// PEM CA certificate(s); absent: system roots.
    #[serde(default)]
    pub ca_cert: Option<String>,
    /// Skip TLS verification (testing only).
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    /// Read the token from this file instead (re-read as it rotates; the
    /// in-cluster service account of the `local` cluster).
    #[serde(default)]
    pub token_file: Option<String>,
}

/// Read-only object lists the API exposes per cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Nodes.
    Nodes,
    /// Namespaces.
    Namespaces,
    /// Deployments, StatefulSets and DaemonSets.
    Workloads,
    /// Pods.
    Pods,
    /// Core v1 Events.
    Events,
}

/// What an event watch yields.
#[derive(Debug)]
pub enum WatchItem {
    /// An event object (added or modified, or listed after a (re)start).
    Event(Box<Event>),
    /// The watch (re)started with a fresh list (after a 410 Gone, say).
    Restarted,
}

/// Everything the platform asks of one cluster.
pub trait ClusterApi: Send + Sync {
    /// The server's `gitVersion`.
    fn version(&self) -> BoxFuture<'_, anyhow::Result<String>>;
    /// A read-only list, all namespaces or one.
    fn list<'a>(
        &'a self,
        view: View,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<serde_json::Value>>>;
    /// Creates or updates a Namespace with labels.
    fn apply_namespace<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Creates or updates the platform's ResourceQuota in a namespace.
    fn apply_quota<'a>(
        &'a self,
        namespace: &'a str,
        hard: &'a Hard,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// `status.used` of the platform's ResourceQuota (empty when missing).
    fn quota_used<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, anyhow::Result<Hard>>;
    /// Deletes a namespace.
    fn delete_namespace<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Watches core v1 Events in all namespaces: list, then watch from the
    /// list's resourceVersion with bookmarks, re-listing on 410 Gone.
    fn watch_events(&self) -> BoxStream<'static, anyhow::Result<WatchItem>>;
}

/// [`ClusterApi`] over a `kube::Client`.
pub struct KubeCluster {
    client: kube::Client,
}

/// Decodes PEM certificates to DER.
pub fn pem_to_der(pem: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN") {
            cur = Some(String::new());
        } else if line.starts_with("-----END") {
            let b = cur
                .take()
                .ok_or_else(|| anyhow::anyhow!("END without BEGIN"))?;
            out.push(base64::engine::general_purpose::STANDARD.decode(b)?);
        } else if let Some(b) = cur.as_mut() {
            b.push_str(line);
        }
    }
    anyhow::ensure!(!out.is_empty(), "no PEM certificate found");
    Ok(out)
}

impl KubeCluster {
    /// A client for `cred`.
    pub fn connect(cred: &Credential) -> anyhow::Result<KubeCluster> {
        let uri: http::Uri = cred
            .api_server
            .parse()
            .map_err(|e| anyhow::anyhow!("api_server: {e}"))?;
        let mut config = kube::Config::new(uri);
        match &cred.token_file {
            Some(f) => config.auth_info.token_file = Some(f.clone()),
            None => config.auth_info.token = Some(cred.token.clone().into()),
        }
        if let Some(ca) = cred.ca_cert.as_deref().filter(|c| !c.trim().is_empty()) {
            config.root_cert = Some(pem_to_der(ca).map_err(|e| anyhow::anyhow!("ca_cert: {e}"))?);
        }
        config.accept_invalid_certs = cred.insecure_skip_tls_verify;
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(300));
        config.default_namespace = "default".into();
        Ok(KubeCluster {
            client: kube::Client::try_from(config)?,
        })
    }
}

fn to_values<T: Serialize>(items: Vec<T>) -> anyhow::Result<Vec<serde_json::Value>> {
    items
        .into_iter()
        .map(|i| Ok(serde_json::to_value(i)?))
        .collect()
}

async fn list_of<K>(
    client: kube::Client,
    ns: Option<&str>,
) -> anyhow::Result<Vec<serde_json::Value>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = match ns {
        Some(n) => Api::namespaced(client, n),
        None => Api::all(client),
    };
    to_values(api.list(&ListParams::default()).await?.items)
}

impl ClusterApi for KubeCluster {
    fn version(&self) -> BoxFuture<'_, anyhow::Result<String>> {
        async move { Ok(self.client.apiserver_version().await?.git_version) }.boxed()
    }

    fn list<'a>(
        &'a self,
        view: View,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<serde_json::Value>>> {
        let c = self.client.clone();
        async move {
            match view {
                View::Nodes => {
                    let api: Api<Node> = Api::all(c);
                    to_values(api.list(&ListParams::default()).await?.items)
                }
                View::Namespaces => {
                    let api: Api<Namespace> = Api::all(c);
                    let mut items = api.list(&ListParams::default()).await?.items;
                    if let Some(n) = namespace {
                        items.retain(|i| i.metadata.name.as_deref() == Some(n));
                    }
                    to_values(items)
                }
                View::Workloads => {
                    let mut out = list_of::<Deployment>(c.clone(), namespace).await?;
                    out.extend(list_of::<StatefulSet>(c.clone(), namespace).await?);
                    out.extend(list_of::<DaemonSet>(c, namespace).await?);
                    Ok(out)
                }
                View::Pods => list_of::<Pod>(c, namespace).await,
                View::Events => list_of::<Event>(c, namespace).await,
            }
        }
        .boxed()
    }

    fn apply_namespace<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    labels: Some(labels),
                    ..Default::default()
                },
                ..Default::default()
            };
            api.patch(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&ns),
            )
            .await?;
            Ok(())
        }
        .boxed()
    }

    fn apply_quota<'a>(
        &'a self,
        namespace: &'a str,
        hard: &'a Hard,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), namespace);
            let rq = ResourceQuota {
                metadata: ObjectMeta {
                    name: Some(QUOTA_NAME.into()),
                    namespace: Some(namespace.into()),
                    ..Default::default()
                },
                spec: Some(ResourceQuotaSpec {
                    hard: Some(
                        hard.iter()
                            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                            .collect(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            };
            api.patch(
                QUOTA_NAME,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&rq),
            )
            .await?;
            Ok(())
        }
        .boxed()
    }

    fn quota_used<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, anyhow::Result<Hard>> {
        async move {
            let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), namespace);
            let rq = api.get_opt(QUOTA_NAME).await?;
            Ok(rq
                .and_then(|r| r.status)
                .and_then(|s| s.used)
                .map(|u| u.into_iter().map(|(k, v)| (k, v.0)).collect())
                .unwrap_or_default())
        }
        .boxed()
    }

    fn delete_namespace<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            let api: Api<Namespace> = Api::all(self.client.clone());
            match api.delete(name, &Default::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        .boxed()
    }

    fn watch_events(&self) -> BoxStream<'static, anyhow::Result<WatchItem>> {
        let api: Api<Event> = Api::all(self.client.clone());
        watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .map_err(anyhow::Error::from)
            .try_filter_map(|e| async move {
                Ok(match e {
                    watcher::Event::Init => Some(WatchItem::Restarted),
                    watcher::Event::Apply(ev) | watcher::Event::InitApply(ev) => {
                        Some(WatchItem::Event(Box::new(ev)))
                    }
                    watcher::Event::Delete(_) | watcher::Event::InitDone => None,
                })
            })
            .boxed()
    }
}

/// A cached client and the fingerprint of the credential it was built from.
type Cached = (String, Arc<dyn ClusterApi>);

/// Cached clients per cluster id, rebuilt when the credential changes.
#[derive(Default)]
pub struct Connector {
    cache: Mutex<HashMap<String, Cached>>,
}

impl Connector {
    /// The client for `cluster_id` with credential `cred`.
    pub fn get(&self, cluster_id: &str, cred: &Credential) -> anyhow::Result<Arc<dyn ClusterApi>> {
        let fingerprint = crate::crypto::token_hash(&serde_json::to_string(cred)?);
        let mut cache = self.cache.lock();
        if let Some((f, c)) = cache.get(cluster_id)
            && *f == fingerprint
        {
            return Ok(c.clone());
        }
        let c: Arc<dyn ClusterApi> = Arc::new(KubeCluster::connect(cred)?);
        cache.insert(cluster_id.to_string(), (fingerprint, c.clone()));
        Ok(c)
    }

    /// Forgets a cluster.
    pub fn remove(&self, cluster_id: &str) {
        self.cache.lock().remove(cluster_id);
    }
}
