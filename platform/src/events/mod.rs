//! Cluster events (TKEStack's PersistentEvent).
//!
//! Every imported cluster's core v1 Events are watched (list, then watch
//! from the list's resourceVersion with bookmarks, re-listing after 410
//! Gone), de-duplicated by `(uid, count)`, and appended to one durable disk
//! buffer per output ([`output`]: the aggregator's `/api/v1/events`, and
//! optionally Elasticsearch and Kafka). Each output drains its own buffer
//! and acknowledges a batch only after the peer accepted it.
//!
//! Nothing watched is lost: an event is marked seen (`event_marks`) only
//! after every buffer holds it fsynced, so after a crash the re-list skips
//! exactly what the buffers already hold, and the buffers deliver what the
//! peers had not acknowledged — even when the API server has since dropped
//! the event. Re-deliveries after a crash are harmless: the aggregator
//! stores an `(uid, count)` once and Elasticsearch documents are keyed by
//! it; Kafka consumers see at-least-once delivery, keyed by `cluster/uid`.
//!
//! [`retention`] enforces each cluster's event retention on the
//! aggregator's `events` table.

pub mod aggregator;
pub mod elasticsearch;
pub mod kafka;
pub mod output;
pub mod record;
pub mod retention;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sqlx::Row;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use record::{Dedupe, EventRecord, InvolvedObject, record_of};

use crate::Platform;
use crate::kube_api::WatchItem;
use crate::store::now_ms;
use output::Output;

/// The `output` label of per-output metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutputLabel {
    /// `aggregator`, `elasticsearch` or `kafka`.
    pub output: String,
}

/// Self-metrics of event watching and forwarding.
#[derive(Clone, Default)]
pub struct EventMetrics {
    /// Events acknowledged by the aggregator.
    pub forwarded: Counter,
    /// Duplicate events dropped (already seen `(uid, count)`).
    pub duplicates: Counter,
    /// Failed POSTs to the aggregator (retried).
    pub post_failures: Counter,
    /// New events written to the output buffers.
    pub buffered: Counter,
    /// Events skipped because they are older than their cluster's retention.
    pub expired: Counter,
    /// Events acknowledged, per output.
    pub sent: Family<OutputLabel, Counter>,
    /// Failed deliveries (retried), per output.
    pub failures: Family<OutputLabel, Counter>,
    /// Events deleted from the aggregator by retention.
    pub retention_deleted: Counter,
}

impl EventMetrics {
    /// Registers the metrics.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "events_forwarded",
            "Cluster events acknowledged by the aggregator",
            self.forwarded.clone(),
        );
        registry.register(
            "events_duplicates",
            "Duplicate cluster events dropped",
            self.duplicates.clone(),
        );
        registry.register(
            "events_post_failures",
            "Failed event POSTs to the aggregator (retried)",
            self.post_failures.clone(),
        );
        registry.register(
            "events_buffered",
            "New cluster events written to the output disk buffers",
            self.buffered.clone(),
        );
        registry.register(
            "events_expired",
            "Cluster events skipped as older than their cluster's retention",
            self.expired.clone(),
        );
        registry.register(
            "events_sent",
            "Cluster events acknowledged per output",
            self.sent.clone(),
        );
        registry.register(
            "events_send_failures",
            "Failed event deliveries per output (retried)",
            self.failures.clone(),
        );
        registry.register(
            "events_retention_deleted",
            "Cluster events deleted from the aggregator by retention",
            self.retention_deleted.clone(),
        );
    }
}

