//! Which row groups and pages of a chunk-format `data.parquet` can hold
//! the chunks of a set of series, from the file's statistics and page
//! index of the `series` column (chunks are sorted by it, and it follows
//! label order, so a metric's series share few pages).
//!
//! DataFusion can prune by an `IN` list itself, but it rewrites the list
//! into a chain of `OR`s whose type checks grow quadratically with its
//! length: for a 32-id selection that cost more than reading the whole
//! block. Here a page is checked with one binary search.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use datafusion::parquet::file::metadata::{
    PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader,
};
use datafusion::parquet::file::page_index::column_index::ColumnIndexMetaData;
use datafusion::parquet::file::statistics::Statistics;

/// Index of `series` in the chunk schema.
const SERIES: usize = 0;

/// Reads the footer and page index of the chunk file at `path`.
pub fn read_metadata(path: &Path) -> anyhow::Result<Arc<ParquetMetaData>> {
    let file = File::open(path)?;
    let md = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .parse_and_finish(&file)?;
    Ok(Arc::new(md))
}

/// Whether the sorted `ids` hold one in `[lo, hi]`.
fn any_in(ids: &[u32], lo: u32, hi: u32) -> bool {
    let i = ids.partition_point(|&x| x < lo);
    i < ids.len() && ids[i] <= hi
}

/// The row groups and pages of the file described by `md` that may hold
/// chunks of the series (`series` values, sorted) `ids`; everything else
/// is skipped.
pub fn access_plan(md: &ParquetMetaData, ids: &[u32]) -> ParquetAccessPlan {
    let groups = md.row_groups();
    let mut plan = ParquetAccessPlan::new_all(groups.len());
    for (i, rg) in groups.iter().enumerate() {
        // `series` is a UInt32: its statistics are unsigned values stored
        // in Int32s.
        if let Some(Statistics::Int32(s)) = rg.column(SERIES).statistics()
            && let (Some(lo), Some(hi)) = (s.min_opt(), s.max_opt())
            && !any_in(ids, *lo as u32, *hi as u32)
        {
            plan.skip(i);
            continue;
        }
        let (Some(ci), Some(oi)) = (md.column_index(), md.offset_index()) else {
            continue;
        };
        let (Some(ColumnIndexMetaData::INT32(index)), Some(offsets)) = (
            ci.get(i).and_then(|c| c.get(SERIES)),
            oi.get(i).and_then(|c| c.get(SERIES)),
        ) else {
            continue;
        };
        let pages = offsets.page_locations();
        let mut selectors = Vec::with_capacity(pages.len());
        for (p, page) in pages.iter().enumerate() {
            let end = pages
                .get(p + 1)
                .map_or(rg.num_rows(), |next| next.first_row_index);
            let rows = (end - page.first_row_index).max(0) as usize;
            let keep = match (index.min_value(p), index.max_value(p)) {
                (Some(lo), Some(hi)) => any_in(ids, *lo as u32, *hi as u32),
                _ => true,
            };
            selectors.push(if keep {
                RowSelector::select(rows)
            } else {
                RowSelector::skip(rows)
            });
        }
        if selectors.iter().all(|s| s.skip) {
            plan.skip(i);
        } else {
            plan.scan_selection(i, RowSelection::from(selectors));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{SeriesRef, write_block};
    use crate::head::MemSeries;
    use datafusion::datasource::physical_plan::parquet::RowGroupAccess;
    use tidewatch_common::Labels;

    #[test]
    fn pages_without_the_wanted_series_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let labels: Vec<Labels> = (0..20_000)
            .map(|i| {
                Labels::from_pairs([("__name__", format!("m{}", i % 50)), ("i", i.to_string())])
            })
            .collect();
        let data = MemSeries {
            timestamps: vec![1000, 2000],
            values: vec![1.0, 2.0],
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
        let (_, md) = b.data_footer().unwrap();
        assert!(md.num_row_groups() > 1 && md.offset_index().is_some());
        // The 400 series of metric m7 and one other.
        let ids = b.series_ids().unwrap();
        let want = |l: &Labels| l.metric_name() == Some("m7") || l.get("i") == Some("13");
        let wanted_ids: std::collections::HashSet<u64> = labels
            .iter()
            .filter(|l| want(l))
            .map(|l| l.stable_hash())
            .collect();
        let wanted: Vec<u32> = (0..ids.len() as u32)
            .filter(|&o| wanted_ids.contains(&ids[o as usize]))
            .collect();
        assert_eq!(wanted.len(), 401);
        let plan = access_plan(&md, &wanted);
        let mut selected = 0;
        let mut row = 0;
        for (i, rg) in md.row_groups().iter().enumerate() {
            let n = rg.num_rows() as usize;
            let rows: Vec<bool> = match plan.inner()[i].clone() {
                RowGroupAccess::Skip => vec![false; n],
                RowGroupAccess::Scan => vec![true; n],
                RowGroupAccess::Selection(s) => s
                    .iter()
                    .flat_map(|sel| std::iter::repeat_n(!sel.skip, sel.row_count))
                    .collect(),
            };
            for (k, keep) in rows.into_iter().enumerate() {
                // One chunk per series: row = series.
                if wanted.binary_search(&((row + k) as u32)).is_ok() {
                    assert!(keep, "wanted chunk at row {} skipped", row + k);
                }
                selected += keep as usize;
            }
            row += n;
        }
        // m7's series are adjacent: a few pages, plus one for series 13.
        assert!(selected <= 400 + 3 * 128, "{selected} rows selected");
        // Nothing wanted: nothing read.
        let none = access_plan(&md, &[]);
        assert!(
            none.inner()
                .iter()
                .all(|a| matches!(a, RowGroupAccess::Skip))
        );
    }
}
