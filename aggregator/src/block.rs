//! Parquet blocks: one directory per block under `blocks/`, holding
//!
//! - `data.parquet`: `series_id`, `timestamp`, `value`, `value_int`,
//!   `value_scale`, `value_mult`, `value_base`, sorted by series then time;
//!   `series_id` dictionary/RLE encoded, `timestamp` delta encoded; values
//!   that are exact decimals are stored as delta-encoded integers with a
//!   per-series scale, multiplier and base (see [`ValueCodec`]: a sample
//!   costs about the bits of its change), any other value goes into `value`
//!   (byte-stream-split) with `value_int` null; all zstd compressed, with
//!   row-group and page statistics for pruning;
//! - `series.parquet`: the block's series index (`labels` as a JSON object,
//!   sorted; the series id is their stable hash), loaded into the in-memory
//!   postings at start-up;
//! - `meta.json`: time range, counts, partition, and the blocks it replaces
//!   (compaction).
//!
//! A block is written into `.tmp-<name>` and renamed into place, so a crash
//! never leaves a half-written block visible.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Int8Array, Int64Array, StringArray, TimestampMillisecondArray,
    UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use tidewatch_common::Labels;

use crate::head::MemSeries;

/// Rows per Parquet row group (pruning granularity).
const ROW_GROUP_ROWS: usize = 256 * 1024;

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

/// Schema of `data.parquet`: the samples schema with exact decimals split
/// into an integer encoding (see [`ValueCodec`]).
pub fn file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("value", DataType::Float64, true),
        Field::new("value_int", DataType::Int64, true),
        Field::new("value_scale", DataType::Int8, false),
        // Absent (null) in blocks written before they existed: 1 and 0.
        Field::new("value_mult", DataType::Int64, true),
        Field::new("value_base", DataType::Int64, true),
    ]))
}

/// Powers of ten for `value_scale` 0..=3.
pub const SCALES: [f64; 4] = [1.0, 10.0, 100.0, 1000.0];

/// Largest integer magnitude stored (exactly representable as f64).
const MAX_EXACT: f64 = 9.0e15;

/// `v` as `(i, scale)` with `i as f64 / 10^scale == v` bit for bit, when
/// such a pair exists with `scale <= 3` (the smallest such scale).
fn as_decimal(v: f64) -> Option<(i64, i8)> {
    (0..SCALES.len() as i8).find_map(|k| at_scale(v, k).map(|i| (i, k)))
}

/// `v` as `i` with `i as f64 / 10^k == v` bit for bit, if there is one.
fn at_scale(v: f64, k: i8) -> Option<i64> {
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    let p = SCALES[k as usize];
    let x = (v * p).round();
    (x.abs() < MAX_EXACT && (x / p).to_bits() == v.to_bits()).then_some(x as i64)
}

/// How one series' values are stored in a block.
///
/// Values that are exact decimals (`x / 10^scale`, one `scale` per series:
/// counters, byte gauges, CPU seconds) are stored as integers
/// `value_int = (x - value_base) / value_mult`: `value_mult` is the greatest
/// common divisor of the series' changes (4096 for memory in pages),
/// `value_base` is chosen so that the series' first `value_int` continues
/// the previous series' last one (sorted by series, a new series then does
/// not break the delta encoding's runs). `value_scale`, `value_mult` and
/// `value_base` are constant per series (dictionary/RLE: almost free), and
/// `value_int` is delta encoded, so a sample costs about the bits of its
/// change. Any other value (NaN, ±Inf, −0, non-decimals) goes into `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueCodec {
    /// Decimal digits (0..=3).
    pub scale: i8,
    /// Multiplier of `value_int`.
    pub mult: i64,
    /// Offset.
    pub base: i64,
}

