//! DataFusion tables over the store.
//!
//! - `samples` ([`SamplesTable`]): `series_id`, `timestamp`, `value` over the
//!   head and every Parquet block. Time-range filters prune blocks by their
//!   metadata and row groups/pages by their chunks' `min_t`/`max_t`
//!   statistics; `series_id = …` / `IN (…)` filters prune row groups and
//!   pages (blocks are sorted by series) and the head. Chunks are decoded
//!   (see [`crate::codec`]) in the scan's partitions.
//! - `series` ([`SeriesTable`]): `series_id`, `metric`, `labels` (JSON) from
//!   the series index.
//! - `metrics`: a view joining both (`timestamp`, `metric`, `labels`,
//!   `value`, `series_id`).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::config::TableParquetOptions;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::filter_pushdown::FilterPushdown;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::{SessionConfig, SessionContext, cast, col, lit, when};
use futures::StreamExt;

use crate::block::{
    Block, chunk_schema, decode_chunks, labels_json, legacy, prune, samples_schema,
};
use crate::store::Store;

/// Series id lists up to this size are pushed into row-format block scans
/// as `IN (…)` (DataFusion prunes by lists of up to 20 ids).
const MAX_ROW_FORMAT_IN_LIST: usize = 20;

/// The `samples` table: head plus blocks.
#[derive(Debug)]
pub struct SamplesTable {
    store: Arc<Store>,
    /// Only these series (a PromQL selection: more ids than an `IN` list
    /// should carry).
    only: Option<Arc<HashSet<u64>>>,
}

impl SamplesTable {
    /// A table over `store`.
    pub fn new(store: Arc<Store>) -> Self {
        SamplesTable { store, only: None }
    }

    /// A table over `store` restricted to the series `ids`.
    pub fn for_series(store: Arc<Store>, ids: Arc<HashSet<u64>>) -> Self {
        SamplesTable {
            store,
            only: Some(ids),
        }
    }
}

fn ts_literal(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampMillisecond(Some(t), _) => Some(*t),
        ScalarValue::TimestampSecond(Some(t), _) => t.checked_mul(1000),
        ScalarValue::TimestampMicrosecond(Some(t), _) => Some(t.div_euclid(1000)),
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(t.div_euclid(1_000_000)),
        ScalarValue::Int64(Some(t)) => Some(*t),
        _ => None,
    }
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_name(&c.expr),
        Expr::TryCast(c) => column_name(&c.expr),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        Expr::Cast(c) => literal(&c.expr),
        _ => None,
    }
}

/// Time bounds `[start, end]` implied by conjunctive filters.
fn time_bounds(filters: &[Expr], start: &mut i64, end: &mut i64) {
    for f in filters {
        match f {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if *op == Operator::And {
                    time_bounds(&[(**left).clone(), (**right).clone()], start, end);
                    continue;
                }
                let (col, lit, op) = match (column_name(left), literal(right)) {
                    (Some(c), Some(l)) => (c, l, *op),
                    _ => match (literal(left), column_name(right), op.swap()) {
                        (Some(l), Some(c), Some(op)) => (c, l, op),
                        _ => continue,
                    },
                };
                let Some(t) = (col == "timestamp").then(|| ts_literal(lit)).flatten() else {
                    continue;
                };
                match op {
                    Operator::Gt => *start = (*start).max(t.saturating_add(1)),
                    Operator::GtEq => *start = (*start).max(t),
                    Operator::Lt => *end = (*end).min(t.saturating_sub(1)),
                    Operator::LtEq => *end = (*end).min(t),
                    Operator::Eq => {
                        *start = (*start).max(t);
                        *end = (*end).min(t);
                    }
                    _ => {}
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if column_name(expr) == Some("timestamp") => {
                if let Some(t) = literal(low).and_then(ts_literal) {
                    *start = (*start).max(t);
                }
                if let Some(t) = literal(high).and_then(ts_literal) {
                    *end = (*end).min(t);
                }
            }
            _ => {}
        }
    }
}

/// Series ids implied by `series_id = x` / `series_id IN (…)` filters.
fn id_filter(filters: &[Expr]) -> Option<HashSet<u64>> {
    let mut out: Option<HashSet<u64>> = None;
    let mut narrow = |ids: HashSet<u64>| {
        out = Some(match out.take() {
            Some(prev) => prev.intersection(&ids).copied().collect(),
            None => ids,
        });
    };
    for f in filters {
        match f {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) if column_name(left) == Some("series_id") => {
                if let Some(ScalarValue::UInt64(Some(v))) = literal(right) {
                    narrow(HashSet::from([*v]));
                }
            }
            Expr::InList(l) if !l.negated && column_name(&l.expr) == Some("series_id") => {
                let ids: Option<HashSet<u64>> = l
                    .list
                    .iter()
                    .map(|e| match literal(e) {
                        Some(ScalarValue::UInt64(Some(v))) => Some(*v),
                        _ => None,
                    })
                    .collect();
                if let Some(ids) = ids {
                    narrow(ids);
                }
            }
            _ => {}
        }
    }
    out
}

