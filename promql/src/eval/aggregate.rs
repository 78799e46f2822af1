//! Aggregation operators, computed per group and step over dense columns.

use std::collections::HashMap;

use promql_parser::parser::Expr;
use promql_parser::parser::ast::{AggregateExpr, LabelModifier};
use promql_parser::parser::token::*;
use tidewatch_common::{Label, Labels};

use super::functions::unwrap_paren;
use super::labelset::{HashIndex, hash_labels};
use super::range_fns::range_arg_index;
use super::util::{format_float, kahan_inc, quantile};
use super::{Ctx, EvalResult, Evaluator, SVec, Val};
use crate::engine::QueryError;

/// Whether label `l` is part of the group labels under the aggregation's
/// modifier.
#[inline]
fn in_group(l: &Label, m: &Option<LabelModifier>) -> bool {
    match m {
        None => false,
        Some(LabelModifier::Include(ls)) => ls.labels.iter().any(|n| n == &l.name),
        Some(LabelModifier::Exclude(ls)) => {
            l.name != tidewatch_common::labels::METRIC_NAME
                && !ls.labels.iter().any(|n| n == &l.name)
        }
    }
}

/// Assigns group ids to series by their group labels, in first-seen order.
/// Only the first series of a group clones its group labels.
#[derive(Default)]
struct Grouper {
    index: HashIndex,
    buf: Vec<u8>,
    labels: Vec<Labels>,
}

impl Grouper {
    /// The group id of a series labelled `labels`.
    fn group_of(&mut self, labels: &Labels, m: &Option<LabelModifier>) -> usize {
        let members = || labels.iter().filter(|l| in_group(l, m));
        let h = hash_labels(members(), &mut self.buf);
        let known = &self.labels;
        match self.index.find(h, |g| members().eq(known[g].iter())) {
            Some(g) => g,
            None => {
                self.labels
                    .push(Labels::from_sorted_unchecked(members().cloned().collect()));
                self.index.insert(h)
            }
        }
    }
}

/// Series indexes grouped by group labels, groups in first-seen order.
fn groups(input: &[SVec], m: &Option<LabelModifier>) -> (Vec<Labels>, Vec<usize>) {
    let mut grouper = Grouper::default();
    let of = input
        .iter()
        .map(|s| grouper.group_of(&s.labels, m))
        .collect();
    (grouper.labels, of)
}

