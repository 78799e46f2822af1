//! Starting components: one alone, or all of them on one address (`up`).

use std::sync::Arc;

use axum::Router;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tidewatch_aggregator::Aggregator;
use tidewatch_alertmanager::AlertEngine;
use tidewatch_collector::Collector;
use tidewatch_common::server::{self, Readiness};
use tidewatch_platform::Platform;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Which part of the stack a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything (`tidewatch up`).
    All,
    /// Aggregator only.
    Aggregator,
    /// Collector only.
    Collector,
    /// Alert engine only.
    Alertmanager,
    /// Platform API and dashboards only.
    Platform,
}

impl Role {
    fn has(self, other: Role) -> bool {
        self == Role::All || self == other
    }
}

/// Runs `role` until Ctrl-C/SIGTERM, then shuts down in order: collector and
/// alert engine first (their buffers flush into the still-serving
/// aggregator), then the HTTP server, then the aggregator (flushes its head)
/// and the platform.
pub async fn run(role: Role, mut config: Config) -> anyhow::Result<()> {
    // Bind first so a busy port fails fast with a clear message.
    let listener = server::bind(&config.listen).await?;
    let local = listener.local_addr()?;
    let base_url = format!("http://{local}");
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "--data-dir: cannot create {}: {e}",
            config.data_dir.display()
        )
    })?;

    // Where the aggregator is: this process in `up`, else
    // `TIDEWATCH_AGGREGATOR_URL` (set by the Helm chart) for components
    // deployed alone.
    let aggregator_url = match std::env::var("TIDEWATCH_AGGREGATOR_URL") {
        Ok(url) if role != Role::All && !url.is_empty() => {
            Some(url.trim_end_matches('/').to_string())
        }
        _ if role == Role::All => Some(base_url.clone()),
        _ => None,
    };
    if let Some(url) = &aggregator_url {
        wire_defaults(&mut config, url);
    }

    let mut registry = Registry::with_prefix("tidewatch");
    registry.register(
        "build",
        "Tidewatch build information",
        Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("role", format!("{role:?}").to_lowercase()),
        ]),
    );
    let ready = Readiness::new();
    let signal = CancellationToken::new();
    let background = CancellationToken::new();
    let http_stop = CancellationToken::new();

    let mut router = Router::new();
    let dir = |name: &str| config.data_dir.join(name);

    let aggregator = if role.has(Role::Aggregator) {
        let a = Aggregator::open(
            config.aggregator.clone(),
            &dir("aggregator"),
            registry.sub_registry_with_prefix("aggregator"),
            background.clone(),
        )
        .await?;
        Some(a)
    } else {
        None
    };
    let alerts = if role.has(Role::Alertmanager) {
        // In `up` rules run against the aggregator in-process.
        let e = AlertEngine::start_with(
            config.alerting.clone(),
            &dir("alertmanager"),
            registry.sub_registry_with_prefix("alertmanager"),
            background.clone(),
            aggregator.as_ref().map(crate::rule_backend::in_process),
        )
        .await?;
        e.set_builtin_rules(&builtin_rule_groups())?;
        router = router.merge(e.router());
        Some(e)
    } else {
        None
    };
    let platform = if role.has(Role::Platform) {
        let p = Platform::start(
            config.platform.clone(),
            &dir("platform"),
            registry.sub_registry_with_prefix("platform"),
            background.clone(),
        )
        .await?;
        router = router.merge(p.router());
        Some(p)
    } else {
        None
    };
    // The aggregator's query APIs are scoped per tenant when the platform
    // runs in the same process.
    if let Some(a) = &aggregator {
        router = router.merge(match &platform {
            Some(p) => p.scope_router(a.router()),
            None => a.router(),
        });
    }
    let collector = if role.has(Role::Collector) {
        let c = Collector::start(
            config.collector.clone(),
            tidewatch_collector::Defaults {
                aggregator_url: aggregator_url.clone().unwrap_or_else(|| base_url.clone()),
                config_file: config.source.clone(),
            },
            &dir("collector"),
            registry.sub_registry_with_prefix("collector"),
            background.clone(),
        )
        .await?;
        router = router.merge(c.router());
        Some(c)
    } else {
        None
    };

    let router = router.merge(server::ops_routes(ready.clone(), Arc::new(registry)));
    let serve = tokio::spawn(server::serve(listener, router, http_stop.clone()));
    ready.set(true);
    tracing::info!(listen = %local, ?role, "tidewatch is ready");

    server::shutdown_signal(signal.clone()).await;
    ready.set(false);
    if let Some(c) = &collector {
        c.close().await?;
    }
    if let Some(e) = &alerts {
        e.close().await?;
    }
    background.cancel();
    http_stop.cancel();
    serve.await??;
    if let Some(a) = &aggregator {
        a.close().await?;
    }
    if let Some(p) = &platform {
        p.close().await?;
    }
    tracing::info!("tidewatch stopped cleanly");
    Ok(())
}

/// Components that talk to the aggregator default to `base_url` (this
/// process's own address in `up`): the alert engine queries and writes back
/// through its Prometheus API and remote-write (in `up` it is handed the
/// aggregator in-process instead), the platform posts events.
fn wire_defaults(config: &mut Config, base_url: &str) {
    config
        .alerting
        .query_url
        .get_or_insert_with(|| base_url.to_string());
    config
        .alerting
        .remote_write_url
        .get_or_insert_with(|| format!("{base_url}/api/v1/write"));
    config
        .platform
        .aggregator_url
        .get_or_insert_with(|| base_url.to_string());
}

/// The built-in rule groups: the TKEStack cluster usage catalogue summed
/// from the collectors' per-node shares (the collector owns the list).
fn builtin_rule_groups() -> Vec<tidewatch_alertmanager::rules::file::GroupDef> {
    use tidewatch_alertmanager::rules::file::{GroupDef, RuleDef};
    use tidewatch_collector::metrics::cluster_usage;
    vec![GroupDef {
        name: cluster_usage::RULE_GROUP.to_string(),
        rules: cluster_usage::recording_rules()
            .into_iter()
            .map(|r| RuleDef {
                record: Some(r.record.to_string()),
                expr: r.expr,
                ..RuleDef::default()
            })
            .collect(),
        ..GroupDef::default()
    }]
}
