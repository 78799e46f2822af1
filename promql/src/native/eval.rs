//! Evaluation of expressions that read native-histogram samples.
//!
//! The dense float evaluator in [`crate::eval`] never sees histograms:
//! when the storage holds some and a selector of the query matches a
//! series with histogram samples, the query is evaluated here instead.
//! Supported shapes: a vector selector (histogram and float samples, with
//! lookback and staleness) and `histogram_count`, `histogram_sum`,
//! `histogram_avg`, `histogram_stddev`, `histogram_stdvar` of one, and
//! `histogram_quantile` / `histogram_fraction` of one with number
//! arguments. Everything else fails with [`NOT_SUPPORTED`].

use std::collections::{BTreeMap, HashSet};

use promql_parser::parser::Expr;
use promql_parser::parser::ast::VectorSelector;
use tidewatch_common::Labels;

use super::{FloatHistogram, NOT_SUPPORTED, stats};
use crate::engine::{EngineOptions, QueryError, QueryResult};
use crate::eval::plan::matcher_sets;
use crate::eval::{RangeMode, at_ms, dur_ms, offset_ms};
use crate::storage::{SelectRequest, Series, Storage, is_stale_nan};
use crate::value::{Sample, Value};

/// One stored sample of a series holding floats and/or histograms.
#[derive(Clone, Debug)]
enum Point {
    Float(f64),
    Histogram(Box<FloatHistogram>),
}

impl Point {
    fn is_stale(&self) -> bool {
        match self {
            Point::Float(v) => is_stale_nan(*v),
            Point::Histogram(h) => h.is_stale(),
        }
    }
}

/// What is applied to the selected samples.
#[derive(Clone, Copy, Debug)]
enum Func {
    /// The selector itself.
    Identity,
    /// `histogram_count`.
    Count,
    /// `histogram_sum`.
    Sum,
    /// `histogram_avg`.
    Avg,
    /// `histogram_stddev`.
    StdDev,
    /// `histogram_stdvar`.
    StdVar,
    /// `histogram_quantile(q, …)`.
    Quantile(f64),
    /// `histogram_fraction(lower, upper, …)`.
    Fraction(f64, f64),
}

impl Func {
    /// The float this function makes of a histogram (`None`: identity).
    fn of(self, h: &FloatHistogram) -> Option<f64> {
        Some(match self {
            Func::Identity => return None,
            Func::Count => h.count,
            Func::Sum => h.sum,
            Func::Avg => h.avg(),
            Func::StdDev => stats::stdvar(h).sqrt(),
            Func::StdVar => stats::stdvar(h),
            Func::Quantile(q) => stats::quantile(q, h),
            Func::Fraction(lo, hi) => stats::fraction(lo, hi, h),
        })
    }

    /// Whether float samples are an error (they would be classic buckets)
    /// rather than ignored.
    fn rejects_floats(self) -> bool {
        matches!(self, Func::Quantile(_) | Func::Fraction(..))
    }
}

/// A number literal argument (`0.9`, `-Inf`, `(1)`).
fn number(e: &Expr) -> Option<f64> {
    match strip_parens(e) {
        Expr::NumberLiteral(n) => Some(n.val),
        Expr::Unary(u) => number(&u.expr).map(|v| -v),
        _ => None,
    }
}

/// One query's time parameters.
pub(crate) struct Query<'a> {
    pub opts: &'a EngineOptions,
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
    pub instant: bool,
}

fn collect_selectors<'e>(e: &'e Expr, out: &mut Vec<&'e VectorSelector>) {
    match e {
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Subquery(s) => collect_selectors(&s.expr, out),
        Expr::Paren(p) => collect_selectors(&p.expr, out),
        Expr::Unary(u) => collect_selectors(&u.expr, out),
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
            collect_selectors(&a.expr, out);
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_selectors(a, out)),
        _ => {}
    }
}

fn strip_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// The supported expression shapes (plain selectors: no
/// `anchored`/`smoothed` modifier).
fn shape(e: &Expr) -> Option<(Func, &VectorSelector)> {
    let (f, vs) = shape_of(e)?;
    (RangeMode::of(vs) == RangeMode::Normal).then_some((f, vs))
}

