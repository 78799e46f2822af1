//! Parquet blocks: one directory per block under `blocks/`, holding
//!
//! - `data.parquet`: one row per series chunk (up to
//!   [`MAX_CHUNK_SAMPLES`] samples of one series), sorted by series (in
//!   label order: a metric's series are adjacent) then time: `series` (the
//!   series' row in `series.parquet`), `min_t`, `max_t`, `samples`, and the
//!   chunk's `timestamps` and `values` encoded by [`crate::codec`]
//!   (bit-packed changes: a regular scrape's timestamps cost a few bytes
//!   per chunk, a decimal value about the bits of its change); page
//!   statistics on `series`, `min_t` and `max_t` for pruning;
//! - `series.parquet`: the block's series index (`labels` as a JSON object,
//!   sorted by labels; the series id is their stable hash), loaded into the
//!   in-memory postings at start-up;
//! - `meta.json`: time range, counts, partition, format, and the blocks it
//!   replaces (compaction).
//!
//! Blocks written by earlier versions (one row per sample, `meta.json`
//! without `format`) are still read (see [`legacy`]).
//!
//! A block is written into `.tmp-<name>` and renamed into place, so a crash
//! never leaves a half-written block visible.

pub mod legacy;
pub mod prune;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, Float64Array, StringArray,
    TimestampMillisecondArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use tidewatch_common::Labels;

use crate::codec;
use crate::head::MemSeries;

/// Samples per chunk (row) at most; longer series are split.
pub const MAX_CHUNK_SAMPLES: usize = 2048;

/// Chunks (rows) per Parquet row group (pruning granularity by series).
const ROW_GROUP_CHUNKS: usize = 4096;

/// Chunks per data page (page-index pruning inside a row group).
const PAGE_CHUNKS: usize = 128;

/// `meta.json`'s `format` of blocks in the chunk layout (absent: rows).
pub const CHUNK_FORMAT: u32 = 1;

/// Schema of the `samples` table (and of head batches).
pub fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("value", DataType::Float64, true),
    ]))
}

/// Schema of a chunk-format `data.parquet`.
pub fn chunk_schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
    Arc::new(Schema::new(vec![
        Field::new("series", DataType::UInt32, false),
        Field::new("min_t", ts(), false),
        Field::new("max_t", ts(), false),
        Field::new("samples", DataType::UInt32, false),
        Field::new("timestamps", DataType::Binary, false),
        Field::new("values", DataType::Binary, false),
    ]))
}

fn series_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "labels",
        DataType::Utf8,
        false,
    )]))
}

/// `meta.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Directory name.
    pub name: String,
    /// Start of the time partition (ms).
    pub partition: i64,
    /// Oldest sample (ms).
    pub min_t: i64,
    /// Newest sample (ms).
    pub max_t: i64,
    /// Samples.
    pub samples: u64,
    /// Series.
    pub series: u64,
    /// Bytes on disk (all files).
    pub bytes: u64,
    /// Blocks this one replaces (compaction); deleted if still present.
    #[serde(default)]
    pub replaces: Vec<String>,
    /// Layout of `data.parquet`: [`CHUNK_FORMAT`], or 0 (absent) for the
    /// row format of earlier versions.
    #[serde(default)]
    pub format: u32,
}

/// A block on disk.
#[derive(Clone, Debug)]
pub struct Block {
    /// Metadata.
    pub meta: BlockMeta,
    /// Its directory.
    pub dir: PathBuf,
    /// `data.parquet`'s size and footer with page index, read on first use.
    data_footer: OnceLock<(u64, Arc<ParquetMetaData>)>,
    /// Series ids in `series.parquet` order, read on first use.
    series_ids: OnceLock<Arc<Vec<u64>>>,
    /// `series` values ordered by id (the inverse of `series_ids`, 4 bytes
    /// a series), built on first use.
    series_by_id: OnceLock<Vec<u32>>,
}

