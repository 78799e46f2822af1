//! Phase one of a query: walk the expression, work out the time range every
//! selector needs (offset, `@`, range, subqueries, lookback) and fetch each
//! selector once from the storage.

use std::collections::HashMap;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::Expr;
use promql_parser::parser::ast::VectorSelector;
use tidewatch_common::Labels;

use super::{Ctx, RangeMode, at_ms, dur_ms, offset_ms, selector_key, subquery_ctx};
use crate::engine::{EngineOptions, QueryError};
use crate::storage::{SelectRequest, Series, Storage};

/// A selector to fetch and the union of the time ranges it is needed for.
pub(crate) struct Need {
    /// Key of the data in the fetched map.
    pub key: usize,
    /// Alternative matcher sets (`or`), results unioned.
    pub sets: Vec<Vec<Matcher>>,
    pub start: i64,
    pub end: i64,
}

/// Walks the expression and records every selector's needed time range.
pub(crate) struct Planner<'e> {
    pub needs: Vec<Need>,
    _e: std::marker::PhantomData<&'e ()>,
    index: HashMap<usize, usize>,
    lookback: i64,
    default_step: i64,
    qstart: i64,
    qend: i64,
}

impl<'e> Planner<'e> {
    pub fn new(opts: &EngineOptions, qstart: i64, qend: i64) -> Self {
        Planner {
            needs: Vec::new(),
            _e: std::marker::PhantomData,
            index: HashMap::new(),
            lookback: dur_ms(opts.lookback_delta),
            default_step: dur_ms(opts.default_subquery_step),
            qstart,
            qend,
        }
    }

    fn need(&mut self, vs: &'e VectorSelector, start: i64, end: i64) {
        self.need_key(selector_key(vs), || matcher_sets(vs), start, end);
    }

    fn need_key(
        &mut self,
        key: usize,
        sets: impl FnOnce() -> Vec<Vec<Matcher>>,
        start: i64,
        end: i64,
    ) {
        match self.index.get(&key) {
            Some(&i) => {
                let n = &mut self.needs[i];
                n.start = n.start.min(start);
                n.end = n.end.max(end);
            }
            None => {
                self.index.insert(key, self.needs.len());
                self.needs.push(Need {
                    key,
                    sets: sets(),
                    start,
                    end,
                });
            }
        }
    }

    /// Reference-time span of a selector evaluated over `ctx`.
    fn span(&self, vs: &VectorSelector, ctx: &Ctx) -> (i64, i64) {
        let off = offset_ms(&vs.offset);
        match at_ms(&vs.at, self.qstart, self.qend) {
            Some(a) => (a - off, a - off),
            None => (ctx.start - off, ctx.end() - off),
        }
    }

