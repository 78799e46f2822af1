//! Binary operators: arithmetic, comparison (with `bool`), set operators and
//! vector matching (`on`, `ignoring`, `group_left`, `group_right`, `fill`).

use std::collections::HashMap;

use promql_parser::parser::ast::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};
use promql_parser::parser::token::*;
use tidewatch_common::Labels;

use super::labelset::{HashIndex, hash_labels};
use super::util::{in_signature, signature_labels};
use super::{Ctx, EvalResult, Evaluator, SVec, Val};
use crate::engine::QueryError;

/// Whether `op` compares (and so filters unless `bool`).
pub(crate) fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Applies `op` to two floats: the value and whether to keep it.
#[inline]
pub(crate) fn binop(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_POW => (l.powf(r), true),
        T_MOD => (l % r, true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

struct Matching<'m> {
    on: bool,
    names: Vec<String>,
    card: &'m VectorMatchCardinality,
    fill_lhs: Option<f64>,
    fill_rhs: Option<f64>,
}

fn matching(m: &Option<BinModifier>) -> Matching<'_> {
    static ONE: VectorMatchCardinality = VectorMatchCardinality::OneToOne;
    match m {
        None => Matching {
            on: false,
            names: Vec::new(),
            card: &ONE,
            fill_lhs: None,
            fill_rhs: None,
        },
        Some(m) => {
            let (on, names) = match &m.matching {
                Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
                Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
                None => (false, Vec::new()),
            };
            Matching {
                on,
                names,
                card: &m.card,
                fill_lhs: m.fill_values.lhs,
                fill_rhs: m.fill_values.rhs,
            }
        }
    }
}

impl Evaluator<'_> {
    pub(crate) fn eval_binary(&mut self, b: &BinaryExpr, ctx: &Ctx) -> EvalResult<Val> {
        let op = b.op.id();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs, ctx)?;
        let rhs = self.eval(&b.rhs, ctx)?;
        match (lhs, rhs) {
            (Val::Scalar(mut l), Val::Scalar(r)) => {
                for (x, y) in l.iter_mut().zip(&r) {
                    let (v, keep) = binop(op, *x, *y);
                    *x = if is_comparison(op) {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    };
                }
                Ok(Val::Scalar(l))
            }
            (Val::Vector(l), Val::Scalar(r)) => {
                Ok(Val::Vector(vector_scalar(op, l, &r, false, return_bool)))
            }
            (Val::Scalar(l), Val::Vector(r)) => {
                Ok(Val::Vector(vector_scalar(op, r, &l, true, return_bool)))
            }
            (Val::Vector(l), Val::Vector(r)) => {
                let m = matching(&b.modifier);
                match op {
                    T_LAND | T_LOR | T_LUNLESS => Ok(Val::Vector(set_op(op, l, r, &m, ctx)?)),
                    _ => Ok(Val::Vector(vector_vector(op, l, r, &m, return_bool, ctx)?)),
                }
            }
            (l, r) => Err(QueryError::BadData(format!(
                "binary expression must contain only scalar and instant vector types, got {} and {}",
                l.type_name(),
                r.type_name()
            ))),
        }
    }
}

