//! Config reload: on SIGHUP or when the config file changes (`notify`), the
//! `collector:` section is re-read, validated and applied live
//! ([`super::live`]: interval, sources, labels, endpoints, scrape jobs;
//! fields that need a restart are logged, counted and keep their running
//! value). An invalid file keeps the running config and is logged with
//! field paths.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Deserialize;
use tidewatch_common::config::{FieldError, Validate};
use tokio_util::sync::CancellationToken;

use crate::Config;

/// The file's shape as far as the collector is concerned.
#[derive(Deserialize)]
struct File {
    #[serde(default)]
    collector: Config,
}

/// Reads and validates the `collector:` section of `path`.
pub fn load(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if text.trim().is_empty() {
        // Most likely caught mid-write; never treat it as "no jobs".
        return Err(format!("{}: empty file", path.display()));
    }
    let f: File = tidewatch_common::config::parse_yaml(&text).map_err(|e| e.to_string())?;
    let mut errors: Vec<FieldError> = Vec::new();
    f.collector.validate("collector", &mut errors);
    if errors.is_empty() {
        Ok(f.collector)
    } else {
        Err(errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// Reloads until `stop`; `reloads` counts outcomes by `result`.
pub async fn run(
    path: PathBuf,
    live: Arc<super::live::Live>,
    reloads: Family<Vec<(String, String)>, Counter>,
    stop: CancellationToken,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(8);
    let name = path.file_name().map(|n| n.to_os_string());
    let file_tx = tx.clone();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Reading the file ourselves raises access events: only changes count.
        let hit = res.is_ok_and(|ev| {
            let metadata_only = matches!(
                ev.kind,
                notify::EventKind::Modify(notify::event::ModifyKind::Metadata(_))
            );
            (ev.kind.is_create() || ev.kind.is_modify() || ev.kind.is_remove())
                && !metadata_only
                && ev
                    .paths
                    .iter()
                    .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
        });
        if hit {
            let _ = file_tx.try_send(());
        }
    });
    let _watcher = match watcher {
        Ok(mut w) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if let Err(e) = w.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(error = %e, "cannot watch the config file; SIGHUP still reloads");
            }
            Some(w)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the config file; SIGHUP still reloads");
            None
        }
    };
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP");
            None
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            Some(()) = rx.recv() => {}
            Some(()) = async { match &mut hup { Some(h) => h.recv().await, None => std::future::pending().await } } => {}
        }
        // Editors write in several steps: let the file settle, then drain.
        tokio::time::sleep(Duration::from_millis(100)).await;
        while rx.try_recv().is_ok() {}
        let result = match load(&path) {
            Ok(cfg) => match live.apply(cfg).await {
                Ok(()) => {
                    tracing::info!(file = %path.display(), "collector config reloaded");
                    "success"
                }
                Err(e) => {
                    tracing::error!(error = %e, "collector config reload failed; keeping the running config");
                    "failure"
                }
            },
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "invalid config; keeping the running one");
                "failure"
            }
        };
        reloads
            .get_or_create(&vec![("result".to_string(), result.to_string())])
            .inc();
    }
}
