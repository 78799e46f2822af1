//! The query replica's view of the bucket: blocks are listed every
//! `sync_interval`, downloaded once into the local cache directory
//! (immutable, so never re-fetched), and decoded into memory for selection.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use promql_parser::label::Matcher;
use tidewatch_common::Labels;
use tidewatch_promql::storage::Series;
use tokio_util::sync::CancellationToken;

use super::bucket::{BlockBucket, RemoteBlock, live};
use crate::block::{self, BlockMeta};

/// One series of a loaded block.
struct BlockSeries {
    labels: Labels,
    timestamps: Vec<i64>,
    values: Vec<f64>,
}

/// A block decoded into memory.
struct LoadedBlock {
    meta: BlockMeta,
    series: Vec<BlockSeries>,
}

/// Blocks of every replica, as of the last sync.
pub struct BlockCache {
    bucket: BlockBucket,
    dir: PathBuf,
    blocks: RwLock<HashMap<(String, String), Arc<LoadedBlock>>>,
}

/// Whether `labels` satisfy every matcher (a missing label is `""`).
pub fn matches(labels: &Labels, matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))
}

impl BlockCache {
    /// A cache of `bucket` under `dir`.
    pub fn new(bucket: BlockBucket, dir: PathBuf) -> Self {
        BlockCache {
            bucket,
            dir,
            blocks: RwLock::new(HashMap::new()),
        }
    }

    /// Lists the bucket; loads new live blocks, forgets replaced or
    /// deleted ones.
    pub async fn sync(&self) -> anyhow::Result<()> {
        let wanted = live(self.bucket.list().await?);
        let keys: Vec<(String, String)> = wanted
            .iter()
            .map(|b| (b.replica.clone(), b.meta.name.clone()))
            .collect();
        for b in wanted {
            let key = (b.replica.clone(), b.meta.name.clone());
            if self.blocks.read().contains_key(&key) {
                continue;
            }
            let loaded = self.load(&b).await?;
            self.blocks.write().insert(key, Arc::new(loaded));
        }
        let gone: Vec<(String, String)> = {
            let mut blocks = self.blocks.write();
            let gone = blocks
                .keys()
                .filter(|k| !keys.contains(k))
                .cloned()
                .collect::<Vec<_>>();
            for k in &gone {
                blocks.remove(k);
            }
            gone
        };
        for (replica, name) in gone {
            let _ = tokio::fs::remove_dir_all(self.dir.join(&replica).join(&name)).await;
        }
        Ok(())
    }

    async fn load(&self, b: &RemoteBlock) -> anyhow::Result<LoadedBlock> {
        let dir = self.dir.join(&b.replica).join(&b.meta.name);
        if !dir.join("meta.json").exists() {
            self.bucket.download(b, &dir).await?;
        }
        let meta = b.meta.clone();
        tokio::task::spawn_blocking(move || {
            let labels: HashMap<u64, Labels> = block::read_series(&dir)?.into_iter().collect();
            let mut series: HashMap<u64, BlockSeries> = HashMap::new();
            block::read_samples(&dir, |id, ts, vs| {
                let Some(l) = labels.get(&id) else { return };
                let s = series.entry(id).or_insert_with(|| BlockSeries {
                    labels: l.clone(),
                    timestamps: Vec::new(),
                    values: Vec::new(),
                });
                s.timestamps.extend_from_slice(ts);
                s.values.extend_from_slice(vs);
            })?;
            Ok(LoadedBlock {
                meta,
                series: series.into_values().collect(),
            })
        })
        .await?
    }

    /// The loaded blocks with samples in `[start, end]`.
    fn overlapping(&self, start: i64, end: i64) -> Vec<Arc<LoadedBlock>> {
        self.blocks
            .read()
            .values()
            .filter(|b| b.meta.max_t >= start && b.meta.min_t <= end)
            .cloned()
            .collect()
    }

    /// Samples in `[start, end]` of the series matching `matchers`, one
    /// entry per (block, series).
    pub fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<Series> {
        let blocks = self.overlapping(start, end);
        let mut out = Vec::new();
        for b in blocks {
            for s in &b.series {
                if !matches(&s.labels, matchers) {
                    continue;
                }
                let lo = s.timestamps.partition_point(|&t| t < start);
                let hi = s.timestamps.partition_point(|&t| t <= end);
                if lo < hi {
                    out.push(Series {
                        labels: s.labels.clone(),
                        timestamps: s.timestamps[lo..hi].to_vec(),
                        values: s.values[lo..hi].to_vec(),
                    });
                }
            }
        }
        out
    }

    /// Labels of the series matching `matchers` with a sample in
    /// `[start, end]` (no samples copied).
    pub fn series_labels(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<Labels> {
        let blocks = self.overlapping(start, end);
        let mut out = Vec::new();
        for b in blocks {
            for s in &b.series {
                let lo = s.timestamps.partition_point(|&t| t < start);
                if lo < s.timestamps.len()
                    && s.timestamps[lo] <= end
                    && matches(&s.labels, matchers)
                {
                    out.push(s.labels.clone());
                }
            }
        }
        out
    }

    /// Number of blocks loaded.
    pub fn len(&self) -> usize {
        self.blocks.read().len()
    }

    /// Whether no block is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Syncs every `interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.sync().await {
                tracing::warn!("block cache sync: {e:#}");
            }
        }
    }
}
