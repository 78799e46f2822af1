//! The compactor role (`mode: compactor`): the one process that owns the
//! bucket's compaction and retention. Consumers (and standalone nodes)
//! only upload; every `sync_interval` the compactor
//!
//! 1. deletes blocks replaced by a compacted block (theirs or its own),
//! 2. deletes blocks past `aggregator.retention_time` (measured from the
//!    newest sample in the bucket, like the single node's retention),
//! 3. merges the blocks of one time partition from every replica into one
//!    block (when the partition has `compact_min_blocks` blocks, or is
//!    closed — older than `block_duration + out_of_order_window` — and has
//!    several), uploads it under its own replica name with the inputs (and
//!    their lineage) in `replaces`, then deletes the inputs.
//!
//! Readers ignore replaced blocks ([`super::bucket::live`]) and merge
//! overlaps per (series, timestamp), so answers stay identical while
//! blocks move. Two compactors running at once (a rollout overlap) only
//! produce overlapping blocks, merged away on a later pass.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tidewatch_common::Labels;
use tokio_util::sync::CancellationToken;

use super::bucket::{BlockBucket, RemoteBlock, live, qualified_replaces};
use crate::block::{self, SeriesRef};
use crate::head::MemSeries;

/// What the compactor needs to know.
#[derive(Clone, Debug)]
pub struct CompactorSettings {
    /// Replica name its compacted blocks are stored under.
    pub name: String,
    /// Scratch directory for downloads and merged blocks.
    pub work_dir: PathBuf,
    /// `aggregator.retention_time` in ms (0: keep forever).
    pub retention_ms: i64,
    /// `aggregator.block_duration` in ms.
    pub block_ms: i64,
    /// `aggregator.out_of_order_window` in ms.
    pub out_of_order_ms: i64,
    /// `aggregator.compact_min_blocks`.
    pub min_blocks: usize,
}

/// Self-metrics of the compactor.
#[derive(Clone, Default)]
pub struct CompactorMetrics {
    /// Blocks written by merging others.
    pub compactions: Counter,
    /// Blocks deleted because a compacted block replaced them.
    pub deleted_replaced: Counter,
    /// Blocks deleted past the retention time.
    pub deleted_expired: Counter,
    /// Live blocks in the bucket after the last pass.
    pub live_blocks: Gauge,
}

impl CompactorMetrics {
    /// Registers under the aggregator's registry.
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "bucket_compactions",
            "Blocks written by the compactor merging blocks of several replicas",
            self.compactions.clone(),
        );
        r.register(
            "bucket_blocks_deleted_replaced",
            "Blocks deleted from the bucket because a compacted block replaced them",
            self.deleted_replaced.clone(),
        );
        r.register(
            "bucket_blocks_deleted_expired",
            "Blocks deleted from the bucket past the retention time",
            self.deleted_expired.clone(),
        );
        r.register(
            "bucket_live_blocks",
            "Live (not replaced) blocks in the bucket after the compactor's last pass",
            self.live_blocks.clone(),
        );
    }
}

/// The bucket's compactor.
pub struct Compactor {
    bucket: BlockBucket,
    settings: CompactorSettings,
    metrics: CompactorMetrics,
}

impl Compactor {
    /// A compactor of `bucket`.
    pub fn new(
        bucket: BlockBucket,
        settings: CompactorSettings,
        metrics: CompactorMetrics,
    ) -> Self {
        Compactor {
            bucket,
            settings,
            metrics,
        }
    }

