//! Functions over range vectors (`rate`, `*_over_time`, …), evaluated per
//! series with sliding windows over the columnar samples.

use super::util::{kahan_inc, kahan_mean, kahan_sum, quantile};

/// Parameters a window function may need.
pub(crate) struct WinCtx {
    /// Evaluation time of the step (ms), `@` applied.
    pub t_eval: i64,
    /// Window end (ms) = `t_eval - offset`.
    pub r_end: i64,
    /// Window length (ms).
    pub range: i64,
    /// First scalar parameter at this step.
    pub p0: f64,
    /// Second scalar parameter at this step.
    pub p1: f64,
}

/// Whether `name` is a range-vector function this module implements, and
/// which argument holds the range vector.
pub(crate) fn range_arg_index(name: &str) -> Option<usize> {
    match name {
        "rate"
        | "increase"
        | "delta"
        | "irate"
        | "idelta"
        | "changes"
        | "resets"
        | "deriv"
        | "avg_over_time"
        | "min_over_time"
        | "max_over_time"
        | "sum_over_time"
        | "count_over_time"
        | "last_over_time"
        | "first_over_time"
        | "present_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "mad_over_time"
        | "ts_of_min_over_time"
        | "ts_of_max_over_time"
        | "ts_of_first_over_time"
        | "ts_of_last_over_time"
        | "predict_linear"
        | "double_exponential_smoothing"
        | "holt_winters" => Some(0),
        "quantile_over_time" => Some(1),
        _ => None,
    }
}

/// Whether the function keeps the metric name.
pub(crate) fn keeps_name(name: &str) -> bool {
    matches!(name, "last_over_time" | "first_over_time")
}

/// Evaluates window function `name` over samples `ts`/`vs` (non-empty);
/// `buf` is scratch space reused across calls.
pub(crate) fn apply(
    name: &str,
    ts: &[i64],
    vs: &[f64],
    w: &WinCtx,
    buf: &mut Vec<f64>,
) -> Option<f64> {
    let n = vs.len();
    match name {
        "rate" => extrapolated_rate(ts, vs, w, true, true, true),
        "increase" => extrapolated_rate(ts, vs, w, true, false, true),
        "delta" => extrapolated_rate(ts, vs, w, false, false, false),
        "irate" | "idelta" => {
            if n < 2 {
                return None;
            }
            let (a, b) = (vs[n - 2], vs[n - 1]);
            let mut r = b - a;
            if name == "irate" && b < a {
                r = b;
            }
            let dt = ts[n - 1] - ts[n - 2];
            if dt == 0 {
                return None;
            }
            if name == "irate" {
                r /= dt as f64 / 1000.0;
            }
            Some(r)
        }
        "changes" => {
            let mut c = 0.0;
            for p in vs.windows(2) {
                if p[0] != p[1] && !(p[0].is_nan() && p[1].is_nan()) {
                    c += 1.0;
                }
            }
            Some(c)
        }
        "resets" => Some(vs.windows(2).filter(|p| p[1] < p[0]).count() as f64),
        "deriv" => {
            if n < 2 {
                return None;
            }
            Some(linear_regression(ts, vs, ts[0]).0)
        }
        "predict_linear" => {
            if n < 2 {
                return None;
            }
            let (slope, intercept) = linear_regression(ts, vs, w.t_eval);
            Some(slope * w.p0 + intercept)
        }
        "avg_over_time" => Some(kahan_mean(vs)),
        "sum_over_time" => Some(kahan_sum(vs.iter().copied())),
        "count_over_time" => Some(n as f64),
        "present_over_time" => Some(1.0),
        "last_over_time" => Some(vs[n - 1]),
        "first_over_time" => Some(vs[0]),
        "ts_of_last_over_time" => Some(ts[n - 1] as f64 / 1000.0),
        "ts_of_first_over_time" => Some(ts[0] as f64 / 1000.0),
        "min_over_time" | "max_over_time" | "ts_of_min_over_time" | "ts_of_max_over_time" => {
            let max = name.contains("max");
            let (mut best, mut bt) = (vs[0], ts[0]);
            for (&v, &t) in vs.iter().zip(ts).skip(1) {
                let better = if max { v > best } else { v < best };
                if better || best.is_nan() {
                    best = v;
                    bt = t;
                }
            }
            if name.starts_with("ts_of") {
                Some(bt as f64 / 1000.0)
            } else {
                Some(best)
            }
        }
        "stddev_over_time" | "stdvar_over_time" => {
            let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for &v in vs {
                count += 1.0;
                let delta = v - (mean + cmean);
                (mean, cmean) = kahan_inc(delta / count, mean, cmean);
                (aux, caux) = kahan_inc(delta * (v - (mean + cmean)), aux, caux);
            }
            let var = (aux + caux) / count;
            Some(if name == "stddev_over_time" {
                var.sqrt()
            } else {
                var
            })
        }
        "quantile_over_time" => {
            buf.clear();
            buf.extend_from_slice(vs);
            Some(quantile(w.p0, buf))
        }
        "mad_over_time" => {
            if vs.iter().any(|v| v.is_nan()) {
                return Some(f64::NAN);
            }
            buf.clear();
            buf.extend_from_slice(vs);
            let med = quantile(0.5, buf);
            buf.clear();
            buf.extend(vs.iter().map(|v| (v - med).abs()));
            Some(quantile(0.5, buf))
        }
        "double_exponential_smoothing" | "holt_winters" => {
            if n < 2 {
                return None;
            }
            let (sf, tf) = (w.p0, w.p1);
            let (mut s0, mut s1, mut b) = (0.0, vs[0], vs[1] - vs[0]);
            for (i, &v) in vs.iter().enumerate().skip(1) {
                let x = sf * v;
                if i > 1 {
                    b = tf * (s1 - s0) + (1.0 - tf) * b;
                }
                let y = (1.0 - sf) * (s1 + b);
                s0 = s1;
                s1 = x + y;
            }
            Some(s1)
        }
        _ => None,
    }
}

