//! Parquet files of one time partition: columns `timestamp` (ns, UTC),
//! `labels` (the stream selector string), `line`, then one nullable string
//! column per label name, sorted by name.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, RecordBatch, StringArray, StringBuilder, TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;

use super::model::Row;

/// Fixed leading columns.
pub const FIXED: [&str; 3] = ["timestamp", "labels", "line"];

/// The Arrow schema for a set of label names.
pub fn schema_for<'a>(label_names: impl IntoIterator<Item = &'a String>) -> SchemaRef {
    let mut fields = vec![
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("labels", DataType::Utf8, false),
        Field::new("line", DataType::Utf8, false),
    ];
    for n in label_names {
        if !FIXED.contains(&n.as_str()) {
            fields.push(Field::new(n, DataType::Utf8, true));
        }
    }
    Arc::new(Schema::new(fields))
}

/// Builds a record batch of `rows` in `schema` (label columns by name).
pub fn rows_to_batch(rows: &[&Row], schema: &SchemaRef) -> datafusion::error::Result<RecordBatch> {
    let ts =
        TimestampNanosecondArray::from_iter_values(rows.iter().map(|r| r.ts)).with_timezone("UTC");
    let labels = StringArray::from_iter_values(rows.iter().map(|r| r.stream.key.as_str()));
    let line = StringArray::from_iter_values(rows.iter().map(|r| &*r.line));
    let mut cols: Vec<ArrayRef> = vec![Arc::new(ts), Arc::new(labels), Arc::new(line)];
    for f in schema.fields().iter().skip(FIXED.len()) {
        let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 8);
        for r in rows {
            b.append_option(r.stream.labels.get(f.name()));
        }
        cols.push(Arc::new(b.finish()));
    }
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// Writes `rows` (sorted by timestamp here) to `path` atomically (temporary
/// file, fsync, rename, directory fsync).
pub fn write_file(path: &Path, rows: &mut [&Row]) -> anyhow::Result<()> {
    rows.sort_by_key(|r| r.ts);
    let names: BTreeSet<&String> = rows
        .iter()
        .flat_map(|r| r.stream.labels.iter().map(|l| &l.name))
        .collect();
    let schema = schema_for(names);
    let dir = path.parent().expect("partition file has a directory");
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(64 * 1024))
        .build();
    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
    for chunk in rows.chunks(64 * 1024) {
        w.write(&rows_to_batch(chunk, &schema)?)?;
    }
    let file = w.into_inner()?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Reads `timestamp`, `labels` and `line` of a partition file, calling `f`
/// for each row in `[start, end]`.
pub fn scan_file(
    path: &Path,
    start: i64,
    end: i64,
    mut f: impl FnMut(&str, i64, &str),
) -> anyhow::Result<()> {
    scan_rows(path, start, end, true, |labels, t, line| {
        f(labels, t, line.unwrap_or(""))
    })
}

/// Reads only `timestamp` and `labels` of a partition file, calling `f`
/// with the stream of each row in `[start, end]` (for label listings).
pub fn scan_streams(
    path: &Path,
    start: i64,
    end: i64,
    mut f: impl FnMut(&str),
) -> anyhow::Result<()> {
    scan_rows(path, start, end, false, |labels, _, _| f(labels))
}

/// Reads `timestamp`, `labels` and, when `with_line`, `line` of a partition
/// file, calling `f` for each row in `[start, end]`.
fn scan_rows(
    path: &Path,
    start: i64,
    end: i64,
    with_line: bool,
    mut f: impl FnMut(&str, i64, Option<&str>),
) -> anyhow::Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let columns: &[usize] = if with_line { &[0, 1, 2] } else { &[0, 1] };
    let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()?;
    for batch in reader {
        let batch = batch?;
        let ts = batch
            .column_by_name("timestamp")
            .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
            .ok_or_else(|| anyhow::anyhow!("{}: bad timestamp column", path.display()))?;
        let labels = string_col(&batch, "labels", path)?;
        let line = if with_line {
            Some(string_col(&batch, "line", path)?)
        } else {
            None
        };
        for i in 0..batch.num_rows() {
            let t = ts.value(i);
            if t >= start && t <= end {
                f(labels.value(i), t, line.map(|l| l.value(i)));
            }
        }
    }
    Ok(())
}

fn string_col<'a>(b: &'a RecordBatch, name: &str, path: &Path) -> anyhow::Result<&'a StringArray> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| anyhow::anyhow!("{}: bad {name} column", path.display()))
}

/// Reads a whole partition file as record batches conformed to `schema`
/// (label columns the file lacks become nulls).
pub fn read_conformed(path: &Path, schema: &SchemaRef) -> anyhow::Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?
        .with_batch_size(8192)
        .build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let cols: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| {
                batch.column_by_name(f.name()).cloned().unwrap_or_else(|| {
                    datafusion::arrow::array::new_null_array(f.data_type(), batch.num_rows())
                })
            })
            .collect();
        out.push(RecordBatch::try_new(schema.clone(), cols)?);
    }
    Ok(out)
}

/// Label names (columns after the fixed ones) of a partition file.
pub fn label_names(path: &Path) -> anyhow::Result<Vec<String>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    Ok(builder
        .schema()
        .fields()
        .iter()
        .skip(FIXED.len())
        .map(|f| f.name().clone())
        .collect())
}