fn vector_scalar(
    op: TokenId,
    mut vs: Vec<SVec>,
    s: &[f64],
    swap: bool,
    ret_bool: bool,
) -> Vec<SVec> {
    let cmp = is_comparison(op);
    for series in &mut vs {
        for (slot, &sv) in series.vals.iter_mut().zip(s) {
            let Some(v) = *slot else { continue };
            let (lv, rv) = if swap { (sv, v) } else { (v, sv) };
            let (mut val, mut keep) = binop(op, lv, rv);
            if cmp && swap {
                val = rv;
            }
            if ret_bool {
                val = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            *slot = if keep { Some(val) } else { None };
        }
        if !cmp || ret_bool {
            series.drop_name = true;
        }
    }
    vs.retain(|s| s.vals.iter().any(|v| v.is_some()));
    vs
}

/// Signature ids of both sides under the matching. Only the first series
/// of each signature builds its signature labels.
fn signatures(l: &[SVec], r: &[SVec], m: &Matching) -> (Vec<usize>, Vec<usize>, Vec<Labels>) {
    let mut index = HashIndex::with_capacity(l.len().max(r.len()));
    let mut buf = Vec::new();
    let mut sigs: Vec<Labels> = Vec::new();
    let mut id = |s: &SVec| {
        let members = || s.labels.iter().filter(|x| in_signature(x, &m.names, m.on));
        let h = hash_labels(members(), &mut buf);
        match index.find(h, |g| members().eq(sigs[g].iter())) {
            Some(g) => g,
            None => {
                sigs.push(Labels::from_sorted_unchecked(members().cloned().collect()));
                index.insert(h)
            }
        }
    };
    let li: Vec<usize> = l.iter().map(&mut id).collect();
    let ri: Vec<usize> = r.iter().map(&mut id).collect();
    (li, ri, sigs)
}

fn set_op(
    op: TokenId,
    mut l: Vec<SVec>,
    mut r: Vec<SVec>,
    m: &Matching,
    ctx: &Ctx,
) -> EvalResult<Vec<SVec>> {
    let (li, ri, sigs) = signatures(&l, &r, m);
    let mut present = vec![false; sigs.len()];
    for i in 0..ctx.n {
        present.iter_mut().for_each(|p| *p = false);
        match op {
            T_LAND | T_LUNLESS => {
                for (s, &sig) in r.iter().zip(&ri) {
                    if s.vals[i].is_some() {
                        present[sig] = true;
                    }
                }
                for (s, &sig) in l.iter_mut().zip(&li) {
                    if s.vals[i].is_some() && present[sig] != (op == T_LAND) {
                        s.vals[i] = None;
                    }
                }
            }
            _ => {
                for (s, &sig) in l.iter().zip(&li) {
                    if s.vals[i].is_some() {
                        present[sig] = true;
                    }
                }
                for (s, &sig) in r.iter_mut().zip(&ri) {
                    if s.vals[i].is_some() && present[sig] {
                        s.vals[i] = None;
                    }
                }
            }
        }
    }
    l.retain(|s| s.vals.iter().any(|v| v.is_some()));
    if op == T_LOR {
        r.retain(|s| s.vals.iter().any(|v| v.is_some()));
        l.append(&mut r);
        // A label set present on the left at some steps and on the right
        // at others is one series; they never overlap (equal labels match).
        return super::functions::merge_same(l);
    }
    Ok(l)
}

fn vector_vector(
    op: TokenId,
    l: Vec<SVec>,
    r: Vec<SVec>,
    m: &Matching,
    ret_bool: bool,
    ctx: &Ctx,
) -> EvalResult<Vec<SVec>> {
    let (include, one_to_one, swapped) = match m.card {
        VectorMatchCardinality::ManyToOne(ls) => (ls.labels.clone(), false, false),
        VectorMatchCardinality::OneToMany(ls) => (ls.labels.clone(), false, true),
        _ => (Vec::new(), true, false),
    };
    let (l, r) = if swapped { (r, l) } else { (l, r) };
    // Fill values are not swapped with the sides for `group_right`.
    let (fill_many, fill_one) = (m.fill_lhs, m.fill_rhs);
    let (li, ri, sigs) = signatures(&l, &r, m);
    if fill_many.is_none()
        && fill_one.is_none()
        && at_most_one_per_signature(&ri, sigs.len())
        && (!one_to_one || at_most_one_per_signature(&li, sigs.len()))
    {
        let sides = Sides {
            l: &l,
            r: &r,
            li: &li,
            ri: &ri,
            nsigs: sigs.len(),
        };
        return by_series(op, sides, m, one_to_one, &include, swapped, ret_bool, ctx);
    }
    let cmp = is_comparison(op);
    let arith = !cmp;
    let mut out: Vec<SVec> = Vec::new();
    let mut out_index = HashIndex::default();
    let mut hbuf = Vec::new();
    let mut pair_out: HashMap<(usize, usize), usize> = HashMap::new();
    let mut lcache: Vec<(usize, usize)> = vec![(usize::MAX - 1, 0); l.len()];
    let mut rhs_at: Vec<Option<usize>> = vec![None; sigs.len()];
    let mut matched: Vec<bool> = vec![false; sigs.len()];
    let mut lhs_seen: Vec<bool> = vec![false; sigs.len()];
    let mut out_used: Vec<usize> = Vec::new();
    const NONE: usize = usize::MAX;
    let empty = SVec {
        labels: Labels::empty(),
        vals: Vec::new(),
        drop_name: false,
    };
    for i in 0..ctx.n {
        rhs_at.iter_mut().for_each(|x| *x = None);
        matched.iter_mut().for_each(|x| *x = false);
        lhs_seen.iter_mut().for_each(|x| *x = false);
        for (ridx, (s, &sig)) in r.iter().zip(&ri).enumerate() {
            if s.vals[i].is_none() {
                continue;
            }
            if let Some(prev) = rhs_at[sig] {
                let side = if swapped { "left" } else { "right" };
                let mut a = [&r[prev].labels, &s.labels];
                a.sort();
                return Err(QueryError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    fmt_labels(&sigs[sig]),
                    fmt_labels(a[0]),
                    fmt_labels(a[1])
                )));
            }
            rhs_at[sig] = Some(ridx);
        }
        out_used.clear();
        for (lidx, (ls, &sig)) in l.iter().zip(&li).enumerate() {
            let Some(lv) = ls.vals[i] else { continue };
            lhs_seen[sig] = true;
            let (ridx, rv) = match rhs_at[sig] {
                Some(ridx) => (ridx, r[ridx].vals[i].unwrap()),
                None => match fill_one {
                    Some(f) => (NONE, f),
                    None => continue,
                },
            };
            if one_to_one && ridx != NONE {
                if matched[sig] {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
                matched[sig] = true;
            }
            let (fl, fr) = if swapped { (rv, lv) } else { (lv, rv) };
            let (mut val, mut keep) = binop(op, fl, fr);
            if ret_bool {
                val = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            if !keep {
                continue;
            }
            // Matches are usually stable across steps: check the last pair
            // of this series before the map.
            let cached = lcache[lidx];
            let oi = match (cached.0 == ridx)
                .then_some(cached.1)
                .or_else(|| pair_out.get(&(lidx, ridx)).copied())
            {
                Some(oi) => oi,
                None => {
                    let rs = if ridx == NONE { &empty } else { &r[ridx] };
                    let labels = result_labels(ls, rs, m, one_to_one, &include);
                    let drop = arith || ret_bool || ls.drop_name;
                    let oi = output_slot(&mut out, &mut out_index, &mut hbuf, labels, drop, ctx);
                    pair_out.insert((lidx, ridx), oi);
                    oi
                }
            };
            lcache[lidx] = (ridx, oi);
            if out[oi].vals[i].is_some() {
                return Err(QueryError::Execution(if one_to_one {
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into()
                } else {
                    "multiple matches for labels: grouping labels must ensure unique matches".into()
                }));
            }
            out[oi].vals[i] = Some(val);
            out_used.push(oi);
        }
        // Unmatched series of the "one" side, filled on the "many" side.
        if let Some(f) = fill_many {
            for (ridx, (rs, &sig)) in r.iter().zip(&ri).enumerate() {
                let Some(rv) = rs.vals[i] else { continue };
                if lhs_seen[sig] {
                    continue;
                }
                let (fl, fr) = if swapped { (rv, f) } else { (f, rv) };
                let (mut val, mut keep) = binop(op, fl, fr);
                if ret_bool {
                    val = if keep { 1.0 } else { 0.0 };
                    keep = true;
                }
                if !keep {
                    continue;
                }
                let oi = match pair_out.get(&(NONE, ridx)) {
                    Some(&oi) => oi,
                    None => {
                        let labels = signature_labels(&rs.labels, &m.names, m.on);
                        let drop = arith || ret_bool || rs.drop_name;
                        let oi =
                            output_slot(&mut out, &mut out_index, &mut hbuf, labels, drop, ctx);
                        pair_out.insert((NONE, ridx), oi);
                        oi
                    }
                };
                if out[oi].vals[i].is_none() {
                    out[oi].vals[i] = Some(val);
                }
            }
        }
    }
    out.retain(|s| s.vals.iter().any(|v| v.is_some()));
    Ok(out)
}

/// Whether no signature id occurs twice in `ids`.
fn at_most_one_per_signature(ids: &[usize], nsigs: usize) -> bool {
    let mut seen = vec![false; nsigs];
    ids.iter().all(|&g| !std::mem::replace(&mut seen[g], true))
}

/// Both operands with their signature ids.
struct Sides<'s> {
    l: &'s [SVec],
    r: &'s [SVec],
    li: &'s [usize],
    ri: &'s [usize],
    nsigs: usize,
}

