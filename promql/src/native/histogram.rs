//! The float native histogram: Prometheus's `FloatHistogram` model
//! (exponential buckets addressed by schema and index, a zero bucket, or
//! custom bucket bounds when `schema == -53`) with the operations the engine
//! and the test notation need.

use crate::storage::is_stale_nan;

/// Schema of histograms with custom bucket bounds (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// A run of consecutive buckets; `offset` is the gap to the previous span's
/// end (to index 0 for the first span).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Gap in buckets before this span.
    pub offset: i32,
    /// Number of buckets in this span.
    pub length: u32,
}

/// What is known about counter resets at this sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CounterResetHint {
    /// Nothing is known (the first sample of a series).
    #[default]
    Unknown,
    /// The counter was reset before this sample.
    Reset,
    /// The counter was not reset since the previous sample.
    NotReset,
    /// A gauge histogram: counter resets do not apply.
    Gauge,
}

/// Errors of histogram arithmetic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    /// One operand uses custom buckets and the other exponential ones.
    #[error(
        "cannot apply this operation to histograms with a mix of exponential and custom bucket schemas"
    )]
    IncompatibleSchema,
    /// Both use custom buckets, with different bounds.
    #[error(
        "cannot apply this operation to custom buckets histograms with different custom bounds"
    )]
    IncompatibleBounds,
}

/// A native histogram with float counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FloatHistogram {
    /// Counter-reset knowledge.
    pub counter_reset_hint: CounterResetHint,
    /// Resolution: bucket boundaries are powers of `2^(2^-schema)`;
    /// [`CUSTOM_BUCKETS_SCHEMA`] for custom bounds.
    pub schema: i32,
    /// Half-width of the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: f64,
    /// Total observations.
    pub count: f64,
    /// Sum of observations (the staleness NaN marks a stale sample).
    pub sum: f64,
    /// Layout of `positive_buckets`.
    pub positive_spans: Vec<Span>,
    /// Absolute counts of the positive buckets.
    pub positive_buckets: Vec<f64>,
    /// Layout of `negative_buckets`.
    pub negative_spans: Vec<Span>,
    /// Absolute counts of the negative buckets.
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of custom buckets (schema −53 only).
    pub custom_values: Vec<f64>,
}

/// Buckets as `(index, count)` pairs, ascending by index.
pub type BucketPairs = Vec<(i32, f64)>;

/// `(index, count)` pairs of a span layout, ascending by index.
pub fn bucket_pairs(spans: &[Span], buckets: &[f64]) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(buckets.len());
    let mut idx = 0i32;
    let mut b = buckets.iter();
    for s in spans {
        idx += s.offset;
        for _ in 0..s.length {
            match b.next() {
                Some(&c) => out.push((idx, c)),
                None => return out,
            }
            idx += 1;
        }
    }
    out
}

/// Builds a span layout from ascending `(index, count)` pairs; gaps between
/// indices start new spans.
pub fn spans_of(pairs: &[(i32, f64)]) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::with_capacity(pairs.len());
    let mut next = 0i32;
    for &(i, c) in pairs {
        match spans.last_mut() {
            Some(s) if i == next => s.length += 1,
            _ => spans.push(Span {
                offset: i - next,
                length: 1,
            }),
        }
        buckets.push(c);
        next = i + 1;
    }
    (spans, buckets)
}

/// Index of the bucket containing bucket `idx` of `from` in the coarser
/// schema `to` (`to <= from`).
fn target_index(idx: i32, from: i32, to: i32) -> i32 {
    ((idx - 1) >> (from - to)) + 1
}