impl Block {
    /// The block in `dir` described by `meta`.
    pub fn new(meta: BlockMeta, dir: PathBuf) -> Self {
        Block {
            meta,
            dir,
            data_footer: OnceLock::new(),
            series_ids: OnceLock::new(),
            series_by_id: OnceLock::new(),
        }
    }

    /// The `series` values (sorted) of those of `ids` the block holds.
    pub fn series_of(&self, ids: &HashSet<u64>) -> anyhow::Result<Vec<u32>> {
        let all = self.series_ids()?;
        let mut out: Vec<u32> = if ids.len() * 8 < all.len() {
            let by_id = self.series_by_id.get_or_init(|| {
                let mut order: Vec<u32> = (0..all.len() as u32).collect();
                order.sort_unstable_by_key(|&s| all[s as usize]);
                order
            });
            ids.iter()
                .filter_map(|id| {
                    let i = by_id.partition_point(|&s| all[s as usize] < *id);
                    by_id.get(i).copied().filter(|&s| all[s as usize] == *id)
                })
                .collect()
        } else {
            (0..all.len() as u32)
                .filter(|&s| ids.contains(&all[s as usize]))
                .collect()
        };
        out.sort_unstable();
        Ok(out)
    }

    /// The ids of the block's series in `series.parquet` order: a chunk's
    /// `series` indexes it (read once, then cached).
    pub fn series_ids(&self) -> anyhow::Result<Arc<Vec<u64>>> {
        if let Some(ids) = self.series_ids.get() {
            return Ok(ids.clone());
        }
        let ids: Vec<u64> = read_series(&self.dir)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        Ok(self.series_ids.get_or_init(|| Arc::new(ids)).clone())
    }

    /// `data.parquet`'s size and its footer with the page index (read
    /// once, then cached: blocks never change).
    pub fn data_footer(&self) -> anyhow::Result<(u64, Arc<ParquetMetaData>)> {
        if let Some(f) = self.data_footer.get() {
            return Ok(f.clone());
        }
        let size = std::fs::metadata(self.data_path())?.len();
        let md = prune::read_metadata(&self.data_path())?;
        Ok(self.data_footer.get_or_init(|| (size, md)).clone())
    }

    /// Path of `data.parquet`.
    pub fn data_path(&self) -> PathBuf {
        self.dir.join("data.parquet")
    }

    /// Whether `data.parquet` is in the chunk layout.
    pub fn is_chunked(&self) -> bool {
        self.meta.format == CHUNK_FORMAT
    }
}

/// One series to write: id, labels, samples sorted by time.
pub struct SeriesRef<'a> {
    /// Series id.
    pub id: u64,
    /// Labels.
    pub labels: &'a Labels,
    /// Samples.
    pub data: &'a MemSeries,
}

impl<'a> SeriesRef<'a> {
    /// The series of `data` whose labels `labels` knows (others are left
    /// out).
    pub fn join(
        data: &'a HashMap<u64, MemSeries>,
        labels: &'a HashMap<u64, Labels>,
    ) -> Vec<SeriesRef<'a>> {
        data.iter()
            .filter_map(|(id, data)| {
                labels.get(id).map(|labels| SeriesRef {
                    id: *id,
                    labels,
                    data,
                })
            })
            .collect()
    }
}

fn writer_props() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_CHUNKS))
        .set_data_page_row_count_limit(PAGE_CHUNKS)
        // The page row limit is only checked between write batches.
        .set_write_batch_size(PAGE_CHUNKS)
        .set_statistics_enabled(EnabledStatistics::Page);
    // Nothing prunes by the encoded chunks. zstd still finds the chunk
    // headers (first timestamp, scrape interval, first value) that repeat
    // across series; the small key columns are not compressed, which also
    // spares a zstd context per column chunk and query.
    for c in ["timestamps", "values"] {
        b = b
            .set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None)
            .set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    for c in ["series", "min_t", "max_t", "samples"] {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(c), false)
            .set_column_encoding(ColumnPath::from(c), Encoding::DELTA_BINARY_PACKED)
            .set_column_compression(ColumnPath::from(c), Compression::UNCOMPRESSED);
    }
    b.build()
}

