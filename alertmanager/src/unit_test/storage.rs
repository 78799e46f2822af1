//! A small in-memory [`Storage`] for rule unit tests (input series plus
//! what rules write back). `tidewatch_promql`'s own in-memory storage can
//! replace it once available; both serve the same trait.

use std::collections::BTreeMap;

use parking_lot::RwLock;
use tidewatch_common::Labels;
use tidewatch_promql::storage::{SelectFuture, SelectRequest, Series, Storage};

/// Series by label set.
#[derive(Default)]
pub struct TestStorage {
    series: RwLock<BTreeMap<Labels, Series>>,
}

impl TestStorage {
    /// Appends one sample (timestamps of a series must not go back; an
    /// equal timestamp replaces the value).
    pub fn append(&self, labels: &Labels, ts: i64, value: f64) {
        let mut g = self.series.write();
        let s = g.entry(labels.clone()).or_insert_with(|| Series {
            labels: labels.clone(),
            timestamps: Vec::new(),
            values: Vec::new(),
        });
        match s.timestamps.binary_search(&ts) {
            Ok(i) => s.values[i] = value,
            Err(i) => {
                s.timestamps.insert(i, ts);
                s.values.insert(i, value);
            }
        }
    }
}

impl Storage for TestStorage {
    fn select(&self, req: SelectRequest) -> SelectFuture<'_> {
        let out: Vec<Series> = self
            .series
            .read()
            .values()
            .filter(|s| {
                req.matchers
                    .iter()
                    .all(|m| m.is_match(s.labels.get(&m.name).unwrap_or("")))
            })
            .filter_map(|s| {
                let lo = s.timestamps.partition_point(|t| *t < req.start_ms);
                let hi = s.timestamps.partition_point(|t| *t <= req.end_ms);
                (lo < hi).then(|| Series {
                    labels: s.labels.clone(),
                    timestamps: s.timestamps[lo..hi].to_vec(),
                    values: s.values[lo..hi].to_vec(),
                })
            })
            .collect();
        Box::pin(async move { Ok(out) })
    }
}
