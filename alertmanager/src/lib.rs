//! The alert engine: evaluates alerting and recording rules and TKEStack-style
//! alarm policies, routes, groups, silences and inhibits alerts, and delivers
//! notifications by email and webhook. Speaks Alertmanager's API v2.
//!
//! The path of an alert follows the modules: [`api`] (received) → [`store`]
//! (journaled) → [`dispatch`] (routed and grouped) → [`silence`] /
//! [`inhibit`] / [`timeinterval`] (muted) → [`nflog`] (deduplicated) →
//! [`notify`] (delivered).

pub mod api;
pub mod config;
pub mod dispatch;
pub mod inhibit;
pub mod matcher;
pub mod metrics;
pub mod model;
pub mod nflog;
pub mod notify;
pub mod objects;
pub mod persist;
pub mod silence;
pub mod store;
pub mod template;
pub mod timeinterval;
pub mod unit_test;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use chrono::{DateTime, Utc};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

pub use config::Config;

use crate::dispatch::{Dispatcher, Pipeline, Route};
use crate::inhibit::Inhibitor;
use crate::metrics::Metrics;
use crate::model::Alert;
use crate::nflog::NotificationLog;
use crate::notify::{Integration, Notifier};
use crate::objects::ObjectStore;
use crate::silence::Silences;
use crate::store::{AlertStore, PutError};

/// Name of the built-in receiver delivering the TKEStack way (per alert, to
/// the receivers and channel/template pairs in its annotations).
pub const PLATFORM_RECEIVER: &str = "platform";

/// A running alert engine.
pub struct AlertEngine {
    config: Config,
    store: AlertStore,
    dispatcher: Arc<Dispatcher>,
    objects: Arc<ObjectStore>,
    metrics: Metrics,
    started: DateTime<Utc>,
}

impl AlertEngine {
    /// Starts rule evaluation and notification dispatch; stops when
    /// `shutdown` is cancelled.
    pub async fn start(
        config: Config,
        data_dir: &Path,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<AlertEngine>> {
        std::fs::create_dir_all(data_dir)?;
        let metrics = Metrics::default();
        metrics.register(registry);
        let objects = Arc::new(ObjectStore::open(data_dir, config.limits.max_history)?);
        let silences = Arc::new(Silences::open(data_dir, config.limits.max_silences)?);
        let nflog = Arc::new(NotificationLog::open(data_dir)?);
        let inhibitor =
            Arc::new(Inhibitor::new(&config.inhibit_rules).map_err(anyhow::Error::msg)?);
        let notifier = Arc::new(Notifier::new(
            config.notify.clone(),
            config.external_url.clone(),
            Arc::clone(&objects),
        ));
        let route = match &config.route {
            Some(r) => Route::build(r).map_err(anyhow::Error::msg)?,
            None => Route::default_for(PLATFORM_RECEIVER),
        };
        let receivers: HashMap<String, Vec<Integration>> = config
            .receivers
            .iter()
            .map(|r| (r.name.clone(), Integration::of(r)))
            .collect();
        let intervals = config
            .time_intervals
            .iter()
            .map(|t| (t.name.clone(), t.time_intervals.clone()))
            .collect();
        let pipeline = Arc::new(Pipeline {
            silences,
            inhibitor,
            nflog,
            notifier,
            objects: Arc::clone(&objects),
            metrics: metrics.clone(),
        });
        let dispatcher = Dispatcher::new(route, receivers, intervals, pipeline, shutdown.clone());
        let store = AlertStore::open(data_dir, config.limits.max_alerts)?;
        let engine = Arc::new(AlertEngine {
            config,
            store,
            dispatcher,
            objects,
            metrics,
            started: Utc::now(),
        });
        // Re-dispatch what the journal holds: pending notifications are not
        // lost, delivered ones are deduplicated by the notification log.
        let restored = engine.store.list();
        tracing::info!(alerts = restored.len(), "alert engine restored its alerts");
        engine.dispatcher.dispatch(&restored);
        tokio::spawn(Arc::clone(&engine).gc_loop(shutdown.clone()));
        Ok(engine)
    }

    /// HTTP routes: `/api/v2/*` and `/api/platform/v1/*` alerting objects.
    pub fn router(self: &Arc<Self>) -> Router {
        api::v2::router()
            .merge(api::platform::router())
            .layer(axum::extract::DefaultBodyLimit::max(
                self.config.limits.max_body_bytes,
            ))
            .with_state(Arc::clone(self))
    }

    /// Persists state; called on shutdown. Every change is journaled when
    /// it happens, so there is nothing left to flush.
    pub async fn close(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Accepts alerts (from the API or the rule evaluator): journaled, then
    /// dispatched.
    pub fn receive(&self, alerts: Vec<Alert>, source: &str) -> Result<(), PutError> {
        let n = alerts.len() as u64;
        let merged = self.store.put(alerts)?;
        self.metrics
            .alerts_received
            .get_or_create(&vec![("source".to_string(), source.to_string())])
            .inc_by(n);
        self.dispatcher.dispatch(&merged);
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every alert held.
    pub fn alerts(&self) -> Vec<Alert> {
        self.store.list()
    }

    /// The dispatcher.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// The silences.
    pub fn silences(&self) -> &Silences {
        &self.dispatcher.pipeline().silences
    }

    /// The platform objects.
    pub fn objects(&self) -> &Arc<ObjectStore> {
        &self.objects
    }

    /// Start time.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.started
    }

    async fn gc_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let now = Utc::now();
            let keep = chrono::Duration::from_std(self.config.resolved_retention)
                .unwrap_or(chrono::Duration::minutes(15));
            let p = self.dispatcher.pipeline();
            p.inhibitor.gc(now);
            let res = self
                .store
                .gc(now - keep)
                .and_then(|_| p.silences.gc(now))
                .and_then(|_| p.nflog.gc(now));
            if let Err(e) = res {
                tracing::error!(error = %e, "alert engine garbage collection");
            }
        }
    }
}