fn shape_of(e: &Expr) -> Option<(Func, &VectorSelector)> {
    match strip_parens(e) {
        Expr::VectorSelector(vs) => Some((Func::Identity, vs)),
        Expr::Call(c) => {
            let a = &c.args.args;
            let f = match (c.func.name, a.len()) {
                ("histogram_count", 1) => Func::Count,
                ("histogram_sum", 1) => Func::Sum,
                ("histogram_avg", 1) => Func::Avg,
                ("histogram_stddev", 1) => Func::StdDev,
                ("histogram_stdvar", 1) => Func::StdVar,
                ("histogram_quantile", 2) => Func::Quantile(number(&a[0])?),
                ("histogram_fraction", 3) => Func::Fraction(number(&a[0])?, number(&a[1])?),
                _ => return None,
            };
            match strip_parens(a.last()?) {
                Expr::VectorSelector(vs) => Some((f, vs)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn not_supported(e: &Expr) -> QueryError {
    QueryError::Execution(format!(
        "{NOT_SUPPORTED} {e}: only selectors and histogram_count, histogram_sum, \
         histogram_avg, histogram_stddev, histogram_stdvar, histogram_quantile and \
         histogram_fraction of a selector read histogram samples"
    ))
}

impl Query<'_> {
    /// Evaluates `expr` if it reads histogram samples; `None` leaves it to
    /// the float evaluator.
    pub async fn evaluate(
        &self,
        storage: &dyn Storage,
        expr: &Expr,
    ) -> Result<Option<QueryResult>, QueryError> {
        let mut sels = Vec::new();
        collect_selectors(expr, &mut sels);
        let mut reads_histograms = false;
        'outer: for vs in &sels {
            for set in matcher_sets(vs) {
                let req = SelectRequest {
                    matchers: set,
                    start_ms: i64::MIN / 4,
                    end_ms: i64::MAX / 4,
                };
                if !storage.select_histograms(req).await?.is_empty() {
                    reads_histograms = true;
                    break 'outer;
                }
            }
        }
        if !reads_histograms {
            return Ok(None);
        }
        let Some((func, vs)) = shape(expr) else {
            return Err(not_supported(expr));
        };
        let series = self.select(storage, vs).await?;
        let value = self.apply(func, vs, &series)?;
        let mut warnings = Vec::new();
        let mut infos = Vec::new();
        if let Func::Quantile(q) = func
            && !(0.0..=1.0).contains(&q)
        {
            warnings.push(format!("quantile value should be between 0 and 1, got {q}"));
        }
        let nan_observations = series.iter().any(|(_, pts)| {
            pts.iter()
                .any(|(_, p)| matches!(p, Point::Histogram(h) if h.sum.is_nan() && !h.is_stale()))
        });
        if func.rejects_floats() && nan_observations {
            infos.push(
                "input to the histogram function has NaN observations, the result is skewed or NaN"
                    .into(),
            );
        }
        Ok(Some(QueryResult {
            value,
            warnings,
            infos,
        }))
    }

    fn steps(&self) -> impl Iterator<Item = i64> + '_ {
        let step = if self.instant { 1 } else { self.step_ms.max(1) };
        (0..)
            .map(move |i| self.start_ms + i * step)
            .take_while(move |&t| t <= self.end_ms)
    }

    fn reference(&self, vs: &VectorSelector, t: i64) -> i64 {
        at_ms(&vs.at, self.start_ms, self.end_ms).unwrap_or(t) - offset_ms(&vs.offset)
    }

    /// Float and histogram samples of every matching series, merged by
    /// timestamp, over the window the selector needs.
    async fn select(
        &self,
        storage: &dyn Storage,
        vs: &VectorSelector,
    ) -> Result<Vec<(Labels, Vec<(i64, Point)>)>, QueryError> {
        let lookback = dur_ms(self.opts.lookback_delta);
        let first = self.reference(vs, self.start_ms);
        let last = self.reference(vs, self.end_ms);
        let mut by_labels: BTreeMap<Labels, Vec<(i64, Point)>> = BTreeMap::new();
        for set in matcher_sets(vs) {
            let req = SelectRequest {
                matchers: set,
                start_ms: first.min(last) - lookback,
                end_ms: first.max(last),
            };
            let floats: Vec<Series> = storage.select(req.clone()).await?;
            for s in floats {
                let pts = by_labels.entry(s.labels).or_default();
                pts.extend(
                    s.timestamps
                        .into_iter()
                        .zip(s.values.into_iter().map(Point::Float)),
                );
            }
            for s in storage.select_histograms(req).await? {
                let pts = by_labels.entry(s.labels).or_default();
                pts.extend(
                    s.timestamps.into_iter().zip(
                        s.histograms
                            .into_iter()
                            .map(|h| Point::Histogram(Box::new(h))),
                    ),
                );
            }
        }
        Ok(by_labels
            .into_iter()
            .map(|(l, mut pts)| {
                // Stable: a histogram written at a float's timestamp wins.
                pts.sort_by_key(|p| p.0);
                pts.dedup_by(|later, earlier| {
                    if later.0 == earlier.0 {
                        std::mem::swap(later, earlier);
                        true
                    } else {
                        false
                    }
                });
                (l, pts)
            })
            .collect())
    }

    /// The sample an instant selector sees at reference time `r`.
    fn at<'p>(&self, pts: &'p [(i64, Point)], r: i64) -> Option<&'p Point> {
        let lookback = dur_ms(self.opts.lookback_delta);
        let k = pts.partition_point(|p| p.0 <= r).checked_sub(1)?;
        let (ts, p) = &pts[k];
        (*ts > r - lookback && !p.is_stale()).then_some(p)
    }

    fn apply(
        &self,
        func: Func,
        vs: &VectorSelector,
        series: &[(Labels, Vec<(i64, Point)>)],
    ) -> Result<Value, QueryError> {
        let mut vector = Vec::new();
        let mut matrix = Vec::new();
        let mut seen = HashSet::new();
        for (labels, pts) in series {
            let mut labels = labels.clone();
            if !matches!(func, Func::Identity) {
                labels.remove(tidewatch_common::labels::METRIC_NAME);
            }
            let mut out = Series {
                labels,
                ..Default::default()
            };
            for t in self.steps() {
                let v = match (func, self.at(pts, self.reference(vs, t))) {
                    (_, None) => continue,
                    (Func::Identity, Some(p)) => p.clone(),
                    (f, Some(Point::Float(_))) if f.rejects_floats() => {
                        return Err(QueryError::Execution(format!(
                            "{NOT_SUPPORTED} a mix of float and histogram samples for this function"
                        )));
                    }
                    (_, Some(Point::Float(_))) => continue,
                    (f, Some(Point::Histogram(h))) => Point::Float(f.of(h).unwrap_or_default()),
                };
                if self.instant {
                    let (value, histogram) = match v {
                        Point::Float(v) => (v, None),
                        Point::Histogram(h) => (0.0, Some(h)),
                    };
                    vector.push(Sample {
                        labels: out.labels.clone(),
                        timestamp: t,
                        value,
                        histogram,
                    });
                } else {
                    let Point::Float(v) = v else {
                        return Err(QueryError::Execution(format!(
                            "{NOT_SUPPORTED} range query results: {} returns histogram samples",
                            out.labels
                        )));
                    };
                    out.timestamps.push(t);
                    out.values.push(v);
                }
            }
            let present = if self.instant {
                vector.last().is_some_and(|s| s.labels == out.labels)
            } else {
                !out.timestamps.is_empty()
            };
            if present && !seen.insert(out.labels.clone()) {
                return Err(QueryError::Execution(
                    "vector cannot contain metrics with the same labelset".into(),
                ));
            }
            if !self.instant && present {
                matrix.push(out);
            }
        }
        Ok(if self.instant {
            Value::Vector(vector)
        } else {
            Value::Matrix(matrix)
        })
    }
}