/// Merges or subtracts two ascending pair lists (`sign` = ±1 for `b`).
fn merge_pairs(a: &[(i32, f64)], b: &[(i32, f64)], sign: f64) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(&(ia, ca)), Some(&(ib, cb))) if ia == ib => {
                out.push((ia, ca + sign * cb));
                i += 1;
                j += 1;
            }
            (Some(&(ia, ca)), Some(&(ib, _))) if ia < ib => {
                out.push((ia, ca));
                i += 1;
            }
            (Some(&(ia, ca)), None) => {
                out.push((ia, ca));
                i += 1;
            }
            (_, Some(&(ib, cb))) => {
                out.push((ib, sign * cb));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Re-buckets ascending pairs from schema `from` into the coarser `to`.
fn reduce_pairs(pairs: &[(i32, f64)], from: i32, to: i32) -> Vec<(i32, f64)> {
    if from <= to {
        return pairs.to_vec();
    }
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(pairs.len());
    for &(i, c) in pairs {
        let t = target_index(i, from, to);
        match out.last_mut() {
            Some((li, lc)) if *li == t => *lc += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// Upper bound of exponential bucket `idx` at `schema`.
fn upper_bound(idx: i32, schema: i32) -> f64 {
    (f64::from(idx) * (-f64::from(schema)).exp2()).exp2()
}

impl FloatHistogram {
    /// Whether this sample is a staleness marker.
    pub fn is_stale(&self) -> bool {
        is_stale_nan(self.sum)
    }

    /// Whether the histogram has custom bucket bounds.
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Positive buckets as `(index, count)`.
    pub fn positive_pairs(&self) -> Vec<(i32, f64)> {
        bucket_pairs(&self.positive_spans, &self.positive_buckets)
    }

    /// Negative buckets as `(index, count)`.
    pub fn negative_pairs(&self) -> Vec<(i32, f64)> {
        bucket_pairs(&self.negative_spans, &self.negative_buckets)
    }

    fn set_pairs(&mut self, pos: &[(i32, f64)], neg: &[(i32, f64)]) {
        (self.positive_spans, self.positive_buckets) = spans_of(pos);
        (self.negative_spans, self.negative_buckets) = spans_of(neg);
    }

    /// `histogram_avg`: sum / count.
    pub fn avg(&self) -> f64 {
        self.sum / self.count
    }

    /// Multiplies every count and the sum by `f`.
    pub fn mul(&mut self, f: f64) {
        self.zero_count *= f;
        self.count *= f;
        self.sum *= f;
        self.positive_buckets.iter_mut().for_each(|b| *b *= f);
        self.negative_buckets.iter_mut().for_each(|b| *b *= f);
    }

    /// Adds `other` (Prometheus `FloatHistogram.Add`): schemas are reduced
    /// to the coarser one, zero buckets widened to the wider one.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<(), HistogramError> {
        self.combine(other, 1.0)?;
        use CounterResetHint::*;
        self.counter_reset_hint = match (self.counter_reset_hint, other.counter_reset_hint) {
            (a, b) if a == b => a,
            (Gauge, _) | (_, Gauge) => Gauge,
            _ => Unknown,
        };
        Ok(())
    }

    /// Subtracts `other` (Prometheus `FloatHistogram.Sub`).
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<(), HistogramError> {
        self.combine(other, -1.0)
    }

    fn combine(&mut self, other: &FloatHistogram, sign: f64) -> Result<(), HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::IncompatibleSchema);
        }
        if self.uses_custom_buckets() && self.custom_values != other.custom_values {
            return Err(HistogramError::IncompatibleBounds);
        }
        let schema = self.schema.min(other.schema);
        let mut pos = reduce_pairs(&self.positive_pairs(), self.schema, schema);
        let mut neg = reduce_pairs(&self.negative_pairs(), self.schema, schema);
        let mut opos = reduce_pairs(&other.positive_pairs(), other.schema, schema);
        let mut oneg = reduce_pairs(&other.negative_pairs(), other.schema, schema);
        let mut other_zero = other.zero_count;
        if !self.uses_custom_buckets() {
            let zt = self.zero_threshold.max(other.zero_threshold);
            self.zero_count += absorb_into_zero(&mut pos, &mut neg, schema, zt);
            other_zero += absorb_into_zero(&mut opos, &mut oneg, schema, zt);
            self.zero_threshold = zt;
            self.zero_count += sign * other_zero;
        }
        self.schema = schema;
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        let pos = merge_pairs(&pos, &opos, sign);
        let neg = merge_pairs(&neg, &oneg, sign);
        self.set_pairs(&pos, &neg);
        Ok(())
    }

    /// Whether `self` follows `prev` only through a counter reset
    /// (Prometheus `DetectReset`): a count or bucket went down, the zero
    /// bucket narrowed or the resolution went up.
    pub fn detect_reset(&self, prev: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::Reset => return true,
            CounterResetHint::NotReset => return false,
            _ => {}
        }
        if self.count < prev.count
            || self.uses_custom_buckets() != prev.uses_custom_buckets()
            || (self.uses_custom_buckets() && self.custom_values != prev.custom_values)
            || self.schema > prev.schema
            || self.zero_threshold < prev.zero_threshold
        {
            return true;
        }
        let decreased = |cur: Vec<(i32, f64)>, old: Vec<(i32, f64)>| {
            let old = reduce_pairs(&old, prev.schema, self.schema);
            old.iter().any(|&(i, c)| {
                c > 0.0
                    && cur
                        .binary_search_by_key(&i, |p| p.0)
                        .map_or(true, |k| cur[k].1 < c)
            })
        };
        self.zero_count < prev.zero_count
            || decreased(self.positive_pairs(), prev.positive_pairs())
            || decreased(self.negative_pairs(), prev.negative_pairs())
    }

    /// Non-zero buckets as `(index, count)`, positive then negative: the
    /// layout-independent content two histograms are compared by.
    pub fn populated(&self) -> (BucketPairs, BucketPairs) {
        let keep = |v: Vec<(i32, f64)>| v.into_iter().filter(|p| p.1 != 0.0).collect();
        (keep(self.positive_pairs()), keep(self.negative_pairs()))
    }
}

