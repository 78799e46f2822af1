//! `histogram_quantile` over classic (`le`-labelled) buckets.

use tidewatch_common::Labels;

use promql_parser::parser::Expr;
use tidewatch_common::labels::is_valid_label_name;

use super::functions::merge_same;
use super::labelset::{HashIndex, hash_labels};
use super::util::format_float;
use super::{Ctx, EvalResult, Evaluator, SVec, Val};
use crate::engine::QueryError;

/// Outcome flags of one quantile computation.
#[derive(Default)]
pub(crate) struct Flags {
    pub forced_monotonic: bool,
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// Prometheus's `BucketQuantile` over `(upper bound, cumulative count)`.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>, flags: &mut Flags) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !buckets.last().is_some_and(|b| b.0 == f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce buckets with the same upper bound.
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &b in buckets.iter() {
        match out.last_mut() {
            Some(l) if l.0 == b.0 => l.1 += b.1,
            _ => out.push(b),
        }
    }
    *buckets = out;
    // Ensure monotonicity, ignoring tiny precision deltas.
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let cur = b.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            b.1 = prev;
            continue;
        }
        if cur < prev {
            b.1 = prev;
            flags.forced_monotonic = true;
            continue;
        }
        prev = cur;
    }
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let nb = buckets.len();
    let b = buckets[..nb - 1].partition_point(|x| x.1 < rank);
    if b == nb - 1 {
        return buckets[nb - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let bucket_end = buckets[b].0;
    let mut count = buckets[b].1;
    let mut bucket_start = 0.0;
    if b > 0 {
        bucket_start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// Parses an `le` value the way Prometheus does.
fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => crate::promqltest::parse_float(s),
    }
}

/// Prometheus's `BucketFraction` over `(upper bound, cumulative count)`.
pub(crate) fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [(f64, f64)]) -> f64 {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !buckets.last().is_some_and(|b| b.0 == f64::INFINITY) {
        return f64::NAN;
    }
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &b in buckets.iter() {
        match out.last_mut() {
            Some(l) if l.0 == b.0 => l.1 += b.1,
            _ => out.push(b),
        }
    }
    let count = out[out.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if out[0].0 <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, &(upper_bound, bcount)) in out.iter().enumerate() {
        if i > 0 {
            lower_bound = out[i - 1].0;
        }
        let interp = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                bcount
            } else {
                rank + (bcount - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interp(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interp(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = bcount;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Evaluates a classic-histogram function for every step: series are
/// grouped by their labels without `le`, and `f(step, buckets)` computes the
/// value from `(upper bound, count)` pairs. Series without a valid `le` are
/// reported in `bad_le` (their `le` value and metric name).
pub(crate) fn classic_histograms(
    input: &[SVec],
    ctx: &Ctx,
    bad_le: &mut Vec<(String, String)>,
    mut f: impl FnMut(usize, &mut Vec<(f64, f64)>) -> f64,
) -> Vec<SVec> {
    let mut index = HashIndex::default();
    let mut buf = Vec::new();
    let mut groups: Vec<(Labels, Vec<(usize, f64)>)> = Vec::new();
    for (si, s) in input.iter().enumerate() {
        let le_raw = s.labels.get("le").unwrap_or("");
        let Some(le) = parse_le(le_raw) else {
            bad_le.push((
                le_raw.to_string(),
                s.labels.metric_name().unwrap_or("").to_string(),
            ));
            continue;
        };
        // The group labels: all but `le`, compared without cloning.
        let group = || s.labels.iter().filter(|l| l.name != "le");
        let h = hash_labels(group(), &mut buf);
        let gi = match index.find(h, |g| group().eq(groups[g].0.iter())) {
            Some(g) => g,
            None => {
                groups.push((
                    Labels::from_sorted_unchecked(group().cloned().collect()),
                    Vec::new(),
                ));
                index.insert(h)
            }
        };
        groups[gi].1.push((si, le));
    }
    let mut out = Vec::with_capacity(groups.len());
    let mut buf: Vec<(f64, f64)> = Vec::new();
    for (labels, members) in groups {
        let mut vals = vec![None; ctx.n];
        for (i, slot) in vals.iter_mut().enumerate() {
            buf.clear();
            for &(si, le) in &members {
                if let Some(v) = input[si].vals[i] {
                    buf.push((le, v));
                }
            }
            if buf.is_empty() {
                continue;
            }
            *slot = Some(f(i, &mut buf));
        }
        if vals.iter().any(|v| v.is_some()) {
            out.push(SVec {
                labels,
                vals,
                drop_name: true,
            });
        }
    }
    out
}

impl Evaluator<'_> {
    /// `histogram_quantile`, `histogram_quantiles` and `histogram_fraction`
    /// over classic buckets.
    pub(crate) fn classic_histogram_fn(
        &mut self,
        name: &str,
        args: &[Box<Expr>],
        ctx: &Ctx,
    ) -> EvalResult<Val> {
        let mut bad_le = Vec::new();
        let mut flags = Flags::default();
        let check_q = |ev: &mut Self, q: &[f64]| {
            for &qv in q {
                if !(0.0..=1.0).contains(&qv) {
                    ev.warn(format!(
                        "PromQL warning: quantile value should be between 0 and 1, got {}",
                        format_float(qv)
                    ));
                }
            }
        };
        let out = match name {
            "histogram_quantile" => {
                let q = self.eval_scalar(&args[0], ctx)?;
                check_q(self, &q);
                let v = self.eval_vector(&args[1], ctx)?;
                classic_histograms(&v, ctx, &mut bad_le, |i, b| {
                    bucket_quantile(q[i], b, &mut flags)
                })
            }
            "histogram_fraction" => {
                let lo = self.eval_scalar(&args[0], ctx)?;
                let hi = self.eval_scalar(&args[1], ctx)?;
                let v = self.eval_vector(&args[2], ctx)?;
                classic_histograms(&v, ctx, &mut bad_le, |i, b| {
                    bucket_fraction(lo[i], hi[i], b)
                })
            }
            _ => {
                let v = self.eval_vector(&args[0], ctx)?;
                let label = self.string_arg(args, 1, ctx)?;
                if !is_valid_label_name(&label) {
                    return Err(QueryError::Execution(format!(
                        "invalid label name {label:?}"
                    )));
                }
                let mut all = Vec::new();
                for a in &args[2..] {
                    let q = self.eval_scalar(a, ctx)?;
                    check_q(self, &q);
                    bad_le.clear();
                    let mut part = classic_histograms(&v, ctx, &mut bad_le, |i, b| {
                        bucket_quantile(q[i], b, &mut flags)
                    });
                    let qs = if q[0].is_finite() && q[0].fract() == 0.0 {
                        format!("{:.1}", q[0])
                    } else {
                        format_float(q[0])
                    };
                    for s in &mut part {
                        s.labels.set(&label, &qs);
                    }
                    all.extend(part);
                }
                merge_same(all)?
            }
        };
        if let Some((le, metric)) = bad_le.first() {
            self.warn(format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {metric:?}"
            ));
        }
        if flags.forced_monotonic {
            self.info(
                "PromQL info: input to histogram_quantile needed to be fixed for monotonicity"
                    .into(),
            );
        }
        Ok(Val::Vector(out))
    }
}
