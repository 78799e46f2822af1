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

/// The blocks a block replaces, as `(replica, name)`: an entry
/// `replica/name` (written by the compactor, which merges across replicas)
/// names its replica; a bare name (a replica's own local compaction)
/// belongs to the block's replica.
pub fn replaced_keys(b: &RemoteBlock) -> impl Iterator<Item = (String, String)> + '_ {
    b.meta.replaces.iter().map(|r| match r.split_once('/') {
        Some((replica, name)) => (replica.to_string(), name.to_string()),
        None => (b.replica.clone(), r.clone()),
    })
}

/// [`replaced_keys`] as `replica/name` strings.
pub fn qualified_replaces(b: &RemoteBlock) -> impl Iterator<Item = String> + '_ {
    replaced_keys(b).map(|(r, n)| format!("{r}/{n}"))
}

/// The blocks readers should use: those no other block replaces.
pub fn live(blocks: Vec<RemoteBlock>) -> Vec<RemoteBlock> {
    let replaced: std::collections::HashSet<(String, String)> =
        blocks.iter().flat_map(replaced_keys).collect();
    blocks
        .into_iter()
        .filter(|b| !replaced.contains(&(b.replica.clone(), b.meta.name.clone())))
        .collect()
}

/// Names of `replica`'s blocks the bucket holds or has merged away: an
/// uploader never uploads these again (a block the compactor merged and
/// deleted must not come back after a restart).
pub fn known_names(blocks: &[RemoteBlock], replica: &str) -> std::collections::HashSet<String> {
    blocks
        .iter()
        .filter(|b| b.replica == replica)
        .map(|b| b.meta.name.clone())
        .chain(
            blocks
                .iter()
                .flat_map(replaced_keys)
                .filter(|(r, _)| r == replica)
                .map(|(_, n)| n),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(replica: &str, name: &str, replaces: &[&str]) -> RemoteBlock {
        RemoteBlock {
            replica: replica.into(),
            meta: BlockMeta {
                name: name.into(),
                partition: 0,
                min_t: 0,
                max_t: 0,
                samples: 0,
                series: 0,
                bytes: 0,
                format: crate::block::CHUNK_FORMAT,
                replaces: replaces.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    #[test]
    fn live_and_known_follow_local_and_cross_replica_compaction() {
        let all = vec![
            b("a", "1", &[]),
            b("a", "3", &["1", "2"]),
            b("b", "1", &[]),
            b("c", "9", &["b/1", "a/0"]),
        ];
        let names: Vec<(String, String)> = live(all.clone())
            .into_iter()
            .map(|b| (b.replica, b.meta.name))
            .collect();
        assert_eq!(names, [("a".into(), "3".into()), ("c".into(), "9".into())]);
        let mut known: Vec<String> = known_names(&all, "a").into_iter().collect();
        known.sort();
        assert_eq!(known, ["0", "1", "2", "3"]);
        assert!(known_names(&all, "b").contains("1"));
    }
}
