//! Reading blocks of the row format (`meta.json` without `format`): one
//! Parquet row per sample, written before the chunk format (see
//! [`super`]). Kept so that data written by earlier versions stays
//! queryable; compaction rewrites such blocks in the chunk format.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, Float64Array, Int8Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{sample_columns, samples_schema};

/// Schema of a row-format `data.parquet`: the samples schema with exact
/// decimals split into an integer encoding (see [`ValueCodec`]).
pub fn row_schema() -> SchemaRef {
    let mut fields: Vec<Field> = samples_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend([
        Field::new("value_int", DataType::Int64, true),
        Field::new("value_scale", DataType::Int8, false),
        // Absent (null) in blocks written before they existed: 1 and 0.
        Field::new("value_mult", DataType::Int64, true),
        Field::new("value_base", DataType::Int64, true),
    ]);
    Arc::new(Schema::new(fields))
}

/// Powers of ten for `value_scale` 0..=3.
pub const SCALES: [f64; 4] = [1.0, 10.0, 100.0, 1000.0];

/// How the row format stored one series' values.
///
/// Values that are exact decimals (`x / 10^scale`, one `scale` per series:
/// counters, byte gauges, CPU seconds) are stored as integers
/// `value_int = (x - value_base) / value_mult`: `value_mult` is the greatest
/// common divisor of the series' changes (4096 for memory in pages),
/// `value_base` is chosen so that the series' first `value_int` continues
/// the previous series' last one (sorted by series, a new series then does
/// not break the delta encoding's runs). `value_scale`, `value_mult` and
/// `value_base` are constant per series (dictionary/RLE: almost free), and
/// `value_int` is delta encoded. Any other value (NaN, ±Inf, −0, non-decimals) goes into `value`.
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
    /// The value of a stored integer.
    pub fn decode(&self, stored: i64) -> f64 {
        let x = self.base.wrapping_add(stored.wrapping_mul(self.mult));
        x as f64 / SCALES[self.scale.clamp(0, 3) as usize]
    }
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

/// Reads all samples of a row-format block, calling
/// `f(series_id, timestamps, values)` once per run of rows of one series.
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
