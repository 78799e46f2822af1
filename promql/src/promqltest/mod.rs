//! A reusable runner for Prometheus's PromQL test corpus format
//! (`load`, `clear`, `eval instant at`, `eval range from … to … step`,
//! `expect fail/warn/info/ordered/range vector/string`).
//!
//! The system under test is pluggable through [`Target`]: the runner hands
//! it series to load and asks it for a [`Storage`] to query, so the same
//! corpus can run against [`MemStorage`] or a real ingest path. Cases that
//! involve native histograms are counted apart from float cases: those the
//! engine evaluates and gets right are native passes, the rest skipped.

mod parse;
mod series;

use std::future::Future;
use std::pin::Pin;

use promql_parser::parser::Expr;
use tidewatch_common::Labels;

pub use parse::{
    Command, Eval, EvalKind, ExpectedSeries, FailExpect, Load, LoadSeries, parse_duration_ms,
    parse_file, parse_labels, split_values,
};
pub use series::{SeqValue, expand, parse_float, series_samples};

use crate::engine::{Engine, QueryResult};
use crate::memory::{MemStorage, matches_all};
use crate::storage::{Storage, is_stale_nan};
use crate::value::Value;

/// Boxed future returned by [`Target`] methods.
pub type TargetFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// The system the corpus runs against.
pub trait Target: Send + Sync {
    /// Loads series (samples in milliseconds; stale markers included).
    fn load<'a>(&'a self, series: &'a [LoadSeries]) -> TargetFuture<'a>;
    /// Removes every series loaded so far.
    fn clear(&self) -> TargetFuture<'_>;
    /// The storage queries read from.
    fn storage(&self) -> &dyn Storage;
}

/// [`Target`] backed by [`MemStorage`].
#[derive(Debug, Default)]
pub struct MemTarget {
    /// The store.
    pub storage: MemStorage,
}

impl Target for MemTarget {
    fn load<'a>(&'a self, series: &'a [LoadSeries]) -> TargetFuture<'a> {
        for s in series {
            if !s.samples.is_empty() || s.histograms.is_empty() {
                self.storage
                    .append(s.labels.clone(), s.samples.iter().copied());
            }
            if !s.histograms.is_empty() {
                self.storage
                    .append_histograms(s.labels.clone(), s.histograms.iter().cloned());
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn clear(&self) -> TargetFuture<'_> {
        self.storage.clear();
        Box::pin(async { Ok(()) })
    }

    fn storage(&self) -> &dyn Storage {
        &self.storage
    }
}

/// Outcome of one `eval`.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The result matched.
    Pass,
    /// It did not; the reason.
    Fail(String),
    /// Native-histogram case the engine does not evaluate (or not right).
    Skipped,
}

/// Result of one `eval` case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// Line of the `eval` in the file.
    pub line: usize,
    /// The query.
    pub query: String,
    /// What happened.
    pub outcome: Outcome,
    /// Whether the case involves native histograms.
    pub native: bool,
}

/// Results of one file.
#[derive(Clone, Debug, Default)]
pub struct FileReport {
    /// Every case in order.
    pub cases: Vec<CaseResult>,
}

impl FileReport {
    /// Passed float cases.
    pub fn passed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| !c.native && c.outcome == Outcome::Pass)
            .count()
    }
    /// Float (non-native-histogram) cases.
    pub fn total(&self) -> usize {
        self.cases.iter().filter(|c| !c.native).count()
    }
    /// Native-histogram cases that passed.
    pub fn native_passed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.native && c.outcome == Outcome::Pass)
            .count()
    }
    /// Native-histogram cases not passed (not evaluated or wrong).
    pub fn skipped(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.native && c.outcome != Outcome::Pass)
            .count()
    }
    /// Failed float cases.
    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases
            .iter()
            .filter(|c| !c.native && matches!(c.outcome, Outcome::Fail(_)))
    }
}

/// Runs a whole test file's text against `target` with `engine`.
pub async fn run_file(
    text: &str,
    target: &dyn Target,
    engine: &Engine,
) -> Result<FileReport, String> {
    let cmds = parse_file(text)?;
    let mut report = FileReport::default();
    let mut histograms: Vec<Labels> = Vec::new();
    target.clear().await?;
    for cmd in cmds {
        match cmd {
            Command::Clear => {
                target.clear().await?;
                histograms.clear();
            }
            Command::Load(load) => {
                target.load(&load.series).await?;
                histograms.extend(load.histograms.iter().cloned());
                if load.with_nhcb {
                    for s in &load.series {
                        if let Some(base) = s
                            .labels
                            .metric_name()
                            .and_then(|n| n.strip_suffix("_bucket"))
                        {
                            let mut l = s.labels.clone();
                            l.remove("le");
                            l.set(tidewatch_common::labels::METRIC_NAME, base);
                            histograms.push(l);
                        }
                    }
                }
            }
            Command::Eval(ev) => {
                let native = ev.native || touches_histograms(&ev.query, &histograms);
                let outcome = match run_eval(&ev, target.storage(), engine).await {
                    _ if ev.unreadable => Outcome::Skipped,
                    Outcome::Fail(m) if native && m.contains(crate::native::NOT_SUPPORTED) => {
                        Outcome::Skipped
                    }
                    o => o,
                };
                report.cases.push(CaseResult {
                    line: ev.line,
                    query: ev.query.clone(),
                    outcome,
                    native,
                });
            }
        }
    }
    Ok(report)
}