impl ValueCodec {
    /// The codec for `values`, whose `value_int` sequence starts right
    /// after `prev_last` (the previous series' last `value_int`), and the
    /// integers (`None`: stored as a float).
    pub fn for_series(values: &[f64], prev_last: Option<i64>) -> (ValueCodec, Vec<Option<i64>>) {
        let scale = values
            .iter()
            .filter_map(|&v| as_decimal(v).map(|(_, k)| k))
            .max()
            .unwrap_or(0);
        let ints: Vec<Option<i64>> = values.iter().map(|&v| at_scale(v, scale)).collect();
        let mut present = ints.iter().flatten().copied();
        let Some(first) = present.next() else {
            return (
                ValueCodec {
                    scale,
                    mult: 1,
                    base: 0,
                },
                ints,
            );
        };
        let mult = ints
            .iter()
            .flatten()
            .fold(0u64, |g, &x| gcd(g, x.abs_diff(first)))
            .max(1);
        // |x - first| < 2 * MAX_EXACT < 2^55, so quotients fit easily.
        let q = |x: i64| ((x as i128 - first as i128) / mult as i128) as i64;
        let second = present.next().map_or(0, q);
        // Continue the previous series: its last value_int + this series'
        // first change. Kept only while every product stays small.
        let start = prev_last
            .and_then(|p| p.checked_add(second))
            .filter(|s| s.unsigned_abs() < 1 << 40 && mult < 1 << 20);
        let start = start.unwrap_or(0);
        let base = first as i128 - start as i128 * mult as i128;
        let codec = ValueCodec {
            scale,
            mult: mult as i64,
            base: base as i64,
        };
        let stored = ints.iter().map(|x| x.map(|x| q(x) + start)).collect();
        (codec, stored)
    }