/// Vector matching series by series (sequential over each series' steps)
/// instead of step by step across all series. Applies when every signature
/// has at most one series on the "one" side (and, one-to-one, on the other
/// side too) and no `fill` is given: then each left series meets the same
/// right series at every step, and the only possible error is two pairs
/// writing the same output step. The result, including the order of the
/// output series and their name dropping, is what the step-major loop in
/// [`vector_vector`] produces.
#[allow(clippy::too_many_arguments)]
fn by_series(
    op: TokenId,
    sides: Sides<'_>,
    m: &Matching,
    one_to_one: bool,
    include: &[String],
    swapped: bool,
    ret_bool: bool,
    ctx: &Ctx,
) -> EvalResult<Vec<SVec>> {
    const NONE: usize = usize::MAX;
    let Sides {
        l,
        r,
        li,
        ri,
        nsigs,
    } = sides;
    let mut rhs_of = vec![NONE; nsigs];
    for (ridx, &sig) in ri.iter().enumerate() {
        rhs_of[sig] = ridx;
    }
    let arith = !is_comparison(op);
    let mut out: Vec<SVec> = Vec::new();
    let mut index = HashIndex::default();
    let mut hbuf = Vec::new();
    // Per output: the (step, left series) of its first write in step-major
    // order, and the name dropping of that write's pair.
    let mut first: Vec<(usize, usize, bool)> = Vec::new();
    for (lidx, (ls, &sig)) in l.iter().zip(li).enumerate() {
        let ridx = rhs_of[sig];
        if ridx == NONE {
            continue;
        }
        let rs = &r[ridx];
        let drop = arith || ret_bool || ls.drop_name;
        let mut oi = NONE;
        for (i, (lv, rv)) in ls.vals.iter().zip(&rs.vals).enumerate() {
            let (Some(lv), Some(rv)) = (*lv, *rv) else {
                continue;
            };
            let (fl, fr) = if swapped { (rv, lv) } else { (lv, rv) };
            let (mut val, mut keep) = binop(op, fl, fr);
            if ret_bool {
                val = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            if !keep {
                continue;
            }
            if oi == NONE {
                let labels = result_labels(ls, rs, m, one_to_one, include);
                oi = output_slot(&mut out, &mut index, &mut hbuf, labels, drop, ctx);
                if oi == first.len() {
                    first.push((NONE, NONE, drop));
                }
            }
            let slot = &mut out[oi].vals[i];
            if slot.is_some() {
                return Err(QueryError::Execution(if one_to_one {
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into()
                } else {
                    "multiple matches for labels: grouping labels must ensure unique matches".into()
                }));
            }
            *slot = Some(val);
            let f = &mut first[oi];
            if (i, lidx) < (f.0, f.1) {
                *f = (i, lidx, drop);
            }
        }
    }
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_unstable_by_key(|&o| (first[o].0, first[o].1));
    let mut slots: Vec<Option<SVec>> = out.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .map(|o| {
            let mut s = slots[o].take().expect("each output once");
            s.drop_name = first[o].2;
            s
        })
        .collect())
}

