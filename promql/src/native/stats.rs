//! What `histogram_quantile`, `histogram_fraction`, `histogram_stddev` and
//! `histogram_stdvar` compute from one native histogram, with Prometheus's
//! interpolation: exponential within exponential buckets, linear in the
//! zero bucket and in custom buckets.

use super::histogram::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram};

/// One populated bucket with its bounds.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    lower: f64,
    upper: f64,
    count: f64,
}

/// Upper bound of exponential bucket `idx` at `schema`.
fn bound(idx: i32, schema: i32) -> f64 {
    (f64::from(idx) * (-f64::from(schema)).exp2()).exp2()
}

/// Populated buckets in ascending order of their bounds: negative, zero,
/// positive.
fn buckets(h: &FloatHistogram) -> Vec<Bucket> {
    let mut out = Vec::new();
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        let cv = &h.custom_values;
        for (i, c) in h.positive_pairs() {
            let i = i.max(0) as usize;
            let lower = if i == 0 {
                f64::NEG_INFINITY
            } else {
                cv.get(i - 1).copied().unwrap_or(f64::INFINITY)
            };
            let upper = cv.get(i).copied().unwrap_or(f64::INFINITY);
            if c != 0.0 {
                out.push(Bucket {
                    lower,
                    upper,
                    count: c,
                });
            }
        }
        return out;
    }
    for (i, c) in h.negative_pairs().into_iter().rev() {
        if c != 0.0 {
            out.push(Bucket {
                lower: -bound(i, h.schema),
                upper: -bound(i - 1, h.schema),
                count: c,
            });
        }
    }
    if h.zero_count != 0.0 {
        out.push(Bucket {
            lower: -h.zero_threshold,
            upper: h.zero_threshold,
            count: h.zero_count,
        });
    }
    for (i, c) in h.positive_pairs() {
        if c != 0.0 {
            out.push(Bucket {
                lower: bound(i - 1, h.schema),
                upper: bound(i, h.schema),
                count: c,
            });
        }
    }
    out
}

/// Narrows the zero bucket to `[0, t]` / `[-t, 0]` when the histogram has
/// only positive / only negative buckets.
fn natural_zero_bound(h: &FloatHistogram, b: &mut Bucket) {
    let (neg, pos) = (h.negative_buckets.is_empty(), h.positive_buckets.is_empty());
    if neg && !pos {
        b.lower = 0.0;
    } else if pos && !neg {
        b.upper = 0.0;
    }
}

/// `histogram_quantile(q, h)` for a native histogram.
pub fn quantile(q: f64, h: &FloatHistogram) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let all = buckets(h);
    let forward = h.sum.is_nan() || q < 0.5;
    let mut rank = if forward {
        q * h.count
    } else {
        (1.0 - q) * h.count
    };
    let mut count = 0.0;
    let mut found: Option<Bucket> = None;
    let mut visit = |b: &Bucket| {
        count += b.count;
        found = Some(*b);
        count >= rank
    };
    if forward {
        for b in &all {
            if visit(b) {
                break;
            }
        }
    } else {
        for b in all.iter().rev() {
            if visit(b) {
                break;
            }
        }
    }
    let Some(mut b) = found else {
        return f64::NAN;
    };
    let custom = h.schema == CUSTOM_BUCKETS_SCHEMA;
    if !custom && b.lower < 0.0 && b.upper > 0.0 {
        natural_zero_bound(h, &mut b);
    } else if custom {
        if b.lower == f64::NEG_INFINITY {
            if b.upper <= 0.0 {
                return b.upper;
            }
            b.lower = 0.0;
        } else if b.upper == f64::INFINITY {
            return b.lower;
        }
    }
    count = count.min(h.count);
    if count < rank {
        // Only NaN observations are left beyond the buckets.
        return f64::NAN;
    }
    if forward {
        rank -= count - b.count;
    } else {
        rank = count - rank;
    }
    let fraction = rank / b.count;
    if custom || (b.lower <= 0.0 && b.upper >= 0.0) {
        return b.lower + (b.upper - b.lower) * fraction;
    }
    let (ll, lu) = (b.lower.abs().log2(), b.upper.abs().log2());
    if b.lower > 0.0 {
        (ll + (lu - ll) * fraction).exp2()
    } else {
        -(lu + (ll - lu) * (1.0 - fraction)).exp2()
    }
}

