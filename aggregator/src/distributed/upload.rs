//! Uploading a replica's flushed (and locally compacted) blocks to the
//! bucket, and — on the one replica with `object_store.compactor: true` —
//! the bucket's clean-up: deleting blocks replaced by compaction and blocks
//! past `aggregator.retention_time`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::bucket::BlockBucket;
use crate::store::Store;

/// Uploads the blocks of one replica.
pub struct Uploader {
    bucket: BlockBucket,
    replica: String,
    store: Arc<Store>,
    compactor: bool,
    uploads: prometheus_client::metrics::counter::Counter,
    uploaded: tokio::sync::Mutex<Option<HashSet<String>>>,
}

impl Uploader {
    /// An uploader of `store`'s blocks under `replica`.
    pub fn new(
        bucket: BlockBucket,
        replica: String,
        store: Arc<Store>,
        compactor: bool,
        uploads: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        Uploader {
            bucket,
            replica,
            store,
            compactor,
            uploads,
            uploaded: tokio::sync::Mutex::new(None),
        }
    }

    /// Uploads every local block not yet in the bucket; then, on the
    /// compactor, cleans the bucket up.
    pub async fn sync_once(&self) -> anyhow::Result<()> {
        let mut guard = self.uploaded.lock().await;
        if guard.is_none() {
            *guard = Some(
                self.bucket
                    .names(&self.replica)
                    .await?
                    .into_iter()
                    .collect(),
            );
        }
        let uploaded = guard.as_mut().expect("set above");
        for b in self.store.blocks() {
            if uploaded.contains(&b.meta.name) {
                continue;
            }
            match self.bucket.upload(&self.replica, &b).await {
                Ok(()) => {
                    tracing::info!(block = %b.meta.name, replica = %self.replica, "uploaded block");
                    uploaded.insert(b.meta.name.clone());
                    self.uploads.inc();
                }
                // Compacted away locally while uploading: the compacted
                // block carries the same samples and is uploaded instead.
                Err(e) if !b.dir.exists() => {
                    tracing::debug!(block = %b.meta.name, "block vanished before upload: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        drop(guard);
        if self.compactor {
            self.clean_bucket().await?;
        }
        Ok(())
    }

    async fn clean_bucket(&self) -> anyhow::Result<()> {
        let all = self.bucket.list().await?;
        let live: HashSet<(String, String)> = super::bucket::live(all.clone())
            .into_iter()
            .map(|b| (b.replica, b.meta.name))
            .collect();
        let rt = self.store.config().retention_time.as_millis() as i64;
        let max_t = all.iter().map(|b| b.meta.max_t).max().unwrap_or(i64::MIN);
        for b in &all {
            let replaced = !live.contains(&(b.replica.clone(), b.meta.name.clone()));
            let expired = rt > 0 && b.meta.max_t < max_t.saturating_sub(rt);
            if replaced || expired {
                self.bucket.delete(&b.replica, &b.meta.name).await?;
                tracing::info!(block = %b.meta.name, replica = %b.replica, replaced, expired, "deleted block from the bucket");
            }
        }
        Ok(())
    }

    /// Syncs every `interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.sync_once().await {
                tracing::warn!("block upload: {e:#}");
            }
        }
    }
}