#[async_trait]
impl TableProvider for SamplesTable {
    fn schema(&self) -> SchemaRef {
        samples_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (mut start, mut end) = (i64::MIN, i64::MAX);
        time_bounds(filters, &mut start, &mut end);
        let ids: Option<Arc<HashSet<u64>>> = match (id_filter(filters), &self.only) {
            (Some(f), Some(only)) => Some(Arc::new(f.intersection(only).copied().collect())),
            (None, Some(only)) => Some(only.clone()),
            (f, None) => f.map(Arc::new),
        };
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let (chunked, rows): (Vec<_>, Vec<_>) = self
            .store
            .blocks_overlapping(start, end)
            .into_iter()
            .partition(|b| b.is_chunked());
        if !chunked.is_empty()
            && let Some((scan, block_ids)) =
                chunk_scan(state, &chunked, ids.as_deref(), start, end).await?
        {
            plans.push(decode_chunks_exec(
                scan,
                block_ids,
                start,
                end,
                ids.clone(),
                projection,
            )?);
        }
        if !rows.is_empty() {
            // Only filters on the key columns go to the file scan (the
            // file's `value` alone is not the table's `value`); DataFusion
            // re-applies every filter above the scan (Inexact).
            let mut key_filters: Vec<Expr> = filters
                .iter()
                .filter(|f| {
                    f.column_refs()
                        .iter()
                        .all(|c| c.name == "series_id" || c.name == "timestamp")
                })
                .cloned()
                .collect();
            // A short list of the wanted series prunes row groups and pages.
            if let Some(ids) = ids
                .as_ref()
                .filter(|ids| ids.len() <= MAX_ROW_FORMAT_IN_LIST)
            {
                key_filters
                    .push(col("series_id").in_list(ids.iter().map(|i| lit(*i)).collect(), false));
            }
            let scan = parquet_scan(state, &rows, legacy::row_schema(), &key_filters).await?;
            plans.push(value_projection(state, scan, projection)?);
        }
        let head = self.store.head_batch(ids.as_deref(), start, end);
        plans.push(MemorySourceConfig::try_new_exec(
            &[vec![head]],
            samples_schema(),
            projection.cloned(),
        )?);
        UnionExec::try_new(plans)
    }
}

/// DataFusion's Parquet scan of the chunk-format blocks, one partition
/// per block (returned with the block's series ids, which its chunks'
/// `series` index), `None` when no block can hold a wanted series. Row
/// groups and pages without the series `ids` are skipped by an access plan
/// per file (see [`prune`]), and the time range prunes by the chunks'
/// `min_t`/`max_t` statistics (a chunk overlaps `[start, end]` when
/// `max_t >= start` and `min_t <= end`).
async fn chunk_scan(
    state: &dyn Session,
    blocks: &[Arc<Block>],
    ids: Option<&HashSet<u64>>,
    start: i64,
    end: i64,
) -> Result<Option<(Arc<dyn ExecutionPlan>, Vec<Arc<Vec<u64>>>)>> {
    let ext = |e: anyhow::Error| DataFusionError::External(e.into());
    let mut groups = Vec::with_capacity(blocks.len());
    let mut block_ids = Vec::with_capacity(blocks.len());
    for b in blocks {
        let (size, footer) = b.data_footer().map_err(ext)?;
        let series_ids = b.series_ids().map_err(ext)?;
        let path = b
            .data_path()
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        let mut file = PartitionedFile::new(path, size);
        if let Some(ids) = ids {
            let wanted = b.series_of(ids).map_err(ext)?;
            if wanted.is_empty() {
                continue;
            }
            file = file.with_extension(prune::access_plan(&footer, &wanted));
        }
        groups.push(FileGroup::from(vec![file]));
        block_ids.push(series_ids);
    }
    if groups.is_empty() {
        return Ok(None);
    }
    let ts = |t: i64| lit(ScalarValue::TimestampMillisecond(Some(t), None));
    let mut time = Vec::new();
    if start > i64::MIN {
        time.push(col("max_t").gt_eq(ts(start)));
    }
    if end < i64::MAX {
        time.push(col("min_t").lt_eq(ts(end)));
    }
    let options = parquet_options(false);
    let mut source = ParquetSource::new(chunk_schema()).with_table_parquet_options(options.clone());
    if let Some(time) = conjunction(time) {
        let schema = DFSchema::try_from(chunk_schema().as_ref().clone())?;
        source = source.with_predicate(state.create_physical_expr(time, &schema)?);
    }
    let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
        .with_file_groups(groups)
        .build();
    let scan = ParquetFormat::default()
        .with_options(options)
        .create_physical_plan(state, config)
        .await?;
    Ok(Some((scan, block_ids)))
}