    /// Records the selectors of `expr` evaluated over `ctx`.
    pub fn walk(&mut self, expr: &'e Expr, ctx: &Ctx) {
        match expr {
            Expr::VectorSelector(vs) => {
                let (lo, hi) = self.span(vs, ctx);
                let after = if RangeMode::of(vs) == RangeMode::Smoothed {
                    self.lookback
                } else {
                    0
                };
                self.need(vs, lo - self.lookback + 1, hi + after);
            }
            Expr::MatrixSelector(ms) => {
                let (lo, hi) = self.span(&ms.vs, ctx);
                let (before, after) = match RangeMode::of(&ms.vs) {
                    RangeMode::Normal => (0, 0),
                    RangeMode::Anchored => (self.lookback, 0),
                    RangeMode::Smoothed => (self.lookback, self.lookback),
                };
                self.need(&ms.vs, lo - dur_ms(ms.range) - before + 1, hi + after);
            }
            Expr::Subquery(sq) => {
                let inner = subquery_ctx(sq, ctx, self.default_step, self.qstart, self.qend);
                self.walk(&sq.expr, &inner);
            }
            Expr::Paren(p) => self.walk(&p.expr, ctx),
            Expr::Unary(u) => self.walk(&u.expr, ctx),
            Expr::Binary(b) => {
                self.walk(&b.lhs, ctx);
                self.walk(&b.rhs, ctx);
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.walk(p, ctx);
                }
                self.walk(&a.expr, ctx);
            }
            Expr::Call(c) => {
                if c.func.name == "info" {
                    let path = info_ref_path(&c.args.args[0]);
                    let lo = info_ref_time(&path, ctx.start, self.qstart, self.qend);
                    let hi = info_ref_time(&path, ctx.end(), self.qstart, self.qend);
                    let (lo, hi) = (lo.min(hi), lo.max(hi));
                    let sel = c.args.args.get(1).map(|b| b.as_ref());
                    self.need_key(
                        info_key(c),
                        || vec![info_matchers(sel)],
                        lo - self.lookback + 1,
                        hi,
                    );
                    self.walk(&c.args.args[0], ctx);
                    return;
                }
                for a in &c.args.args {
                    self.walk(a, ctx);
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
}

/// The matcher sets of a selector (one per `or` alternative), each with the
/// metric-name matcher added.
pub(crate) fn matcher_sets(vs: &VectorSelector) -> Vec<Vec<Matcher>> {
    let name = vs
        .name
        .as_ref()
        .map(|n| Matcher::new(MatchOp::Equal, tidewatch_common::labels::METRIC_NAME, n));
    let mut sets = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        sets.push(vs.matchers.matchers.clone());
    } else {
        for alt in &vs.matchers.or_matchers {
            sets.push(alt.clone());
        }
    }
    for s in &mut sets {
        s.retain(|m| !crate::preprocess::is_reserved(&m.name));
    }
    for s in &mut sets {
        if let Some(n) = &name
            && !s
                .iter()
                .any(|m| m.name == tidewatch_common::labels::METRIC_NAME)
        {
            s.push(n.clone());
        }
    }
    sets
}

/// Fetches every needed selector, enforcing the max-samples limit.
pub(crate) async fn fetch(
    storage: &dyn Storage,
    needs: &[Need],
    max_samples: usize,
) -> Result<HashMap<usize, Vec<Series>>, QueryError> {
    let mut data = HashMap::with_capacity(needs.len());
    let mut total = 0usize;
    for need in needs {
        let sets = need.sets.clone();
        let mut series: Vec<Series> = Vec::new();
        let multi = sets.len() > 1;
        for matchers in sets {
            let got = storage
                .select(SelectRequest {
                    matchers,
                    start_ms: need.start,
                    end_ms: need.end,
                })
                .await?;
            series.extend(got);
        }
        if multi {
            let mut seen: HashMap<Labels, ()> = HashMap::new();
            series.retain(|s| seen.insert(s.labels.clone(), ()).is_none());
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let series = merge_split_series(series);
        total += series.iter().map(|s| s.timestamps.len()).sum::<usize>();
        if total > max_samples {
            return Err(QueryError::Execution(
                "query processing would load too many samples into memory in query execution"
                    .into(),
            ));
        }
        data.insert(need.key, series);
    }
    Ok(data)
}

/// Key of the info series fetched for an `info()` call.
pub(crate) fn info_key(c: &promql_parser::parser::ast::Call) -> usize {
    c as *const promql_parser::parser::ast::Call as usize
}

/// The matchers selecting info series for `info(v, selector)`: the
/// selector's matchers, `__name__="target_info"` by default.
pub(crate) fn info_matchers(sel: Option<&Expr>) -> Vec<Matcher> {
    let mut ms = Vec::new();
    if let Some(Expr::VectorSelector(vs)) = sel {
        if let Some(n) = &vs.name {
            ms.push(Matcher::new(
                MatchOp::Equal,
                tidewatch_common::labels::METRIC_NAME,
                n,
            ));
        }
        ms.extend(
            vs.matchers
                .matchers
                .iter()
                .filter(|m| !crate::preprocess::is_reserved(&m.name))
                .cloned(),
        );
    }
    let name = tidewatch_common::labels::METRIC_NAME;
    if !ms.iter().any(|m| m.name == name) {
        ms.push(Matcher::new(MatchOp::Equal, name, "target_info"));
    } else if !ms.iter().any(|m| m.name == name && is_positive(m)) {
        // Only exclusions given: candidates are the `*_info` metrics.
        if let Ok(m) = Matcher::new_matcher(
            promql_parser::parser::token::T_EQL_REGEX,
            name.into(),
            ".+_info".into(),
        ) {
            ms.push(m);
        }
    }
    ms
}

/// Whether a matcher selects by inclusion (`=` or `=~`).
pub(crate) fn is_positive(m: &Matcher) -> bool {
    matches!(m.op, MatchOp::Equal | MatchOp::Re(_))
}

/// `@` and offsets on the path from an `info()` argument down to its first
/// selector, outermost first.
pub(crate) fn info_ref_path(
    e: &Expr,
) -> Vec<(Option<promql_parser::parser::ast::AtModifier>, i64)> {
    let mut path = Vec::new();
    let mut cur = e;
    loop {
        match cur {
            Expr::VectorSelector(vs) => {
                path.push((vs.at.clone(), offset_ms(&vs.offset)));
                return path;
            }
            Expr::MatrixSelector(ms) => {
                path.push((ms.vs.at.clone(), offset_ms(&ms.vs.offset)));
                return path;
            }
            Expr::Subquery(sq) => {
                path.push((sq.at.clone(), offset_ms(&sq.offset)));
                cur = &sq.expr;
            }
            Expr::Paren(p) => cur = &p.expr,
            Expr::Unary(u) => cur = &u.expr,
            Expr::Aggregate(a) => cur = &a.expr,
            Expr::Binary(b) => {
                if first_selector_in(&b.lhs) {
                    cur = &b.lhs
                } else {
                    cur = &b.rhs
                }
            }
            Expr::Call(c) => match c.args.args.iter().find(|a| first_selector_in(a)) {
                Some(a) => cur = a,
                None => return path,
            },
            _ => return path,
        }
    }
}

fn first_selector_in(e: &Expr) -> bool {
    match e {
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) => true,
        Expr::Subquery(s) => first_selector_in(&s.expr),
        Expr::Paren(p) => first_selector_in(&p.expr),
        Expr::Unary(u) => first_selector_in(&u.expr),
        Expr::Aggregate(a) => first_selector_in(&a.expr),
        Expr::Binary(b) => first_selector_in(&b.lhs) || first_selector_in(&b.rhs),
        Expr::Call(c) => c.args.args.iter().any(|a| first_selector_in(a)),
        _ => false,
    }
}

/// Reference time of the info series at step time `ts`.
pub(crate) fn info_ref_time(
    path: &[(Option<promql_parser::parser::ast::AtModifier>, i64)],
    ts: i64,
    qstart: i64,
    qend: i64,
) -> i64 {
    let mut t = ts;
    for (at, off) in path {
        if let Some(a) = at_ms(at, qstart, qend) {
            t = a;
        }
        t -= off;
    }
    t
}

/// Merges series the storage returned in several parts (e.g. from the head
/// and from blocks) into one per label set; `series` is sorted by labels.
/// Samples are ordered by time; at equal timestamps the later part wins.
fn merge_split_series(series: Vec<Series>) -> Vec<Series> {
    if !series.windows(2).any(|w| w[0].labels == w[1].labels) {
        return series;
    }
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    for s in series {
        match out.last_mut() {
            Some(last) if last.labels == s.labels => {
                let mut pts: Vec<(i64, f64)> = last
                    .timestamps
                    .iter()
                    .copied()
                    .zip(last.values.iter().copied())
                    .chain(s.timestamps.into_iter().zip(s.values))
                    .collect();
                pts.sort_by_key(|p| p.0);
                let mut ts = Vec::with_capacity(pts.len());
                let mut vs: Vec<f64> = Vec::with_capacity(pts.len());
                for (t, v) in pts {
                    if ts.last() == Some(&t) {
                        *vs.last_mut().expect("parallel vectors") = v;
                    } else {
                        ts.push(t);
                        vs.push(v);
                    }
                }
                last.timestamps = ts;
                last.values = vs;
            }
            _ => out.push(s),
        }
    }
    out
}