/// Opens the outputs, then runs the watchers, the output drains and
/// retention until `stop`.
pub async fn run(platform: Arc<Platform>, stop: CancellationToken) {
    let outputs = match output::open_all(&platform) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "platform: cannot open the event outputs; events are not watched");
            stop.cancelled().await;
            return;
        }
    };
    if outputs.is_empty() {
        tracing::info!(
            "platform: no event output (aggregator_url, events.elasticsearch, events.kafka); cluster events are not watched"
        );
        stop.cancelled().await;
        return;
    }
    let mut tasks: Vec<JoinHandle<()>> = outputs
        .iter()
        .map(|o| tokio::spawn(o.clone().drain(platform.clone(), stop.clone())))
        .collect();
    tasks.push(tokio::spawn(retention::run(platform.clone(), stop.clone())));
    let mut watchers: HashMap<String, (CancellationToken, JoinHandle<()>)> = HashMap::new();
    loop {
        match cluster_ids(&platform).await {
            Ok(ids) => {
                let ids: HashSet<String> = ids.into_iter().collect();
                watchers.retain(|id, (tok, _)| {
                    let keep = ids.contains(id);
                    if !keep {
                        tok.cancel();
                    }
                    keep
                });
                for id in ids {
                    watchers.entry(id.clone()).or_insert_with(|| {
                        let tok = stop.child_token();
                        let h = tokio::spawn(watch_cluster(
                            platform.clone(),
                            id,
                            outputs.clone(),
                            tok.clone(),
                        ));
                        (tok, h)
                    });
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "platform: cannot list clusters for event watching")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = platform.clusters_changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
    for (_, (tok, h)) in watchers {
        tok.cancel();
        let _ = h.await;
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn cluster_ids(p: &Platform) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query("SELECT id FROM clusters")
        .fetch_all(&p.store.pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

async fn cluster_retention(p: &Platform, cluster: &str) -> anyhow::Result<Duration> {
    let name: Option<String> = sqlx::query("SELECT name FROM clusters WHERE id = $1")
        .bind(cluster)
        .fetch_optional(&p.store.pool)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(p.config
        .events
        .retention_of(cluster, name.as_deref().unwrap_or("")))
}

async fn load_marks(p: &Platform, cluster: &str, dedupe: &mut Dedupe) -> anyhow::Result<()> {
    let rows =
        sqlx::query("SELECT uid, count FROM event_marks WHERE cluster_id = $1 ORDER BY seen_ms")
            .bind(cluster)
            .fetch_all(&p.store.pool)
            .await?;
    for r in rows {
        dedupe.admit(&r.try_get::<String, _>(0)?, r.try_get(1)?);
    }
    Ok(())
}

/// Watches one cluster until `stop`; restarts (reloading the persisted
/// marks) after an error writing to the buffers.
async fn watch_cluster(
    p: Arc<Platform>,
    cluster: String,
    outputs: Vec<Arc<Output>>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
    while !stop.is_cancelled() {
        match watch_once(&p, &cluster, &outputs, &stop, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(cluster = %cluster, error = %format!("{e:#}"), "platform: event watch restarts");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// One watch session: returns `Ok` when stopped, `Err` to be restarted.
async fn watch_once(
    p: &Arc<Platform>,
    cluster: &str,
    outputs: &[Arc<Output>],
    stop: &CancellationToken,
    backoff: &mut Duration,
) -> anyhow::Result<()> {
    let mut dedupe = Dedupe::new(p.config.events.dedupe_capacity);
    load_marks(p, cluster, &mut dedupe).await?;
    let retention = cluster_retention(p, cluster).await?;
    let api = p
        .cluster_api(cluster)
        .await
        .map_err(|e| anyhow::anyhow!("no client: {}", e.message))?;
    let mut stream = api.watch_events();
    let max = p.config.events.batch_size;
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            i = stream.next() => i,
        };
        let mut items = vec![first];
        // Whatever else is ready joins the batch: one fsync per batch.
        while items.len() < max {
            match stream.next().now_or_never() {
                Some(i) => items.push(i),
                None => break,
            }
        }
        let cutoff = chrono::Utc::now() - retention;
        let mut fresh = Vec::new();
        for item in items {
            match item {
                None => anyhow::bail!("watch stream ended"),
                Some(Ok(WatchItem::Restarted)) => {
                    tracing::debug!(cluster = %cluster, "platform: event watch (re)listing");
                }
                Some(Ok(WatchItem::Event(ev))) => {
                    *backoff = Duration::from_millis(500);
                    let Ok(json) = serde_json::to_value(&*ev) else {
                        continue;
                    };
                    let rec = record_of(cluster, &json);
                    if rec.last_seen().is_some_and(|t| t < cutoff) {
                        p.metrics.expired.inc();
                        continue;
                    }
                    if rec.uid.is_empty() || !dedupe.admit(&rec.uid, rec.count) {
                        p.metrics.duplicates.inc();
                        continue;
                    }
                    fresh.push(rec);
                }
                Some(Err(e)) => {
                    tracing::warn!(cluster = %cluster, error = %e, "platform: event watch error");
                }
            }
        }
        if fresh.is_empty() {
            continue;
        }
        let encoded: Vec<Vec<u8>> = fresh
            .iter()
            .map(|r| serde_json::to_vec(r).expect("JSON to memory"))
            .collect();
        for o in outputs {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                r = o.buffer.push_batch(&encoded) => { r?; }
            }
        }
        p.metrics.buffered.inc_by(fresh.len() as u64);
        save_marks(p, &fresh).await?;
    }
}

async fn save_marks(p: &Platform, batch: &[EventRecord]) -> anyhow::Result<()> {
    let mut tx = p.store.pool.begin().await?;
    let now = now_ms();
    for e in batch {
        sqlx::query(
            "INSERT INTO event_marks (cluster_id, uid, count, seen_ms) VALUES ($1,$2,$3,$4) \
             ON CONFLICT (cluster_id, uid) DO UPDATE SET count = excluded.count, \
             seen_ms = excluded.seen_ms WHERE excluded.count > event_marks.count",
        )
        .bind(&e.cluster_id)
        .bind(&e.uid)
        .bind(e.count)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
