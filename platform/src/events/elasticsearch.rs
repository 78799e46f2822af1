//! The Elasticsearch / OpenSearch output: the `elasticsearch` crate's bulk
//! API, one `index` action per event with `_id` = `cluster_id:uid:count`
//! (a re-sent event overwrites itself), the index named from the event's
//! last timestamp (`%Y`, `%m`, `%d`). A failed request, or items refused
//! with 429 or 5xx, fail the batch, which is retried; items refused for good
//! (4xx: mapping errors) are logged and counted, never retried. Targets the
//! Elasticsearch 7/8/9 and OpenSearch 1/2/3 bulk API; tested against the
//! osmem stand-in (an emulator, not the real engine).

use tidewatch_common::es_bulk::{BulkClient, BulkReply};

use super::record::EventRecord;
use crate::config::EsOutput;

/// Bulk client, one per host; moves to the next host on failure.
pub struct EsSink {
    client: BulkClient,
    index: String,
}

/// The index of an event: `pattern` with `%Y`, `%m`, `%d` from its last
/// timestamp (now when that does not parse).
pub fn index_name(pattern: &str, e: &EventRecord) -> String {
    let t = e.last_seen().unwrap_or_else(chrono::Utc::now);
    tidewatch_common::es_bulk::index_name(pattern, t)
}

/// The document id of an event.
pub fn doc_id(e: &EventRecord) -> String {
    format!("{}:{}:{}", e.cluster_id, e.uid, e.count)
}

impl EsSink {
    /// Clients for `cfg.hosts`.
    pub fn new(cfg: &EsOutput) -> anyhow::Result<EsSink> {
        anyhow::ensure!(!cfg.hosts.is_empty(), "events.elasticsearch.hosts is empty");
        Ok(EsSink {
            client: BulkClient::new(&cfg.hosts, cfg.username.as_deref(), cfg.password.as_deref())?,
            index: cfg.index.clone(),
        })
    }

    /// Indexes `events`.
    pub async fn send(&mut self, events: &[EventRecord]) -> Result<(), String> {
        if events.is_empty() {
            return Ok(());
        }
        let mut body: Vec<Vec<u8>> = Vec::with_capacity(events.len() * 2);
        for e in events {
            let action = serde_json::json!({"index": {"_index": index_name(&self.index, e), "_id": doc_id(e)}});
            body.push(serde_json::to_vec(&action).expect("JSON to memory"));
            let mut doc = serde_json::to_value(e).expect("JSON to memory");
            doc["@timestamp"] = doc["last_timestamp"].clone();
            body.push(serde_json::to_vec(&doc).expect("JSON to memory"));
        }
        let items = match self.client.send(body, events.len()).await? {
            BulkReply::Items(items) => items,
            BulkReply::Refused { status, body } => {
                tracing::error!(%status, response = %body, "platform: Elasticsearch refused an event batch; dropped");
                return Ok(());
            }
        };
        let mut retry = None;
        for (e, item) in events.iter().zip(&items) {
            if item.retryable() {
                retry.get_or_insert_with(|| {
                    format!("bulk item HTTP {}: {}", item.status, item.reason())
                });
            } else if !item.stored() {
                tracing::error!(id = %doc_id(e), error = %item.reason(), "platform: Elasticsearch refused an event; dropped");
            }
        }
        match retry {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
