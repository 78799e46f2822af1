//! Phase one of a query: walk the expression, work out the time range every
//! selector needs (offset, `@`, range, subqueries, lookback) and fetch each
//! selector once from the storage.

use std::collections::HashMap;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::Expr;
use promql_parser::parser::ast::VectorSelector;
use tidewatch_common::Labels;

use super::{Ctx, RangeMode, at_ms, offset_ms, selector_key, subquery_ctx};
use crate::engine::{EngineOptions, QueryError};
use crate::storage::{SelectRequest, Series, Storage};

/// A selector to fetch and the union of the time ranges it is needed for.
pub(crate) struct Need<'e> {
    pub vs: &'e VectorSelector,
    pub start: i64,
    pub end: i64,
}

/// Walks the expression and records every selector's needed time range.
pub(crate) struct Planner<'e> {
    pub needs: Vec<Need<'e>>,
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
            index: HashMap::new(),
            lookback: opts.lookback_delta.as_millis() as i64,
            default_step: opts.default_subquery_step.as_millis() as i64,
            qstart,
            qend,
        }
    }

    fn need(&mut self, vs: &'e VectorSelector, start: i64, end: i64) {
        let key = selector_key(vs);
        match self.index.get(&key) {
            Some(&i) => {
                let n = &mut self.needs[i];
                n.start = n.start.min(start);
                n.end = n.end.max(end);
            }
            None => {
                self.index.insert(key, self.needs.len());
                self.needs.push(Need { vs, start, end });
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
                self.need(
                    &ms.vs,
                    lo - ms.range.as_millis() as i64 - before + 1,
                    hi + after,
                );
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
        s.retain(|m| m.name != crate::preprocess::EXT_LABEL);
    }
    for s in &mut sets {
        if let Some(n) = &name {
            if !s
                .iter()
                .any(|m| m.name == tidewatch_common::labels::METRIC_NAME)
            {
                s.push(n.clone());
            }
        }
    }
    sets
}

/// Fetches every needed selector, enforcing the max-samples limit.
pub(crate) async fn fetch(
    storage: &dyn Storage,
    needs: &[Need<'_>],
    max_samples: usize,
) -> Result<HashMap<usize, Vec<Series>>, QueryError> {
    let mut data = HashMap::with_capacity(needs.len());
    let mut total = 0usize;
    for need in needs {
        let sets = matcher_sets(need.vs);
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
        total += series.iter().map(|s| s.timestamps.len()).sum::<usize>();
        if total > max_samples {
            return Err(QueryError::Execution(
                "query processing would load too many samples into memory in query execution"
                    .into(),
            ));
        }
        data.insert(selector_key(need.vs), series);
    }
    Ok(data)
}
