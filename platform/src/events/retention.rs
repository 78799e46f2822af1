//! Per-cluster event retention: every `events.retention_interval`, each
//! cluster's events last seen before `now - retention` are deleted from the
//! aggregator's `events` table (`DELETE /api/v1/events?cluster_id=&before=`)
//! and its de-duplication marks older than that are pruned (the watcher
//! skips events older than the retention, so a pruned mark is never needed).

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::Platform;

/// Runs retention passes until `stop`.
pub async fn run(p: Arc<Platform>, stop: CancellationToken) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    loop {
        if let Err(e) = pass(&p, &http).await {
            tracing::warn!(error = %format!("{e:#}"), "platform: event retention pass failed");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(p.config.events.retention_interval) => {}
        }
    }
}

/// One pass over every cluster.
pub async fn pass(p: &Platform, http: &reqwest::Client) -> anyhow::Result<()> {
    let rows = sqlx::query("SELECT id, name FROM clusters")
        .fetch_all(&p.store.pool)
        .await?;
    let now = chrono::Utc::now();
    for r in rows {
        let id: String = r.try_get(0)?;
        let name: String = r.try_get(1)?;
        let cutoff = now - p.config.events.retention_of(&id, &name);
        sqlx::query("DELETE FROM event_marks WHERE cluster_id = $1 AND seen_ms < $2")
            .bind(&id)
            .bind(cutoff.timestamp_millis())
            .execute(&p.store.pool)
            .await?;
        let Some(base) = &p.config.aggregator_url else {
            continue;
        };
        let url = format!("{}/api/v1/events", base.trim_end_matches('/'));
        let before = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let resp = http
            .delete(&url)
            .query(&[("cluster_id", id.as_str()), ("before", before.as_str())])
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            anyhow::bail!("DELETE {url} for cluster {id}: HTTP {status}: {body}");
        }
        let n = body["data"]["deleted"].as_u64().unwrap_or(0);
        if n > 0 {
            tracing::info!(cluster = %id, deleted = n, "platform: event retention");
            p.metrics.retention_deleted.inc_by(n);
        }
    }
    Ok(())
}