/// Rows of `data.parquet` being accumulated.
struct Chunks {
    series: Vec<u32>,
    min_t: Vec<i64>,
    max_t: Vec<i64>,
    samples: Vec<u32>,
    timestamps: BinaryBuilder,
    values: BinaryBuilder,
    scratch: Vec<u8>,
}

impl Chunks {
    fn new() -> Self {
        Chunks {
            series: Vec::new(),
            min_t: Vec::new(),
            max_t: Vec::new(),
            samples: Vec::new(),
            timestamps: BinaryBuilder::new(),
            values: BinaryBuilder::new(),
            scratch: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.series.len()
    }

    /// Appends one chunk (`ts` non-empty, sorted).
    fn push(&mut self, series: u32, ts: &[i64], vs: &[f64]) {
        self.series.push(series);
        self.min_t.push(ts[0]);
        self.max_t.push(ts[ts.len() - 1]);
        self.samples.push(ts.len() as u32);
        self.scratch.clear();
        codec::encode_timestamps(ts, &mut self.scratch);
        self.timestamps.append_value(&self.scratch);
        self.scratch.clear();
        codec::encode_values(vs, &mut self.scratch);
        self.values.append_value(&self.scratch);
    }

    /// Writes the accumulated chunks as one row group.
    fn write_to(&mut self, w: &mut ArrowWriter<File>) -> anyhow::Result<()> {
        if self.series.is_empty() {
            return Ok(());
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(std::mem::take(&mut self.series))),
            Arc::new(TimestampMillisecondArray::from(std::mem::take(
                &mut self.min_t,
            ))),
            Arc::new(TimestampMillisecondArray::from(std::mem::take(
                &mut self.max_t,
            ))),
            Arc::new(UInt32Array::from(std::mem::take(&mut self.samples))),
            Arc::new(self.timestamps.finish()),
            Arc::new(self.values.finish()),
        ];
        w.write(&RecordBatch::try_new(chunk_schema(), cols)?)?;
        w.flush()?;
        Ok(())
    }
}

