//! `histogram_quantile` over classic (`le`-labelled) buckets.

use std::collections::HashMap;

use tidewatch_common::Labels;

use super::{Ctx, SVec};

/// Outcome flags of one quantile computation.
#[derive(Default)]
pub(crate) struct Flags {
    pub forced_monotonic: bool,
    pub bad_le: bool,
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
        _ => s.trim().parse::<f64>().ok(),
    }
}

/// Evaluates `histogram_quantile(q, input)` for every step; returns the
/// output series and flags.
pub(crate) fn histogram_quantile(q: &[f64], input: &[SVec], ctx: &Ctx) -> (Vec<SVec>, Flags) {
    let mut flags = Flags::default();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<(usize, f64)>)> = Vec::new();
    for (si, s) in input.iter().enumerate() {
        let Some(le) = s.labels.get("le").and_then(parse_le) else {
            flags.bad_le = true;
            continue;
        };
        let mut l = s.labels.clone();
        l.remove("le");
        l.remove(tidewatch_common::labels::METRIC_NAME);
        let n = groups.len();
        let gi = *index.entry(l.clone()).or_insert_with(|| {
            groups.push((l, Vec::new()));
            n
        });
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
            *slot = Some(bucket_quantile(q[i], &mut buf, &mut flags));
        }
        if vals.iter().any(|v| v.is_some()) {
            out.push(SVec {
                labels,
                vals,
                drop_name: false,
            });
        }
    }
    (out, flags)
}