impl Evaluator<'_> {
    pub(crate) fn eval_aggregate(&mut self, agg: &AggregateExpr, ctx: &Ctx) -> EvalResult<Val> {
        let op = agg.op.id();
        let param = match &agg.param {
            Some(p) if op == T_COUNT_VALUES => Some(Val::String(self.eval_string(p, ctx)?)),
            Some(p) => Some(Val::Scalar(self.eval_scalar(p, ctx)?)),
            None => None,
        };
        if let Some(out) = self.fused_range_aggregate(agg, op, ctx)? {
            return Ok(Val::Vector(out));
        }
        let input = self.eval_vector(&agg.expr, ctx)?;
        let (glabels, of) = groups(&input, &agg.modifier);
        let ng = glabels.len();
        let n = ctx.n;
        let scalar = |p: &Option<Val>| match p {
            Some(Val::Scalar(v)) => v.clone(),
            _ => vec![f64::NAN; n],
        };
        let out = match op {
            T_SUM | T_AVG | T_COUNT | T_GROUP | T_MIN | T_MAX | T_STDDEV | T_STDVAR => {
                self.simple_agg(op, &input, &glabels, &of, n)
            }
            T_QUANTILE => {
                let q = scalar(&param);
                for &qv in &q {
                    if !(0.0..=1.0).contains(&qv) || qv.is_nan() {
                        self.warn(format!(
                            "PromQL warning: quantile value should be between 0 and 1, got {}",
                            format_float(qv)
                        ));
                    }
                }
                let mut buf: Vec<Vec<f64>> = vec![Vec::new(); ng];
                let mut out: Vec<SVec> = glabels
                    .iter()
                    .map(|l| SVec {
                        labels: l.clone(),
                        vals: vec![None; n],
                        drop_name: false,
                    })
                    .collect();
                for (i, &qi) in q.iter().enumerate() {
                    buf.iter_mut().for_each(|b| b.clear());
                    for (s, &g) in input.iter().zip(&of) {
                        if let Some(v) = s.vals[i] {
                            buf[g].push(v);
                        }
                    }
                    for (g, b) in buf.iter_mut().enumerate() {
                        if !b.is_empty() {
                            out[g].vals[i] = Some(quantile(qi, b));
                        }
                    }
                }
                out
            }
            T_TOPK | T_BOTTOMK | T_LIMITK => {
                let k = scalar(&param);
                self.topk(op, &input, &of, ng, &k, ctx)?
            }
            T_LIMIT_RATIO => {
                let r = scalar(&param);
                if r.iter().any(|x| x.is_nan()) {
                    return Err(QueryError::Execution("Ratio value is NaN".into()));
                }
                for &x in &r {
                    if !(-1.0..=1.0).contains(&x) {
                        let cap = x.clamp(-1.0, 1.0);
                        self.warn(format!(
                            "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {}",
                            format_float(x),
                            format_float(cap)
                        ));
                    }
                }
                let mut out = Vec::new();
                for s in &input {
                    let h = s.labels.stable_hash() as f64 / u64::MAX as f64;
                    let mut vals = vec![None; n];
                    let mut any = false;
                    for i in 0..n {
                        let ratio = r[i].clamp(-1.0, 1.0);
                        let keep = if ratio >= 0.0 {
                            h < ratio
                        } else {
                            h >= 1.0 + ratio
                        };
                        if keep && s.vals[i].is_some() {
                            vals[i] = s.vals[i];
                            any = true;
                        }
                    }
                    if any {
                        out.push(SVec {
                            labels: s.labels.clone(),
                            vals,
                            drop_name: s.drop_name,
                        });
                    }
                }
                out
            }
            T_COUNT_VALUES => {
                let Some(Val::String(label)) = param else {
                    return Err(QueryError::BadData(
                        "count_values needs a label name".into(),
                    ));
                };
                if !tidewatch_common::labels::is_valid_label_name(&label) {
                    return Err(QueryError::Execution(format!(
                        "invalid label name {label:?}"
                    )));
                }
                let mut index: HashMap<(usize, String), usize> = HashMap::new();
                let mut out: Vec<SVec> = Vec::new();
                for i in 0..n {
                    for (s, &g) in input.iter().zip(&of) {
                        if let Some(v) = s.vals[i] {
                            let key = (g, format_float(v));
                            let oi = match index.get(&key) {
                                Some(&oi) => oi,
                                None => {
                                    let mut l = glabels[g].clone();
                                    l.set(&label, &key.1);
                                    out.push(SVec {
                                        labels: l,
                                        vals: vec![None; n],
                                        drop_name: false,
                                    });
                                    index.insert(key, out.len() - 1);
                                    out.len() - 1
                                }
                            };
                            let slot = &mut out[oi].vals[i];
                            *slot = Some(slot.unwrap_or(0.0) + 1.0);
                        }
                    }
                }
                out
            }
            _ => {
                return Err(QueryError::BadData(format!(
                    "unsupported aggregation {}",
                    agg.op
                )));
            }
        };
        let mut out = out;
        if matches!(
            op,
            T_SUM | T_AVG | T_COUNT | T_GROUP | T_MIN | T_MAX | T_STDDEV | T_STDVAR | T_QUANTILE
        ) {
            // Delayed name removal: a group keeping `__name__` drops it at the
            // end if any of its members would have.
            let mut gdrop = vec![false; ng];
            for (s, &g) in input.iter().zip(&of) {
                gdrop[g] |= s.drop_name;
            }
            for (o, d) in out.iter_mut().zip(gdrop) {
                o.drop_name = d && o.labels.metric_name().is_some();
            }
        }
        Ok(Val::Vector(out))
    }

    /// `sum`/`avg`/`count`/`group`/`min`/`max`/`stddev`/`stdvar` directly
    /// over a range-vector function (`sum by (job) (rate(x[5m]))`): each
    /// series the function yields is folded into its group as it is
    /// produced, so the per-series step vectors are never materialised.
    /// Series arrive in the same order as [`Evaluator::eval_range_fn`]
    /// returns them, so the sums (and the groups' order) are identical.
    /// `None` when the expression has another shape.
    fn fused_range_aggregate(
        &mut self,
        agg: &AggregateExpr,
        op: TokenId,
        ctx: &Ctx,
    ) -> EvalResult<Option<Vec<SVec>>> {
        if !matches!(
            op,
            T_SUM | T_AVG | T_COUNT | T_GROUP | T_MIN | T_MAX | T_STDDEV | T_STDVAR
        ) {
            return Ok(None);
        }
        let Expr::Call(call) = unwrap_paren(&agg.expr) else {
            return Ok(None);
        };
        let name = call.func.name;
        let Some(ri) = range_arg_index(name) else {
            return Ok(None);
        };
        self.check_timeout()?;
        let mut grouper = Grouper::default();
        let mut acc = SimpleAgg::new(op, ctx.n);
        let mut gdrop: Vec<bool> = Vec::new();
        self.range_fn_each(name, &call.args.args, ri, ctx, &mut |labels, vals, drop| {
            let g = grouper.group_of(&labels, &agg.modifier);
            if g == gdrop.len() {
                gdrop.push(false);
                acc.grow(gdrop.len());
            }
            gdrop[g] |= drop;
            acc.add(g, vals);
        })?;
        let mut out = acc.finish(&grouper.labels);
        // Delayed name removal, as for a materialised input.
        for (o, d) in out.iter_mut().zip(gdrop) {
            o.drop_name = d && o.labels.metric_name().is_some();
        }
        Ok(Some(out))
    }

    fn simple_agg(
        &mut self,
        op: TokenId,
        input: &[SVec],
        glabels: &[Labels],
        of: &[usize],
        n: usize,
    ) -> Vec<SVec> {
        let mut acc = SimpleAgg::new(op, n);
        acc.grow(glabels.len());
        for (s, &g) in input.iter().zip(of) {
            acc.add(g, &s.vals);
        }
        acc.finish(glabels)
    }

    fn topk(
        &mut self,
        op: TokenId,
        input: &[SVec],
        of: &[usize],
        ng: usize,
        k: &[f64],
        ctx: &Ctx,
    ) -> EvalResult<Vec<SVec>> {
        let n = ctx.n;
        // Selected `(series, step)` pairs, in selection order.
        let mut picked: Vec<(usize, usize)> = Vec::new();
        // Members of each group present at the step: `(value, series)`.
        let mut members: Vec<Vec<(f64, usize)>> = vec![Vec::new(); ng];
        for (i, &kv) in k.iter().enumerate().take(n) {
            if kv.is_nan() {
                return Err(QueryError::Execution("Parameter value is NaN".into()));
            }
            if kv >= 9.223372036854776e18 || kv <= -9.223372036854776e18 {
                return Err(QueryError::Execution(format!(
                    "Scalar value {} overflows int64",
                    format_float(kv)
                )));
            }
            let kk = kv as i64;
            if kk < 1 {
                continue;
            }
            members.iter_mut().for_each(|m| m.clear());
            for (si, s) in input.iter().enumerate() {
                if let Some(v) = s.vals[i] {
                    members[of[si]].push((v, si));
                }
            }
            for m in members.iter_mut() {
                let take = kk.min(m.len() as i64) as usize;
                if take == 0 {
                    continue;
                }
                if op == T_TOPK || op == T_BOTTOMK {
                    // Ties keep input order (as a stable sort would); only
                    // the `take` best are selected and then ordered.
                    let cmp = |a: &(f64, usize), b: &(f64, usize)| {
                        let by_value = if op == T_TOPK {
                            cmp_desc_nan_last(a.0, b.0)
                        } else {
                            cmp_asc_nan_last(a.0, b.0)
                        };
                        by_value.then(a.1.cmp(&b.1))
                    };
                    if take < m.len() {
                        m.select_nth_unstable_by(take - 1, cmp);
                        m.truncate(take);
                    }
                    m.sort_unstable_by(cmp);
                }
                picked.extend(m.iter().take(take).map(|&(_, si)| (si, i)));
            }
        }
        let mut out: Vec<SVec> = Vec::new();
        let mut slot: Vec<usize> = vec![usize::MAX; input.len()];
        let mut new_out = |si: usize, out: &mut Vec<SVec>| {
            slot[si] = out.len();
            out.push(SVec {
                labels: input[si].labels.clone(),
                vals: vec![None; n],
                drop_name: input[si].drop_name,
            });
        };
        if n == 1 {
            // Instant queries list the selection in its order.
            for &(si, _) in &picked {
                new_out(si, &mut out);
            }
        } else {
            let mut has = vec![false; input.len()];
            for &(si, _) in &picked {
                has[si] = true;
            }
            for (si, _) in has.iter().enumerate().filter(|x| *x.1) {
                new_out(si, &mut out);
            }
        }
        for (si, i) in picked {
            out[slot[si]].vals[i] = input[si].vals[i];
        }
        Ok(out)
    }
}

