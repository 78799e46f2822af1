//! Evaluates parsed LogQL against the [`Store`](super::super::store::Store).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tidewatch_common::Labels;

use super::ast::{AggOp, Expr, LogExpr, Matcher, MetricExpr, RangeFn, Stage};
use super::pipeline::{LabelVec, eval_pred, process};
use crate::logs::model::Stream;
use crate::logs::store::Store;

/// Sort order of returned lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    Backward,
}

/// Parameters of a query.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Start, ns (inclusive).
    pub start: i64,
    /// End, ns (inclusive).
    pub end: i64,
    /// Step of a range metric query, ns; 0 for an instant query.
    pub step: i64,
    /// Most lines of a log query.
    pub limit: usize,
    /// Order of lines.
    pub direction: Direction,
}

/// A stream of result lines.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamResult {
    /// Labels after the pipeline.
    pub labels: BTreeMap<String, String>,
    /// `(ts ns, line)` in the requested direction.
    pub entries: Vec<(i64, String)>,
}

/// A series of samples.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesResult {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `(ts ns, value)` ascending.
    pub points: Vec<(i64, f64)>,
}

/// A query result.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// Lines.
    Streams(Vec<StreamResult>),
    /// Samples over steps.
    Matrix(Vec<SeriesResult>),
    /// Samples at one instant.
    Vector(Vec<SeriesResult>),
}

/// Limits applied while evaluating.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most series of a metric query.
    pub max_series: usize,
    /// Most steps of a range query.
    pub max_steps: usize,
}

fn stream_matches(matchers: &[Matcher], s: &Stream) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
}

/// Whether stream labels pass a query's stream selector and the label
/// filters before its first parser stage (what the label endpoints apply
/// for their optional `query`).
pub fn stream_selected(expr: &Expr, labels: &Labels) -> bool {
    let mut m = match expr {
        Expr::Log(l) => return log_selected(l, labels),
        Expr::Metric(m) => m,
    };
    loop {
        match m {
            MetricExpr::Range { log, .. } => return log_selected(log, labels),
            MetricExpr::Agg { inner, .. } => m = inner,
        }
    }
}

fn log_selected(l: &LogExpr, labels: &Labels) -> bool {
    if !l
        .matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    {
        return false;
    }
    for stage in &l.stages {
        match stage {
            Stage::LabelFilter(p) if !eval_pred(p, &|n| labels.get(n)) => return false,
            Stage::Json | Stage::Logfmt => break,
            _ => {}
        }
    }
    true
}

fn to_map(labels: Option<LabelVec>, stream: &Labels) -> BTreeMap<String, String> {
    match labels {
        Some(v) => v.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
        None => stream
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect(),
    }
}

/// Runs a query.
pub fn evaluate(
    store: &Store,
    expr: &Expr,
    p: Params,
    limits: Limits,
) -> Result<QueryResult, String> {
    match expr {
        Expr::Log(l) => log_query(store, l, p).map(QueryResult::Streams),
        Expr::Metric(m) => {
            let steps: Vec<i64> = if p.step <= 0 {
                vec![p.end]
            } else {
                let n = ((p.end - p.start) / p.step) as usize + 1;
                if n > limits.max_steps {
                    return Err(format!(
                        "exceeded maximum resolution of {} points per time series; increase step",
                        limits.max_steps
                    ));
                }
                (0..n as i64).map(|i| p.start + i * p.step).collect()
            };
            let series = metric(store, m, &steps, limits)?;
            let series = series
                .into_iter()
                .filter(|s| !s.points.is_empty())
                .collect();
            Ok(if p.step <= 0 {
                QueryResult::Vector(series)
            } else {
                QueryResult::Matrix(series)
            })
        }
    }
}

