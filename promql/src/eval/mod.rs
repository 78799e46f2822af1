//! The evaluator: every expression is evaluated over all steps of the query
//! at once into dense per-series step arrays, so functions, aggregations and
//! binary operators work column-wise instead of sample by sample.

pub(crate) mod aggregate;
pub(crate) mod binary;
pub(crate) mod functions;
pub(crate) mod histogram;
pub(crate) mod info;
pub(crate) mod labelset;
pub(crate) mod plan;
pub(crate) mod range_call;
pub(crate) mod range_fns;
pub(crate) mod util;

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use promql_parser::parser::Expr;
use promql_parser::parser::ast::{AtModifier, Offset, SubqueryExpr, VectorSelector};
use tidewatch_common::Labels;

use crate::engine::{EngineOptions, QueryError};
use crate::storage::{Series, is_stale_nan};

/// Result type of evaluation steps.
pub(crate) type EvalResult<T> = Result<T, QueryError>;

/// The steps an expression is evaluated at: `start + i * step` for
/// `i in 0..n`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Ctx {
    pub fn new(start: i64, end: i64, step: i64) -> Ctx {
        let step = step.max(1);
        let n = if end < start {
            0
        } else {
            ((end - start) / step) as usize + 1
        };
        Ctx { start, step, n }
    }

    /// Timestamp of step `i`.
    #[inline]
    pub fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// Timestamp of the last step.
    pub fn end(&self) -> i64 {
        self.ts(self.n.saturating_sub(1))
    }
}

/// One series of an instant-vector expression, dense over the steps.
#[derive(Clone, Debug)]
pub(crate) struct SVec {
    pub labels: Labels,
    pub vals: Vec<Option<f64>>,
    /// Delayed metric-name removal: `__name__` is dropped at the end.
    pub drop_name: bool,
}

/// A range-vector argument: raw samples plus how windows are placed.
#[derive(Debug)]
pub(crate) struct RangeArg<'d> {
    pub series: Vec<RangeSeries<'d>>,
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
    pub mode: RangeMode,
    /// Lookback delta (ms), how far anchored/smoothed windows extend.
    pub lookback: i64,
}

/// Extended range-selector modifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeMode {
    Normal,
    Anchored,
    Smoothed,
}

impl RangeMode {
    /// The modifier written on a selector (see [`crate::preprocess`]).
    pub fn of(vs: &VectorSelector) -> RangeMode {
        for m in &vs.matchers.matchers {
            if m.name == crate::preprocess::EXT_LABEL {
                return match m.value.as_str() {
                    "anchored" => RangeMode::Anchored,
                    _ => RangeMode::Smoothed,
                };
            }
        }
        RangeMode::Normal
    }
}

/// One series of a range argument (stale markers already removed).
#[derive(Debug)]
pub(crate) struct RangeSeries<'d> {
    pub labels: Labels,
    /// Borrowed from the fetched data when no stale markers had to go.
    pub ts: Cow<'d, [i64]>,
    pub vals: Cow<'d, [f64]>,
    pub drop_name: bool,
}

impl RangeArg<'_> {
    /// Reference (window end) time of step `i`.
    #[inline]
    pub fn ref_time(&self, ctx: &Ctx, i: usize) -> i64 {
        self.at.unwrap_or_else(|| ctx.ts(i)) - self.offset
    }

    /// Calls `f(step, lo, hi)` with the sample index window `[lo, hi)` of
    /// `s` for every step: samples in `(ref - range, ref]`.
    pub fn windows(&self, ctx: &Ctx, s: &RangeSeries<'_>, mut f: impl FnMut(usize, usize, usize)) {
        let (mut lo, mut hi) = (0usize, 0usize);
        let before = if self.mode == RangeMode::Normal {
            0
        } else {
            self.lookback
        };
        let after = if self.mode == RangeMode::Smoothed {
            self.lookback
        } else {
            0
        };
        for i in 0..ctx.n {
            let r = self.ref_time(ctx, i);
            while hi < s.ts.len() && s.ts[hi] <= r + after {
                hi += 1;
            }
            while lo < hi && s.ts[lo] <= r - self.range - before {
                lo += 1;
            }
            f(i, lo, hi);
        }
    }
}

/// The value of an evaluated expression.
#[derive(Debug)]
pub(crate) enum Val {
    Vector(Vec<SVec>),
    Scalar(Vec<f64>),
    String(String),
    /// A range vector at one instant (top level of an instant query).
    Matrix(Vec<RangeSeries<'static>>),
}

impl Val {
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Vector(_) => "vector",
            Val::Scalar(_) => "scalar",
            Val::String(_) => "string",
            Val::Matrix(_) => "matrix",
        }
    }
}

