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
pub mod rules;
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
use crate::rules::group::Group as RuleGroup;
use crate::rules::manager::RuleManager;
pub use crate::rules::writer::RuleBackend;
use crate::silence::Silences;
use crate::store::{AlertStore, PutError};

/// Expands `*`/`?`/`[` patterns of rule file paths (sorted; a pattern
/// matching nothing is fine, a plain path must exist).
fn expand_globs(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let s = p.to_string_lossy();
        if s.contains(['*', '?', '[']) {
            let mut found: Vec<_> = glob::glob(&s)
                .map_err(|e| anyhow::anyhow!("alerting.rule_files: {s}: {e}"))?
                .filter_map(Result::ok)
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

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
    rules: std::sync::OnceLock<Arc<RuleManager>>,
}

impl AlertEngine {
    /// Starts rule evaluation and notification dispatch; stops when
    /// `shutdown` is cancelled. Rules are evaluated over HTTP against
    /// `alerting.query_url` (results remote-written to
    /// `alerting.remote_write_url`).
    pub async fn start(
        config: Config,
        data_dir: &Path,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<AlertEngine>> {
        Self::start_with(config, data_dir, registry, shutdown, None).await
    }

    /// [`AlertEngine::start`] with rules evaluated against `local` when
    /// given (`up`: the aggregator's engine and store in-process), in which
    /// case `alerting.query_url` and `remote_write_url` are not used.
    pub async fn start_with(
        config: Config,
        data_dir: &Path,
        registry: &mut Registry,
        shutdown: CancellationToken,
        local: Option<RuleBackend>,
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
            rules: std::sync::OnceLock::new(),
        });
        engine.start_rules(data_dir, shutdown.clone(), local)?;
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

    fn start_rules(
        self: &Arc<Self>,
        data_dir: &Path,
        shutdown: CancellationToken,
        local: Option<RuleBackend>,
    ) -> anyhow::Result<()> {
        let mut groups = Vec::new();
        for f in &expand_globs(&self.config.rule_files)? {
            let file = rules::file::load(f, false)
                .map_err(|e| anyhow::anyhow!("alerting.rule_files: {}", e.join("; ")))?;
            for g in &file.groups {
                groups.push(
                    RuleGroup::compile(
                        g,
                        &format!("file:{}", f.display()),
                        self.config.evaluation_interval,
                    )
                    .map_err(|e| anyhow::anyhow!("alerting.rule_files: {}: {e}", f.display()))?,
                );
            }
        }
        let backend = match (local, &self.config.query_url) {
            (Some(b), _) => {
                tracing::info!("rules are evaluated in-process");
                b
            }
            (None, Some(url)) => RuleBackend::http(
                url,
                self.config.remote_write_url.as_deref(),
                self.config.notify.timeout.max(Duration::from_secs(30)),
            ),
            (None, None) => {
                if !groups.is_empty() || !self.objects.read(|o| o.alarm_policies.is_empty()) {
                    tracing::warn!(
                        "alerting.query_url is not set: rules and alarm policies are not evaluated"
                    );
                }
                return Ok(());
            }
        };
        let weak = Arc::downgrade(self);
        let sink: rules::manager::AlertSink = Arc::new(move |alerts| {
            if let Some(e) = weak.upgrade()
                && let Err(err) = e.receive(alerts, "rules")
            {
                tracing::error!(error = %err, "accepting rule alerts");
            }
        });
        let m = RuleManager::new(
            backend,
            sink,
            self.config.external_labels.clone(),
            self.config.external_url.clone(),
            data_dir.join("rule-state"),
            self.metrics.clone(),
            shutdown,
        )?;
        m.set_groups("file:", groups);
        let _ = self.rules.set(m);
        self.reload_policies();
        Ok(())
    }

    /// Evaluates the built-in rule groups `groups` (source `builtin:`,
    /// interval `alerting.builtin_rules.interval` unless a group sets one),
    /// replacing those set before. Nothing happens when rules are not
    /// evaluated (no backend) or `alerting.builtin_rules.enabled` is false.
    pub fn set_builtin_rules(&self, groups: &[rules::file::GroupDef]) -> anyhow::Result<()> {
        let Some(m) = self.rules.get() else {
            return Ok(());
        };
        if !self.config.builtin_rules.enabled {
            return Ok(());
        }
        let compiled = groups
            .iter()
            .map(|g| {
                RuleGroup::compile(
                    g,
                    &format!("builtin:{}", g.name),
                    self.config.builtin_rules.interval,
                )
                .map_err(|e| anyhow::anyhow!("built-in rule group {}: {e}", g.name))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        m.set_groups("builtin:", compiled);
        Ok(())
    }

    /// Recompiles the alarm policies into rule groups (after a change).
    pub fn reload_policies(&self) {
        let Some(m) = self.rules.get() else { return };
        let groups = self.objects.read(|o| {
            o.alarm_policies
                .values()
                .filter_map(|p| {
                    RuleGroup::compile(
                        &rules::policy::compile(p),
                        &format!("policy:{}", p.name),
                        self.config.evaluation_interval,
                    )
                    .ok()
                })
                .collect()
        });
        m.set_groups("policy:", groups);
    }

    /// The rule manager, when rules are evaluated.
    pub fn rules(&self) -> Option<&Arc<RuleManager>> {
        self.rules.get()
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
