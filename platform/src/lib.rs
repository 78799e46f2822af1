//! The platform: clusters, businesses, tenants, roles, Kubernetes auth
//! webhooks and the REST API under `/api/platform/v1/`; serves the dashboards.
//!
//! Modules, one job each: [`store`] (sqlx, migrations), [`crypto`],
//! [`policy`] (deny-overrides evaluation, built-in roles), [`auth`] (who is
//! calling), [`api`] (REST handlers), [`webhooks`] (TokenReview and
//! SubjectAccessReview), [`kube_api`] (the thin Kubernetes layer),
//! [`health`], [`events`] (event watching and forwarding), [`scope`] (query
//! scoping for tenants), [`dashboards`], [`testing`] (a protocol-level
//! Kubernetes API server stand-in for tests).

pub mod api;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod dashboards;
pub mod error;
pub mod events;
pub mod health;
pub mod kube_api;
pub mod openapi;
pub mod policy;
pub mod quantity;
pub mod scope;
pub mod seed;
pub mod store;
pub mod testing;
pub mod webhooks;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use scope::scope_queries;

use crate::crypto::SecretBox;
use crate::kube_api::Connector;
use crate::store::Store;

/// Environment variable holding the first admin's password.
pub const ADMIN_PASSWORD_ENV: &str = "TIDEWATCH_ADMIN_PASSWORD";
/// Environment variable holding the credential encryption key (base64).
pub const KEY_ENV: &str = "TIDEWATCH_PLATFORM_KEY";

/// A running platform service.
pub struct Platform {
    /// Settings.
    pub config: Config,
    /// Metadata store.
    pub store: Store,
    /// Encrypts cluster credentials.
    pub secrets: SecretBox,
    /// Kubernetes clients per cluster.
    pub connector: Connector,
    /// Self-metrics.
    pub metrics: events::EventMetrics,
    /// The platform's data directory (store, key, event buffers).
    pub data_dir: std::path::PathBuf,
    clusters_changed: tokio::sync::Notify,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Platform {
    /// Opens the metadata store (applying migrations) and starts background
    /// work; stops when `shutdown` is cancelled.
    pub async fn start(
        config: Config,
        data_dir: &Path,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Platform>> {
        std::fs::create_dir_all(data_dir)?;
        let store = Store::open(config.database_url.as_deref(), data_dir).await?;
        let admin_password = config.admin_password.clone().or_else(|| {
            std::env::var(ADMIN_PASSWORD_ENV)
                .ok()
                .filter(|p| !p.is_empty())
        });
        seed::seed(&store, admin_password.as_deref()).await?;
        let key = load_key(&config, data_dir)?;
        let metrics = events::EventMetrics::default();
        metrics.register(registry);
        let platform = Arc::new(Platform {
            config,
            store,
            secrets: SecretBox::new(&key),
            connector: Connector::default(),
            metrics,
            data_dir: data_dir.to_path_buf(),
            clusters_changed: tokio::sync::Notify::new(),
            shutdown: shutdown.child_token(),
            tasks: Mutex::new(Vec::new()),
        });
        if let Err(e) = platform.register_local_cluster().await {
            tracing::warn!(error = %e, "platform: cannot register the local cluster");
        }
        platform.spawn_background();
        Ok(platform)
    }

    fn spawn_background(self: &Arc<Self>) {
        let mut tasks = self.tasks.lock();
        tasks.push(tokio::spawn(health::run(
            self.clone(),
            self.shutdown.clone(),
        )));
        if self.config.events.enabled {
            tasks.push(tokio::spawn(events::run(
                self.clone(),
                self.shutdown.clone(),
            )));
        }
    }

    /// HTTP routes: `/api/platform/v1/*`, `/api/platform/openapi.json`,
    /// `/auth/authn`, `/auth/authz`, and the dashboards at `/`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .merge(api::router())
            .merge(webhooks::router())
            .merge(openapi::router())
            .with_state(self.clone())
            .merge(dashboards::router())
    }

    /// Wraps `router` (the aggregator's `/api/v1/*` and `/loki/api/v1/*`
    /// routes) so tenants' queries only see their businesses' namespaces;
    /// see [`scope::scope_queries`].
    pub fn scope_router(self: &Arc<Self>, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            scope::scope_queries,
        ))
    }

    /// Closes the store; called on shutdown.
    pub async fn close(&self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = t.await;
        }
        self.store.close().await;
        Ok(())
    }
}

/// The credential key: config, then env, then `<data dir>/secret.key`
/// (generated once with mode 0600).
fn load_key(config: &Config, data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    if let Some(k) = &config.encryption_key {
        return crypto::decode_key(k).map_err(|e| anyhow::anyhow!("platform.encryption_key: {e}"));
    }
    if let Ok(k) = std::env::var(KEY_ENV)
        && !k.is_empty()
    {
        return crypto::decode_key(&k).map_err(|e| anyhow::anyhow!("{KEY_ENV}: {e}"));
    }
    let path = data_dir.join("secret.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return crypto::decode_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let key = crypto::generate_key();
    write_private(&path, key.as_bytes())?;
    tracing::warn!(path = %path.display(), "platform: generated a credential encryption key; back it up or set {KEY_ENV}");
    Ok(crypto::decode_key(&key).expect("generated key decodes"))
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// One business namespace in one cluster.
#[derive(Clone, Debug)]
pub struct NamespaceEntry {
    /// Owning business.
    pub business_id: String,
    /// Cluster id.
    pub cluster_id: String,
    /// Kubernetes namespace name.
    pub name: String,
}

impl NamespaceEntry {
    /// The policy resource of this namespace.
    pub fn resource(&self) -> String {
        namespace_resource(&self.business_id, &self.cluster_id, &self.name)
    }
}

/// `business:{b}/cluster:{c}/namespace:{ns}`.
pub fn namespace_resource(business: &str, cluster: &str, ns: &str) -> String {
    format!("business:{business}/cluster:{cluster}/namespace:{ns}")
}

impl Platform {
    /// Every business namespace.
    pub async fn namespace_index(&self) -> anyhow::Result<Vec<NamespaceEntry>> {
        use sqlx::Row;
        let rows =
            sqlx::query("SELECT business_id, cluster_id, name FROM namespaces ORDER BY name")
                .fetch_all(&self.store.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(NamespaceEntry {
                    business_id: r.try_get(0)?,
                    cluster_id: r.try_get(1)?,
                    name: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// The policy resource of namespace `ns` in cluster `cluster`, if a
    /// business owns it.
    pub async fn namespace_resource(
        &self,
        cluster: &str,
        ns: &str,
    ) -> anyhow::Result<Option<String>> {
        use sqlx::Row;
        let row =
            sqlx::query("SELECT business_id FROM namespaces WHERE cluster_id = $1 AND name = $2")
                .bind(cluster)
                .bind(ns)
                .fetch_optional(&self.store.pool)
                .await?;
        Ok(match row {
            Some(r) => Some(namespace_resource(&r.try_get::<String, _>(0)?, cluster, ns)),
            None => None,
        })
    }

    /// Tells the event watchers that clusters were added, changed or removed.
    pub fn clusters_changed(&self) {
        self.clusters_changed.notify_one();
    }
}