/// Per-group, per-step accumulators of `sum`, `avg`, `count`, `group`,
/// `min`, `max`, `stddev` and `stdvar`; groups are added as they are seen,
/// so series can be fed one at a time without materialising the input.
struct SimpleAgg {
    op: TokenId,
    /// Steps.
    n: usize,
    cnt: Vec<f64>,
    /// Sum / mean / min / max.
    a: Vec<f64>,
    /// Compensation / aux.
    c: Vec<f64>,
    /// `avg` switched to incremental mean (overflow).
    incr: Vec<bool>,
}

impl SimpleAgg {
    fn new(op: TokenId, n: usize) -> Self {
        SimpleAgg {
            op,
            n,
            cnt: Vec::new(),
            a: Vec::new(),
            c: Vec::new(),
            incr: Vec::new(),
        }
    }

    /// Makes room for `ng` groups.
    fn grow(&mut self, ng: usize) {
        let len = ng * self.n;
        self.cnt.resize(len, 0.0);
        self.a.resize(len, 0.0);
        self.c.resize(len, 0.0);
        if self.op == T_AVG {
            self.incr.resize(len, false);
        }
    }

    /// Adds one series' step values to group `g`.
    fn add(&mut self, g: usize, vals: &[Option<f64>]) {
        let base = g * self.n;
        for (i, v) in vals.iter().enumerate() {
            let Some(v) = *v else { continue };
            let k = base + i;
            self.cnt[k] += 1.0;
            let first = self.cnt[k] == 1.0;
            match self.op {
                T_SUM => (self.a[k], self.c[k]) = kahan_inc(v, self.a[k], self.c[k]),
                T_AVG => {
                    if first {
                        self.a[k] = v;
                        self.c[k] = 0.0;
                        continue;
                    }
                    if !self.incr[k] {
                        let (ns, nc) = kahan_inc(v, self.a[k], self.c[k]);
                        if !ns.is_infinite() {
                            self.a[k] = ns;
                            self.c[k] = nc;
                            continue;
                        }
                        self.incr[k] = true;
                        self.a[k] /= self.cnt[k] - 1.0;
                        self.c[k] /= self.cnt[k] - 1.0;
                    }
                    let q = (self.cnt[k] - 1.0) / self.cnt[k];
                    (self.a[k], self.c[k]) =
                        kahan_inc(v / self.cnt[k], q * self.a[k], q * self.c[k]);
                }
                T_MIN if (first || v < self.a[k] || self.a[k].is_nan()) => self.a[k] = v,
                T_MAX if (first || v > self.a[k] || self.a[k].is_nan()) => self.a[k] = v,
                T_STDDEV | T_STDVAR => {
                    if first {
                        self.a[k] = 0.0;
                        self.c[k] = 0.0;
                    }
                    let delta = v - self.a[k];
                    self.a[k] += delta / self.cnt[k];
                    self.c[k] += delta * (v - self.a[k]);
                }
                _ => {}
            }
        }
    }

