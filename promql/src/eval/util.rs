//! Numeric helpers shared by functions and aggregations.

use tidewatch_common::{Label, Labels};

/// Neumaier-compensated summation step: returns the new sum and
/// compensation.
#[inline]
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Compensated sum of `vals`.
pub(crate) fn kahan_sum(vals: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for v in vals {
        (s, c) = kahan_inc(v, s, c);
    }
    if s.is_infinite() { s } else { s + c }
}

/// Compensated mean that switches to an incremental mean on overflow
/// (Prometheus's `avg_over_time`).
pub(crate) fn kahan_mean(vals: &[f64]) -> f64 {
    let (mut sum, mut mean, mut c, mut count) = (vals[0], 0.0f64, 0.0f64, 1.0f64);
    let mut incremental = false;
    for (i, &v) in vals.iter().enumerate().skip(1) {
        count = (i + 1) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(v, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

/// Prometheus's `quantile`: linear interpolation between closest ranks.
/// `vals` is sorted in place.
pub(crate) fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(|a, b| a.total_cmp(b));
    // Go's sort puts NaN first; total_cmp puts positive NaN last. Mirror
    // Prometheus by treating NaN as smaller than everything.
    let nan = vals.iter().filter(|v| v.is_nan()).count();
    if nan > 0 {
        vals.rotate_right(nan);
    }
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    vals[lower as usize] * (1.0 - weight) + vals[upper as usize] * weight
}

/// Formats a float the way Go's `strconv.FormatFloat(f, 'f', -1, 64)` does.
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{f}")
    }
}

/// Whether label `l` belongs to the matching signature: restricted to
/// (`on = true`) or stripped of (`on = false`) `names`; stripping always
/// removes the metric name too.
#[inline]
pub(crate) fn in_signature(l: &Label, names: &[String], on: bool) -> bool {
    if on {
        names.iter().any(|n| n == &l.name)
    } else {
        l.name != tidewatch_common::labels::METRIC_NAME && !names.iter().any(|n| n == &l.name)
    }
}

/// Labels restricted to (`on = true`) or stripped of (`on = false`) `names`;
/// stripping always removes the metric name too.
pub(crate) fn signature_labels(labels: &Labels, names: &[String], on: bool) -> Labels {
    let v: Vec<Label> = labels
        .iter()
        .filter(|l| in_signature(l, names, on))
        .cloned()
        .collect();
    Labels::from_sorted_unchecked(v)
}
