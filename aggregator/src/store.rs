//! The store: WAL + head + blocks, flush, compaction and retention.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use datafusion::arrow::array::{Float64Array, TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::record_batch::RecordBatch;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::batch::{Batch, IngestSeries};
use crate::block::{self, Block, SeriesRef};
use crate::config::Config;
use crate::head::{Head, MemSeries};
use crate::index::SeriesIndex;
use crate::wal::{Wal, WalSink};

/// Metric metadata as the Prometheus API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricMeta {
    /// `counter`, `gauge`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// HELP text.
    pub help: String,
    /// Unit.
    pub unit: String,
}

/// Why an ingest was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Bad input; the message names the field or limit (HTTP 400).
    #[error("{0}")]
    BadData(String),
    /// A size limit (HTTP 413).
    #[error("{0}")]
    TooLarge(String),
    /// A budget limit (HTTP 429).
    #[error("{0}")]
    TooMany(String),
    /// The WAL failed (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

/// What an accepted ingest stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Samples durably stored.
    pub accepted: usize,
    /// Samples dropped because they are older than the out-of-order window.
    pub too_old: usize,
}

/// The active head plus heads frozen for a flush in progress.
#[derive(Debug)]
pub struct Heads {
    /// Receives new samples.
    pub active: Head,
    /// Being written into blocks; still read by queries.
    pub frozen: Vec<Arc<Head>>,
}

/// State shared with the WAL writer thread.
pub struct State {
    /// Series index.
    pub index: RwLock<SeriesIndex>,
    /// Heads.
    pub heads: RwLock<Heads>,
    /// Newest sample time accepted (ms).
    pub max_t: AtomicI64,
}

impl State {
    fn apply_batch(&self, batches: &[Batch]) {
        // Per series: its newest sample (for `max_t`) and range (index).
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        {
            let mut index = self.index.write();
            for b in batches {
                for (i, s) in b.series.iter().enumerate() {
                    let (lo, hi) = min_max(b.samples(i).0);
                    ranges.push((lo, hi));
                    if index.contains(s.id) {
                        index.widen(s.id, lo, hi);
                    } else if let Some(labels) = &s.labels {
                        index.observe(s.id, labels, lo, hi);
                    } else {
                        // Cannot happen: the WAL writer resolves the labels
                        // of every series it logs (under retention's lock).
                        tracing::error!(id = s.id, "sample of an unknown series without labels");
                    }
                }
            }
        }
        let mut heads = self.heads.write();
        let mut hi = i64::MIN;
        let mut r = ranges.iter();
        for b in batches {
            for (i, s) in b.series.iter().enumerate() {
                let (ts, vs) = b.samples(i);
                heads.active.append(s.id, ts, vs);
                hi = hi.max(r.next().expect("one range per series").1);
            }
        }
        self.max_t.fetch_max(hi, Ordering::SeqCst);
    }
}

impl WalSink for State {
    fn apply(&self, batches: &[Batch]) {
        self.apply_batch(batches)
    }
    fn freeze(&self) {
        let mut heads = self.heads.write();
        if !heads.active.is_empty() {
            let old = std::mem::replace(&mut heads.active, Head::new());
            heads.frozen.push(Arc::new(old));
        }
    }
    fn labels_of(&self, id: u64) -> Option<tidewatch_common::Labels> {
        self.index.read().get(id).map(|e| e.labels.clone())
    }
    fn truncate(&self, floor: i64) {
        self.index.write().truncate_before(floor);
    }
}

fn min_max(ts: &[i64]) -> (i64, i64) {
    ts.iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)))
}

