//! The aggregator output: `POST {aggregator_url}/api/v1/events` with
//! `{"events": [...]}`; the aggregator stores an `(uid, count)` once, so a
//! re-sent batch is harmless.

use std::time::Duration;

use super::record::EventRecord;

/// HTTP client for the aggregator's event endpoint.
pub struct AggregatorSink {
    http: reqwest::Client,
    url: String,
}

impl AggregatorSink {
    /// A sink posting to `{base}/api/v1/events`.
    pub fn new(base: &str) -> anyhow::Result<AggregatorSink> {
        Ok(AggregatorSink {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            url: format!("{}/api/v1/events", base.trim_end_matches('/')),
        })
    }

    /// Posts `events`; any non-2xx answer is an error (retried).
    pub async fn send(&mut self, events: &[EventRecord]) -> Result<(), String> {
        let body = serde_json::json!({ "events": events });
        let r = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST {}: {e}", self.url))?;
        if r.status().is_success() {
            Ok(())
        } else {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            Err(format!("POST {}: HTTP {status}: {text}", self.url))
        }
    }
}