    /// The value of a stored integer.
    pub fn decode(&self, stored: i64) -> f64 {
        let x = self.base.wrapping_add(stored.wrapping_mul(self.mult));
        x as f64 / SCALES[self.scale.clamp(0, 3) as usize]
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Decodes one stored value.
fn decode_value(cols: &ValueColumns<'_>, i: usize) -> f64 {
    if cols.ints.is_valid(i) {
        let mult = cols
            .mults
            .filter(|m| m.is_valid(i))
            .map_or(1, |m| m.value(i));
        let base = cols
            .bases
            .filter(|b| b.is_valid(i))
            .map_or(0, |b| b.value(i));
        ValueCodec {
            scale: cols.scales.value(i),
            mult,
            base,
        }
        .decode(cols.ints.value(i))
    } else {
        cols.floats.value(i)
    }
}

/// The value columns of a `data.parquet` batch (`value_mult`/`value_base`
/// absent in older blocks).
struct ValueColumns<'a> {
    floats: &'a Float64Array,
    ints: &'a Int64Array,
    scales: &'a Int8Array,
    mults: Option<&'a Int64Array>,
    bases: Option<&'a Int64Array>,
}

impl<'a> ValueColumns<'a> {
    fn of(batch: &'a RecordBatch) -> anyhow::Result<Self> {
        fn get<'b, T: 'static>(batch: &'b RecordBatch, name: &str) -> Option<&'b T> {
            batch.column_by_name(name)?.as_any().downcast_ref::<T>()
        }
        let need = |name: &str| anyhow::anyhow!("data.parquet: column {name} missing or mistyped");
        Ok(ValueColumns {
            floats: get(batch, "value").ok_or_else(|| need("value"))?,
            ints: get(batch, "value_int").ok_or_else(|| need("value_int"))?,
            scales: get(batch, "value_scale").ok_or_else(|| need("value_scale"))?,
            mults: get(batch, "value_mult"),
            bases: get(batch, "value_base"),
        })
    }
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
}

/// A block on disk.
#[derive(Clone, Debug)]
pub struct Block {
    /// Metadata.
    pub meta: BlockMeta,
    /// Its directory.
    pub dir: PathBuf,
}

impl Block {
    /// Path of `data.parquet`.
    pub fn data_path(&self) -> PathBuf {
        self.dir.join("data.parquet")
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

/// zstd level of `value_int`, which holds almost all of a block's bytes:
/// on the benchmark's blocks level 19 stores its bit-packed deltas in 2 %
/// fewer bytes than level 3 (blocks are written in the background, by the
/// flush and by compaction). Storing per-series deltas instead (plain or
/// byte-stream-split, any zstd level) measured 4–30 % larger.
const VALUE_INT_ZSTD_LEVEL: i32 = 19;

fn writer_props() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_column_compression(
            ColumnPath::from("value_int"),
            Compression::ZSTD(ZstdLevel::try_new(VALUE_INT_ZSTD_LEVEL).expect("valid zstd level")),
        )
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page);
    // Nothing prunes by the value columns (the value is an expression over
    // them): no statistics, a smaller footer and page index.
    for c in [
        "value",
        "value_int",
        "value_scale",
        "value_mult",
        "value_base",
    ] {
        b = b.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    b.set_column_dictionary_enabled(ColumnPath::from("timestamp"), false)
        .set_column_encoding(ColumnPath::from("timestamp"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("value"), false)
        .set_column_encoding(ColumnPath::from("value"), Encoding::BYTE_STREAM_SPLIT)
        .set_column_dictionary_enabled(ColumnPath::from("value_int"), false)
        .set_column_encoding(ColumnPath::from("value_int"), Encoding::DELTA_BINARY_PACKED)
        .build()
}

/// Columns of `data.parquet` being accumulated.
#[derive(Default)]
struct Rows {
    ids: Vec<u64>,
    ts: Vec<i64>,
    floats: Vec<Option<f64>>,
    ints: Vec<Option<i64>>,
    scales: Vec<i8>,
    mults: Vec<i64>,
    bases: Vec<i64>,
}

impl Rows {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn push(&mut self, id: u64, ts: &[i64], vs: &[f64], ints: &[Option<i64>], c: ValueCodec) {
        let n = ts.len();
        self.ids.extend(std::iter::repeat_n(id, n));
        self.ts.extend_from_slice(ts);
        self.floats
            .extend(vs.iter().zip(ints).map(|(v, i)| i.is_none().then_some(*v)));
        self.ints.extend_from_slice(ints);
        self.scales.extend(std::iter::repeat_n(c.scale, n));
        self.mults.extend(std::iter::repeat_n(c.mult, n));
        self.bases.extend(std::iter::repeat_n(c.base, n));
    }

    fn write_to(&mut self, w: &mut ArrowWriter<File>) -> anyhow::Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let r = std::mem::take(self);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(r.ids)),
            Arc::new(TimestampMillisecondArray::from(r.ts)),
            Arc::new(Float64Array::from(r.floats)),
            Arc::new(Int64Array::from(r.ints)),
            Arc::new(Int8Array::from(r.scales)),
            Arc::new(Int64Array::from(r.mults)),
            Arc::new(Int64Array::from(r.bases)),
        ];
        w.write(&RecordBatch::try_new(file_schema(), cols)?)?;
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
    series.sort_unstable_by_key(|s| s.id);
    let tmp = root.join(format!(".tmp-{name}"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;

    let schema = file_schema();
    let mut w = ArrowWriter::try_new(
        File::create(tmp.join("data.parquet"))?,
        schema.clone(),
        Some(writer_props()),
    )?;
    let (mut min_t, mut max_t, mut samples) = (i64::MAX, i64::MIN, 0u64);
    let mut rows = Rows::default();
    let mut prev_last = None;
    for s in &series {
        let d = s.data;
        if d.timestamps.is_empty() {
            continue;
        }
        min_t = min_t.min(d.timestamps[0]);
        max_t = max_t.max(*d.timestamps.last().expect("non-empty"));
        samples += d.timestamps.len() as u64;
        let (codec, ints) = ValueCodec::for_series(&d.values, prev_last);
        if let Some(last) = ints.iter().rev().flatten().next() {
            prev_last = Some(*last);
        }
        rows.push(s.id, &d.timestamps, &d.values, &ints, codec);
        if rows.len() >= ROW_GROUP_ROWS {
            rows.write_to(&mut w)?;
        }
    }
    rows.write_to(&mut w)?;
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
    // Sorted by labels, similar rows are adjacent (compresses better); the
    // id is not stored: it is the labels' stable hash.
    let mut labels: Vec<String> = series.iter().map(|s| labels_json(s.labels)).collect();
    labels.sort_unstable();
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
    };
    std::fs::write(tmp.join("meta.json"), serde_json::to_vec_pretty(&meta)?)?;
    for f in ["data.parquet", "series.parquet", "meta.json"] {
        File::open(tmp.join(f))?.sync_all()?;
    }
    File::open(&tmp)?.sync_all()?;
    let dir = root.join(name);
    std::fs::rename(&tmp, &dir)?;
    File::open(root)?.sync_all()?;
    Ok(Block { meta, dir })
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

/// Reads all samples of a block, calling `f(series_id, timestamps, values)`
/// once per run of rows of one series.
pub fn read_samples(dir: &Path, mut f: impl FnMut(u64, &[i64], &[f64])) -> anyhow::Result<()> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(dir.join("data.parquet"))?)?
        .with_batch_size(64 * 1024)
        .build()?;
    for batch in reader {
        let batch = batch?;
        let (ids, ts, _) = sample_columns(&batch)?;
        let cols = ValueColumns::of(&batch)?;
        let values: Vec<f64> = (0..batch.num_rows())
            .map(|i| decode_value(&cols, i))
            .collect();
        let n = batch.num_rows();
        let mut start = 0;
        while start < n {
            let id = ids.value(start);
            let mut end = start + 1;
            while end < n && ids.value(end) == id {
                end += 1;
            }
            f(id, &ts.values()[start..end], &values[start..end]);
            start = end;
        }
    }
    Ok(())
}

/// The first three columns of a samples batch (table or file schema).
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