/// Runs every `*.test` file of `dir` (sorted by name) against `target`;
/// returns each file name with its report.
pub async fn run_corpus(
    dir: &std::path::Path,
    target: &dyn Target,
    engine: &Engine,
) -> Result<Vec<(String, FileReport)>, String> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let report = run_file(&text, target, engine)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        out.push((name, report));
    }
    Ok(out)
}

/// Whether any selector of `query` matches a native-histogram series.
fn touches_histograms(query: &str, histograms: &[Labels]) -> bool {
    if histograms.is_empty() {
        return false;
    }
    let times = crate::preprocess::QueryTimes {
        step_ms: 0,
        range_ms: 0,
    };
    let Ok(text) = crate::preprocess::rewrite(query, times) else {
        return false;
    };
    let Ok(expr) = crate::engine::parse(&text) else {
        // Unparseable (e.g. histogram-only operators): fall back to names.
        return histograms.iter().filter_map(|h| h.metric_name()).any(|n| {
            query
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .any(|w| w == n)
        });
    };
    let mut hit = false;
    visit_selectors(&expr, &mut |vs| {
        for set in crate::eval::plan::matcher_sets(vs) {
            if histograms.iter().any(|h| matches_all(&set, h)) {
                hit = true;
            }
        }
    });
    hit
}

fn visit_selectors(e: &Expr, f: &mut dyn FnMut(&promql_parser::parser::ast::VectorSelector)) {
    match e {
        Expr::VectorSelector(vs) => f(vs),
        Expr::MatrixSelector(ms) => f(&ms.vs),
        Expr::Subquery(s) => visit_selectors(&s.expr, f),
        Expr::Paren(p) => visit_selectors(&p.expr, f),
        Expr::Unary(u) => visit_selectors(&u.expr, f),
        Expr::Binary(b) => {
            visit_selectors(&b.lhs, f);
            visit_selectors(&b.rhs, f);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                visit_selectors(p, f);
            }
            visit_selectors(&a.expr, f);
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| visit_selectors(a, f)),
        _ => {}
    }
}

/// Runs one eval and compares.
pub async fn run_eval(ev: &Eval, storage: &dyn Storage, engine: &Engine) -> Outcome {
    let res = match ev.kind {
        EvalKind::Instant { at_ms } => engine.instant_query(storage, &ev.query, at_ms).await,
        EvalKind::Range {
            start_ms,
            end_ms,
            step_ms,
        } => {
            engine
                .range_query(storage, &ev.query, start_ms, end_ms, step_ms)
                .await
        }
    };
    match (&ev.fail, res) {
        (Some(_), Ok(_)) => Outcome::Fail("expected an error, got a result".into()),
        (Some(f), Err(e)) => {
            let msg = e.to_string();
            match f {
                FailExpect::Any => Outcome::Pass,
                FailExpect::Msg(m) if &msg == m => Outcome::Pass,
                FailExpect::Regex(r) if regex::Regex::new(r).is_ok_and(|re| re.is_match(&msg)) => {
                    Outcome::Pass
                }
                _ => Outcome::Fail(format!("error {msg:?} does not match {f:?}")),
            }
        }
        (None, Err(e)) => Outcome::Fail(format!("unexpected error: {e}")),
        (None, Ok(r)) => match compare(ev, &r) {
            Ok(()) => Outcome::Pass,
            Err(e) => Outcome::Fail(e),
        },
    }
}

/// Float equality as the Prometheus test harness defines it.
pub fn float_eq(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return is_stale_nan(a) == is_stale_nan(b);
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < 1e-6 * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < 1e-6
}