/// The metrics store.
pub struct Store {
    dir: PathBuf,
    config: Config,
    /// Shared with the WAL writer.
    pub state: Arc<State>,
    blocks: RwLock<Vec<Arc<Block>>>,
    wal: Wal,
    block_seq: AtomicU64,
    flush_lock: tokio::sync::Mutex<()>,
    last_flush: parking_lot::Mutex<Instant>,
    metadata: RwLock<BTreeMap<String, MetricMeta>>,
    metadata_dirty: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// Opens the store: loads blocks and their series, replays the WAL,
    /// starts the WAL writer.
    pub fn open(config: Config, dir: &Path) -> anyhow::Result<Store> {
        let blocks_dir = dir.join("blocks");
        std::fs::create_dir_all(&blocks_dir)?;
        let mut loaded = Vec::new();
        for e in std::fs::read_dir(&blocks_dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(".tmp-") {
                std::fs::remove_dir_all(e.path())?;
                continue;
            }
            match block::read_meta(&e.path()) {
                Ok(meta) => loaded.push(Block::new(meta, e.path())),
                Err(err) => tracing::warn!(block = %name, "skipping unreadable block: {err}"),
            }
        }
        let replaced: HashSet<String> = loaded
            .iter()
            .flat_map(|b| b.meta.replaces.iter().cloned())
            .collect();
        let mut blocks = Vec::new();
        for b in loaded {
            if replaced.contains(&b.meta.name) {
                tracing::info!(block = %b.meta.name, "removing block replaced by compaction");
                std::fs::remove_dir_all(&b.dir)?;
            } else {
                blocks.push(Arc::new(b));
            }
        }
        blocks.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        let state = Arc::new(State {
            index: RwLock::new(SeriesIndex::default()),
            heads: RwLock::new(Heads {
                active: Head::new(),
                frozen: Vec::new(),
            }),
            max_t: AtomicI64::new(i64::MIN),
        });
        let mut seq = 0;
        {
            let mut index = state.index.write();
            for b in &blocks {
                for (id, labels) in block::read_series(&b.dir)? {
                    index.observe(id, &labels, b.meta.min_t, b.meta.max_t);
                }
                state.max_t.fetch_max(b.meta.max_t, Ordering::SeqCst);
                if let Some(s) = b.meta.name.rsplit('-').next().and_then(|s| s.parse().ok()) {
                    seq = seq.max(s);
                }
            }
        }
        let wal_dir = dir.join("wal");
        std::fs::create_dir_all(&wal_dir)?;
        let started = Instant::now();
        let records = crate::wal::replay(&wal_dir, |b| state.apply_batch(&[b]))?;
        let head_samples = state.heads.read().active.samples;
        tracing::info!(
            blocks = blocks.len(),
            wal_records = records,
            head_samples,
            elapsed = ?started.elapsed(),
            "aggregator store opened"
        );
        let metadata = std::fs::read(dir.join("metadata.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let wal = Wal::start(&wal_dir, state.clone())?;
        Ok(Store {
            dir: dir.to_path_buf(),
            config,
            state,
            blocks: RwLock::new(blocks),
            wal,
            block_seq: AtomicU64::new(seq),
            flush_lock: tokio::sync::Mutex::new(()),
            last_flush: parking_lot::Mutex::new(Instant::now()),
            metadata: RwLock::new(metadata),
            metadata_dirty: false.into(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Validates `batch` against the limits, drops samples older than the
    /// out-of-order window, logs the rest durably and applies it to the
    /// head. Returns once the samples are durable.
    pub async fn append(&self, batch: Vec<IngestSeries>) -> Result<IngestOutcome, IngestError> {
        self.check_limits(&batch)?;
        self.append_checked(Batch::from_series(batch)).await
    }

    /// [`Store::append`] of a [`Batch`] (labels given for the series the
    /// store did not know when it was built; only those are validated).
    pub async fn append_batch(&self, batch: Batch) -> Result<IngestOutcome, IngestError> {
        let l = &self.config.limits;
        if batch.series.len() > l.max_series_per_request {
            return Err(IngestError::BadData(format!(
                "request has {} series, over the limit aggregator.limits.max_series_per_request={}",
                batch.series.len(),
                l.max_series_per_request
            )));
        }
        for labels in batch.series.iter().filter_map(|s| s.labels.as_ref()) {
            check_labels(labels, l)?;
        }
        self.check_active_series(batch.series.iter().map(|s| s.id))?;
        self.append_checked(batch).await
    }

    async fn append_checked(&self, mut batch: Batch) -> Result<IngestOutcome, IngestError> {
        let window = self.config.out_of_order_window.as_millis() as i64;
        let max_t = self.state.max_t.load(Ordering::SeqCst);
        let floor = if max_t == i64::MIN {
            i64::MIN
        } else {
            max_t.saturating_sub(window)
        };
        let mut out = IngestOutcome::default();
        if batch.timestamps.iter().any(|&t| t < floor) {
            out.too_old = batch.retain_samples(|t| t >= floor);
        }
        out.accepted = batch.len();
        if !batch.is_empty() {
            self.wal
                .append(batch)
                .await
                .map_err(IngestError::Internal)?;
        }
        Ok(out)
    }

    /// Checks `batch` against `aggregator.limits` (also used by the
    /// distributed ingester before publishing to Kafka).
    // distributed-mode hook: made `pub` for `distributed::kafka_ingest`.
    pub fn check_limits(&self, batch: &[IngestSeries]) -> Result<(), IngestError> {
        let l = &self.config.limits;
        if batch.len() > l.max_series_per_request {
            return Err(IngestError::BadData(format!(
                "request has {} series, over the limit aggregator.limits.max_series_per_request={}",
                batch.len(),
                l.max_series_per_request
            )));
        }
        for s in batch {
            if s.timestamps.len() != s.values.len() {
                return Err(IngestError::BadData(format!(
                    "series {}: {} timestamps but {} values",
                    s.labels,
                    s.timestamps.len(),
                    s.values.len()
                )));
            }
            check_labels(&s.labels, l)?;
        }
        self.check_active_series(batch.iter().map(|s| s.id))
    }

    /// `aggregator.limits.max_active_series` for a batch of these ids.
    fn check_active_series(&self, ids: impl Iterator<Item = u64>) -> Result<(), IngestError> {
        let l = &self.config.limits;
        if l.max_active_series > 0 {
            let index = self.state.index.read();
            let new = ids.filter(|id| !index.contains(*id)).count();
            if new > 0 && index.len() + new > l.max_active_series {
                return Err(IngestError::TooMany(format!(
                    "{} new series would exceed the limit aggregator.limits.max_active_series={} ({} active)",
                    new,
                    l.max_active_series,
                    index.len()
                )));
            }
        }
        Ok(())
    }

    /// Whether the series index knows `id` (ingest leaves out the labels of
    /// known series).
    pub fn knows(&self, id: u64) -> bool {
        self.state.index.read().contains(id)
    }

    /// Records metric metadata (latest wins).
    pub fn record_metadata(&self, items: impl IntoIterator<Item = (String, MetricMeta)>) {
        let mut m = self.metadata.write();
        for (name, meta) in items {
            if m.get(&name) != Some(&meta) {
                m.insert(name, meta);
                self.metadata_dirty.store(true, Ordering::SeqCst);
            }
        }
    }

    /// All metric metadata.
    pub fn metadata(&self) -> BTreeMap<String, MetricMeta> {
        self.metadata.read().clone()
    }

    /// Blocks overlapping `[start, end]`.
    pub fn blocks_overlapping(&self, start: i64, end: i64) -> Vec<Arc<Block>> {
        self.blocks
            .read()
            .iter()
            .filter(|b| b.meta.max_t >= start && b.meta.min_t <= end)
            .cloned()
            .collect()
    }

    /// All blocks.
    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks.read().clone()
    }

    /// Samples of the head (active and frozen) in `[start, end]`, of the
    /// series in `ids` (all when `None`), as one batch in the samples
    /// schema, series after series.
    pub fn head_batch(&self, ids: Option<&HashSet<u64>>, start: i64, end: i64) -> RecordBatch {
        let (mut sid, mut ts, mut vs) = (Vec::new(), Vec::new(), Vec::new());
        {
            let heads = self.state.heads.read();
            let all = heads
                .frozen
                .iter()
                .map(|h| h.as_ref())
                .chain(std::iter::once(&heads.active));
            for h in all {
                if h.is_empty() || h.max_t < start || h.min_t > end {
                    continue;
                }
                let mut push = |id: u64, s: &MemSeries| {
                    let r = s.range(start, end);
                    if !r.is_empty() {
                        sid.extend(std::iter::repeat_n(id, r.len()));
                        ts.extend_from_slice(&s.timestamps[r.clone()]);
                        vs.extend_from_slice(&s.values[r]);
                    }
                };
                match ids {
                    Some(ids) if ids.len() < h.series.len() => {
                        for id in ids {
                            if let Some(s) = h.series.get(id) {
                                push(*id, s);
                            }
                        }
                    }
                    _ => {
                        for (id, s) in &h.series {
                            if ids.is_none_or(|ids| ids.contains(id)) {
                                push(*id, s);
                            }
                        }
                    }
                }
            }
        }
        RecordBatch::try_new(
            block::samples_schema(),
            vec![
                Arc::new(UInt64Array::from(sid)),
                Arc::new(TimestampMillisecondArray::from(ts)),
                Arc::new(Float64Array::from(vs)),
            ],
        )
        .expect("columns match the samples schema")
    }

    /// Whether a flush is due (interval elapsed or head too large).
    pub fn flush_due(&self) -> bool {
        self.last_flush.lock().elapsed() >= self.config.flush_interval
            || self.state.heads.read().active.samples >= self.config.flush_max_head_samples
    }

    /// Flushes the head into blocks, deletes the WAL it covered, then
    /// compacts and applies retention.
    pub async fn flush(self: &Arc<Self>) -> anyhow::Result<()> {
        let _guard = self.flush_lock.lock().await;
        *self.last_flush.lock() = Instant::now();
        let seq = self.wal.rotate().await.map_err(anyhow::Error::msg)?;
        let frozen: Vec<Arc<Head>> = self.state.heads.read().frozen.clone();
        if !frozen.is_empty() {
            let me = self.clone();
            let fz = frozen.clone();
            let new_blocks = tokio::task::spawn_blocking(move || me.write_heads(&fz)).await??;
            self.blocks
                .write()
                .extend(new_blocks.into_iter().map(Arc::new));
            self.sort_blocks();
            self.state
                .heads
                .write()
                .frozen
                .retain(|h| !frozen.iter().any(|f| Arc::ptr_eq(f, h)));
        }
        self.wal.remove_up_to(seq)?;
        if self.metadata_dirty.swap(false, Ordering::SeqCst) {
            let bytes = serde_json::to_vec(&*self.metadata.read())?;
            let tmp = self.dir.join("metadata.json.tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, self.dir.join("metadata.json"))?;
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.compact()).await??;
        if let Some(floor) = self.apply_retention()? {
            // On the WAL writer: between a batch's encoding and its apply
            // no series may be forgotten.
            self.wal.truncate(floor).await.map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    fn sort_blocks(&self) {
        self.blocks
            .write()
            .sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    }

    fn next_block_name(&self, partition: i64) -> String {
        let seq = self.block_seq.fetch_add(1, Ordering::SeqCst) + 1;
        format!("{partition:014}-{seq:08}")
    }

    fn partition_of(&self, t: i64) -> i64 {
        let w = self.config.block_duration.as_millis() as i64;
        t.div_euclid(w) * w
    }

    /// Writes heads (oldest first) into one block per time partition.
    fn write_heads(&self, heads: &[Arc<Head>]) -> anyhow::Result<Vec<Block>> {
        let mut merged: HashMap<i64, HashMap<u64, MemSeries>> = HashMap::new();
        for h in heads {
            for (id, s) in &h.series {
                let mut i = 0;
                while i < s.timestamps.len() {
                    let p = self.partition_of(s.timestamps[i]);
                    let w = self.config.block_duration.as_millis() as i64;
                    let j = i + s.timestamps[i..].partition_point(|&t| t < p + w);
                    merged
                        .entry(p)
                        .or_default()
                        .entry(*id)
                        .or_default()
                        .append(&s.timestamps[i..j], &s.values[i..j]);
                    i = j;
                }
            }
        }
        self.write_partitions(merged, Vec::new())
    }

    fn write_partitions(
        &self,
        parts: HashMap<i64, HashMap<u64, MemSeries>>,
        replaces: Vec<String>,
    ) -> anyhow::Result<Vec<Block>> {
        let root = self.dir.join("blocks");
        let mut out = Vec::new();
        for (p, series) in parts {
            let labels: HashMap<u64, tidewatch_common::Labels> = {
                let index = self.state.index.read();
                series
                    .keys()
                    .filter_map(|id| index.get(*id).map(|e| (*id, e.labels.clone())))
                    .collect()
            };
            let refs = SeriesRef::join(&series, &labels);
            let name = self.next_block_name(p);
            out.push(block::write_block(&root, &name, p, refs, replaces.clone())?);
        }
        Ok(out)
    }

    /// Merges the blocks of each partition that has enough blocks, or that
    /// is closed (older than the out-of-order window) and has several.
    fn compact(&self) -> anyhow::Result<()> {
        let max_t = self.state.max_t.load(Ordering::SeqCst);
        let w = self.config.block_duration.as_millis() as i64;
        let ooo = self.config.out_of_order_window.as_millis() as i64;
        let mut by_part: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
        for b in self.blocks() {
            by_part.entry(b.meta.partition).or_default().push(b);
        }
        for (p, blocks) in by_part {
            let closed = p + w + ooo < max_t;
            if blocks.len() < 2 || (blocks.len() < self.config.compact_min_blocks && !closed) {
                continue;
            }
            let mut merged: HashMap<u64, MemSeries> = HashMap::new();
            for b in &blocks {
                block::read_samples(&b.dir, |id, ts, vs| {
                    merged.entry(id).or_default().append(ts, vs);
                })?;
            }
            let names: Vec<String> = blocks.iter().map(|b| b.meta.name.clone()).collect();
            let mut parts = HashMap::new();
            parts.insert(p, merged);
            let new = self.write_partitions(parts, names.clone())?;
            {
                let mut all = self.blocks.write();
                all.retain(|b| !names.contains(&b.meta.name));
                all.extend(new.into_iter().map(Arc::new));
                all.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
            }
            for b in &blocks {
                std::fs::remove_dir_all(&b.dir)?;
            }
            tracing::info!(partition = p, merged = names.len(), "compacted blocks");
        }
        Ok(())
    }

    /// Deletes blocks past the retention time, then oldest blocks while over
    /// the retention size; returns the time before which the series index
    /// may forget data, if blocks were deleted.
    fn apply_retention(&self) -> anyhow::Result<Option<i64>> {
        let max_t = self.state.max_t.load(Ordering::SeqCst);
        let rt = self.config.retention_time.as_millis() as i64;
        let mut doomed = Vec::new();
        {
            let mut all = self.blocks.write();
            if rt > 0 && max_t != i64::MIN {
                let cutoff = max_t - rt;
                all.retain(|b| {
                    let keep = b.meta.max_t >= cutoff;
                    if !keep {
                        doomed.push(b.clone());
                    }
                    keep
                });
            }
            if self.config.retention_size_bytes > 0 {
                let mut total: u64 = all.iter().map(|b| b.meta.bytes).sum();
                while total > self.config.retention_size_bytes && !all.is_empty() {
                    let b = all.remove(0);
                    total -= b.meta.bytes;
                    doomed.push(b);
                }
            }
        }
        if doomed.is_empty() {
            return Ok(None);
        }
        for b in &doomed {
            std::fs::remove_dir_all(&b.dir)?;
            tracing::info!(block = %b.meta.name, "deleted block past retention");
        }
        let floor = {
            let all = self.blocks.read();
            let heads = self.state.heads.read();
            let head_min = heads
                .frozen
                .iter()
                .map(|h| h.min_t)
                .chain(std::iter::once(heads.active.min_t))
                .min()
                .unwrap_or(i64::MAX);
            all.iter()
                .map(|b| b.meta.min_t)
                .min()
                .unwrap_or(i64::MAX)
                .min(head_min)
        };
        Ok(Some(floor))
    }

    /// Flushes everything and stops the WAL writer.
    pub async fn close(self: &Arc<Self>) -> anyhow::Result<()> {
        self.flush().await?;
        self.wal.close();
        Ok(())
    }

    /// Bytes of all blocks on disk.
    pub fn block_bytes(&self) -> u64 {
        self.blocks.read().iter().map(|b| b.meta.bytes).sum()
    }
}

/// Checks one label set against `aggregator.limits`.
fn check_labels(
    labels: &tidewatch_common::Labels,
    l: &crate::config::Limits,
) -> Result<(), IngestError> {
    if labels.metric_name().is_none() {
        return Err(IngestError::BadData(format!(
            "series {}: missing metric name (label __name__)",
            labels
        )));
    }
    if labels.len() > l.max_labels_per_series {
        return Err(IngestError::BadData(format!(
            "series {}: {} labels, over the limit aggregator.limits.max_labels_per_series={}",
            labels,
            labels.len(),
            l.max_labels_per_series
        )));
    }
    for lab in labels.iter() {
        if lab.name.len() > l.max_label_name_length {
            return Err(IngestError::BadData(format!(
                "label name {:?} is {} bytes, over the limit aggregator.limits.max_label_name_length={}",
                truncate(&lab.name),
                lab.name.len(),
                l.max_label_name_length
            )));
        }
        if lab.value.len() > l.max_label_value_length {
            return Err(IngestError::BadData(format!(
                "value of label {:?} is {} bytes, over the limit aggregator.limits.max_label_value_length={}",
                lab.name,
                lab.value.len(),
                l.max_label_value_length
            )));
        }
        let valid = if lab.name == tidewatch_common::labels::METRIC_NAME {
            tidewatch_common::labels::is_valid_metric_name(&lab.value)
        } else {
            tidewatch_common::labels::is_valid_label_name(&lab.name)
        };
        if !valid {
            return Err(IngestError::BadData(format!(
                "series {}: invalid label {:?}={:?}",
                labels,
                truncate(&lab.name),
                truncate(&lab.value)
            )));
        }
    }
    Ok(())
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
