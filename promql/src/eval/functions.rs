//! Function calls: dispatch, instant-vector functions and the range-vector
//! function driver.

use std::collections::HashMap;

use chrono::{Datelike, TimeZone, Timelike, Utc};
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use promql_parser::parser::ast::Call;
use tidewatch_common::Labels;
use tidewatch_common::labels::{METRIC_NAME, is_valid_label_name};

use super::aggregate::{cmp_asc_nan_last, cmp_desc_nan_last};
use super::histogram::{Flags, bucket_fraction, bucket_quantile, classic_histograms};
use super::plan::{info_key, info_matchers, info_ref_path, info_ref_time};
use super::range_fns::{self, WinCtx, keeps_name, range_arg_index};
use super::util::format_float;
use super::{Ctx, EvalResult, Evaluator, RangeMode, SVec, Val};
use crate::engine::QueryError;

fn unwrap_paren(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unwrap_paren(&p.expr),
        e => e,
    }
}

fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => f64::to_degrees,
        "rad" => f64::to_radians,
        "sgn" => |v: f64| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

fn date_fn(name: &str) -> Option<fn(f64) -> f64> {
    fn dt(v: f64) -> Option<chrono::DateTime<Utc>> {
        if !v.is_finite() {
            return None;
        }
        Utc.timestamp_opt(v as i64, 0).single()
    }
    Some(match name {
        "year" => |v| dt(v).map_or(f64::NAN, |d| d.year() as f64),
        "month" => |v| dt(v).map_or(f64::NAN, |d| d.month() as f64),
        "day_of_month" => |v| dt(v).map_or(f64::NAN, |d| d.day() as f64),
        "day_of_week" => |v| dt(v).map_or(f64::NAN, |d| d.weekday().num_days_from_sunday() as f64),
        "day_of_year" => |v| dt(v).map_or(f64::NAN, |d| d.ordinal() as f64),
        "hour" => |v| dt(v).map_or(f64::NAN, |d| d.hour() as f64),
        "minute" => |v| dt(v).map_or(f64::NAN, |d| d.minute() as f64),
        "days_in_month" => |v| {
            dt(v).map_or(f64::NAN, |d| {
                let (y, m) = (d.year(), d.month());
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let first = chrono::NaiveDate::from_ymd_opt(y, m, 1).unwrap();
                let next = chrono::NaiveDate::from_ymd_opt(ny, nm, 1).unwrap();
                (next - first).num_days() as f64
            })
        },
        _ => return None,
    })
}

/// Natural ("version") string comparison used by `sort_by_label`.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        } else {
            let o = ab[i].cmp(&bb[j]);
            if o != std::cmp::Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

