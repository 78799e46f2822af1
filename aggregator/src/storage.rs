//! [`tidewatch_promql::Storage`] over the store: matchers are resolved with
//! the series index, then DataFusion scans the head and the blocks with the
//! time range and the series ids pushed down.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::ScalarValue;
use datafusion::physical_plan::collect_partitioned;
use datafusion::prelude::{SessionContext, col, lit};
use tidewatch_promql::storage::{SelectFuture, SelectRequest, Series, Storage, StorageError};

use crate::block::sample_columns;
use crate::store::Store;
use crate::table::SamplesTable;

/// The PromQL engine's view of the store.
pub struct StoreStorage {
    store: Arc<Store>,
    ctx: SessionContext,
    max_samples: usize,
}

impl StoreStorage {
    /// A storage reading `store` through `ctx`, refusing selections of more
    /// than `max_samples` samples.
    pub fn new(store: Arc<Store>, ctx: SessionContext, max_samples: usize) -> Self {
        StoreStorage {
            store,
            ctx,
            max_samples,
        }
    }

    async fn select_impl(&self, req: SelectRequest) -> Result<Vec<Series>, StorageError> {
        let err = |e: datafusion::error::DataFusionError| StorageError(e.to_string());
        let ids = self
            .store
            .state
            .index
            .read()
            .select(&req.matchers, req.start_ms, req.end_ms);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ts = |t: i64| lit(ScalarValue::TimestampMillisecond(Some(t), None));
        let wanted: Arc<HashSet<u64>> = Arc::new(ids.iter().copied().collect());
        // The head and the blocks read only the wanted series (see
        // `SamplesTable::scan`).
        // The table's scan plan is executed directly: it already restricts
        // to the series and (with the time filter) to the range, so the
        // logical and physical optimizers (about a millisecond per query)
        // have nothing to add.
        let table = SamplesTable::for_series(self.store.clone(), wanted.clone());
        let state = self.ctx.state();
        let time = col("timestamp")
            .gt_eq(ts(req.start_ms))
            .and(col("timestamp").lt_eq(ts(req.end_ms)));
        let plan = table.scan(&state, None, &[time], None).await.map_err(err)?;
        let parts = collect_partitioned(plan, state.task_ctx())
            .await
            .map_err(err)?;
        let mut acc: HashMap<u64, (Vec<i64>, Vec<f64>)> = HashMap::new();
        let mut total = 0usize;
        for batch in parts.iter().flatten() {
            let (sid, t, v) = sample_columns(batch).map_err(|e| StorageError(e.to_string()))?;
            let n = batch.num_rows();
            let mut i = 0;
            while i < n {
                let id = sid.value(i);
                let mut j = i + 1;
                while j < n && sid.value(j) == id {
                    j += 1;
                }
                if wanted.contains(&id) {
                    let (ts, vs) = (&t.values()[i..j], &v.values()[i..j]);
                    let e = acc.entry(id).or_default();
                    let before = e.0.len();
                    let inside = |t: &i64| (req.start_ms..=req.end_ms).contains(t);
                    if ts.iter().all(inside) {
                        e.0.extend_from_slice(ts);
                        e.1.extend_from_slice(vs);
                    } else {
                        // Row-format blocks may return rows around the range.
                        for (t, v) in ts.iter().zip(vs) {
                            if inside(t) {
                                e.0.push(*t);
                                e.1.push(*v);
                            }
                        }
                    }
                    total += e.0.len() - before;
                    if total > self.max_samples {
                        return Err(StorageError(
                            "query processing would load too many samples into memory in query execution"
                                .into(),
                        ));
                    }
                }
                i = j;
            }
        }
        let index = self.store.state.index.read();
        let mut out: Vec<Series> = acc
            .into_iter()
            .filter_map(|(id, (ts, vs))| {
                let labels = index.get(id)?.labels.clone();
                let (timestamps, values) = sort_dedup(ts, vs);
                Some(Series {
                    labels,
                    timestamps,
                    values,
                })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

/// Sorts samples by time; of equal timestamps the one read last wins.
fn sort_dedup(ts: Vec<i64>, vs: Vec<f64>) -> (Vec<i64>, Vec<f64>) {
    if ts.windows(2).all(|w| w[0] < w[1]) {
        return (ts, vs);
    }
    let mut idx: Vec<usize> = (0..ts.len()).collect();
    idx.sort_by_key(|&i| ts[i]);
    let mut ot: Vec<i64> = Vec::with_capacity(ts.len());
    let mut ov: Vec<f64> = Vec::with_capacity(ts.len());
    for i in idx {
        if ot.last() == Some(&ts[i]) {
            *ov.last_mut().expect("same length") = vs[i];
        } else {
            ot.push(ts[i]);
            ov.push(vs[i]);
        }
    }
    (ot, ov)
}

impl Storage for StoreStorage {
    fn select(&self, req: SelectRequest) -> SelectFuture<'_> {
        Box::pin(self.select_impl(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keeps_last() {
        let (t, v) = sort_dedup(vec![3, 1, 3, 2], vec![30.0, 10.0, 31.0, 20.0]);
        assert_eq!(t, vec![1, 2, 3]);
        assert_eq!(v, vec![10.0, 20.0, 31.0]);
    }
}
