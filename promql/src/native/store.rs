//! In-memory native-histogram series for [`crate::MemStorage`].

use std::collections::HashMap;

use tidewatch_common::Labels;

use super::{CounterResetHint, FloatHistogram, HistogramSeries};
use crate::memory::matches_all;
use crate::storage::SelectRequest;

/// Histogram series by labels.
#[derive(Debug, Default)]
pub(crate) struct HistogramStore {
    series: Vec<HistogramSeries>,
    by_labels: HashMap<Labels, usize>,
}

impl HistogramStore {
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    pub fn clear(&mut self) {
        self.series.clear();
        self.by_labels.clear();
    }

    /// Appends samples. A histogram appended after another of the same
    /// series gets the hint a TSDB chunk reports on read: `gauge` stays,
    /// a detected reset becomes `reset`, otherwise `not_reset`; the first
    /// sample keeps its own hint.
    pub fn append(
        &mut self,
        labels: Labels,
        samples: impl IntoIterator<Item = (i64, FloatHistogram)>,
    ) {
        let idx = match self.by_labels.get(&labels) {
            Some(&i) => i,
            None => {
                self.by_labels.insert(labels.clone(), self.series.len());
                self.series.push(HistogramSeries {
                    labels,
                    ..Default::default()
                });
                self.series.len() - 1
            }
        };
        let s = &mut self.series[idx];
        for (t, mut h) in samples {
            let pos = s.timestamps.partition_point(|&x| x < t);
            let prev = pos
                .checked_sub(1)
                .map(|p| &s.histograms[p])
                .filter(|p| !p.is_stale());
            if !h.is_stale()
                && h.counter_reset_hint != CounterResetHint::Gauge
                && let Some(prev) = prev
            {
                h.counter_reset_hint = if prev.counter_reset_hint == CounterResetHint::Gauge {
                    h.counter_reset_hint
                } else if h.detect_reset(prev) {
                    CounterResetHint::Reset
                } else {
                    CounterResetHint::NotReset
                };
            }
            if s.timestamps.get(pos) == Some(&t) {
                s.histograms[pos] = h;
            } else {
                s.timestamps.insert(pos, t);
                s.histograms.insert(pos, h);
            }
        }
    }

    pub fn select(&self, req: &SelectRequest) -> Vec<HistogramSeries> {
        let mut out = Vec::new();
        for s in &self.series {
            if !matches_all(&req.matchers, &s.labels) {
                continue;
            }
            let lo = s.timestamps.partition_point(|&t| t < req.start_ms);
            let hi = s.timestamps.partition_point(|&t| t <= req.end_ms);
            if lo < hi {
                out.push(HistogramSeries {
                    labels: s.labels.clone(),
                    timestamps: s.timestamps[lo..hi].to_vec(),
                    histograms: s.histograms[lo..hi].to_vec(),
                });
            }
        }
        out
    }
}