    #[test]
    fn value_codec_round_trips_and_continues_series() {
        let page = 4096.0;
        let gauge: Vec<f64> = (0..50)
            .map(|i| 4e9 + ((i * 7) % 13) as f64 * page)
            .collect();
        let cpu: Vec<f64> = (0..50).map(|i| (10_000 + i * 37) as f64 / 100.0).collect();
        let mixed = vec![1.0, 2.5, f64::NAN, 0.1 + 0.2, -0.0, 3.25, f64::INFINITY];
        let mut prev = None;
        for vs in [&gauge, &cpu, &mixed] {
            let (c, ints) = ValueCodec::for_series(vs, prev);
            for (v, i) in vs.iter().zip(&ints) {
                match i {
                    Some(i) => assert_eq!(c.decode(*i).to_bits(), v.to_bits(), "{v} {c:?}"),
                    None => assert!(as_decimal(*v).is_none() || !v.is_finite(), "{v}"),
                }
            }
            if let (Some(p), Some(first)) = (prev, ints.iter().flatten().next()) {
                // The series continues where the previous one ended.
                let second = ints.iter().flatten().nth(1).unwrap();
                assert_eq!(first - p, second - first);
            }
            prev = ints.iter().rev().flatten().next().copied().or(prev);
        }
        let (c, _) = ValueCodec::for_series(&gauge, None);
        assert_eq!((c.scale, c.mult), (0, 4096));
        // One scale per series: 100.0 and 100.37 are both stored at 2.
        let (c, ints) = ValueCodec::for_series(&cpu, None);
        assert_eq!(c.scale, 2);
        assert_eq!(ints[1].unwrap() - ints[0].unwrap(), 1);
        assert_eq!(c.mult, 37);
    }

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
        assert!(per_sample < 1.25, "{per_sample} bytes/sample");
        println!("{per_sample} bytes/sample");
        print_sizes(&b.dir, b.meta.samples);
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