/// Merges series with identical labels (and name-dropping state); fails if
/// two have a value at the same step.
fn merge_same(vs: Vec<SVec>) -> EvalResult<Vec<SVec>> {
    let mut out: Vec<SVec> = Vec::with_capacity(vs.len());
    let mut index: HashMap<(Labels, bool), usize> = HashMap::new();
    for s in vs {
        let key = (s.labels.clone(), s.drop_name);
        match index.get(&key) {
            Some(&i) => {
                for (a, b) in out[i].vals.iter_mut().zip(s.vals) {
                    if let Some(b) = b {
                        if a.is_some() {
                            return Err(QueryError::Execution(
                                "vector cannot contain metrics with the same labelset".into(),
                            ));
                        }
                        *a = Some(b);
                    }
                }
            }
            None => {
                index.insert(key, out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Labels `absent()` reports: the selector's equality matchers.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match unwrap_paren(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let ms = &vs.matchers.matchers;
    let mut l = Labels::empty();
    for m in ms {
        if m.name == METRIC_NAME || m.name == crate::preprocess::EXT_LABEL || m.op != MatchOp::Equal
        {
            continue;
        }
        if ms.iter().filter(|o| o.name == m.name).count() > 1 {
            continue;
        }
        l.set(&m.name, &m.value);
    }
    l
}

impl Evaluator<'_> {
    fn scalar_arg(
        &mut self,
        args: &[Box<Expr>],
        i: usize,
        ctx: &Ctx,
        default: f64,
    ) -> EvalResult<Vec<f64>> {
        match args.get(i) {
            Some(e) => self.eval_scalar(e, ctx),
            None => Ok(vec![default; ctx.n]),
        }
    }

    fn string_arg(&mut self, args: &[Box<Expr>], i: usize, ctx: &Ctx) -> EvalResult<String> {
        match args.get(i) {
            Some(e) => self.eval_string(e, ctx),
            None => Err(QueryError::BadData("missing string argument".into())),
        }
    }

    pub(crate) fn eval_call(&mut self, call: &Call, ctx: &Ctx) -> EvalResult<Val> {
        let name = call.func.name;
        let args = &call.args.args;
        if let Some(ri) = range_arg_index(name) {
            return self.eval_range_fn(name, args, ri, ctx);
        }
        if let Some(f) = math_fn(name) {
            let mut v = self.eval_vector(&args[0], ctx)?;
            for s in &mut v {
                s.vals.iter_mut().flatten().for_each(|x| *x = f(*x));
                s.drop_name = true;
            }
            return Ok(Val::Vector(v));
        }
        if let Some(f) = date_fn(name) {
            let mut v = if args.is_empty() {
                vec![SVec {
                    labels: Labels::empty(),
                    vals: (0..ctx.n)
                        .map(|i| Some(ctx.ts(i) as f64 / 1000.0))
                        .collect(),
                    drop_name: false,
                }]
            } else {
                self.eval_vector(&args[0], ctx)?
            };
            for s in &mut v {
                s.vals.iter_mut().flatten().for_each(|x| *x = f(*x));
                s.drop_name = true;
            }
            return Ok(Val::Vector(v));
        }
        match name {
            "time" => Ok(Val::Scalar(
                (0..ctx.n).map(|i| ctx.ts(i) as f64 / 1000.0).collect(),
            )),
            "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; ctx.n])),
            "step" => Ok(Val::Scalar(vec![self.query_step as f64 / 1000.0; ctx.n])),
            "range" => Ok(Val::Scalar(vec![
                (self.query_end - self.query_start) as f64
                    / 1000.0;
                ctx.n
            ])),
            "start" => Ok(Val::Scalar(vec![self.query_start as f64 / 1000.0; ctx.n])),
            "end" => Ok(Val::Scalar(vec![self.query_end as f64 / 1000.0; ctx.n])),
            "min_of" | "max_of" => {
                let a = self.eval_scalar(&args[0], ctx)?;
                let b = self.eval_scalar(&args[1], ctx)?;
                Ok(Val::Scalar(
                    a.iter()
                        .zip(&b)
                        .map(|(x, y)| {
                            if x.is_nan() || y.is_nan() {
                                f64::NAN
                            } else if name == "min_of" {
                                x.min(*y)
                            } else {
                                x.max(*y)
                            }
                        })
                        .collect(),
                ))
            }
            "vector" => {
                let s = self.eval_scalar(&args[0], ctx)?;
                Ok(Val::Vector(vec![SVec {
                    labels: Labels::empty(),
                    vals: s.into_iter().map(Some).collect(),
                    drop_name: false,
                }]))
            }
            "scalar" => {
                let v = self.eval_vector(&args[0], ctx)?;
                let mut out = vec![f64::NAN; ctx.n];
                for (i, o) in out.iter_mut().enumerate() {
                    let mut it = v.iter().filter_map(|s| s.vals[i]);
                    if let (Some(x), None) = (it.next(), it.next()) {
                        *o = x;
                    }
                }
                Ok(Val::Scalar(out))
            }
            "timestamp" => {
                let mut v = match unwrap_paren(&args[0]) {
                    Expr::VectorSelector(vs) => self.select_vector(vs, ctx, true),
                    e => {
                        let mut v = self.eval_vector(e, ctx)?;
                        for s in &mut v {
                            for (i, x) in s.vals.iter_mut().enumerate() {
                                if x.is_some() {
                                    *x = Some(ctx.ts(i) as f64 / 1000.0);
                                }
                            }
                        }
                        v
                    }
                };
                v.iter_mut().for_each(|s| s.drop_name = true);
                Ok(Val::Vector(v))
            }
            "absent" => {
                let v = self.eval_vector(&args[0], ctx)?;
                let vals: Vec<Option<f64>> = (0..ctx.n)
                    .map(|i| {
                        if v.iter().any(|s| s.vals[i].is_some()) {
                            None
                        } else {
                            Some(1.0)
                        }
                    })
                    .collect();
                Ok(Val::Vector(absent_result(absent_labels(&args[0]), vals)))
            }
            "absent_over_time" => {
                let ra = self.range_arg(&args[0], ctx)?;
                let mut present = vec![false; ctx.n];
                for s in &ra.series {
                    ra.windows(ctx, s, |i, lo, hi| {
                        if hi > lo {
                            present[i] = true;
                        }
                    });
                }
                let vals = present
                    .iter()
                    .map(|p| if *p { None } else { Some(1.0) })
                    .collect();
                Ok(Val::Vector(absent_result(absent_labels(&args[0]), vals)))
            }
            "round" => {
                let mut v = self.eval_vector(&args[0], ctx)?;
                let to = self.scalar_arg(args, 1, ctx, 1.0)?;
                for s in &mut v {
                    for (x, t) in s.vals.iter_mut().zip(&to) {
                        if let Some(x) = x {
                            let inv = 1.0 / t;
                            *x = (*x * inv + 0.5).floor() / inv;
                        }
                    }
                    s.drop_name = true;
                }
                Ok(Val::Vector(v))
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let mut v = self.eval_vector(&args[0], ctx)?;
                let (lo, hi) = match name {
                    "clamp" => (
                        self.scalar_arg(args, 1, ctx, 0.0)?,
                        self.scalar_arg(args, 2, ctx, 0.0)?,
                    ),
                    "clamp_min" => (
                        self.scalar_arg(args, 1, ctx, 0.0)?,
                        vec![f64::INFINITY; ctx.n],
                    ),
                    _ => (
                        vec![f64::NEG_INFINITY; ctx.n],
                        self.scalar_arg(args, 1, ctx, 0.0)?,
                    ),
                };
                for s in &mut v {
                    for (i, x) in s.vals.iter_mut().enumerate() {
                        if let Some(val) = *x {
                            if hi[i] < lo[i] {
                                *x = None;
                            } else {
                                *x = Some(lo[i].max(hi[i].min(val)));
                                if name != "clamp" {
                                    *x = Some(if name == "clamp_min" {
                                        lo[i].max(val)
                                    } else {
                                        hi[i].min(val)
                                    });
                                }
                            }
                        }
                    }
                    s.drop_name = true;
                }
                v.retain(|s| s.vals.iter().any(|x| x.is_some()));
                Ok(Val::Vector(v))
            }
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"
                if self.query_step != 0 =>
            {
                self.warn("PromQL warning: sort is ineffective for range queries since results are always ordered by labels".into());
                Ok(Val::Vector(self.eval_vector(&args[0], ctx)?))
            }
            "sort" | "sort_desc" => {
                let mut v = self.eval_vector(&args[0], ctx)?;
                if ctx.n == 1 {
                    v.sort_by(|a, b| {
                        let (x, y) = (a.vals[0].unwrap_or(f64::NAN), b.vals[0].unwrap_or(f64::NAN));
                        if name == "sort" {
                            cmp_asc_nan_last(x, y)
                        } else {
                            cmp_desc_nan_last(x, y)
                        }
                    });
                }
                Ok(Val::Vector(v))
            }
            "sort_by_label" | "sort_by_label_desc" => {
                let mut v = self.eval_vector(&args[0], ctx)?;
                let mut names = Vec::new();
                for i in 1..args.len() {
                    names.push(self.string_arg(args, i, ctx)?);
                }
                v.sort_by(|a, b| {
                    let mut o = std::cmp::Ordering::Equal;
                    for n in &names {
                        let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                        if x != y {
                            o = natural_cmp(x, y);
                            break;
                        }
                    }
                    let o = o.then_with(|| a.labels.cmp(&b.labels));
                    if name == "sort_by_label" {
                        o
                    } else {
                        o.reverse()
                    }
                });
                Ok(Val::Vector(v))
            }
            "label_replace" => {
                let v = self.eval_vector(&args[0], ctx)?;
                let dst = self.string_arg(args, 1, ctx)?;
                let repl = self.string_arg(args, 2, ctx)?;
                let src = self.string_arg(args, 3, ctx)?;
                let re_s = self.string_arg(args, 4, ctx)?;
                let re = regex::Regex::new(&format!("^(?s:{re_s})$")).map_err(|e| {
                    QueryError::BadData(format!(
                        "invalid regular expression in label_replace(): {re_s}: {e}"
                    ))
                })?;
                if !is_valid_label_name(&dst) {
                    return Err(QueryError::Execution(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    )));
                }
                let mut out = Vec::with_capacity(v.len());
                for mut s in v {
                    let sv = s.labels.get(&src).unwrap_or("").to_string();
                    if let Some(caps) = re.captures(&sv) {
                        let mut res = String::new();
                        caps.expand(&repl, &mut res);
                        s.labels.set(&dst, &res);
                        if dst == METRIC_NAME {
                            s.drop_name = false;
                        }
                    }
                    out.push(s);
                }
                Ok(Val::Vector(merge_same(out)?))
            }
            "label_join" => {
                let v = self.eval_vector(&args[0], ctx)?;
                let dst = self.string_arg(args, 1, ctx)?;
                let sep = self.string_arg(args, 2, ctx)?;
                let mut srcs = Vec::new();
                for i in 3..args.len() {
                    let s = self.string_arg(args, i, ctx)?;
                    if !is_valid_label_name(&s) {
                        return Err(QueryError::Execution(format!(
                            "invalid source label name in label_join(): {s}"
                        )));
                    }
                    srcs.push(s);
                }
                if !is_valid_label_name(&dst) {
                    return Err(QueryError::Execution(format!(
                        "invalid destination label name in label_join(): {dst}"
                    )));
                }
                let mut out = Vec::with_capacity(v.len());
                for mut s in v {
                    let joined: Vec<&str> =
                        srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
                    let joined = joined.join(&sep);
                    s.labels.set(&dst, &joined);
                    if dst == METRIC_NAME {
                        s.drop_name = false;
                    }
                    out.push(s);
                }
                Ok(Val::Vector(merge_same(out)?))
            }
            "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => {
                self.classic_histogram_fn(name, args, ctx)
            }
            "info" => self.eval_info(call, ctx),
            n if n.starts_with("histogram_") => {
                // Native histograms are not stored: these yield nothing.
                for a in args {
                    self.eval(a, ctx)?;
                }
                Ok(Val::Vector(Vec::new()))
            }
            other => Err(QueryError::BadData(format!(
                "function {other:?} is not supported"
            ))),
        }
    }

    /// `info(v, selector)`: joins data labels of info series (`target_info`
    /// by default) onto `v` by the identifying labels `instance` and `job`.
    fn eval_info(&mut self, call: &Call, ctx: &Ctx) -> EvalResult<Val> {
        let args = &call.args.args;
        let base = self.eval_vector(&args[0], ctx)?;
        let matchers = info_matchers(args.get(1).map(|b| unwrap_paren(b)));
        let (name_ms, data_ms): (Vec<_>, Vec<_>) =
            matchers.into_iter().partition(|m| m.name == METRIC_NAME);
        // Data matchers only count when the user wrote a selector.
        let data_ms = if args.len() > 1 { data_ms } else { Vec::new() };
        let path = info_ref_path(&args[0]);
        let lookback = self.opts.lookback_delta.as_millis() as i64;
        let info_series = self
            .data
            .get(&info_key(call))
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        // Per info series: (name, identifying signature, labels) and, per step,
        // the timestamp of the sample in effect.
        let sig = |name: &str, l: &Labels| -> Vec<(String, String)> {
            let mut v = vec![(METRIC_NAME.to_string(), name.to_string())];
            for id in ["instance", "job"] {
                if let Some(x) = l.get(id) {
                    v.push((id.to_string(), x.to_string()));
                }
            }
            v
        };
        let mut infos: Vec<InfoSeries<'_>> = Vec::new();
        let mut info_names: Vec<String> = Vec::new();
        for s in info_series {
            let name = s.labels.metric_name().unwrap_or("").to_string();
            let mut at = vec![None; ctx.n];
            for (i, slot) in at.iter_mut().enumerate() {
                let r = info_ref_time(&path, ctx.ts(i), self.query_start, self.query_end);
                let k = s.timestamps.partition_point(|&t| t <= r);
                if k > 0
                    && s.timestamps[k - 1] > r - lookback
                    && !crate::storage::is_stale_nan(s.values[k - 1])
                {
                    *slot = Some(s.timestamps[k - 1]);
                }
            }
            if !info_names.contains(&name) {
                info_names.push(name.clone());
            }
            infos.push((sig(&name, &s.labels), &s.labels, at));
        }
        let all_match_empty = data_ms.iter().all(|m| m.is_match(""));
        let mut out: Vec<SVec> = Vec::new();
        let mut index: HashMap<(Labels, bool), usize> = HashMap::new();
        let mut best: HashMap<&[(String, String)], (usize, i64)> = HashMap::new();
        for i in 0..ctx.n {
            best.clear();
            for (ii, (sg, _, at)) in infos.iter().enumerate() {
                let Some(t) = at[i] else { continue };
                match best.get(sg.as_slice()) {
                    Some(&(_, bt)) if bt > t => {}
                    Some(&(_, bt)) if bt == t => {
                        return Err(QueryError::Execution(
                            "found duplicate series for info metric".into(),
                        ));
                    }
                    _ => {
                        best.insert(sg.as_slice(), (ii, t));
                    }
                }
            }
            for b in &base {
                let Some(v) = b.vals[i] else { continue };
                let bname = b.labels.metric_name().unwrap_or("");
                // Info series themselves are not enriched: a series counts as
                // one when it satisfies every name matcher, at least one of
                // them positive.
                let ignored = name_ms.iter().any(super::plan::is_positive)
                    && name_ms.iter().all(|m| m.is_match(bname));
                let mut labels = b.labels.clone();
                if !ignored {
                    let mut added = Labels::empty();
                    let mut matched = false;
                    for n in &info_names {
                        let Some(&(ii, _)) = best.get(sig(n, &b.labels).as_slice()) else {
                            continue;
                        };
                        matched = true;
                        for l in infos[ii].1.iter() {
                            if l.name == METRIC_NAME {
                                continue;
                            }
                            if !data_ms.is_empty() && !data_ms.iter().any(|m| m.name == l.name) {
                                continue;
                            }
                            if let Some(x) = added.get(&l.name)
                                && x != l.value
                            {
                                return Err(QueryError::Execution(format!(
                                    "conflicting label: {}",
                                    l.name
                                )));
                            }
                            if b.labels.get(&l.name).is_some() {
                                continue;
                            }
                            added.set(&l.name, &l.value);
                        }
                    }
                    if !matched && !all_match_empty {
                        continue;
                    }
                    for l in added.iter() {
                        labels.set(&l.name, &l.value);
                    }
                }
                let key = (labels, b.drop_name);
                let oi = match index.get(&key) {
                    Some(&oi) => oi,
                    None => {
                        out.push(SVec {
                            labels: key.0.clone(),
                            vals: vec![None; ctx.n],
                            drop_name: b.drop_name,
                        });
                        index.insert(key, out.len() - 1);
                        out.len() - 1
                    }
                };
                if out[oi].vals[i].is_some() {
                    return Err(QueryError::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
                out[oi].vals[i] = Some(v);
            }
        }
        Ok(Val::Vector(out))
    }

    fn classic_histogram_fn(
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

    fn eval_range_fn(
        &mut self,
        name: &str,
        args: &[Box<Expr>],
        ri: usize,
        ctx: &Ctx,
    ) -> EvalResult<Val> {
        let mut params = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if i != ri {
                params.push(self.eval_scalar(a, ctx)?);
            }
        }
        let ra = self.range_arg(&args[ri], ctx)?;
        let nan = vec![f64::NAN; ctx.n];
        let p0 = params.first().unwrap_or(&nan);
        let p1 = params.get(1).unwrap_or(&nan);
        if name == "quantile_over_time" && !ra.series.is_empty() {
            for &q in p0 {
                if !(0.0..=1.0).contains(&q) {
                    self.warn(format!(
                        "PromQL warning: quantile value should be between 0 and 1, got {}",
                        format_float(q)
                    ));
                }
            }
        }
        if name == "double_exponential_smoothing" || name == "holt_winters" {
            for i in 0..ctx.n {
                if !(p0[i] > 0.0 && p0[i] < 1.0) {
                    return Err(QueryError::Execution(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                        p0[i]
                    )));
                }
                if !(p1[i] > 0.0 && p1[i] < 1.0) {
                    return Err(QueryError::Execution(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                        p1[i]
                    )));
                }
            }
        }
        match ra.mode {
            RangeMode::Anchored
                if !matches!(name, "changes" | "delta" | "increase" | "rate" | "resets") =>
            {
                return Err(QueryError::BadData(format!(
                    "anchored modifier can only be used with: changes, delta, increase, rate, resets - not with {name}"
                )));
            }
            RangeMode::Smoothed if !matches!(name, "delta" | "increase" | "rate") => {
                return Err(QueryError::BadData(format!(
                    "smoothed modifier can only be used with: delta, increase, rate - not with {name}"
                )));
            }
            _ => {}
        }
        let keep = keeps_name(name);
        let counterish = matches!(name, "rate" | "increase");
        let mut out = Vec::with_capacity(ra.series.len());
        let mut not_counter: Vec<String> = Vec::new();
        let mut scratch: Vec<f64> = Vec::new();
        for s in &ra.series {
            let mut vals = vec![None; ctx.n];
            let mut any = false;
            ra.windows(ctx, s, |i, lo, hi| {
                if hi <= lo {
                    return;
                }
                let w = WinCtx {
                    t_eval: ctx.ts(i),
                    r_end: ra.ref_time(ctx, i),
                    range: ra.range,
                    p0: p0[i],
                    p1: p1[i],
                };
                let r = match ra.mode {
                    RangeMode::Normal => {
                        range_fns::apply(name, &s.ts[lo..hi], &s.vals[lo..hi], &w, &mut scratch)
                    }
                    mode => {
                        let smoothed = mode == RangeMode::Smoothed;
                        let start = w.r_end - ra.range;
                        match name {
                            "rate" | "increase" | "delta" => range_fns::extended_rate(
                                &s.ts[lo..hi],
                                &s.vals[lo..hi],
                                start,
                                w.r_end,
                                ra.range,
                                smoothed,
                                name != "delta",
                                name == "rate",
                            ),
                            _ => {
                                let (ts, vs) = range_fns::extend_floats(
                                    &s.ts[lo..hi],
                                    &s.vals[lo..hi],
                                    start,
                                    w.r_end,
                                    smoothed,
                                );
                                if ts.is_empty() {
                                    None
                                } else {
                                    range_fns::apply(name, &ts, &vs, &w, &mut scratch)
                                }
                            }
                        }
                    }
                };
                if r.is_some() {
                    any = true;
                }
                vals[i] = r;
            });
            if any {
                if let Some(msg) = counterish.then(|| non_counter_info(&s.labels)).flatten() {
                    not_counter.push(msg);
                }
                out.push(SVec {
                    labels: s.labels.clone(),
                    vals,
                    drop_name: !keep || s.drop_name,
                });
            }
        }
        for n in not_counter {
            self.info(n);
        }
        Ok(Val::Vector(out))
    }
}

/// The info Prometheus gives when `rate`/`increase` read a series that
/// does not look like a counter (by `__type__`, else by name suffix).
fn non_counter_info(labels: &Labels) -> Option<String> {
    let name = labels.metric_name()?;
    match labels.get("__type__") {
        Some(t) if t != "counter" && t != "histogram" => Some(format!(
            "PromQL info: metric might not be a counter, __type__ label is not set to \"counter\" or \"histogram\": {name:?}"
        )),
        Some(_) => None,
        None if ["_total", "_sum", "_count", "_bucket"]
            .iter()
            .any(|x| name.ends_with(x)) =>
        {
            None
        }
        None => Some(format!(
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}"
        )),
    }
}

/// An info series prepared for joining: identifying signature, labels and
/// the timestamp of the sample in effect at each step.
type InfoSeries<'a> = (Vec<(String, String)>, &'a Labels, Vec<Option<i64>>);

fn absent_result(labels: Labels, vals: Vec<Option<f64>>) -> Vec<SVec> {
    if vals.iter().all(|v| v.is_none()) {
        return Vec::new();
    }
    vec![SVec {
        labels,
        vals,
        drop_name: false,
    }]
}
