//! Parquet blocks: one directory per block under `blocks/`, holding
//!
//! - `data.parquet`: `series_id`, `timestamp`, `value`, sorted by series then
//!   time; `series_id` dictionary/RLE encoded, `timestamp` delta encoded,
//!   `value` byte-stream-split, all zstd compressed, with row-group and page
//!   statistics for pruning;
//! - `series.parquet`: the block's series index (`series_id`, `labels` as a
//!   JSON object), loaded into the in-memory postings at start-up;
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
    Array, ArrayRef, Float64Array, StringArray, TimestampMillisecondArray, UInt64Array,
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

/// Schema of the samples (`data.parquet`, and the `samples` table).
pub fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("value", DataType::Float64, false),
    ]))
}

fn series_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("labels", DataType::Utf8, false),
    ]))
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

fn writer_props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_column_dictionary_enabled(ColumnPath::from("timestamp"), false)
        .set_column_encoding(ColumnPath::from("timestamp"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("value"), false)
        .set_column_encoding(ColumnPath::from("value"), Encoding::BYTE_STREAM_SPLIT)
        .build()
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

    let schema = samples_schema();
    let mut w = ArrowWriter::try_new(
        File::create(tmp.join("data.parquet"))?,
        schema.clone(),
        Some(writer_props()),
    )?;
    let (mut min_t, mut max_t, mut samples) = (i64::MAX, i64::MIN, 0u64);
    let mut ids = Vec::with_capacity(ROW_GROUP_ROWS);
    let mut ts = Vec::with_capacity(ROW_GROUP_ROWS);
    let mut vs = Vec::with_capacity(ROW_GROUP_ROWS);
    let flush = |ids: &mut Vec<u64>,
                 ts: &mut Vec<i64>,
                 vs: &mut Vec<f64>,
                 w: &mut ArrowWriter<File>|
     -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(std::mem::take(ids))),
            Arc::new(TimestampMillisecondArray::from(std::mem::take(ts))),
            Arc::new(Float64Array::from(std::mem::take(vs))),
        ];
        w.write(&RecordBatch::try_new(samples_schema(), cols)?)?;
        Ok(())
    };
    for s in &series {
        let d = s.data;
        if d.timestamps.is_empty() {
            continue;
        }
        min_t = min_t.min(d.timestamps[0]);
        max_t = max_t.max(*d.timestamps.last().expect("non-empty"));
        samples += d.timestamps.len() as u64;
        ids.extend(std::iter::repeat_n(s.id, d.timestamps.len()));
        ts.extend_from_slice(&d.timestamps);
        vs.extend_from_slice(&d.values);
        if ids.len() >= ROW_GROUP_ROWS {
            flush(&mut ids, &mut ts, &mut vs, &mut w)?;
        }
    }
    flush(&mut ids, &mut ts, &mut vs, &mut w)?;
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
    let sid: Vec<u64> = series.iter().map(|s| s.id).collect();
    let labels: Vec<String> = series.iter().map(|s| labels_json(s.labels)).collect();
    sw.write(&RecordBatch::try_new(
        series_schema(),
        vec![
            Arc::new(UInt64Array::from(sid)),
            Arc::new(StringArray::from(labels)),
        ],
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
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| anyhow::anyhow!("series.parquet: series_id is not UInt64"))?;
        let labels = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| anyhow::anyhow!("series.parquet: labels is not Utf8"))?;
        for i in 0..batch.num_rows() {
            let map: BTreeMap<String, String> = serde_json::from_str(labels.value(i))?;
            out.push((ids.value(i), Labels::from_pairs(map)));
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
        let (ids, ts, vs) = sample_columns(&batch)?;
        let n = batch.num_rows();
        let mut start = 0;
        while start < n {
            let id = ids.value(start);
            let mut end = start + 1;
            while end < n && ids.value(end) == id {
                end += 1;
            }
            f(id, &ts.values()[start..end], &vs.values()[start..end]);
            start = end;
        }
    }
    Ok(())
}

/// The three columns of a samples batch with the full schema.
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
    use super::*;

    #[test]
    fn write_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let l1 = Labels::from_pairs([("__name__", "a"), ("x", "1")]);
        let l2 = Labels::from_pairs([("__name__", "b")]);
        let s1 = MemSeries {
            timestamps: vec![1000, 2000, 3000],
            values: vec![1.0, 2.0, f64::from_bits(0x7ff0_0000_0000_0002)],
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
                    id: 9,
                    labels: &l1,
                    data: &s1,
                },
                SeriesRef {
                    id: 3,
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
        assert_eq!(series, vec![(3, l2.clone()), (9, l1.clone())]);
        let mut got = Vec::new();
        read_samples(&b.dir, |id, ts, vs| {
            got.push((
                id,
                ts.to_vec(),
                vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            ))
        })
        .unwrap();
        assert_eq!(got[0].0, 3);
        assert_eq!(got[1].1, vec![1000, 2000, 3000]);
        assert_eq!(got[1].2[2], 0x7ff0_0000_0000_0002);
        assert!(!dir.path().join(".tmp-b1").exists());
    }
}
