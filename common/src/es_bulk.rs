//! Elasticsearch / OpenSearch bulk requests over the `elasticsearch` crate,
//! shared by the collector's log sink and the platform's event output: one
//! client per host (a failed request moves to the next), basic auth, the
//! classification of a bulk reply, and index names with a date pattern.
//! Targets the Elasticsearch 7/8/9 and OpenSearch 1/2/3 bulk API; tested
//! against the osmem stand-in (an emulator, not the real engine).

use std::time::Duration;

use chrono::{DateTime, Utc};
use elasticsearch::auth::Credentials;
use elasticsearch::http::Url;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::{BulkParts, Elasticsearch};

/// Bulk clients for a list of hosts.
pub struct BulkClient {
    clients: Vec<Elasticsearch>,
    current: usize,
}

/// What a bulk request that reached a server came back with.
#[derive(Debug)]
pub enum BulkReply {
    /// The request as a whole was refused (a 4xx other than 429): sending
    /// it again cannot succeed.
    Refused {
        /// HTTP status.
        status: u16,
        /// The response body.
        body: serde_json::Value,
    },
    /// One result per action, in the order of the actions.
    Items(Vec<BulkItem>),
}

/// The result of one bulk action.
#[derive(Debug)]
pub struct BulkItem {
    /// HTTP status of the action.
    pub status: u16,
    /// The `error` object when it failed.
    pub error: Option<serde_json::Value>,
}

impl BulkItem {
    /// Stored (2xx).
    pub fn stored(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Worth sending again (429 or 5xx).
    pub fn retryable(&self) -> bool {
        self.status == 429 || self.status >= 500
    }

    /// Why it failed, for logs and dead letters.
    pub fn reason(&self) -> String {
        self.error
            .as_ref()
            .map_or_else(|| format!("status {}", self.status), |e| e.to_string())
    }
}

impl BulkClient {
    /// A client per host in `hosts` (`http(s)://host:port`), with basic auth
    /// when `user` is set.
    pub fn new(
        hosts: &[String],
        user: Option<&str>,
        password: Option<&str>,
    ) -> anyhow::Result<BulkClient> {
        let mut clients = Vec::new();
        for h in hosts {
            let url = Url::parse(h).map_err(|e| anyhow::anyhow!("host {h:?}: {e}"))?;
            let mut b = TransportBuilder::new(SingleNodeConnectionPool::new(url))
                .disable_proxy()
                .timeout(Duration::from_secs(30));
            if let Some(u) = user {
                b = b.auth(Credentials::Basic(
                    u.to_string(),
                    password.unwrap_or("").to_string(),
                ));
            }
            clients.push(Elasticsearch::new(b.build()?));
        }
        anyhow::ensure!(!clients.is_empty(), "no Elasticsearch hosts");
        Ok(BulkClient {
            clients,
            current: 0,
        })
    }

    /// Sends one bulk request of `actions` actions (`body`: NDJSON lines,
    /// each action followed by its document). `Err` when the request failed
    /// as a whole and may succeed later (connection, 429, 5xx, an
    /// unreadable or mismatched reply); the next request then goes to the
    /// next host.
    pub async fn send(&mut self, body: Vec<Vec<u8>>, actions: usize) -> Result<BulkReply, String> {
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
            return Ok(BulkReply::Refused {
                status: status.as_u16(),
                body: v,
            });
        }
        let items: Vec<BulkItem> = v
            .get("items")
            .and_then(|i| i.as_array())
            .map(|items| {
                items
                    .iter()
                    .map(|item| {
                        // {"create": {"status": 201, …}}: one key, the action.
                        let r = item.as_object().and_then(|o| o.values().next());
                        BulkItem {
                            status: r
                                .and_then(|r| r.get("status"))
                                .and_then(|s| s.as_u64())
                                .map_or(0, |s| s.min(u16::MAX as u64) as u16),
                            error: r.and_then(|r| r.get("error")).cloned(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        if items.len() != actions {
            return Err(format!(
                "bulk response has {} items for {actions} actions",
                items.len()
            ));
        }
        Ok(BulkReply::Items(items))
    }
}

/// `pattern` with `%Y`, `%m`, `%d` taken from `t` (UTC).
pub fn index_name(pattern: &str, t: DateTime<Utc>) -> String {
    if !pattern.contains('%') {
        return pattern.to_string();
    }
    pattern
        .replace("%Y", &t.format("%Y").to_string())
        .replace("%m", &t.format("%m").to_string())
        .replace("%d", &t.format("%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_expand_the_date() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(index_name("logs-%Y.%m.%d", t), "logs-2023.11.14");
        assert_eq!(index_name("events", t), "events");
    }

    #[test]
    fn items_classify() {
        let item = |status, error| BulkItem { status, error };
        assert!(item(201, None).stored());
        assert!(item(429, None).retryable() && item(503, None).retryable());
        assert!(!item(400, None).retryable() && !item(409, None).stored());
        assert_eq!(item(400, None).reason(), "status 400");
        assert!(BulkClient::new(&[], None, None).is_err());
        assert!(BulkClient::new(&["not a url".into()], None, None).is_err());
    }
}