/// Evaluation state of one query.
pub(crate) struct Evaluator<'a> {
    pub opts: &'a EngineOptions,
    pub data: &'a HashMap<usize, Vec<Series>>,
    /// Query start and end, for `@ start()` / `@ end()`.
    pub query_start: i64,
    pub query_end: i64,
    /// Query step (0 for instant queries), for `step()`.
    pub query_step: i64,
    pub deadline: Instant,
    pub started: Instant,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// Key of a selector in the fetched-data map.
pub(crate) fn selector_key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// Milliseconds of a duration, clamped so that sums and differences with
/// timestamps cannot overflow.
pub(crate) fn dur_ms(d: std::time::Duration) -> i64 {
    d.as_millis().min(1u128 << 60) as i64
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => dur_ms(*d),
        Some(Offset::Neg(d)) => -dur_ms(*d),
    }
}

pub(crate) fn at_ms(at: &Option<AtModifier>, start: i64, end: i64) -> Option<i64> {
    match at {
        None => None,
        Some(AtModifier::Start) => Some(start),
        Some(AtModifier::End) => Some(end),
        Some(AtModifier::At(t)) => Some(system_time_ms(*t)),
    }
}

pub(crate) fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => dur_ms(d),
        Err(e) => -dur_ms(e.duration()),
    }
}

/// Steps of a subquery evaluated for the outer steps `ctx`.
pub(crate) fn subquery_ctx(
    sq: &SubqueryExpr,
    ctx: &Ctx,
    default_step: i64,
    qstart: i64,
    qend: i64,
) -> Ctx {
    let offset = offset_ms(&sq.offset);
    let range = dur_ms(sq.range);
    let step = sq
        .step
        .map(dur_ms)
        .filter(|&s| s > 0)
        .unwrap_or(default_step);
    let at = at_ms(&sq.at, qstart, qend);
    let (lo, hi) = match at {
        Some(a) => (a - offset, a - offset),
        None => (ctx.start - offset, ctx.end() - offset),
    };
    let from = lo - range;
    let mut start = step * (from / step);
    if start <= from {
        start += step;
    }
    Ctx::new(start, hi, step)
}

impl<'a> Evaluator<'a> {
    pub fn check_timeout(&self) -> EvalResult<()> {
        if Instant::now() >= self.deadline {
            return Err(QueryError::Timeout(format!("{:?}", self.started.elapsed())));
        }
        Ok(())
    }