/// Runs a log query; also used by the tail endpoint on live rows.
fn log_query(store: &Store, l: &LogExpr, p: Params) -> Result<Vec<StreamResult>, String> {
    // Keep at most `limit` entries: the newest (backward) or oldest (forward).
    let mut all: Vec<(i64, usize, String)> = Vec::new();
    let mut groups: HashMap<BTreeMap<String, String>, usize> = HashMap::new();
    let mut group_labels: Vec<BTreeMap<String, String>> = Vec::new();
    let limit = p.limit;
    store
        .select(
            p.start,
            p.end,
            &|s| stream_matches(&l.matchers, s),
            &mut |stream, ts, line| {
                if let Some((labels, out)) = process(&l.stages, &stream.labels, line) {
                    let m = to_map(labels, &stream.labels);
                    let g = match groups.get(&m) {
                        Some(g) => *g,
                        None => {
                            let g = group_labels.len();
                            group_labels.push(m.clone());
                            groups.insert(m, g);
                            g
                        }
                    };
                    all.push((ts, g, out.into_owned()));
                    if all.len() >= limit.saturating_mul(4).max(4096) {
                        truncate(&mut all, limit, p.direction);
                    }
                }
            },
        )
        .map_err(|e| e.to_string())?;
    truncate(&mut all, limit, p.direction);
    let mut out: Vec<StreamResult> = group_labels
        .into_iter()
        .map(|labels| StreamResult {
            labels,
            entries: Vec::new(),
        })
        .collect();
    for (ts, g, line) in all {
        out[g].entries.push((ts, line));
    }
    out.retain(|s| !s.entries.is_empty());
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

fn truncate(all: &mut Vec<(i64, usize, String)>, limit: usize, dir: Direction) {
    match dir {
        Direction::Backward => all.sort_by_key(|e| std::cmp::Reverse(e.0)),
        Direction::Forward => all.sort_by_key(|e| e.0),
    }
    all.truncate(limit);
}

fn metric(
    store: &Store,
    m: &MetricExpr,
    steps: &[i64],
    limits: Limits,
) -> Result<Vec<SeriesResult>, String> {
    match m {
        MetricExpr::Range {
            func,
            log,
            range_ns,
        } => {
            let first = *steps.first().unwrap_or(&0);
            let last = *steps.last().unwrap_or(&0);
            let mut series: HashMap<BTreeMap<String, String>, Vec<(i64, u64)>> = HashMap::new();
            let mut too_many = false;
            store
                .select(
                    first - range_ns + 1,
                    last,
                    &|s| stream_matches(&log.matchers, s),
                    &mut |stream, ts, line| {
                        if let Some((labels, out)) = process(&log.stages, &stream.labels, line) {
                            let m = to_map(labels, &stream.labels);
                            let n = series.len();
                            match series.get_mut(&m) {
                                Some(v) => v.push((ts, out.len() as u64)),
                                None if n >= limits.max_series => too_many = true,
                                None => {
                                    series.insert(m, vec![(ts, out.len() as u64)]);
                                }
                            }
                        }
                    },
                )
                .map_err(|e| e.to_string())?;
            if too_many {
                return Err(format!(
                    "maximum of series ({}) reached for a single query",
                    limits.max_series
                ));
            }
            let secs = *range_ns as f64 / 1e9;
            Ok(series
                .into_iter()
                .map(|(labels, mut entries)| {
                    entries.sort_unstable_by_key(|e| e.0);
                    let mut points = Vec::new();
                    let (mut lo, mut hi) = (0usize, 0usize);
                    let mut bytes = 0u64;
                    for &t in steps {
                        while hi < entries.len() && entries[hi].0 <= t {
                            bytes += entries[hi].1;
                            hi += 1;
                        }
                        while lo < hi && entries[lo].0 <= t - range_ns {
                            bytes -= entries[lo].1;
                            lo += 1;
                        }
                        let count = hi - lo;
                        if count == 0 {
                            continue;
                        }
                        let v = match func {
                            RangeFn::CountOverTime => count as f64,
                            RangeFn::Rate => count as f64 / secs,
                            RangeFn::BytesOverTime => bytes as f64,
                            RangeFn::BytesRate => bytes as f64 / secs,
                        };
                        points.push((t, v));
                    }
                    SeriesResult { labels, points }
                })
                .collect())
        }
        MetricExpr::Agg {
            op,
            grouping,
            inner,
        } => {
            let input = metric(store, inner, steps, limits)?;
            let mut groups: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, (f64, f64)>> =
                BTreeMap::new();
            for s in input {
                let key: BTreeMap<String, String> = match grouping {
                    None => BTreeMap::new(),
                    Some((false, by)) => s
                        .labels
                        .into_iter()
                        .filter(|(k, _)| by.contains(k))
                        .collect(),
                    Some((true, without)) => s
                        .labels
                        .into_iter()
                        .filter(|(k, _)| !without.contains(k))
                        .collect(),
                };
                let g = groups.entry(key).or_default();
                for (t, v) in s.points {
                    let e = g.entry(t).or_insert((f64::NAN, 0.0));
                    e.0 = if e.1 == 0.0 {
                        if *op == AggOp::Count { 1.0 } else { v }
                    } else {
                        match op {
                            AggOp::Sum | AggOp::Avg => e.0 + v,
                            AggOp::Count => e.0 + 1.0,
                            AggOp::Min => e.0.min(v),
                            AggOp::Max => e.0.max(v),
                        }
                    };
                    e.1 += 1.0;
                }
            }
            Ok(groups
                .into_iter()
                .map(|(labels, pts)| SeriesResult {
                    labels,
                    points: pts
                        .into_iter()
                        .map(|(t, (v, n))| (t, if *op == AggOp::Avg { v / n } else { v }))
                        .collect(),
                })
                .collect())
        }
    }
}

/// Filters live rows for the tail endpoint: returns the stream results of
/// `rows` that pass the query's selector and pipeline.
pub fn filter_rows(l: &LogExpr, rows: &[crate::logs::model::Row]) -> Vec<StreamResult> {
    let mut groups: BTreeMap<BTreeMap<String, String>, Vec<(i64, String)>> = BTreeMap::new();
    let mut verdict: HashMap<*const Stream, bool> = HashMap::new();
    for r in rows {
        let ok = *verdict
            .entry(Arc::as_ptr(&r.stream))
            .or_insert_with(|| stream_matches(&l.matchers, &r.stream));
        if !ok {
            continue;
        }
        if let Some((labels, out)) = process(&l.stages, &r.stream.labels, &r.line) {
            groups
                .entry(to_map(labels, &r.stream.labels))
                .or_default()
                .push((r.ts, out.into_owned()));
        }
    }
    groups
        .into_iter()
        .map(|(labels, entries)| StreamResult { labels, entries })
        .collect()
}