/// Parquet options of the block scans: `pushdown_filters` evaluates the
/// filters on rows before the other columns are decoded.
fn parquet_options(pushdown_filters: bool) -> TableParquetOptions {
    let mut parquet = TableParquetOptions::default();
    parquet.global.pushdown_filters = pushdown_filters;
    parquet.global.reorder_filters = pushdown_filters;
    parquet
}

/// DataFusion's Parquet scan of the row-format blocks with `filters` for
/// row-group and page pruning and row filtering.
async fn parquet_scan(
    state: &dyn Session,
    blocks: &[Arc<Block>],
    schema: SchemaRef,
    filters: &[Expr],
) -> Result<Arc<dyn ExecutionPlan>> {
    let urls = blocks
        .iter()
        .map(|b| ListingTableUrl::parse(b.data_path().to_string_lossy()))
        .collect::<Result<Vec<_>>>()?;
    let format = ParquetFormat::default().with_options(parquet_options(true));
    let opts = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let cfg = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(opts)
        .with_schema(schema.clone());
    let scan = ListingTable::try_new(cfg)?
        .scan(state, None, filters, None)
        .await?;
    // The listing table leaves filters to the physical optimizer, which
    // does not see into the chunk decoder: push them into the Parquet
    // source here (statistics and page-index pruning, row filters).
    let Some(predicate) = conjunction(filters.iter().cloned()) else {
        return Ok(scan);
    };
    let predicate = state.create_physical_expr(predicate, &DFSchema::try_from(schema)?)?;
    let filtered = Arc::new(FilterExec::try_new(predicate, scan)?);
    FilterPushdown::new().optimize(filtered, state.config_options())
}

/// One partition of a chunk scan, decoded into samples-table rows.
#[derive(Debug)]
struct DecodedChunks {
    scan: Arc<dyn ExecutionPlan>,
    partition: usize,
    /// The partition's block's series ids.
    block_ids: Arc<Vec<u64>>,
    start: i64,
    end: i64,
    ids: Option<Arc<HashSet<u64>>>,
    schema: SchemaRef,
}

impl PartitionStream for DecodedChunks {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (start, end, ids) = (self.start, self.end, self.ids.clone());
        let block_ids = self.block_ids.clone();
        let decoded = match self.scan.execute(self.partition, ctx) {
            Ok(input) => input
                .map(move |batch| {
                    let batch = batch?;
                    let keep = |id: u64| ids.as_ref().is_none_or(|s| s.contains(&id));
                    decode_chunks(&batch, &block_ids, start, end, keep)
                        .map_err(|e| DataFusionError::External(e.into()))
                })
                .boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        };
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), decoded))
    }
}

/// Decodes the chunk rows of `scan` (see [`chunk_schema`]; partition `i`
/// reads the block whose series ids are `block_ids[i]`) into the table
/// schema, keeping the series in `ids` and the samples in `[start, end]`,
/// then applies `projection`.
fn decode_chunks_exec(
    scan: Arc<dyn ExecutionPlan>,
    block_ids: Vec<Arc<Vec<u64>>>,
    start: i64,
    end: i64,
    ids: Option<Arc<HashSet<u64>>>,
    projection: Option<&Vec<usize>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let streams: Vec<Arc<dyn PartitionStream>> = block_ids
        .into_iter()
        .enumerate()
        .map(|(partition, block_ids)| {
            Arc::new(DecodedChunks {
                scan: scan.clone(),
                partition,
                block_ids,
                start,
                end,
                ids: ids.clone(),
                schema: samples_schema(),
            }) as Arc<dyn PartitionStream>
        })
        .collect();
    Ok(Arc::new(StreamingTableExec::try_new(
        samples_schema(),
        streams,
        projection,
        [],
        false,
        None,
    )?))
}