/// Moves buckets that lie inside the zero bucket of half-width `zt` out of
/// `pos`/`neg`; returns their total count.
fn absorb_into_zero(
    pos: &mut Vec<(i32, f64)>,
    neg: &mut Vec<(i32, f64)>,
    schema: i32,
    zt: f64,
) -> f64 {
    let mut moved = 0.0;
    for v in [pos, neg] {
        v.retain(|&(i, c)| {
            if upper_bound(i, schema) <= zt {
                moved += c;
                false
            } else {
                true
            }
        });
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(schema: i32, count: f64, sum: f64, offset: i32, buckets: &[f64]) -> FloatHistogram {
        FloatHistogram {
            schema,
            count,
            sum,
            positive_spans: vec![Span {
                offset,
                length: buckets.len() as u32,
            }],
            positive_buckets: buckets.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn spans_round_trip_through_pairs() {
        let spans = vec![
            Span {
                offset: -2,
                length: 2,
            },
            Span {
                offset: 3,
                length: 1,
            },
        ];
        let pairs = bucket_pairs(&spans, &[1.0, 2.0, 3.0]);
        assert_eq!(pairs, vec![(-2, 1.0), (-1, 2.0), (3, 3.0)]);
        assert_eq!(spans_of(&pairs), (spans, vec![1.0, 2.0, 3.0]));
    }

    #[test]
    fn adding_aligns_layouts_and_schemas() {
        let mut a = h(0, 3.0, 3.0, 0, &[1.0, 2.0]);
        a.add(&h(0, 2.0, 1.5, 1, &[1.0, 1.0])).unwrap();
        assert_eq!(a.populated().0, vec![(0, 1.0), (1, 3.0), (2, 1.0)]);
        assert_eq!((a.count, a.sum), (5.0, 4.5));
        // Schema 1 buckets 1 and 2 fall into schema 0 bucket 1.
        let mut b = h(0, 1.0, 1.0, 1, &[1.0]);
        b.add(&h(1, 2.0, 2.0, 1, &[1.0, 1.0])).unwrap();
        assert_eq!(b.populated().0, vec![(1, 3.0)]);
        let mut c = h(0, 1.0, 1.0, 1, &[1.0]);
        c.sub(&h(0, 1.0, 1.0, 1, &[1.0])).unwrap();
        assert_eq!((c.count, c.populated().0.len()), (0.0, 0));
        let mut custom = h(CUSTOM_BUCKETS_SCHEMA, 1.0, 1.0, 0, &[1.0]);
        assert_eq!(
            custom.add(&h(0, 1.0, 1.0, 0, &[1.0])),
            Err(HistogramError::IncompatibleSchema)
        );
    }

    #[test]
    fn resets_are_detected() {
        let prev = h(0, 3.0, 3.0, 0, &[1.0, 2.0]);
        assert!(!h(0, 4.0, 3.0, 0, &[2.0, 2.0]).detect_reset(&prev));
        assert!(h(0, 4.0, 3.0, 0, &[3.0, 1.0]).detect_reset(&prev));
        assert!(h(0, 2.0, 3.0, 0, &[1.0, 1.0]).detect_reset(&prev));
        assert!(h(1, 4.0, 3.0, 0, &[2.0, 2.0]).detect_reset(&prev));
    }
}