/// Writes a block from `series` (any order; sorted here) under `root`,
/// named `name`, and returns it.
pub fn write_block(
    root: &Path,
    name: &str,
    partition: i64,
    mut series: Vec<SeriesRef<'_>>,
    replaces: Vec<String>,
) -> anyhow::Result<Block> {
    // Label order: a metric's series are adjacent, so a selection reads
    // few pages.
    series.sort_unstable_by(|a, b| a.labels.cmp(b.labels));
    let tmp = root.join(format!(".tmp-{name}"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;

    let mut w = ArrowWriter::try_new(
        File::create(tmp.join("data.parquet"))?,
        chunk_schema(),
        Some(writer_props()),
    )?;
    let (mut min_t, mut max_t, mut samples) = (i64::MAX, i64::MIN, 0u64);
    let mut chunks = Chunks::new();
    for (ordinal, s) in series.iter().enumerate() {
        let d = s.data;
        if d.timestamps.is_empty() {
            continue;
        }
        min_t = min_t.min(d.timestamps[0]);
        max_t = max_t.max(*d.timestamps.last().expect("non-empty"));
        samples += d.timestamps.len() as u64;
        for (ts, vs) in d
            .timestamps
            .chunks(MAX_CHUNK_SAMPLES)
            .zip(d.values.chunks(MAX_CHUNK_SAMPLES))
        {
            chunks.push(ordinal as u32, ts, vs);
            if chunks.len() >= ROW_GROUP_CHUNKS {
                chunks.write_to(&mut w)?;
            }
        }
    }
    chunks.write_to(&mut w)?;
    w.close()?;

    let mut sw = ArrowWriter::try_new(
        File::create(tmp.join("series.parquet"))?,
        series_schema(),
        Some(
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level")))
                .build(),
        ),
    )?;
    // In the chunks' order (by labels: similar rows are adjacent, which
    // compresses better); the id is not stored: it is the labels' stable
    // hash.
    let labels: Vec<String> = series.iter().map(|s| labels_json(s.labels)).collect();
    sw.write(&RecordBatch::try_new(
        series_schema(),
        vec![Arc::new(StringArray::from(labels))],
    )?)?;
    sw.close()?;

    let bytes = std::fs::metadata(tmp.join("data.parquet"))?.len()
        + std::fs::metadata(tmp.join("series.parquet"))?.len();
    let meta = BlockMeta {
        name: name.to_string(),
        partition,
        min_t,
        max_t,
        samples,
        series: series.len() as u64,
        bytes,
        replaces,
        format: CHUNK_FORMAT,
    };
    std::fs::write(tmp.join("meta.json"), serde_json::to_vec_pretty(&meta)?)?;
    for f in ["data.parquet", "series.parquet", "meta.json"] {
        File::open(tmp.join(f))?.sync_all()?;
    }
    File::open(&tmp)?.sync_all()?;
    let dir = root.join(name);
    std::fs::rename(&tmp, &dir)?;
    File::open(root)?.sync_all()?;
    Ok(Block::new(meta, dir))
}

/// Labels as a JSON object (`{"__name__":"up","job":"x"}`).
pub fn labels_json(labels: &Labels) -> String {
    let map: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|l| (l.name.clone(), serde_json::Value::String(l.value.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Reads a block's metadata.
pub fn read_meta(dir: &Path) -> anyhow::Result<BlockMeta> {
    Ok(serde_json::from_slice(&std::fs::read(
        dir.join("meta.json"),
    )?)?)
}

/// Reads a block's series index.
pub fn read_series(dir: &Path) -> anyhow::Result<Vec<(u64, Labels)>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(dir.join("series.parquet"))?)?
        .build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        // Blocks written before the id was dropped also hold `series_id`.
        let ids = batch
            .column_by_name("series_id")
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>());
        let labels = batch
            .column_by_name("labels")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| anyhow::anyhow!("series.parquet: labels missing or not Utf8"))?;
        for i in 0..batch.num_rows() {
            let map: BTreeMap<String, String> = serde_json::from_str(labels.value(i))?;
            let labels = Labels::from_pairs(map);
            let id = ids.map_or_else(|| labels.stable_hash(), |ids| ids.value(i));
            out.push((id, labels));
        }
    }
    Ok(out)
}

/// The columns of a chunk-format batch.
struct ChunkColumns<'a> {
    series: &'a UInt32Array,
    samples: &'a UInt32Array,
    timestamps: &'a BinaryArray,
    values: &'a BinaryArray,
}

impl<'a> ChunkColumns<'a> {
    fn of(batch: &'a RecordBatch) -> anyhow::Result<Self> {
        fn get<'b, T: 'static>(batch: &'b RecordBatch, name: &str) -> anyhow::Result<&'b T> {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<T>())
                .ok_or_else(|| anyhow::anyhow!("data.parquet: column {name} missing or mistyped"))
        }
        Ok(ChunkColumns {
            series: get(batch, "series")?,
            samples: get(batch, "samples")?,
            timestamps: get(batch, "timestamps")?,
            values: get(batch, "values")?,
        })
    }

