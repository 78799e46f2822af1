//! Uploading a replica's flushed (and locally compacted) blocks to the
//! bucket. Clean-up, retention and cross-replica compaction in the bucket
//! belong to the one compactor ([`super::compactor`]).

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
    uploads: prometheus_client::metrics::counter::Counter,
    uploaded: tokio::sync::Mutex<Option<HashSet<String>>>,
}

impl Uploader {
    /// An uploader of `store`'s blocks under `replica`.
    pub fn new(
        bucket: BlockBucket,
        replica: String,
        store: Arc<Store>,
        uploads: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        Uploader {
            bucket,
            replica,
            store,
            uploads,
            uploaded: tokio::sync::Mutex::new(None),
        }
    }

    /// Uploads every local block the bucket neither holds nor has merged
    /// away.
    pub async fn sync_once(&self) -> anyhow::Result<()> {
        let mut guard = self.uploaded.lock().await;
        if guard.is_none() {
            let all = self.bucket.list().await?;
            *guard = Some(super::bucket::known_names(&all, &self.replica));
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
