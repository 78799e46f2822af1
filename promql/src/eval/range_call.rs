//! The driver of range-vector functions: slides each series' window over
//! the steps and applies the window function (incl. `anchored`/`smoothed`).

use promql_parser::parser::Expr;
use tidewatch_common::Labels;

use super::range_fns::{self, WinCtx, keeps_name};
use super::util::format_float;
use super::{Ctx, EvalResult, Evaluator, RangeMode, SVec, Val};
use crate::engine::QueryError;

/// Receives the output series of a range function: labels, step values
/// (which the sink may take), and whether the name is to be dropped.
pub(crate) type SeriesSink<'s> = dyn FnMut(Labels, &mut Vec<Option<f64>>, bool) + 's;

impl Evaluator<'_> {
    /// Evaluates range-vector function `name` whose range argument is
    /// `args[ri]`.
    pub(crate) fn eval_range_fn(
        &mut self,
        name: &str,
        args: &[Box<Expr>],
        ri: usize,
        ctx: &Ctx,
    ) -> EvalResult<Val> {
        let mut out = Vec::new();
        self.range_fn_each(name, args, ri, ctx, &mut |labels, vals, drop_name| {
            out.push(SVec {
                labels,
                vals: std::mem::take(vals),
                drop_name,
            })
        })?;
        Ok(Val::Vector(out))
    }

    /// Evaluates range-vector function `name` like
    /// [`Evaluator::eval_range_fn`], handing each output series to `sink`
    /// (labels, step values, whether to drop the name) instead of collecting
    /// them. `sink` may keep the values vector (`std::mem::take`); if it
    /// leaves it, the vector is reused for the next series, so consumers
    /// such as aggregations allocate nothing per series.
    pub(crate) fn range_fn_each(
        &mut self,
        name: &str,
        args: &[Box<Expr>],
        ri: usize,
        ctx: &Ctx,
        sink: &mut SeriesSink<'_>,
    ) -> EvalResult<()> {
        let mut params = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if i != ri {
                params.push(self.eval_scalar(a, ctx)?);
            }
        }
        let mut ra = self.range_arg(&args[ri], ctx)?;
        let series = std::mem::take(&mut ra.series);
        let nan = vec![f64::NAN; ctx.n];
        let p0 = params.first().unwrap_or(&nan);
        let p1 = params.get(1).unwrap_or(&nan);
        if name == "quantile_over_time" && !series.is_empty() {
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
        let mut vals: Vec<Option<f64>> = Vec::new();
        let mut not_counter: Vec<String> = Vec::new();
        let mut scratch: Vec<f64> = Vec::new();
        let counter_fast = counterish && ra.mode == RangeMode::Normal;
        // Decided once, not per window.
        let (is_rate, is_delta) = (name == "rate", name == "delta");
        let mut resets = range_fns::ResetIndex::default();
        for s in series {
            if counter_fast {
                resets.build(&s.vals);
            }
            vals.clear();
            vals.resize(ctx.n, None);
            let mut any = false;
            ra.windows(ctx, &s, |i, lo, hi| {
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
                    RangeMode::Normal if counter_fast => range_fns::extrapolated_rate(
                        &s.ts[lo..hi],
                        &s.vals[lo..hi],
                        &w,
                        true,
                        is_rate,
                        resets.any(lo, hi),
                    ),
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
                                !is_delta,
                                is_rate,
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
                sink(s.labels, &mut vals, !keep || s.drop_name);
            }
        }
        for n in not_counter {
            self.info(n);
        }
        Ok(())
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