    /// The series id of row `i`, given the block's ids.
    fn id(&self, i: usize, ids: &[u64]) -> anyhow::Result<u64> {
        let s = self.series.value(i);
        ids.get(s as usize)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("data.parquet: series {s} not in series.parquet"))
    }

    /// The sample count of row `i`, refused above [`MAX_CHUNK_SAMPLES`] (a
    /// corrupt count must not size an allocation).
    fn samples(&self, i: usize) -> anyhow::Result<usize> {
        let n = self.samples.value(i) as usize;
        anyhow::ensure!(
            n <= MAX_CHUNK_SAMPLES,
            "data.parquet: chunk of {n} samples (at most {MAX_CHUNK_SAMPLES})"
        );
        Ok(n)
    }

    /// Decodes row `i` into `ts`/`vs` (cleared first).
    fn decode(&self, i: usize, ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> anyhow::Result<()> {
        let n = self.samples(i)?;
        ts.clear();
        vs.clear();
        let s = self.series.value(i);
        let err = |e: codec::Corrupt| anyhow::anyhow!("data.parquet: series {s}: {e}");
        codec::decode_timestamps(self.timestamps.value(i), n, ts).map_err(err)?;
        codec::decode_values(self.values.value(i), n, vs).map_err(err)?;
        Ok(())
    }
}

/// Decodes a batch of chunk rows of the block whose series ids are `ids`
/// (see [`Block::series_ids`]) into samples-table rows: the chunks of the
/// series `keep` accepts, their samples in `[start, end]`.
pub fn decode_chunks(
    batch: &RecordBatch,
    ids: &[u64],
    start: i64,
    end: i64,
    keep: impl Fn(u64) -> bool,
) -> anyhow::Result<RecordBatch> {
    let cols = ChunkColumns::of(batch)?;
    let mut rows = 0;
    for i in 0..batch.num_rows() {
        if keep(cols.id(i, ids)?) {
            rows += cols.samples(i)?;
        }
    }
    let (mut out_ids, mut out_ts, mut out_vs) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    for i in 0..batch.num_rows() {
        let id = cols.id(i, ids)?;
        if !keep(id) {
            continue;
        }
        cols.decode(i, &mut ts, &mut vs)?;
        let lo = ts.partition_point(|&t| t < start);
        let hi = ts.partition_point(|&t| t <= end);
        if lo >= hi {
            continue;
        }
        out_ids.extend(std::iter::repeat_n(id, hi - lo));
        out_ts.extend_from_slice(&ts[lo..hi]);
        out_vs.extend_from_slice(&vs[lo..hi]);
    }
    Ok(RecordBatch::try_new(
        samples_schema(),
        vec![
            Arc::new(UInt64Array::from(out_ids)),
            Arc::new(TimestampMillisecondArray::from(out_ts)),
            Arc::new(Float64Array::from(out_vs)),
        ],
    )?)
}

/// Reads all samples of a block, calling `f(series_id, timestamps, values)`
/// once per chunk (or, in the row format, per run of rows of one series).
pub fn read_samples(dir: &Path, mut f: impl FnMut(u64, &[i64], &[f64])) -> anyhow::Result<()> {
    if read_meta(dir)?.format != CHUNK_FORMAT {
        return legacy::read_samples(dir, f);
    }
    let ids: Vec<u64> = read_series(dir)?.into_iter().map(|(id, _)| id).collect();
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(dir.join("data.parquet"))?)?
        .with_batch_size(ROW_GROUP_CHUNKS)
        .build()?;
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    for batch in reader {
        let batch = batch?;
        let cols = ChunkColumns::of(&batch)?;
        for i in 0..batch.num_rows() {
            cols.decode(i, &mut ts, &mut vs)?;
            f(cols.id(i, &ids)?, &ts, &vs);
        }
    }
    Ok(())
}