    /// The result series of the groups labelled `glabels`.
    fn finish(self, glabels: &[Labels]) -> Vec<SVec> {
        let n = self.n;
        let ng = glabels.len();
        let mut out = Vec::with_capacity(ng);
        for (g, l) in glabels.iter().enumerate() {
            let base = g * n;
            let vals = (0..n)
                .map(|i| {
                    let k = base + i;
                    if self.cnt[k] == 0.0 {
                        return None;
                    }
                    Some(match self.op {
                        T_SUM => {
                            if self.a[k].is_infinite() {
                                self.a[k]
                            } else {
                                self.a[k] + self.c[k]
                            }
                        }
                        T_AVG => {
                            if self.incr[k] {
                                self.a[k] + self.c[k]
                            } else {
                                let (s, cc) = (self.a[k], self.c[k]);
                                if s.is_infinite() {
                                    s / self.cnt[k]
                                } else {
                                    s / self.cnt[k] + cc / self.cnt[k]
                                }
                            }
                        }
                        T_COUNT => self.cnt[k],
                        T_GROUP => 1.0,
                        T_MIN | T_MAX => self.a[k],
                        T_STDVAR => self.c[k] / self.cnt[k],
                        T_STDDEV => (self.c[k] / self.cnt[k]).sqrt(),
                        _ => f64::NAN,
                    })
                })
                .collect();
            out.push(SVec {
                labels: l.clone(),
                vals,
                drop_name: false,
            });
        }
        out
    }
}

/// Descending order with NaN last.
pub(crate) fn cmp_desc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).unwrap(),
    }
}

/// Ascending order with NaN last.
pub(crate) fn cmp_asc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap(),
    }
}