/// Maps a row-format file scan (see [`legacy::row_schema`]) to the table schema (`value` =
/// `(value_base + value_int × value_mult) / 10^value_scale` when `value_int`
/// is set, else `value`), then applies `projection`.
fn value_projection(
    state: &dyn Session,
    scan: Arc<dyn ExecutionPlan>,
    projection: Option<&Vec<usize>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let df_schema = DFSchema::try_from(legacy::row_schema().as_ref().clone())?;
    let table = samples_schema();
    let all: Vec<usize> = (0..table.fields().len()).collect();
    let mut exprs = Vec::new();
    for &i in projection.unwrap_or(&all) {
        let name = table.field(i).name().clone();
        let logical = if name == "value" {
            {
                // Blocks written before `value_mult`/`value_base` read
                // them as null: 1 and 0.
                // (`coalesce` would need the logical simplifier, which a
                // physical expression built here does not get.)
                let or = |c: &str, d: i64| -> Result<Expr> {
                    when(col(c).is_null(), lit(d)).otherwise(col(c))
                };
                let (base, mult) = (or("value_base", 0)?, or("value_mult", 1)?);
                let int = || {
                    cast(
                        base.clone() + col("value_int") * mult.clone(),
                        DataType::Float64,
                    )
                };
                let mut case = when(col("value_int").is_null(), col("value"));
                for (k, p) in legacy::SCALES.iter().enumerate() {
                    let scaled = if k == 0 { int() } else { int() / lit(*p) };
                    case = case.when(col("value_scale").eq(lit(k as i8)), scaled);
                }
                case.otherwise(lit(ScalarValue::Float64(None)))?
            }
        } else {
            col(name.as_str())
        };
        exprs.push((state.create_physical_expr(logical, &df_schema)?, name));
    }
    Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
}

/// The `series` table: the series index.
#[derive(Debug)]
pub struct SeriesTable {
    store: Arc<Store>,
}

impl SeriesTable {
    /// A table over `store`'s index.
    pub fn new(store: Arc<Store>) -> Self {
        SeriesTable { store }
    }
}

fn series_table_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("labels", DataType::Utf8, false),
    ]))
}

#[async_trait]
impl TableProvider for SeriesTable {
    fn schema(&self) -> SchemaRef {
        series_table_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (mut ids, mut names, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        {
            let index = self.store.state.index.read();
            for (id, e) in index.iter() {
                ids.push(*id);
                names.push(e.labels.metric_name().unwrap_or("").to_string());
                labels.push(labels_json(&e.labels));
            }
        }
        let batch = RecordBatch::try_new(
            series_table_schema(),
            vec![
                Arc::new(UInt64Array::from(ids)),
                Arc::new(StringArray::from(names)),
                Arc::new(StringArray::from(labels)),
            ],
        )?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            series_table_schema(),
            projection.cloned(),
        )?)
    }
}

/// The `metrics` view's definition.
pub const METRICS_VIEW: &str = "CREATE VIEW metrics AS \
    SELECT s.timestamp AS timestamp, r.metric AS metric, r.labels AS labels, \
    s.value AS value, s.series_id AS series_id \
    FROM samples s JOIN series r ON s.series_id = r.series_id";