/// Prometheus's `extrapolatedRate`. With `counter`, `may_reset = false`
/// promises that no sample of the window is below its predecessor (see
/// [`ResetIndex`]), which skips the counter-reset scan.
pub(crate) fn extrapolated_rate(
    ts: &[i64],
    vs: &[f64],
    w: &WinCtx,
    counter: bool,
    is_rate: bool,
    may_reset: bool,
) -> Option<f64> {
    let n = vs.len();
    if n < 2 {
        return None;
    }
    let range_start = w.r_end - w.range;
    let range_end = w.r_end;
    let mut result = vs[n - 1] - vs[0];
    if counter && may_reset {
        let mut last = 0.0;
        for &v in vs {
            if v < last {
                result += last;
            }
            last = v;
        }
    }
    let (first_t, last_t) = (ts[0], ts[n - 1]);
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / (n - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter && result > 0.0 && vs[0] >= 0.0 {
        let to_zero = sampled * (vs[0] / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= w.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// Prefix counts of counter resets of one series, so that a window can tell
/// in O(1) whether it holds any: `at[j]` is the number of `k in 1..=j` with
/// `vs[k] < vs[k - 1]`. Windows without resets skip the per-sample scan;
/// windows with resets still scan, so results are bit-for-bit those of the
/// scan.
#[derive(Default)]
pub(crate) struct ResetIndex {
    at: Vec<u32>,
}

impl ResetIndex {
    /// Rebuilds the index for `vs`.
    pub fn build(&mut self, vs: &[f64]) {
        self.at.clear();
        self.at.reserve(vs.len());
        let mut n = 0u32;
        let mut prev = f64::NAN;
        for &v in vs {
            n += u32::from(v < prev);
            self.at.push(n);
            prev = v;
        }
    }

    /// Whether the window `[lo, hi)` (non-empty) holds a reset.
    #[inline]
    pub fn any(&self, lo: usize, hi: usize) -> bool {
        self.at[hi - 1] != self.at[lo]
    }
}

/// Least-squares slope and intercept (at `intercept_t`) of the samples.
pub(crate) fn linear_regression(ts: &[i64], vs: &[f64], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init = vs[0];
    let mut const_y = true;
    for (i, (&t, &v)) in ts.iter().zip(vs).enumerate() {
        if const_y && i > 0 && v != init {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// Linear interpolation at `t`; across a counter reset the counter is taken
/// to restart from zero.
fn interpolate(p1: (i64, f64), p2: (i64, f64), t: i64, counter: bool) -> f64 {
    let (mut y1, y2) = (p1.1, p2.1);
    if counter && y2 < y1 {
        y1 = 0.0;
    }
    y1 + (y2 - y1) * (t - p1.0) as f64 / (p2.0 - p1.0) as f64
}

/// Value of a smoothed instant selector at `t` from the samples around it.
pub(crate) fn smoothed_at(before: (i64, f64), after: Option<(i64, f64)>, t: i64) -> f64 {
    match after {
        Some(a) if before.0 < t => interpolate(before, a, t, false),
        _ => before.1,
    }
}

/// Go's `sort.Search(n, f)`.
fn search(n: usize, f: impl Fn(usize) -> bool) -> usize {
    let (mut i, mut j) = (0, n);
    while i < j {
        let h = (i + j) / 2;
        if !f(h) {
            i = h + 1;
        } else {
            j = h;
        }
    }
    i
}

/// Boundary indexes and values of an anchored/smoothed window; `None` when
/// the window holds nothing after its start.
fn extended_bounds(
    ts: &[i64],
    vs: &[f64],
    start: i64,
    end: i64,
    smoothed: bool,
    counter: bool,
) -> Option<(usize, usize, f64, f64)> {
    if ts.is_empty() {
        return None;
    }
    let mut last = ts.len() - 1;
    let first = search(last, |i| ts[i] > start).saturating_sub(1);
    if smoothed {
        last = search(last, |i| ts[i] >= end);
    }
    if ts[last] <= start || ts[first] > end {
        return None;
    }
    let left = if smoothed && ts[first] < start {
        interpolate(
            (ts[first], vs[first]),
            (ts[first + 1], vs[first + 1]),
            start,
            counter,
        )
    } else {
        vs[first]
    };
    let right = if smoothed && last > 0 && ts[last] > end {
        interpolate(
            (ts[last - 1], vs[last - 1]),
            (ts[last], vs[last]),
            end,
            counter,
        )
    } else {
        vs[last]
    };
    Some((first, last, left, right))
}

/// `rate`/`increase`/`delta` with the `anchored` or `smoothed` modifier over
/// samples that include the lookback before (and for smoothed after) the
/// range.
#[allow(clippy::too_many_arguments)]
pub(crate) fn extended_rate(
    ts: &[i64],
    vs: &[f64],
    start: i64,
    end: i64,
    range: i64,
    smoothed: bool,
    counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let (mut first, mut last, left, right) =
        extended_bounds(ts, vs, start, end, smoothed, counter)?;
    let mut result = right - left;
    if counter {
        if ts[first] <= start {
            first += 1;
        }
        if ts[last] >= end {
            last = last.wrapping_sub(1);
        }
        let mut prev = left;
        if last != usize::MAX && first <= last {
            for &v in &vs[first..=last] {
                if v < prev {
                    result += prev;
                }
                prev = v;
            }
        }
        if right < prev {
            result += prev;
        }
    }
    if is_rate {
        result /= range as f64 / 1000.0;
    }
    Some(result)
}

/// Trims an anchored/smoothed window to `[start, end]` with synthetic
/// boundary samples (Prometheus's `extendFloats`).
pub(crate) fn extend_floats(
    ts: &[i64],
    vs: &[f64],
    start: i64,
    end: i64,
    smoothed: bool,
) -> (Vec<i64>, Vec<f64>) {
    let Some((mut first, mut last, left, right)) =
        extended_bounds(ts, vs, start, end, smoothed, false)
    else {
        return (Vec::new(), Vec::new());
    };
    if ts[first] <= start {
        first += 1;
    }
    let mut ot = vec![start];
    let mut ov = vec![left];
    if ts[last] >= end {
        if last == 0 {
            ot.push(end);
            ov.push(right);
            return (ot, ov);
        }
        last -= 1;
    }
    if first <= last {
        ot.extend_from_slice(&ts[first..=last]);
        ov.extend_from_slice(&vs[first..=last]);
    }
    ot.push(end);
    ov.push(right);
    (ot, ov)
}
