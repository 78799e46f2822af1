//! Cluster events (TKEStack's PersistentEvent): every imported cluster's
//! core v1 Events are watched (list, then watch from the list's
//! resourceVersion with bookmarks, re-listing after 410 Gone), de-duplicated
//! by `(uid, count)`, and POSTed in batches to the aggregator at
//! `{aggregator_url}/api/v1/events`.
//!
//! Delivery is at least once and never silently dropped: a batch is retried
//! with back-off until the aggregator acknowledges it (the watchers pause
//! when the bounded buffer is full), and only acknowledged `(uid, count)`
//! marks are persisted, so after a restart the re-list resends exactly what
//! was not acknowledged.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Platform;
use crate::kube_api::WatchItem;
use crate::store::now_ms;

/// Self-metrics of event forwarding.
#[derive(Clone, Default)]
pub struct EventMetrics {
    /// Events acknowledged by the aggregator.
    pub forwarded: Counter,
    /// Duplicate events dropped (already seen `(uid, count)`).
    pub duplicates: Counter,
    /// Failed POSTs to the aggregator (retried).
    pub post_failures: Counter,
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
    }
}

/// The object an event is about.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InvolvedObject {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Uid.
    pub uid: String,
}

/// One event as the aggregator receives it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EventRecord {
    /// Platform cluster id.
    pub cluster_id: String,
    /// Namespace.
    pub namespace: String,
    /// Event object name.
    pub name: String,
    /// Event object uid.
    pub uid: String,
    /// Reason (`BackOff`, `Scheduled`…).
    pub reason: String,
    /// Message.
    pub message: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Occurrences.
    pub count: i64,
    /// First occurrence (RFC 3339), empty if unknown.
    pub first_timestamp: String,
    /// Last occurrence (RFC 3339), empty if unknown.
    pub last_timestamp: String,
    /// The object it is about.
    pub involved_object: InvolvedObject,
    /// Reporting component.
    pub source_component: String,
    /// Event resourceVersion.
    pub resource_version: String,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// Converts a core v1 Event (as JSON) to a record.
pub fn record_of(cluster_id: &str, ev: &Value) -> EventRecord {
    let m = &ev["metadata"];
    let series = &ev["series"];
    let count = ev["count"]
        .as_i64()
        .or_else(|| series["count"].as_i64())
        .unwrap_or(1);
    let first = Some(s(&ev["firstTimestamp"]))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| s(&ev["eventTime"]));
    let last = Some(s(&ev["lastTimestamp"]))
        .filter(|t| !t.is_empty())
        .or_else(|| Some(s(&series["lastObservedTime"])).filter(|t| !t.is_empty()))
        .unwrap_or_else(|| first.clone());
    let io = &ev["involvedObject"];
    let source = Some(s(&ev["source"]["component"]))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| s(&ev["reportingComponent"]));
    EventRecord {
        cluster_id: cluster_id.to_string(),
        namespace: s(&m["namespace"]),
        name: s(&m["name"]),
        uid: s(&m["uid"]),
        reason: s(&ev["reason"]),
        message: s(&ev["message"]),
        kind: s(&ev["type"]),
        count,
        first_timestamp: first,
        last_timestamp: last,
        involved_object: InvolvedObject {
            kind: s(&io["kind"]),
            name: s(&io["name"]),
            namespace: s(&io["namespace"]),
            uid: s(&io["uid"]),
        },
        source_component: source,
        resource_version: s(&m["resourceVersion"]),
    }
}