/// Builds the SQL context with `samples`, `series` and the `metrics` view.
/// Further tables (logs, events) are added with
/// [`SessionContext::register_table`].
pub async fn sql_context(store: Arc<Store>) -> anyhow::Result<SessionContext> {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true)
        .set_bool("datafusion.execution.parquet.reorder_filters", true);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_table("samples", Arc::new(SamplesTable::new(store.clone())))?;
    ctx.register_table("series", Arc::new(SeriesTable::new(store)))?;
    ctx.sql(METRICS_VIEW).await?.collect().await?;
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_give_bounds_and_ids() {
        let ts = |t| lit(ScalarValue::TimestampMillisecond(Some(t), None));
        let f = vec![
            col("timestamp")
                .gt_eq(ts(100))
                .and(col("timestamp").lt(ts(200))),
            col("series_id").in_list(vec![lit(1u64), lit(2u64)], false),
        ];
        let (mut s, mut e) = (i64::MIN, i64::MAX);
        time_bounds(&f, &mut s, &mut e);
        assert_eq!((s, e), (100, 199));
        assert_eq!(id_filter(&f), Some(HashSet::from([1, 2])));
    }
    /// A block written before `value_mult`/`value_base` (and with
    /// `series_id` in `series.parquet`) still reads back: the missing
    /// columns are null, i.e. 1 and 0.
    #[tokio::test]
    async fn blocks_of_the_previous_format_still_read() {
        use datafusion::arrow::array::{
            Float64Array, Int8Array, Int64Array, TimestampMillisecondArray,
        };
        use datafusion::arrow::datatypes::TimeUnit;
        use datafusion::parquet::arrow::ArrowWriter;

        let dir = tempfile::tempdir().unwrap();
        let block = dir.path().join("blocks/00000000000000-00000001");
        std::fs::create_dir_all(&block).unwrap();
        let labels = tidewatch_common::Labels::from_pairs([("__name__", "old")]);
        let id = labels.stable_hash();
        let old_schema = Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::UInt64, false),
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("value", DataType::Float64, true),
            Field::new("value_int", DataType::Int64, true),
            Field::new("value_scale", DataType::Int8, false),
        ]));
        let data = RecordBatch::try_new(
            old_schema.clone(),
            vec![
                Arc::new(UInt64Array::from(vec![id, id, id])),
                Arc::new(TimestampMillisecondArray::from(vec![1000, 2000, 3000])),
                Arc::new(Float64Array::from(vec![None, None, Some(0.1 + 0.2)])),
                Arc::new(Int64Array::from(vec![Some(1234), Some(5), None])),
                Arc::new(Int8Array::from(vec![2, 0, 0])),
            ],
        )
        .unwrap();
        let f = std::fs::File::create(block.join("data.parquet")).unwrap();
        let mut w = ArrowWriter::try_new(f, old_schema, None).unwrap();
        w.write(&data).unwrap();
        w.close().unwrap();
        let series_schema = Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::UInt64, false),
            Field::new("labels", DataType::Utf8, false),
        ]));
        let series = RecordBatch::try_new(
            series_schema.clone(),
            vec![
                Arc::new(UInt64Array::from(vec![id])),
                Arc::new(StringArray::from(vec![labels_json(&labels)])),
            ],
        )
        .unwrap();
        let f = std::fs::File::create(block.join("series.parquet")).unwrap();
        let mut w = ArrowWriter::try_new(f, series_schema, None).unwrap();
        w.write(&series).unwrap();
        w.close().unwrap();
        let meta = serde_json::json!({
            "name": "00000000000000-00000001", "partition": 0, "min_t": 1000,
            "max_t": 3000, "samples": 3, "series": 1, "bytes": 1, "replaces": []
        });
        std::fs::write(block.join("meta.json"), meta.to_string()).unwrap();

        let config = crate::Config {
            compact_min_blocks: 2,
            ..crate::Config::default()
        };
        let store = Arc::new(Store::open(config, dir.path()).unwrap());
        assert!(store.knows(id));
        let ctx = sql_context(store.clone()).await.unwrap();
        let rows = ctx
            .sql("SELECT value FROM samples ORDER BY timestamp")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let v = rows[0]
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(v.values().to_vec(), vec![12.34, 5.0, 0.1 + 0.2]);
        // And compaction's reader.
        let mut got = Vec::new();
        crate::block::read_samples(&block, |_, _, vs| got.extend_from_slice(vs)).unwrap();
        assert_eq!(got, vec![12.34, 5.0, 0.1 + 0.2]);

        // A chunk-format block of the same series beside it: both read
        // together, and compaction rewrites them as one chunk block.
        let all = |ctx: SessionContext| async move {
            let rows = ctx
                .sql("SELECT value FROM samples WHERE series_id IN (SELECT series_id FROM series) ORDER BY timestamp")
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            rows.iter()
                .flat_map(|b| {
                    let v = b.column(0).as_any().downcast_ref::<Float64Array>().unwrap();
                    v.values().to_vec()
                })
                .collect::<Vec<f64>>()
        };
        store
            .append(vec![crate::IngestSeries::new(
                labels.clone(),
                vec![4000, 5000],
                vec![6.5, 7.0],
            )])
            .await
            .unwrap();
        store.flush().await.unwrap();
        let want = vec![12.34, 5.0, 0.1 + 0.2, 6.5, 7.0];
        assert_eq!(all(sql_context(store.clone()).await.unwrap()).await, want);
        let blocks = store.blocks();
        assert_eq!(blocks.len(), 1, "compacted into one block");
        assert!(blocks[0].is_chunked());
        assert_eq!(all(sql_context(store.clone()).await.unwrap()).await, want);
        store.close().await.unwrap();
    }
}