    /// One pass: clean-up, retention, compaction.
    pub async fn run_once(&self) -> anyhow::Result<()> {
        let all = self.bucket.list().await?;
        let live_blocks = live(all.clone());
        let live_keys: HashSet<(String, String)> = live_blocks.iter().map(key).collect();
        for b in all.iter().filter(|b| !live_keys.contains(&key(b))) {
            self.bucket.delete(&b.replica, &b.meta.name).await?;
            self.metrics.deleted_replaced.inc();
            tracing::info!(replica = %b.replica, block = %b.meta.name, "deleted replaced block from the bucket");
        }
        let max_t = live_blocks
            .iter()
            .map(|b| b.meta.max_t)
            .max()
            .unwrap_or(i64::MIN);
        let rt = self.settings.retention_ms;
        let mut kept = Vec::with_capacity(live_blocks.len());
        for b in live_blocks {
            if rt > 0 && b.meta.max_t < max_t.saturating_sub(rt) {
                self.bucket.delete(&b.replica, &b.meta.name).await?;
                self.metrics.deleted_expired.inc();
                tracing::info!(replica = %b.replica, block = %b.meta.name, "deleted block past retention from the bucket");
            } else {
                kept.push(b);
            }
        }
        let mut by_partition: BTreeMap<i64, Vec<RemoteBlock>> = BTreeMap::new();
        for b in kept {
            by_partition.entry(b.meta.partition).or_default().push(b);
        }
        let mut live_count = 0usize;
        for (p, blocks) in by_partition {
            let closed = p + self.settings.block_ms + self.settings.out_of_order_ms < max_t;
            if blocks.len() < 2 || (blocks.len() < self.settings.min_blocks && !closed) {
                live_count += blocks.len();
                continue;
            }
            self.compact(p, &blocks).await?;
            live_count += 1;
        }
        self.metrics.live_blocks.set(live_count as i64);
        Ok(())
    }

    /// Merges `blocks` (one partition) into one block, uploads it, deletes
    /// the inputs.
    async fn compact(&self, partition: i64, blocks: &[RemoteBlock]) -> anyhow::Result<()> {
        let work = self.settings.work_dir.join(format!("compact-{partition}"));
        let _ = tokio::fs::remove_dir_all(&work).await;
        tokio::fs::create_dir_all(&work).await?;
        let mut dirs = Vec::with_capacity(blocks.len());
        for (i, b) in blocks.iter().enumerate() {
            let dir = work.join(format!("in-{i}"));
            self.bucket.download(b, &dir).await?;
            dirs.push(dir);
        }
        let mut replaces = BTreeSet::new();
        for b in blocks {
            replaces.insert(format!("{}/{}", b.replica, b.meta.name));
            replaces.extend(qualified_replaces(b));
        }
        let name = format!(
            "{partition:014}-{:013}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );
        let out_root = work.join("out");
        let (n, replaces) = (name.clone(), replaces.into_iter().collect::<Vec<_>>());
        let merged = tokio::task::spawn_blocking(move || {
            merge_blocks(&dirs, &out_root, &n, partition, replaces)
        })
        .await??;
        self.bucket.upload(&self.settings.name, &merged).await?;
        self.metrics.compactions.inc();
        tracing::info!(partition, block = %name, inputs = blocks.len(), samples = merged.meta.samples, "compacted blocks in the bucket");
        for b in blocks {
            self.bucket.delete(&b.replica, &b.meta.name).await?;
            self.metrics.deleted_replaced.inc();
        }
        let _ = tokio::fs::remove_dir_all(&work).await;
        Ok(())
    }

    /// Runs a pass every `interval` until `shutdown`.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.run_once().await {
                tracing::warn!("bucket compaction: {e:#}");
            }
        }
    }
}

fn key(b: &RemoteBlock) -> (String, String) {
    (b.replica.clone(), b.meta.name.clone())
}

/// Merges local block directories into one block `name` under `root`
/// (one sample per series and timestamp).
pub fn merge_blocks(
    dirs: &[PathBuf],
    root: &Path,
    name: &str,
    partition: i64,
    replaces: Vec<String>,
) -> anyhow::Result<block::Block> {
    let mut labels: HashMap<u64, Labels> = HashMap::new();
    let mut series: HashMap<u64, MemSeries> = HashMap::new();
    for dir in dirs {
        labels.extend(block::read_series(dir)?);
        block::read_samples(dir, |id, ts, vs| {
            series.entry(id).or_default().append(ts, vs);
        })?;
    }
    std::fs::create_dir_all(root)?;
    let refs = SeriesRef::join(&series, &labels);
    block::write_block(root, name, partition, refs, replaces)
}