fn compare(ev: &Eval, r: &QueryResult) -> Result<(), String> {
    if let Some(w) = ev.warn
        && w == r.warnings.is_empty()
    {
        return Err(format!("expected warnings: {w}, got {:?}", r.warnings));
    }
    if let Some(i) = ev.info
        && i == r.infos.is_empty()
    {
        return Err(format!("expected infos: {i}, got {:?}", r.infos));
    }
    if let Some(s) = &ev.string {
        return match &r.value {
            Value::String { value, .. } if value == s => Ok(()),
            other => Err(format!("expected string {s:?}, got {other:?}")),
        };
    }
    match (&ev.kind, &r.value) {
        (_, Value::Scalar { value, .. }) => match ev.results.as_slice() {
            [
                ExpectedSeries {
                    labels: None,
                    values,
                },
            ] if matches!(values.as_slice(), [SeqValue::Value(v)] if float_eq(*v, *value)) => {
                Ok(())
            }
            _ => Err(format!("got scalar {value}, expected {:?}", ev.results)),
        },
        (EvalKind::Instant { .. }, Value::Vector(samples)) => {
            if ev.results.len() != samples.len() {
                return Err(format!(
                    "expected {} samples, got {}: {}",
                    ev.results.len(),
                    samples.len(),
                    show_vector(samples)
                ));
            }
            for (pos, exp) in ev.results.iter().enumerate() {
                let Some(labels) = &exp.labels else {
                    return Err("expected a scalar, got a vector".into());
                };
                let found = samples.iter().position(|s| &s.labels == labels);
                let Some(idx) = found else {
                    return Err(format!("missing {labels}; got {}", show_vector(samples)));
                };
                if ev.ordered && idx != pos {
                    return Err(format!("{labels} at position {idx}, expected {pos}"));
                }
                let got = &samples[idx];
                let v = match (exp.values.as_slice(), &got.histogram) {
                    ([SeqValue::Value(v)], None) => v,
                    ([SeqValue::Histogram(h)], Some(g)) if histogram_eq(h, g) => continue,
                    ([SeqValue::Histogram(h)], _) => {
                        return Err(format!(
                            "{labels}: expected {}, got {}",
                            crate::native::format_histogram(h),
                            show_vector(std::slice::from_ref(got))
                        ));
                    }
                    ([SeqValue::Value(v)], Some(_)) => {
                        return Err(format!(
                            "{labels}: expected {v}, got {}",
                            show_vector(std::slice::from_ref(got))
                        ));
                    }
                    _ => return Err(format!("expected one value for {labels}")),
                };
                if !float_eq(*v, samples[idx].value) {
                    return Err(format!(
                        "{labels}: expected {v}, got {}",
                        samples[idx].value
                    ));
                }
            }
            Ok(())
        }
        (kind, Value::Matrix(series)) => {
            let (start, step) = match (kind, ev.range_vector) {
                (_, Some((s, _, st))) => (s, st),
                (
                    EvalKind::Range {
                        start_ms, step_ms, ..
                    },
                    None,
                ) => (*start_ms, *step_ms),
                (EvalKind::Instant { .. }, None) => {
                    return Err(format!(
                        "got a range vector without `expect range vector`: {series:?}"
                    ));
                }
            };
            if ev.results.len() != series.len() {
                return Err(format!(
                    "expected {} series, got {}: {:?}",
                    ev.results.len(),
                    series.len(),
                    series
                        .iter()
                        .map(|s| s.labels.to_string())
                        .collect::<Vec<_>>()
                ));
            }
            for exp in &ev.results {
                let Some(labels) = &exp.labels else {
                    return Err("expected a scalar, got a matrix".into());
                };
                let Some(s) = series.iter().find(|s| &s.labels == labels) else {
                    return Err(format!("missing series {labels}"));
                };
                let mut want: Vec<(i64, f64)> = Vec::new();
                for (k, v) in exp.values.iter().enumerate() {
                    if let SeqValue::Value(v) = v {
                        want.push((start + k as i64 * step, *v));
                    }
                }
                let got: Vec<(i64, f64)> = s
                    .timestamps
                    .iter()
                    .copied()
                    .zip(s.values.iter().copied())
                    .collect();
                if want.len() != got.len()
                    || want
                        .iter()
                        .zip(&got)
                        .any(|(a, b)| a.0 != b.0 || !float_eq(a.1, b.1))
                {
                    return Err(format!("{labels}: expected {want:?}, got {got:?}"));
                }
            }
            Ok(())
        }
        (_, other) => Err(format!("unexpected result {other:?}")),
    }
}

/// Histogram equality as the Prometheus test harness defines it: same
/// schema, zero bucket width and custom bounds, counts and sum within
/// [`float_eq`], the same populated buckets; the counter-reset hint only
/// when the expectation names one.
pub fn histogram_eq(
    exp: &crate::native::FloatHistogram,
    got: &crate::native::FloatHistogram,
) -> bool {
    use crate::native::CounterResetHint;
    let same_buckets = |a: &[(i32, f64)], b: &[(i32, f64)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && float_eq(x.1, y.1))
    };
    let (ep, en) = exp.populated();
    let (gp, gn) = got.populated();
    exp.schema == got.schema
        && exp.zero_threshold == got.zero_threshold
        && exp.custom_values == got.custom_values
        && float_eq(exp.count, got.count)
        && float_eq(exp.sum, got.sum)
        && float_eq(exp.zero_count, got.zero_count)
        && same_buckets(&ep, &gp)
        && same_buckets(&en, &gn)
        && (exp.counter_reset_hint == CounterResetHint::Unknown
            || exp.counter_reset_hint == got.counter_reset_hint)
}

fn show_vector(v: &[crate::value::Sample]) -> String {
    let parts: Vec<String> = v
        .iter()
        .map(|s| match &s.histogram {
            Some(h) => format!("{} {}", s.labels, crate::native::format_histogram(h)),
            None => format!("{} {}", s.labels, s.value),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}