    /// Fails when an intermediate or final result holds more samples than
    /// the engine's limit.
    pub fn check_samples(&self, n: usize) -> EvalResult<()> {
        if n > self.opts.max_samples {
            return Err(QueryError::Execution(
                "query processing would load too many samples into memory in query execution"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn warn(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    pub fn info(&mut self, w: String) {
        if !self.infos.contains(&w) {
            self.infos.push(w);
        }
    }

    /// Evaluates `expr` at every step of `ctx`.
    pub fn eval(&mut self, expr: &Expr, ctx: &Ctx) -> EvalResult<Val> {
        self.check_timeout()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; ctx.n])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, ctx),
            Expr::Unary(u) => match self.eval(&u.expr, ctx)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Scalar(v))
                }
                Val::Vector(mut vs) => {
                    for s in &mut vs {
                        s.vals.iter_mut().flatten().for_each(|x| *x = -*x);
                        s.drop_name = true;
                    }
                    Ok(Val::Vector(vs))
                }
                other => Err(QueryError::BadData(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.select_vector(vs, ctx, false))),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                let mut ra = self.range_arg(expr, ctx)?;
                let r = ra.ref_time(ctx, 0);
                let mut out = Vec::with_capacity(ra.series.len());
                for s in std::mem::take(&mut ra.series) {
                    if ra.mode != RangeMode::Normal {
                        let (mut lo, mut hi) = (0, 0);
                        ra.windows(&Ctx { n: 1, ..*ctx }, &s, |_, l, h| (lo, hi) = (l, h));
                        let (ts, vals) = range_fns::extend_floats(
                            &s.ts[lo..hi],
                            &s.vals[lo..hi],
                            r - ra.range,
                            r,
                            ra.mode == RangeMode::Smoothed,
                        );
                        if !ts.is_empty() {
                            out.push(RangeSeries {
                                labels: s.labels,
                                ts: Cow::Owned(ts),
                                vals: Cow::Owned(vals),
                                drop_name: s.drop_name,
                            });
                        }
                        continue;
                    }
                    let lo = s.ts.partition_point(|&t| t <= r - ra.range);
                    let hi = s.ts.partition_point(|&t| t <= r);
                    if lo < hi {
                        out.push(RangeSeries {
                            labels: s.labels,
                            ts: Cow::Owned(s.ts[lo..hi].to_vec()),
                            vals: Cow::Owned(s.vals[lo..hi].to_vec()),
                            drop_name: s.drop_name,
                        });
                    }
                }
                Ok(Val::Matrix(out))
            }
            Expr::Call(call) => self.eval_call(call, ctx),
            Expr::Aggregate(agg) => self.eval_aggregate(agg, ctx),
            Expr::Binary(b) => self.eval_binary(b, ctx),
            Expr::Extension(_) => Err(QueryError::BadData(
                "extension expressions are not supported".into(),
            )),
        }
    }

    /// Evaluates `expr` and requires an instant vector.
    pub fn eval_vector(&mut self, expr: &Expr, ctx: &Ctx) -> EvalResult<Vec<SVec>> {
        match self.eval(expr, ctx)? {
            Val::Vector(v) => Ok(v),
            other => Err(QueryError::BadData(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates `expr` and requires a scalar.
    pub fn eval_scalar(&mut self, expr: &Expr, ctx: &Ctx) -> EvalResult<Vec<f64>> {
        match self.eval(expr, ctx)? {
            Val::Scalar(v) => Ok(v),
            other => Err(QueryError::BadData(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates `expr` and requires a string.
    pub fn eval_string(&mut self, expr: &Expr, ctx: &Ctx) -> EvalResult<String> {
        match self.eval(expr, ctx)? {
            Val::String(v) => Ok(v),
            other => Err(QueryError::BadData(format!(
                "expected string, got {}",
                other.type_name()
            ))),
        }
    }

    /// An instant vector selector: the latest non-stale sample within the
    /// lookback window of every step. With `timestamps`, the value is the
    /// sample's timestamp in seconds (for `timestamp()`).
    pub fn select_vector(&self, vs: &VectorSelector, ctx: &Ctx, timestamps: bool) -> Vec<SVec> {
        let Some(series) = self.data.get(&selector_key(vs)) else {
            return Vec::new();
        };
        let offset = offset_ms(&vs.offset);
        let at = at_ms(&vs.at, self.query_start, self.query_end);
        let lookback = dur_ms(self.opts.lookback_delta);
        let smoothed = RangeMode::of(vs) == RangeMode::Smoothed;
        let mut out = Vec::with_capacity(series.len());
        for s in series {
            let mut vals = vec![None; ctx.n];
            let mut j = 0usize;
            let mut any = false;
            for (i, slot) in vals.iter_mut().enumerate() {
                let r = at.unwrap_or_else(|| ctx.ts(i)) - offset;
                while j < s.timestamps.len() && s.timestamps[j] <= r {
                    j += 1;
                }
                if j > 0 {
                    let k = j - 1;
                    if s.timestamps[k] > r - lookback && !is_stale_nan(s.values[k]) {
                        *slot = Some(if timestamps {
                            s.timestamps[k] as f64 / 1000.0
                        } else if smoothed {
                            let after = (j < s.timestamps.len()
                                && s.timestamps[j] <= r + lookback
                                && !is_stale_nan(s.values[j]))
                            .then(|| (s.timestamps[j], s.values[j]));
                            range_fns::smoothed_at((s.timestamps[k], s.values[k]), after, r)
                        } else {
                            s.values[k]
                        });
                        any = true;
                    }
                }
            }
            if any {
                out.push(SVec {
                    labels: s.labels.clone(),
                    vals,
                    drop_name: false,
                });
            }
        }
        out
    }

    /// Evaluates a matrix selector or subquery into a [`RangeArg`].
    pub fn range_arg(&mut self, expr: &Expr, ctx: &Ctx) -> EvalResult<RangeArg<'a>> {
        match expr {
            Expr::Paren(p) => self.range_arg(&p.expr, ctx),
            Expr::MatrixSelector(ms) => {
                let data: &'a HashMap<usize, Vec<Series>> = self.data;
                let series = data
                    .get(&selector_key(&ms.vs))
                    .map(|v| v.as_slice())
                    .unwrap_or(&[]);
                let mut out = Vec::with_capacity(series.len());
                for s in series {
                    let stale = s.values.iter().any(|v| is_stale_nan(*v));
                    let (ts, vals) = if stale {
                        let mut ts = Vec::with_capacity(s.timestamps.len());
                        let mut vals = Vec::with_capacity(s.values.len());
                        for (t, v) in s.timestamps.iter().zip(&s.values) {
                            if !is_stale_nan(*v) {
                                ts.push(*t);
                                vals.push(*v);
                            }
                        }
                        (Cow::Owned(ts), Cow::Owned(vals))
                    } else {
                        (
                            Cow::Borrowed(s.timestamps.as_slice()),
                            Cow::Borrowed(s.values.as_slice()),
                        )
                    };
                    out.push(RangeSeries {
                        labels: s.labels.clone(),
                        ts,
                        vals,
                        drop_name: false,
                    });
                }
                Ok(RangeArg {
                    series: out,
                    range: dur_ms(ms.range),
                    offset: offset_ms(&ms.vs.offset),
                    at: at_ms(&ms.vs.at, self.query_start, self.query_end),
                    mode: RangeMode::of(&ms.vs),
                    lookback: dur_ms(self.opts.lookback_delta),
                })
            }
            Expr::Subquery(sq) => {
                let inner = subquery_ctx(
                    sq,
                    ctx,
                    dur_ms(self.opts.default_subquery_step),
                    self.query_start,
                    self.query_end,
                );
                // Every inner step may hold a sample per series: refuse
                // resolutions no result could fit into.
                self.check_samples(inner.n)?;
                let series: Vec<RangeSeries<'a>> = match self.eval(&sq.expr, &inner)? {
                    Val::Vector(v) => v.into_iter().map(|s| svec_to_range(s, &inner)).collect(),
                    Val::Scalar(v) => vec![RangeSeries {
                        labels: Labels::empty(),
                        ts: Cow::Owned((0..inner.n).map(|i| inner.ts(i)).collect()),
                        vals: Cow::Owned(v),
                        drop_name: false,
                    }],
                    other => {
                        return Err(QueryError::BadData(format!(
                            "subquery is only allowed on instant vector, got {}",
                            other.type_name()
                        )));
                    }
                };
                self.check_samples(series.iter().map(|s| s.ts.len()).sum())?;
                Ok(RangeArg {
                    series,
                    range: dur_ms(sq.range),
                    offset: offset_ms(&sq.offset),
                    at: at_ms(&sq.at, self.query_start, self.query_end),
                    mode: RangeMode::Normal,
                    lookback: 0,
                })
            }
            other => Err(QueryError::BadData(format!(
                "expected type range vector, got {}",
                match other {
                    Expr::VectorSelector(_) => "instant vector",
                    Expr::NumberLiteral(_) => "scalar",
                    Expr::StringLiteral(_) => "string",
                    _ => "expression",
                }
            ))),
        }
    }
}

/// Converts a dense step series into a sparse range series.
fn svec_to_range(s: SVec, ctx: &Ctx) -> RangeSeries<'static> {
    let mut ts = Vec::new();
    let mut vals = Vec::new();
    for (i, v) in s.vals.iter().enumerate() {
        if let Some(v) = v {
            ts.push(ctx.ts(i));
            vals.push(*v);
        }
    }
    RangeSeries {
        labels: s.labels,
        ts: Cow::Owned(ts),
        vals: Cow::Owned(vals),
        drop_name: s.drop_name,
    }
}

/// Removes `__name__` from series marked for it and merges series whose
/// labels became equal; fails if two of them have a value at the same step.
pub(crate) fn finish_names(vs: Vec<SVec>) -> EvalResult<Vec<SVec>> {
    // Every operator keeps its output label sets unique; only dropping names
    // can make two equal.
    if !vs.iter().any(|s| s.drop_name) {
        return Ok(vs);
    }
    let mut out: Vec<SVec> = Vec::with_capacity(vs.len());
    let mut index = labelset::HashIndex::with_capacity(vs.len());
    let mut buf = Vec::new();
    for mut s in vs {
        if s.drop_name {
            drop_name_labels(&mut s.labels);
            s.drop_name = false;
        }
        let h = labelset::hash_labels(s.labels.iter(), &mut buf);
        match index.find(h, |i| out[i].labels == s.labels) {
            Some(i) => {
                let t = &mut out[i];
                for (a, b) in t.vals.iter_mut().zip(s.vals) {
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

/// Removes the metric name and the type/unit metadata labels that go with it.
pub(crate) fn drop_name_labels(l: &mut Labels) {
    l.remove(tidewatch_common::labels::METRIC_NAME);
    l.remove("__type__");
    l.remove("__unit__");
}
