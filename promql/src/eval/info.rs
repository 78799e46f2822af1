//! `info()`: enriches series with the data labels of info metrics
//! (`target_info` by default), joined on the identifying labels `instance`
//! and `job` at the (`@`/offset-shifted) time of each step.

use std::collections::HashMap;

use promql_parser::parser::ast::Call;
use tidewatch_common::Labels;
use tidewatch_common::labels::METRIC_NAME;

use super::functions::unwrap_paren;
use super::plan::{info_key, info_matchers, info_ref_path, info_ref_time, is_positive};
use super::{Ctx, EvalResult, Evaluator, SVec, Val, dur_ms};
use crate::engine::QueryError;

/// An info series prepared for joining: identifying signature, labels and
/// the timestamp of the sample in effect at each step.
type InfoSeries<'a> = (Vec<(String, String)>, &'a Labels, Vec<Option<i64>>);

impl Evaluator<'_> {
    /// `info(v, selector)`: joins data labels of info series (`target_info`
    /// by default) onto `v` by the identifying labels `instance` and `job`.
    pub(crate) fn eval_info(&mut self, call: &Call, ctx: &Ctx) -> EvalResult<Val> {
        let args = &call.args.args;
        let base = self.eval_vector(&args[0], ctx)?;
        let matchers = info_matchers(args.get(1).map(|b| unwrap_paren(b)));
        let (name_ms, data_ms): (Vec<_>, Vec<_>) =
            matchers.into_iter().partition(|m| m.name == METRIC_NAME);
        // Data matchers only count when the user wrote a selector.
        let data_ms = if args.len() > 1 { data_ms } else { Vec::new() };
        let path = info_ref_path(&args[0]);
        let lookback = dur_ms(self.opts.lookback_delta);
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
                let ignored =
                    name_ms.iter().any(is_positive) && name_ms.iter().all(|m| m.is_match(bname));
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
}