/// `histogram_fraction(lower, upper, h)` for a native histogram.
pub fn fraction(lower: f64, upper: f64, h: &FloatHistogram) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let custom = h.schema == CUSTOM_BUCKETS_SCHEMA;
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, None, None);
    for mut b in buckets(h) {
        let zero = b.lower <= 0.0 && b.upper >= 0.0;
        if zero {
            natural_zero_bound(h, &mut b);
        }
        let linear = |v: f64| rank + b.count * (v - b.lower) / (b.upper - b.lower);
        let exponential = |v: f64| {
            let (ll, lu, lv) = (b.lower.abs().log2(), b.upper.abs().log2(), v.abs().log2());
            let f = if v > 0.0 {
                (lv - ll) / (lu - ll)
            } else {
                1.0 - (lv - lu) / (ll - lu)
            };
            rank + b.count * f
        };
        let interpolate = |v: f64| {
            if custom || zero {
                linear(v)
            } else {
                exponential(v)
            }
        };
        if lower_rank.is_none() && b.lower >= lower {
            lower_rank = Some(rank);
        }
        if upper_rank.is_none() && b.lower >= upper {
            upper_rank = Some(rank);
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        if lower_rank.is_none() && b.lower < lower && b.upper > lower {
            lower_rank = Some(interpolate(lower));
        }
        if upper_rank.is_none() && b.lower < upper && b.upper > upper {
            upper_rank = Some(interpolate(upper));
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        rank += b.count;
    }
    // A bound past the last bucket ranks after every observation that is
    // in a bucket (NaN observations count in `count` but in no bucket).
    let lo = lower_rank.unwrap_or(rank).min(h.count);
    let hi = upper_rank.unwrap_or(rank).min(h.count);
    (hi - lo) / h.count
}

/// `histogram_stdvar(h)`: the variance estimated from bucket midpoints
/// (geometric in exponential buckets, arithmetic in custom ones, zero in
/// the zero bucket).
pub fn stdvar(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let custom = h.schema == CUSTOM_BUCKETS_SCHEMA;
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for b in buckets(h) {
        let v = if custom {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let g = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -g } else { g }
        };
        let d = v - mean;
        // Kahan summation, like Prometheus.
        let inc = b.count * d * d;
        let t = sum + inc;
        if sum.abs() >= inc.abs() {
            c += (sum - t) + inc;
        } else {
            c += (inc - t) + sum;
        }
        sum = t;
    }
    (sum + c) / h.count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::parse_histogram;

    fn h(s: &str) -> FloatHistogram {
        parse_histogram(s).unwrap().0
    }

    #[test]
    fn quantiles_and_fractions_interpolate_like_prometheus() {
        // Schema 0: buckets (0.5,1], (1,2], (2,4] with 1, 2, 1 observations.
        let x = h("{{count:4 sum:6 buckets:[1 2 1]}}");
        assert!((quantile(0.5, &x) - std::f64::consts::SQRT_2).abs() < 1e-12);
        assert_eq!(quantile(0.0, &x), 0.5);
        assert!(quantile(-1.0, &x).is_infinite() && quantile(2.0, &x).is_infinite());
        assert_eq!(fraction(f64::NEG_INFINITY, f64::INFINITY, &x), 1.0);
        assert_eq!(fraction(1.0, 2.0, &x), 0.5);
        assert_eq!(fraction(3.0, 2.0, &x), 0.0);
        assert!(fraction(0.0, 1.0, &h("{{count:0}}")).is_nan());
        // One bucket at 1 (index 0 is (0.5, 1]): no spread.
        let v = stdvar(&h("{{count:2 sum:2 buckets:[2]}}"));
        assert!((v - (0.5f64.sqrt() - 1.0).powi(2)).abs() < 1e-12, "{v}");
    }
}