/// The output series with `labels`, created (empty, with `drop_name`) if
/// new; returns its index.
fn output_slot(
    out: &mut Vec<SVec>,
    index: &mut HashIndex,
    buf: &mut Vec<u8>,
    labels: Labels,
    drop_name: bool,
    ctx: &Ctx,
) -> usize {
    let h = hash_labels(labels.iter(), buf);
    if let Some(oi) = index.find(h, |i| out[i].labels == labels) {
        return oi;
    }
    out.push(SVec {
        labels,
        vals: vec![None; ctx.n],
        drop_name,
    });
    index.insert(h)
}

fn result_labels(
    ls: &SVec,
    rs: &SVec,
    m: &Matching,
    one_to_one: bool,
    include: &[String],
) -> Labels {
    let mut labels = if one_to_one {
        if m.on {
            signature_labels(&ls.labels, &m.names, true)
        } else {
            let mut l = ls.labels.clone();
            for n in &m.names {
                l.remove(n);
            }
            l
        }
    } else {
        ls.labels.clone()
    };
    for n in include {
        match rs.labels.get(n) {
            Some(v) if !v.is_empty() => {
                let v = v.to_string();
                labels.set(n, &v)
            }
            _ => labels.remove(n),
        }
    }
    labels
}

/// Labels in Prometheus's `{a="b", c="d"}` form (metric name inline).
pub(crate) fn fmt_labels(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|x| format!("{}={:?}", x.name, x.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}