/// The three columns of a samples-table batch.
pub fn sample_columns(
    batch: &RecordBatch,
) -> anyhow::Result<(&UInt64Array, &TimestampMillisecondArray, &Float64Array)> {
    let c = |i: usize| -> &dyn Array { batch.column(i).as_ref() };
    Ok((
        c(0).as_any()
            .downcast_ref()
            .ok_or_else(|| anyhow::anyhow!("series_id column has the wrong type"))?,
        c(1).as_any()
            .downcast_ref()
            .ok_or_else(|| anyhow::anyhow!("timestamp column has the wrong type"))?,
        c(2).as_any()
            .downcast_ref()
            .ok_or_else(|| anyhow::anyhow!("value column has the wrong type"))?,
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A counter scraped every 15 s: timestamps cost almost nothing and a
    /// value costs about the bits of its increment.
    #[test]
    fn regular_counters_are_compact() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng >> 56 // 0..256: 8 bits of entropy per increment
        };
        let labels: Vec<Labels> = (0..200)
            .map(|i| Labels::from_pairs([("__name__", "c".to_string()), ("i", i.to_string())]))
            .collect();
        let data: Vec<MemSeries> = (0..200)
            .map(|i| {
                let mut v = 1e6 * i as f64;
                let timestamps: Vec<i64> =
                    (0..480).map(|k| 1_700_000_000_000 + k * 15_000).collect();
                let values = timestamps
                    .iter()
                    .map(|_| {
                        v += next() as f64;
                        v
                    })
                    .collect();
                MemSeries { timestamps, values }
            })
            .collect();
        let refs = labels
            .iter()
            .zip(&data)
            .map(|(l, d)| SeriesRef {
                id: l.stable_hash(),
                labels: l,
                data: d,
            })
            .collect();
        let b = write_block(dir.path(), "b", 0, refs, vec![]).unwrap();
        let per_sample = b.meta.bytes as f64 / b.meta.samples as f64;
        // 8 bits of entropy per sample; everything else (ids, timestamps,
        // labels) must stay small next to it.
        println!("{per_sample} bytes/sample");
        print_sizes(&b.dir, b.meta.samples);
        assert!(per_sample < 1.07, "{per_sample} bytes/sample");
        let mut got: HashMap<u64, MemSeries> = HashMap::new();
        read_samples(&b.dir, |id, ts, vs| {
            got.entry(id).or_default().append(ts, vs);
        })
        .unwrap();
        assert_eq!(got.len(), 200);
        for (l, d) in labels.iter().zip(&data) {
            let g = &got[&l.stable_hash()];
            assert_eq!((&g.timestamps, &g.values), (&d.timestamps, &d.values));
        }
    }

    /// Prints each file's size and each column's bytes per sample.
    fn print_sizes(d: &Path, samples: u64) {
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        for f in ["data.parquet", "series.parquet"] {
            let r = SerializedFileReader::new(File::open(d.join(f)).unwrap()).unwrap();
            let md = r.metadata();
            let mut per_col: BTreeMap<String, i64> = BTreeMap::new();
            for rg in md.row_groups() {
                for c in rg.columns() {
                    *per_col.entry(c.column_path().string()).or_default() += c.compressed_size();
                }
            }
            let total = std::fs::metadata(d.join(f)).unwrap().len();
            let cols: i64 = per_col.values().sum();
            print!(
                "  {f}: {total} bytes ({} row groups; footer+index {})",
                md.num_row_groups(),
                total as i64 - cols
            );
            for (c, b) in per_col {
                print!(", {c} {:.3}", b as f64 / samples as f64);
            }
            println!();
        }
    }

    /// Per-column sizes of the blocks under `$TW_BLOCKS`, as stored and
    /// re-encoded with the current writer (`cargo test -p
    /// tidewatch-aggregator --release column_sizes -- --ignored --nocapture`).
    #[test]
    #[ignore = "analysis tool: needs TW_BLOCKS"]
    fn column_sizes() {
        let Ok(root) = std::env::var("TW_BLOCKS") else {
            return;
        };
        let out = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(&root).unwrap() {
            let dir = e.unwrap().path();
            let mut data: HashMap<u64, MemSeries> = HashMap::new();
            read_samples(&dir, |id, ts, vs| {
                data.entry(id).or_default().append(ts, vs);
            })
            .unwrap();
            let labels: HashMap<u64, Labels> = read_series(&dir).unwrap().into_iter().collect();
            let refs = data
                .iter()
                .map(|(id, d)| SeriesRef {
                    id: *id,
                    labels: &labels[id],
                    data: d,
                })
                .collect();
            let name = dir.file_name().unwrap().to_string_lossy().to_string();
            let t0 = std::time::Instant::now();
            let b = write_block(out.path(), &name, 0, refs, vec![]).unwrap();
            let took = t0.elapsed();
            for (what, d) in [("stored", dir.clone()), ("rewritten", b.dir.clone())] {
                let meta = read_meta(&d).unwrap();
                println!(
                    "{name} {what}: {} samples, {} series, {:.3} bytes/sample{}",
                    meta.samples,
                    meta.series,
                    meta.bytes as f64 / meta.samples as f64,
                    if what == "rewritten" {
                        format!(" (written in {took:?})")
                    } else {
                        String::new()
                    }
                );
                print_sizes(&d, meta.samples);
            }
        }
    }

    /// Both ways of finding a selection's rows in a block (by-id order for
    /// small selections, a scan for large ones) agree, ignoring unknown ids.
    #[test]
    fn series_of_finds_the_rows_of_known_ids() {
        let dir = tempfile::tempdir().unwrap();
        let labels: Vec<Labels> = (0..100)
            .map(|i| Labels::from_pairs([("__name__", "m".to_string()), ("i", i.to_string())]))
            .collect();
        let data = MemSeries {
            timestamps: vec![1000],
            values: vec![1.0],
        };
        let refs = labels
            .iter()
            .map(|l| SeriesRef {
                id: l.stable_hash(),
                labels: l,
                data: &data,
            })
            .collect();
        let b = write_block(dir.path(), "b", 0, refs, vec![]).unwrap();
        let rows = b.series_ids().unwrap();
        for take in [1, 5, 60, 100] {
            let mut ids: HashSet<u64> = labels.iter().take(take).map(|l| l.stable_hash()).collect();
            ids.insert(42); // not in the block
            let got = b.series_of(&ids).unwrap();
            assert_eq!(got.len(), take);
            assert!(got.windows(2).all(|w| w[0] < w[1]));
            assert!(got.iter().all(|&s| ids.contains(&rows[s as usize])));
        }
    }

    /// A corrupt chunk (sample count beyond the chunk limit, truncated
    /// encoding) is an error, not an allocation or a panic.
    #[test]
    fn corrupt_chunks_are_errors() {
        let batch = |samples: u32, values: &[u8]| {
            let ts = TimestampMillisecondArray::from(vec![1000]);
            RecordBatch::try_new(
                chunk_schema(),
                vec![
                    Arc::new(UInt32Array::from(vec![0])),
                    Arc::new(ts.clone()),
                    Arc::new(ts),
                    Arc::new(UInt32Array::from(vec![samples])),
                    Arc::new(BinaryArray::from(vec![&[0u8][..]])),
                    Arc::new(BinaryArray::from(vec![values])),
                ],
            )
            .unwrap()
        };
        let err = decode_chunks(&batch(u32::MAX, &[0]), &[7], 0, i64::MAX, |_| true).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
        assert!(decode_chunks(&batch(1, &[]), &[7], 0, i64::MAX, |_| true).is_err());
        assert!(
            decode_chunks(&batch(1, &[0]), &[], 0, i64::MAX, |_| true).is_err(),
            "unknown series"
        );
    }

    /// Long series are split into chunks; the table's decoder keeps only
    /// the wanted series and time range.
    #[test]
    fn long_series_are_chunked_and_decoded_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let l = Labels::from_pairs([("__name__", "long")]);
        let other = Labels::from_pairs([("__name__", "other")]);
        let n = MAX_CHUNK_SAMPLES as i64 * 2 + 5;
        let s = MemSeries {
            timestamps: (0..n).map(|i| i * 1000).collect(),
            values: (0..n).map(|i| i as f64 * 0.5).collect(),
        };
        let o = MemSeries {
            timestamps: vec![1000, 2000],
            values: vec![1.0, 2.0],
        };
        let refs = vec![
            SeriesRef {
                id: l.stable_hash(),
                labels: &l,
                data: &s,
            },
            SeriesRef {
                id: other.stable_hash(),
                labels: &other,
                data: &o,
            },
        ];
        let b = write_block(dir.path(), "b", 0, refs, vec![]).unwrap();
        assert!(b.is_chunked());
        let mut chunks = 0;
        let mut all = MemSeries::default();
        read_samples(&b.dir, |id, ts, vs| {
            if id == l.stable_hash() {
                chunks += 1;
                all.append(ts, vs);
            }
        })
        .unwrap();
        assert_eq!(chunks, 3);
        assert_eq!(
            (all.timestamps, all.values),
            (s.timestamps.clone(), s.values.clone())
        );

        let file = File::open(b.data_path()).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let (lo, hi) = (
            MAX_CHUNK_SAMPLES as i64 * 1000 - 3000,
            MAX_CHUNK_SAMPLES as i64 * 1000 + 2000,
        );
        let mut got = Vec::new();
        for batch in reader {
            let ids = b.series_ids().unwrap();
            let out =
                decode_chunks(&batch.unwrap(), &ids, lo, hi, |id| id == l.stable_hash()).unwrap();
            let (ids, ts, vs) = sample_columns(&out).unwrap();
            assert!(ids.values().iter().all(|&i| i == l.stable_hash()));
            got.extend(ts.values().iter().copied().zip(vs.values().iter().copied()));
        }
        let want: Vec<(i64, f64)> = (lo / 1000..=hi / 1000)
            .map(|i| (i * 1000, i as f64 * 0.5))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn write_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let l1 = Labels::from_pairs([("__name__", "a"), ("x", "1")]);
        let l2 = Labels::from_pairs([("__name__", "b")]);
        let s1 = MemSeries {
            timestamps: vec![1000, 2000, 3000],
            values: vec![1.0, 2.5, f64::from_bits(0x7ff0_0000_0000_0002)],
        };
        let s2 = MemSeries {
            timestamps: vec![500],
            values: vec![7.0],
        };
        let b = write_block(
            dir.path(),
            "b1",
            0,
            vec![
                SeriesRef {
                    id: l1.stable_hash(),
                    labels: &l1,
                    data: &s1,
                },
                SeriesRef {
                    id: l2.stable_hash(),
                    labels: &l2,
                    data: &s2,
                },
            ],
            vec![],
        )
        .unwrap();
        assert_eq!((b.meta.min_t, b.meta.max_t, b.meta.samples), (500, 3000, 4));
        assert_eq!(read_meta(&b.dir).unwrap().series, 2);
        let mut series = read_series(&b.dir).unwrap();
        series.sort_by_key(|s| s.0);
        let mut want = vec![
            (l1.stable_hash(), l1.clone()),
            (l2.stable_hash(), l2.clone()),
        ];
        want.sort_by_key(|s| s.0);
        assert_eq!(series, want);
        let mut got = Vec::new();
        read_samples(&b.dir, |id, ts, vs| {
            got.push((
                id,
                ts.to_vec(),
                vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            ))
        })
        .unwrap();
        got.sort_by_key(|g| g.0 != l1.stable_hash());
        assert_eq!(got[0].1, vec![1000, 2000, 3000]);
        assert_eq!(got[0].2[1], 2.5f64.to_bits());
        assert_eq!(got[0].2[2], 0x7ff0_0000_0000_0002);
        assert_eq!((got[1].0, got[1].2[0]), (l2.stable_hash(), 7f64.to_bits()));
        assert!(!dir.path().join(".tmp-b1").exists());
    }
}
