//! An in-memory [`Storage`]: series appended with labels and samples, used by
//! tests, the PromQL corpus runner and `tidewatch rules test`.

use std::collections::HashMap;
use std::sync::RwLock;

use promql_parser::label::Matcher;
use tidewatch_common::Labels;

use crate::storage::{HistogramSelectFuture, SelectFuture, SelectRequest, Series, Storage};

/// In-memory series store. Samples of one series are kept sorted by
/// timestamp; appending a sample at an existing timestamp replaces it.
#[derive(Debug, Default)]
pub struct MemStorage {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    series: Vec<Series>,
    by_labels: HashMap<Labels, usize>,
    histograms: crate::native::store::HistogramStore,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends samples (`(timestamp_ms, value)`) to the series `labels`,
    /// creating it if needed.
    pub fn append(&self, labels: Labels, samples: impl IntoIterator<Item = (i64, f64)>) {
        let mut inner = self.inner.write().expect("memstorage lock");
        let idx = match inner.by_labels.get(&labels) {
            Some(&i) => i,
            None => {
                let i = inner.series.len();
                inner.by_labels.insert(labels.clone(), i);
                inner.series.push(Series {
                    labels,
                    timestamps: Vec::new(),
                    values: Vec::new(),
                });
                i
            }
        };
        let s = &mut inner.series[idx];
        for (t, v) in samples {
            if s.timestamps.last().is_none_or(|&last| last < t) {
                s.timestamps.push(t);
                s.values.push(v);
            } else {
                match s.timestamps.binary_search(&t) {
                    Ok(i) => s.values[i] = v,
                    Err(i) => {
                        s.timestamps.insert(i, t);
                        s.values.insert(i, v);
                    }
                }
            }
        }
    }

    /// Removes every series.
    pub fn clear(&self) {
        let mut inner = self.inner.write().expect("memstorage lock");
        inner.series.clear();
        inner.by_labels.clear();
        inner.histograms.clear();
    }

    /// Appends native-histogram samples to the series `labels`, setting
    /// counter-reset hints as Prometheus's TSDB reports them on read.
    pub fn append_histograms(
        &self,
        labels: Labels,
        samples: impl IntoIterator<Item = (i64, crate::native::FloatHistogram)>,
    ) {
        let mut inner = self.inner.write().expect("memstorage lock");
        inner.histograms.append(labels, samples);
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.inner.read().expect("memstorage lock").series.len()
    }

    /// Synchronous select (what [`Storage::select`] returns).
    pub fn select_sync(&self, req: &SelectRequest) -> Vec<Series> {
        let inner = self.inner.read().expect("memstorage lock");
        let mut out = Vec::new();
        for s in &inner.series {
            if !matches_all(&req.matchers, &s.labels) {
                continue;
            }
            let lo = s.timestamps.partition_point(|&t| t < req.start_ms);
            let hi = s.timestamps.partition_point(|&t| t <= req.end_ms);
            if lo >= hi {
                continue;
            }
            out.push(Series {
                labels: s.labels.clone(),
                timestamps: s.timestamps[lo..hi].to_vec(),
                values: s.values[lo..hi].to_vec(),
            });
        }
        out
    }
}

/// Whether `labels` satisfy every matcher (a missing label is the empty value).
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))
}

impl Storage for MemStorage {
    fn select(&self, req: SelectRequest) -> SelectFuture<'_> {
        let out = self.select_sync(&req);
        Box::pin(async move { Ok(out) })
    }

    fn has_histograms(&self) -> bool {
        !self
            .inner
            .read()
            .expect("memstorage lock")
            .histograms
            .is_empty()
    }

    fn select_histograms(&self, req: SelectRequest) -> HistogramSelectFuture<'_> {
        let out = self
            .inner
            .read()
            .expect("memstorage lock")
            .histograms
            .select(&req);
        Box::pin(async move { Ok(out) })
    }
}
