//! Keeps each cluster's health current: every
//! `platform.cluster_health_interval` the API server's `/version` is asked
//! for; phase (`Running`/`Failed`), the `Reachable` condition, version and
//! last-seen time are updated.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::Platform;
use crate::api::clusters::Condition;
use crate::store::now_rfc3339;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until `stop`.
pub async fn run(platform: Arc<Platform>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(platform.config.cluster_health_interval) => {}
        }
        if let Err(e) = probe_all(&platform).await {
            tracing::warn!(error = %e, "platform: cluster health round failed");
        }
    }
}

/// Probes every cluster once.
pub async fn probe_all(p: &Platform) -> anyhow::Result<()> {
    let ids: Vec<String> = sqlx::query("SELECT id FROM clusters")
        .fetch_all(&p.store.pool)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    for id in ids {
        let result = match p.cluster_api(&id).await {
            Ok(api) => match tokio::time::timeout(PROBE_TIMEOUT, api.version()).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(_) => Err("timed out".to_string()),
            },
            Err(e) => Err(e.message),
        };
        let now = now_rfc3339();
        let (ok, message) = match &result {
            Ok(_) => (true, "API server answered".to_string()),
            Err(e) => (false, e.clone()),
        };
        let conditions = serde_json::to_string(&[Condition {
            kind: "Reachable".into(),
            status: if ok { "True" } else { "False" }.into(),
            message,
            last_probe_time: now.clone(),
        }])?;
        match result {
            Ok(version) => {
                sqlx::query(
                    "UPDATE clusters SET phase = 'Running', version = $2, conditions = $3, \
                     last_seen = $4 WHERE id = $1",
                )
                .bind(&id)
                .bind(version)
                .bind(conditions)
                .bind(now)
                .execute(&p.store.pool)
                .await?;
            }
            Err(_) => {
                sqlx::query("UPDATE clusters SET phase = 'Failed', conditions = $2 WHERE id = $1")
                    .bind(&id)
                    .bind(conditions)
                    .execute(&p.store.pool)
                    .await?;
            }
        }
    }
    Ok(())
}
