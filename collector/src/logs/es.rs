//! The Elasticsearch sink: the `elasticsearch` crate's bulk API, index name
//! with a date pattern (`logs-%Y.%m.%d`, from the record time), basic auth
//! (the requests themselves: [`tidewatch_common::es_bulk`]).
//! Every record is sent with the `create` action and `_id` = its record id,
//! so a re-sent record is refused with 409 `version_conflict_engine_exception`
//! instead of stored twice; that answer counts as delivered. Items the server rejects with 429 or 5xx are retried with
//! backoff up to `max_item_retries` times; other item failures, and items
//! out of retries, go to the dead-letter file and are counted. A whole
//! request failing (connection, 429, 5xx) fails the batch, which the
//! pipeline retries with backoff. Targets the Elasticsearch 7/8/9 and
//! OpenSearch 1/2/3 bulk API; tested against the osmem stand-in.

use std::time::Duration;

use tidewatch_common::es_bulk::{BulkClient, BulkReply};

use super::record::Record;
use super::sink::{DeadLetter, SinkMetrics, document};

/// Bulk client.
pub struct EsSink {
    client: BulkClient,
    index: String,
    max_item_retries: u32,
    dead: DeadLetter,
    metrics: SinkMetrics,
}

/// Expands `%Y`, `%m`, `%d` from a timestamp (UTC).
pub fn index_name(pattern: &str, ts_ns: i64) -> String {
    tidewatch_common::es_bulk::index_name(pattern, chrono::DateTime::from_timestamp_nanos(ts_ns))
}

impl EsSink {
    /// A client per host; requests go to one and move to the next on failure.
    pub fn new(
        hosts: &[String],
        index: &str,
        user: Option<&str>,
        password: Option<&str>,
        max_item_retries: u32,
        dead: DeadLetter,
        metrics: SinkMetrics,
    ) -> anyhow::Result<EsSink> {
        Ok(EsSink {
            client: BulkClient::new(hosts, user, password)?,
            index: index.to_string(),
            max_item_retries,
            dead,
            metrics,
        })
    }

    /// Indexes `records`, retrying rejected items; `Err` when a whole
    /// request failed.
    pub async fn send(&mut self, records: &[Record]) -> Result<(), String> {
        let mut pending: Vec<&Record> = records.iter().collect();
        let mut attempt = 0u32;
        let mut delay = Duration::from_millis(200);
        while !pending.is_empty() {
            let mut body: Vec<Vec<u8>> = Vec::with_capacity(pending.len() * 2);
            for r in &pending {
                let action = serde_json::json!({"create": {"_index": index_name(&self.index, r.ts), "_id": format!("{:016x}", r.rid)}});
                body.push(serde_json::to_vec(&action).expect("JSON to memory"));
                let mut doc = Vec::with_capacity(r.line.len() + 128);
                document(r, &mut doc);
                body.push(doc);
            }
            let items = match self.client.send(body, pending.len()).await {
                Ok(BulkReply::Items(items)) => items,
                Ok(BulkReply::Refused { status, body }) => {
                    // The request as a whole is refused (bad request): never retry.
                    for r in &pending {
                        self.dead.write(r, &format!("bulk HTTP {status}: {body}"));
                    }
                    return Ok(());
                }
                Err(e) => {
                    self.metrics.failures.inc();
                    return Err(e);
                }
            };
            attempt += 1;
            let mut retry = Vec::new();
            for (r, item) in pending.iter().zip(&items) {
                if item.stored() || item.status == 409 {
                    // 409: a re-sent record, stored by an earlier attempt.
                    self.metrics.sent.inc();
                } else if item.retryable() && attempt <= self.max_item_retries {
                    self.metrics.item_retries.inc();
                    retry.push(*r);
                } else {
                    self.dead.write(r, &item.reason());
                }
            }
            pending = retry;
            if !pending.is_empty() {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tidewatch_common::Labels;

    /// A scripted bulk endpoint (a protocol-level stand-in for
    /// Elasticsearch): answers the n-th request with `script[n]`.
    async fn scripted(script: Vec<(u16, serde_json::Value)>) -> (String, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let app = axum::Router::new().route(
            "/_bulk",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let n = c.fetch_add(1, Ordering::SeqCst);
                // Basic auth of elastic:secret.
                assert_eq!(
                    headers.get("authorization").and_then(|v| v.to_str().ok()),
                    Some("Basic ZWxhc3RpYzpzZWNyZXQ=")
                );
                let (status, json) = script[n.min(script.len() - 1)].clone();
                // Every action is a `create` naming an _id derived from the record id.
                assert!(
                    body.contains("\"_id\"") && body.contains("\"create\""),
                    "{body}"
                );
                assert!(!body.contains("\"index\":{"), "{body}");
                async move {
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        [("x-elastic-product", "Elasticsearch")],
                        axum::Json(json),
                    )
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (url, calls)
    }

    fn rec(rid: u64) -> Record {
        Record {
            rid,
            ts: 1_714_557_600_000_000_000,
            labels: Arc::new(Labels::from_pairs([("app", "x")])),
            line: format!("line {rid}"),
        }
    }

    #[tokio::test]
    async fn item_failures_are_retried_or_dead_lettered() {
        let item = |st: u16| serde_json::json!({"create": {"status": st, "error": {"type": "x"}}});
        let (url, calls) = scripted(vec![
            (429, serde_json::json!({"error": "too many requests"})),
            (
                200,
                serde_json::json!({"errors": true, "items": [item(201), item(429), item(400), item(409)]}),
            ),
            (
                200,
                serde_json::json!({"errors": false, "items": [item(201)]}),
            ),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let m = SinkMetrics::default();
        let mut sink = EsSink::new(
            &[url],
            "logs-%Y.%m.%d",
            Some("elastic"),
            Some("secret"),
            3,
            DeadLetter::new(dir.path(), m.clone()),
            m.clone(),
        )
        .unwrap();
        let records = [rec(1), rec(2), rec(3), rec(4)];
        // A whole-request 429 fails the batch (the pipeline backs off and retries).
        assert!(sink.send(&records).await.unwrap_err().contains("429"));
        sink.send(&records).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // 201, 409 (stored by an earlier attempt), then the retried 429.
        assert_eq!(m.sent.get(), 3);
        assert_eq!(m.item_retries.get(), 1);
        assert_eq!(m.dead_lettered.get(), 1);
        assert_eq!(m.failures.get(), 1);
        let dead = std::fs::read_to_string(dir.path().join("dead-letter.ndjson")).unwrap();
        assert_eq!(dead.lines().count(), 1);
        assert!(dead.contains("line 3"), "{dead}");
    }

    #[test]
    fn index_pattern() {
        assert_eq!(
            index_name("logs-%Y.%m.%d", 1_714_557_600_000_000_000),
            "logs-2024.05.01"
        );
        assert_eq!(index_name("plain", 0), "plain");
    }
}