    /// Sizes of alternative `value_int` encodings on the blocks under
    /// `$TW_BLOCKS` (analysis only).
    #[test]
    #[ignore = "analysis tool: needs TW_BLOCKS"]
    fn value_encodings() {
        let Ok(root) = std::env::var("TW_BLOCKS") else {
            return;
        };
        let out = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(&root).unwrap() {
            let dir = e.unwrap().path();
            let mut data: BTreeMap<u64, MemSeries> = BTreeMap::new();
            read_samples(&dir, |id, ts, vs| {
                data.entry(id).or_default().append(ts, vs);
            })
            .unwrap();
            let mut abs: Vec<Option<i64>> = Vec::new();
            let mut del: Vec<Option<i64>> = Vec::new();
            let mut prev_last = None;
            let mut n = 0usize;
            for d in data.values() {
                let (_, ints) = ValueCodec::for_series(&d.values, prev_last);
                if let Some(l) = ints.iter().rev().flatten().next() {
                    prev_last = Some(*l);
                }
                let mut p: Option<i64> = None;
                for i in &ints {
                    abs.push(*i);
                    del.push(i.map(|x| {
                        let dx = p.map_or(x, |p| x - p);
                        p = Some(x);
                        dx
                    }));
                }
                n += ints.len();
            }
            let name = dir.file_name().unwrap().to_string_lossy().to_string();
            println!("{name}: {n} samples");
            let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
            for (what, col) in [("abs", &abs), ("delta", &del)] {
                for enc in [
                    Encoding::DELTA_BINARY_PACKED,
                    Encoding::PLAIN,
                    Encoding::BYTE_STREAM_SPLIT,
                ] {
                    for level in [3, 9, 19] {
                        for stats in [true, false] {
                            let path = out.path().join("x.parquet");
                            let props = WriterProperties::builder()
                                .set_compression(Compression::ZSTD(
                                    ZstdLevel::try_new(level).unwrap(),
                                ))
                                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                                .set_statistics_enabled(if stats {
                                    EnabledStatistics::Page
                                } else {
                                    EnabledStatistics::None
                                })
                                .set_dictionary_enabled(false)
                                .set_encoding(enc)
                                .build();
                            let mut w = ArrowWriter::try_new(
                                File::create(&path).unwrap(),
                                schema.clone(),
                                Some(props),
                            )
                            .unwrap();
                            for chunk in col.chunks(ROW_GROUP_ROWS) {
                                w.write(
                                    &RecordBatch::try_new(
                                        schema.clone(),
                                        vec![Arc::new(Int64Array::from(chunk.to_vec()))],
                                    )
                                    .unwrap(),
                                )
                                .unwrap();
                            }
                            w.close().unwrap();
                            let b = std::fs::metadata(&path).unwrap().len();
                            println!(
                                "  {what} {enc:?} zstd({level}) stats={stats}: {:.4} bytes/sample",
                                b as f64 / n as f64
                            );
                        }
                    }
                }
            }
        }
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
        assert_eq!(as_decimal(-0.0), None);
        assert_eq!(as_decimal(3.0), Some((3, 0)));
        assert_eq!(as_decimal(1234.56), Some((123456, 2)));
        assert_eq!(as_decimal(0.1 + 0.2), None);
        assert_eq!(as_decimal(f64::INFINITY), None);
        for v in [0.001, -7.25, 1e15, 123.456, 2.5e-7, f64::MAX, 1e300] {
            match as_decimal(v) {
                Some((i, k)) => assert_eq!((i as f64 / SCALES[k as usize]).to_bits(), v.to_bits()),
                None => assert!(v == 2.5e-7 || v >= 1e300),
            }
        }
        assert!(!dir.path().join(".tmp-b1").exists());
    }
}
