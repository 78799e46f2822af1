//! Blocks in S3-compatible object storage, through the `object_store`
//! crate.
//!
//! Layout: `<prefix>/blocks/<replica>/<block>/{data.parquet,series.parquet,meta.json}`
//! — the same files as a local block directory (`crate::block`).
//! `meta.json` is uploaded last, so a block is visible to readers only once
//! complete.

use std::path::Path as FsPath;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::config::ObjectStoreConfig;
use crate::block::{Block, BlockMeta};

/// Files of a block, in upload order (`meta.json` last).
const FILES: [&str; 3] = ["data.parquet", "series.parquet", "meta.json"];

/// A block found in the bucket.
#[derive(Clone, Debug)]
pub struct RemoteBlock {
    /// The replica that wrote it.
    pub replica: String,
    /// Its metadata.
    pub meta: BlockMeta,
}

/// The bucket holding every replica's blocks.
#[derive(Clone, Debug)]
pub struct BlockBucket {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl BlockBucket {
    /// Connects (lazily: no request is made here) using `cfg`, with unset
    /// fields taken from the `AWS_*` environment.
    pub fn new(cfg: &ObjectStoreConfig) -> anyhow::Result<BlockBucket> {
        let mut b = AmazonS3Builder::from_env();
        if !cfg.bucket.is_empty() {
            b = b.with_bucket_name(&cfg.bucket);
        }
        if !cfg.endpoint.is_empty() {
            b = b.with_endpoint(&cfg.endpoint);
        }
        if !cfg.region.is_empty() {
            b = b.with_region(&cfg.region);
        }
        if !cfg.access_key_id.is_empty() {
            b = b.with_access_key_id(&cfg.access_key_id);
        }
        if !cfg.secret_access_key.is_empty() {
            b = b.with_secret_access_key(&cfg.secret_access_key);
        }
        if cfg.allow_http {
            b = b.with_allow_http(true);
        }
        Ok(BlockBucket {
            store: Arc::new(b.build()?),
            prefix: Path::from(cfg.prefix.as_str()).join("blocks"),
        })
    }

    /// A bucket over any object store (tests).
    pub fn with_store(store: Arc<dyn ObjectStore>, prefix: &str) -> BlockBucket {
        BlockBucket {
            store,
            prefix: Path::from(prefix).join("blocks"),
        }
    }

    fn path(&self, replica: &str, block: &str, file: &str) -> Path {
        self.prefix.clone().join(replica).join(block).join(file)
    }

    /// Uploads a local block (data first, `meta.json` last).
    pub async fn upload(&self, replica: &str, block: &Block) -> anyhow::Result<()> {
        for f in FILES {
            let bytes = tokio::fs::read(block.dir.join(f)).await?;
            self.store
                .put(
                    &self.path(replica, &block.meta.name, f),
                    PutPayload::from(bytes),
                )
                .await?;
        }
        Ok(())
    }

    /// Every complete block in the bucket (those with a `meta.json`).
    pub async fn list(&self) -> anyhow::Result<Vec<RemoteBlock>> {
        let metas: Vec<Path> = self
            .store
            .list(Some(&self.prefix))
            .try_filter(|o| futures::future::ready(o.location.filename() == Some("meta.json")))
            .map_ok(|o| o.location)
            .try_collect()
            .await?;
        let mut out = Vec::with_capacity(metas.len());
        for p in metas {
            let parts: Vec<String> = p.parts().map(|s| s.as_ref().to_string()).collect();
            let Some(replica) = parts.len().checked_sub(3).map(|i| parts[i].clone()) else {
                continue;
            };
            let bytes = match self.store.get(&p).await {
                Ok(r) => r.bytes().await?,
                // Deleted by the compactor between list and get.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let meta: BlockMeta = serde_json::from_slice(&bytes)?;
            out.push(RemoteBlock { replica, meta });
        }
        Ok(out)
    }

    /// Names of the blocks of `replica` in the bucket.
    pub async fn names(&self, replica: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|b| b.replica == replica)
            .map(|b| b.meta.name)
            .collect())
    }

    /// Downloads a block into `dir` (written to a temporary name, renamed
    /// into place once complete).
    pub async fn download(&self, b: &RemoteBlock, dir: &FsPath) -> anyhow::Result<()> {
        let tmp = dir.with_extension("tmp");
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        tokio::fs::create_dir_all(&tmp).await?;
        for f in FILES {
            let bytes = self
                .store
                .get(&self.path(&b.replica, &b.meta.name, f))
                .await?
                .bytes()
                .await?;
            tokio::fs::write(tmp.join(f), &bytes).await?;
        }
        let _ = tokio::fs::remove_dir_all(dir).await;
        tokio::fs::rename(&tmp, dir).await?;
        Ok(())
    }

    /// Deletes a block (`meta.json` first, so readers stop seeing it).
    pub async fn delete(&self, replica: &str, block: &str) -> anyhow::Result<()> {
        for f in FILES.iter().rev() {
            match self.store.delete(&self.path(replica, block, f)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// The blocks readers should use: those not replaced by a compacted block
/// of the same replica.
pub fn live(blocks: Vec<RemoteBlock>) -> Vec<RemoteBlock> {
    let replaced: std::collections::HashSet<(String, String)> = blocks
        .iter()
        .flat_map(|b| {
            b.meta
                .replaces
                .iter()
                .map(|r| (b.replica.clone(), r.clone()))
        })
        .collect();
    blocks
        .into_iter()
        .filter(|b| !replaced.contains(&(b.replica.clone(), b.meta.name.clone())))
        .collect()
}
