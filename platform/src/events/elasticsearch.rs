//! The Elasticsearch / OpenSearch output: the `elasticsearch` crate's bulk
//! API, one `index` action per event with `_id` = `cluster_id:uid:count`
//! (a re-sent event overwrites itself), the index named from the event's
//! last timestamp (`%Y`, `%m`, `%d`). A failed request, or items refused
//! with 429 or 5xx, fail the batch, which is retried; items refused for good
//! (4xx: mapping errors) are logged and counted, never retried. Targets the
//! Elasticsearch 7/8/9 and OpenSearch 1/2/3 bulk API; tested against the
//! osmem stand-in (an emulator, not the real engine).

use std::time::Duration;

use elasticsearch::auth::Credentials;
use elasticsearch::http::Url;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::{BulkParts, Elasticsearch};

use super::record::EventRecord;
use crate::config::EsOutput;

/// Bulk client, one per host; moves to the next host on failure.
pub struct EsSink {
    clients: Vec<Elasticsearch>,
    current: usize,
    index: String,
}

/// The index of an event: `pattern` with `%Y`, `%m`, `%d` from its last
/// timestamp (now when that does not parse).
pub fn index_name(pattern: &str, e: &EventRecord) -> String {
    if !pattern.contains('%') {
        return pattern.to_string();
    }
    let t = e.last_seen().unwrap_or_else(chrono::Utc::now);
    pattern
        .replace("%Y", &t.format("%Y").to_string())
        .replace("%m", &t.format("%m").to_string())
        .replace("%d", &t.format("%d").to_string())
}

/// The document id of an event.
pub fn doc_id(e: &EventRecord) -> String {
    format!("{}:{}:{}", e.cluster_id, e.uid, e.count)
}

impl EsSink {
    /// Clients for `cfg.hosts`.
    pub fn new(cfg: &EsOutput) -> anyhow::Result<EsSink> {
        let mut clients = Vec::new();
        for h in &cfg.hosts {
            let url = Url::parse(h).map_err(|e| anyhow::anyhow!("host {h:?}: {e}"))?;
            let mut b = TransportBuilder::new(SingleNodeConnectionPool::new(url))
                .disable_proxy()
                .timeout(Duration::from_secs(30));
            if let Some(u) = &cfg.username {
                b = b.auth(Credentials::Basic(
                    u.clone(),
                    cfg.password.clone().unwrap_or_default(),
                ));
            }
            clients.push(Elasticsearch::new(b.build()?));
        }
        anyhow::ensure!(!clients.is_empty(), "events.elasticsearch.hosts is empty");
        Ok(EsSink {
            clients,
            current: 0,
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
        let client = &self.clients[self.current % self.clients.len()];
        let resp = match client.bulk(BulkParts::None).body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                self.current += 1;
                return Err(format!("bulk request: {e}"));
            }
        };
        let status = resp.status_code();
        if status.as_u16() == 429 || status.is_server_error() {
            self.current += 1;
            return Err(format!("bulk request: HTTP {status}"));
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("bulk response: {e}"))?;
        if !status.is_success() {
            tracing::error!(%status, response = %v, "platform: Elasticsearch refused an event batch; dropped");
            return Ok(());
        }
        if v["errors"].as_bool() != Some(true) {
            return Ok(());
        }
        let mut retry = None;
        for item in v["items"].as_array().into_iter().flatten() {
            let Some(r) = item.as_object().and_then(|o| o.values().next()) else {
                continue;
            };
            let code = r["status"].as_u64().unwrap_or(0);
            if code == 429 || code >= 500 {
                retry.get_or_insert_with(|| format!("bulk item HTTP {code}: {}", r["error"]));
            } else if code >= 300 {
                tracing::error!(id = %r["_id"], error = %r["error"], "platform: Elasticsearch refused an event; dropped");
            }
        }
        match retry {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