/// Remembers the highest `count` seen per uid, forgetting the oldest uids
/// beyond `capacity`.
pub struct Dedupe {
    seen: HashMap<String, i64>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Dedupe {
    /// Empty, holding at most `capacity` uids.
    pub fn new(capacity: usize) -> Dedupe {
        Dedupe {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// True when `(uid, count)` is new (and remembers it).
    pub fn admit(&mut self, uid: &str, count: i64) -> bool {
        match self.seen.get_mut(uid) {
            Some(c) if *c >= count => false,
            Some(c) => {
                *c = count;
                true
            }
            None => {
                if self.order.len() >= self.capacity
                    && let Some(old) = self.order.pop_front()
                {
                    self.seen.remove(&old);
                }
                self.order.push_back(uid.to_string());
                self.seen.insert(uid.to_string(), count);
                true
            }
        }
    }
}

/// Runs the watchers and the forwarder until `stop`.
pub async fn run(platform: Arc<Platform>, stop: CancellationToken) {
    let Some(url) = platform.config.aggregator_url.clone() else {
        tracing::info!("platform: aggregator_url unset; cluster events are not watched");
        stop.cancelled().await;
        return;
    };
    let url = format!("{}/api/v1/events", url.trim_end_matches('/'));
    let (tx, rx) = mpsc::channel::<EventRecord>(platform.config.events.max_buffered);
    let forwarder = tokio::spawn(forward(platform.clone(), url, rx, stop.clone()));
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
                            tx.clone(),
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
    drop(tx);
    let _ = forwarder.await;
}

async fn cluster_ids(p: &Platform) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query("SELECT id FROM clusters")
        .fetch_all(&p.store.pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
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

async fn watch_cluster(
    p: Arc<Platform>,
    cluster: String,
    tx: mpsc::Sender<EventRecord>,
    stop: CancellationToken,
) {
    let mut dedupe = Dedupe::new(p.config.events.dedupe_capacity);
    if let Err(e) = load_marks(&p, &cluster, &mut dedupe).await {
        tracing::warn!(cluster = %cluster, error = %e, "platform: cannot load event marks");
    }
    let mut backoff = Duration::from_millis(500);
    while !stop.is_cancelled() {
        let api = match p.cluster_api(&cluster).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(cluster = %cluster, error = %e.message, "platform: no client for event watch");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let mut stream = api.watch_events();
        loop {
            let item = tokio::select! {
                _ = stop.cancelled() => return,
                i = stream.next() => i,
            };
            match item {
                None => break,
                Some(Ok(WatchItem::Restarted)) => {
                    tracing::debug!(cluster = %cluster, "platform: event watch (re)listing");
                }
                Some(Ok(WatchItem::Event(ev))) => {
                    backoff = Duration::from_millis(500);
                    let Ok(json) = serde_json::to_value(&*ev) else {
                        continue;
                    };
                    let rec = record_of(&cluster, &json);
                    if rec.uid.is_empty() || !dedupe.admit(&rec.uid, rec.count) {
                        p.metrics.duplicates.inc();
                        continue;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        r = tx.send(rec) => if r.is_err() { return },
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(cluster = %cluster, error = %e, "platform: event watch error");
                }
            }
        }
    }
}

async fn forward(
    p: Arc<Platform>,
    url: String,
    mut rx: mpsc::Receiver<EventRecord>,
    stop: CancellationToken,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let max = p.config.events.batch_size;
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            e = rx.recv() => match e { Some(e) => e, None => return },
        };
        let mut batch = vec![first];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let body = serde_json::json!({ "events": batch });
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = http.post(&url).json(&body).send().await;
            match result {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => {
                    tracing::warn!(status = %r.status(), url = %url, "platform: aggregator refused events; retrying")
                }
                Err(e) => {
                    tracing::warn!(error = %e, url = %url, "platform: cannot post events; retrying")
                }
            }
            p.metrics.post_failures.inc();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        p.metrics.forwarded.inc_by(batch.len() as u64);
        if let Err(e) = save_marks(&p, &batch).await {
            tracing::warn!(error = %e, "platform: cannot save event marks");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_by_uid_and_count() {
        let mut d = Dedupe::new(2);
        assert!(d.admit("a", 1));
        assert!(!d.admit("a", 1));
        assert!(d.admit("a", 2));
        assert!(!d.admit("a", 1));
        assert!(d.admit("b", 1));
        assert!(d.admit("c", 1)); // evicts "a"
        assert!(d.admit("a", 2));
    }

    #[test]
    fn records_fall_back_to_events_k8s_io_fields() {
        let ev = serde_json::json!({"metadata": {"name": "e", "namespace": "n", "uid": "u", "resourceVersion": "7"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "series": {"count": 4, "lastObservedTime": "2026-01-01T00:05:00.000000Z"},
            "reportingComponent": "scheduler", "reason": "FailedScheduling", "type": "Warning",
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "n", "uid": "pu"}});
        let r = record_of("c1", &ev);
        assert_eq!(r.count, 4);
        assert_eq!(r.first_timestamp, "2026-01-01T00:00:00.000000Z");
        assert_eq!(r.last_timestamp, "2026-01-01T00:05:00.000000Z");
        assert_eq!(r.source_component, "scheduler");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["type"], "Warning");
        assert_eq!(j["involved_object"]["uid"], "pu");
    }
}
