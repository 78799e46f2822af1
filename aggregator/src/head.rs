//! The in-memory head: recent samples, columnar per series.

use std::collections::HashMap;

/// One series' samples in the head, timestamps strictly ascending.
#[derive(Clone, Debug, Default)]
pub struct MemSeries {
    /// Timestamps (ms).
    pub timestamps: Vec<i64>,
    /// Values (staleness markers kept bit for bit).
    pub values: Vec<f64>,
}

impl MemSeries {
    /// Appends samples in any order; a sample at an existing timestamp
    /// replaces it (duplicates are idempotent). Returns how many samples are
    /// new.
    pub fn append(&mut self, ts: &[i64], vs: &[f64]) -> usize {
        let before = self.timestamps.len();
        let mut sorted = true;
        for (&t, &v) in ts.iter().zip(vs) {
            match self.timestamps.last() {
                Some(&last) if t == last => *self.values.last_mut().expect("same length") = v,
                Some(&last) if t < last => {
                    sorted = false;
                    self.timestamps.push(t);
                    self.values.push(v);
                }
                _ => {
                    self.timestamps.push(t);
                    self.values.push(v);
                }
            }
        }
        if !sorted {
            self.normalize();
        }
        self.timestamps.len() - before
    }

    /// Sorts by time keeping the last-written value of equal timestamps.
    fn normalize(&mut self) {
        let mut idx: Vec<usize> = (0..self.timestamps.len()).collect();
        // Stable sort: among equal timestamps the later write stays later.
        idx.sort_by_key(|&i| self.timestamps[i]);
        let mut ts = Vec::with_capacity(idx.len());
        let mut vs = Vec::with_capacity(idx.len());
        for i in idx {
            let t = self.timestamps[i];
            if ts.last() == Some(&t) {
                *vs.last_mut().expect("same length") = self.values[i];
            } else {
                ts.push(t);
                vs.push(self.values[i]);
            }
        }
        self.timestamps = ts;
        self.values = vs;
    }

    /// Index range of samples within `[start, end]`.
    pub fn range(&self, start: i64, end: i64) -> std::ops::Range<usize> {
        let lo = self.timestamps.partition_point(|&t| t < start);
        let hi = self.timestamps.partition_point(|&t| t <= end);
        lo..hi.max(lo)
    }
}

/// A set of series held in memory.
#[derive(Debug, Default)]
pub struct Head {
    /// Series by id.
    pub series: HashMap<u64, MemSeries>,
    /// Total samples held.
    pub samples: usize,
    /// Oldest and newest sample time, if any.
    pub min_t: i64,
    /// Newest sample time.
    pub max_t: i64,
}

impl Head {
    /// An empty head.
    pub fn new() -> Self {
        Head {
            series: HashMap::new(),
            samples: 0,
            min_t: i64::MAX,
            max_t: i64::MIN,
        }
    }

    /// Appends samples of series `id`; returns whether the series is new to
    /// this head.
    pub fn append(&mut self, id: u64, ts: &[i64], vs: &[f64]) -> bool {
        let mut new = false;
        let s = self.series.entry(id).or_insert_with(|| {
            new = true;
            MemSeries::default()
        });
        self.samples += s.append(ts, vs);
        for &t in ts {
            self.min_t = self.min_t.min(t);
            self.max_t = self.max_t.max(t);
        }
        new
    }

    /// Whether the head holds nothing.
    pub fn is_empty(&self) -> bool {
        self.samples == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_and_duplicates() {
        let mut s = MemSeries::default();
        assert_eq!(s.append(&[10, 20, 30], &[1.0, 2.0, 3.0]), 3);
        // duplicate (idempotent), out-of-order, overwrite
        assert_eq!(s.append(&[20, 15, 30], &[2.0, 1.5, 3.5]), 1);
        assert_eq!(s.timestamps, vec![10, 15, 20, 30]);
        assert_eq!(s.values, vec![1.0, 1.5, 2.0, 3.5]);
        assert_eq!(s.range(11, 30), 1..4);
        assert_eq!(s.range(31, 40), 4..4);
        let mut h = Head::new();
        assert!(h.append(7, &[5, 1], &[0.0, 0.0]));
        assert!(!h.append(7, &[5], &[1.0]));
        assert_eq!((h.samples, h.min_t, h.max_t), (2, 1, 5));
    }
}
