//! Function calls: dispatch and the instant-vector functions (math, time,
//! label manipulation, sorting, `absent`, `scalar`/`vector`).

use super::labelset::{HashIndex, hash_labels};

use chrono::{Datelike, TimeZone, Timelike, Utc};
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use promql_parser::parser::ast::Call;
use tidewatch_common::Labels;
use tidewatch_common::labels::{METRIC_NAME, is_valid_label_name};

use super::aggregate::{cmp_asc_nan_last, cmp_desc_nan_last};
use super::range_fns::range_arg_index;
use super::{Ctx, EvalResult, Evaluator, SVec, Val};
use crate::engine::QueryError;

pub(crate) fn unwrap_paren(e: &Expr) -> &Expr {
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
pub(crate) fn merge_same(vs: Vec<SVec>) -> EvalResult<Vec<SVec>> {
    let mut out: Vec<SVec> = Vec::with_capacity(vs.len());
    let mut index = HashIndex::with_capacity(vs.len());
    let mut buf = Vec::new();
    for s in vs {
        let h = hash_labels(s.labels.iter(), &mut buf) ^ u64::from(s.drop_name);
        match index.find(h, |i| {
            out[i].drop_name == s.drop_name && out[i].labels == s.labels
        }) {
            Some(i) => {
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
                index.insert(h);
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

    pub(crate) fn string_arg(
        &mut self,
        args: &[Box<Expr>],
        i: usize,
        ctx: &Ctx,
    ) -> EvalResult<String> {
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
}

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
