//! `tidewatch rules test`: promtool's rule unit-test format
//! (`unit_testing_rules.md`): input series in expanding notation, rule
//! groups evaluated every `evaluation_interval`, then `alert_rule_test`
//! and `promql_expr_test` checks. Exit code 0 when every test passes, 1
//! otherwise, like `promtool test rules`.

pub mod series;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use promql_parser::parser::{AtModifier, Expr, Offset};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde::{Deserialize, Deserializer};
use tidewatch_common::Labels;
use tidewatch_common::duration::parse_duration;
use tidewatch_promql::Engine;

use crate::rules::file;
use crate::rules::group::{AlertState, Group};
use crate::rules::querier::{EngineQuerier, Querier};
use tidewatch_promql::memory::MemStorage;
use tidewatch_promql::native::{format_histogram, parse_histogram};

/// Options of `promtool test rules`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Only run test groups whose name matches one of these regexes.
    pub run: Vec<String>,
    /// Accept unknown fields in rule files.
    pub ignore_unknown_fields: bool,
    /// Allow the `@` modifier (Prometheus 3: always on).
    pub enable_at_modifier: bool,
    /// Allow negative offsets (Prometheus 3: always on).
    pub enable_negative_offset: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            run: Vec::new(),
            ignore_unknown_fields: false,
            enable_at_modifier: true,
            enable_negative_offset: true,
        }
    }
}

/// Runs every test file; returns the process exit code (0 all passed,
/// 1 a test failed or a file was invalid), like `promtool test rules`.
pub async fn run_files(files: &[PathBuf]) -> u8 {
    run_files_with(files, &Options::default()).await
}

/// [`run_files`] with options.
pub async fn run_files_with(files: &[PathBuf], opts: &Options) -> u8 {
    let mut failed = false;
    for f in files {
        println!("Unit Testing: {}", f.display());
        match run_file(f, opts).await {
            Ok(()) => println!("  SUCCESS\n"),
            Err(errs) => {
                failed = true;
                eprintln!("  FAILED:");
                for e in errs {
                    eprintln!("{e}");
                }
                eprintln!();
            }
        }
    }
    u8::from(failed)
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SN {
        S(String),
        I(i64),
        F(f64),
    }
    Ok(match SN::deserialize(d)? {
        SN::S(s) => s,
        SN::I(i) => i.to_string(),
        SN::F(f) => f.to_string(),
    })
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    string_or_number(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    fuzzy_compare: bool,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    start_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(deserialize_with = "string_or_number")]
    values: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(deserialize_with = "string_or_number")]
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    #[serde(default = "zero", deserialize_with = "string_or_number")]
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

fn zero() -> String {
    "0".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: f64,
    #[serde(default)]
    histogram: Option<String>,
}

fn dur_ms(s: &str, what: &str) -> Result<i64, String> {
    parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| format!("{what}: {e}"))
}

/// Rejects features disabled by the options.
struct FeatureCheck<'a>(&'a Options);

impl ExprVisitor for FeatureCheck<'_> {
    type Error = String;
    fn pre_visit(&mut self, e: &Expr) -> Result<bool, String> {
        let (at, off) = match e {
            Expr::VectorSelector(v) => (&v.at, &v.offset),
            Expr::MatrixSelector(m) => (&m.vs.at, &m.vs.offset),
            Expr::Subquery(s) => (&s.at, &s.offset),
            _ => return Ok(true),
        };
        if !self.0.enable_at_modifier && at.is_some() {
            return Err("@ modifier is disabled".into());
        }
        if !self.0.enable_negative_offset && matches!(off, Some(Offset::Neg(_))) {
            return Err("negative offset is disabled".into());
        }
        let _: Option<&AtModifier> = at.as_ref();
        Ok(true)
    }
}

fn check_features(expr: &str, opts: &Options) -> Result<(), String> {
    let e = promql_parser::parser::parse(expr).map_err(|e| format!("{expr:?}: {e}"))?;
    walk_expr(&mut FeatureCheck(opts), &e)
        .map(|_| ())
        .map_err(|m| format!("{expr:?}: {m}"))
}

/// Builds the querier a test group evaluates with over its storage.
pub type QuerierFactory = dyn Fn(Arc<MemStorage>) -> Box<dyn Querier> + Send + Sync;

/// The PromQL engine over the test storage.
pub fn engine_querier(storage: Arc<MemStorage>) -> Box<dyn Querier> {
    Box::new(EngineQuerier {
        engine: Engine::default(),
        storage,
    })
}

/// Runs one test file; the error lists every failure.
pub async fn run_file(path: &Path, opts: &Options) -> Result<(), Vec<String>> {
    run_file_with(path, opts, &engine_querier).await
}

/// [`run_file`] evaluating with queriers built by `make`.
pub async fn run_file_with(
    path: &Path,
    opts: &Options,
    make: &QuerierFactory,
) -> Result<(), Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("  {}: {e}", path.display())])?;
    let tf: TestFile =
        serde_yaml::from_str(&text).map_err(|e| vec![format!("  {}: {e}", path.display())])?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let eval_interval = match &tf.evaluation_interval {
        Some(s) => parse_duration(s).map_err(|e| vec![format!("  evaluation_interval: {e}")])?,
        None => Duration::from_secs(60),
    };
    // Load and check rule files once per file.
    let mut defs = Vec::new();
    for rf in &tf.rule_files {
        let p = dir.join(rf);
        let f = file::load(&p, opts.ignore_unknown_fields)
            .map_err(|es| es.into_iter().map(|e| format!("  {e}")).collect::<Vec<_>>())?;
        for g in f.groups {
            for r in &g.rules {
                check_features(&r.expr, opts)
                    .map_err(|e| vec![format!("  {}: {e}", p.display())])?;
            }
            defs.push((p.display().to_string(), g));
        }
    }
    if !tf.group_eval_order.is_empty() {
        let mut ordered = Vec::new();
        for name in &tf.group_eval_order {
            match defs.iter().position(|(_, g)| &g.name == name) {
                Some(i) => ordered.push(defs.remove(i)),
                None => {
                    return Err(vec![format!(
                        "  group_eval_order: group {name:?} not found"
                    )]);
                }
            }
        }
        ordered.append(&mut defs);
        defs = ordered;
    }
    let filters: Vec<regex::Regex> = opts
        .run
        .iter()
        .map(|r| regex::Regex::new(r))
        .collect::<Result<_, _>>()
        .map_err(|e| vec![format!("  --run: {e}")])?;
    let mut errs = Vec::new();
    for tg in &tf.tests {
        if !filters.is_empty() && !filters.iter().any(|r| r.is_match(&tg.name)) {
            continue;
        }
        let mut groups = Vec::new();
        for (src, d) in &defs {
            groups.push(Group::compile(d, src, eval_interval).map_err(|e| vec![format!("  {e}")])?);
        }
        if let Err(mut e) = run_group(tg, groups, eval_interval, tf.fuzzy_compare, opts, make).await
        {
            let name = if tg.name.is_empty() {
                String::new()
            } else {
                format!(" {}", tg.name)
            };
            errs.push(format!("  FAILED{name}:"));
            errs.append(&mut e);
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn start_ms(tg: &TestGroup) -> Result<i64, String> {
    let Some(s) = &tg.start_timestamp else {
        return Ok(0);
    };
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1000.0) as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("start_timestamp {s:?}: {e}"))
}

fn almost_equal(a: f64, b: f64, fuzzy: bool) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    if !fuzzy {
        return false;
    }
    const EPS: f64 = 1e-16;
    let sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || sum < f64::MIN_POSITIVE {
        return diff < EPS * f64::MIN_POSITIVE;
    }
    diff / sum.min(f64::MAX) < EPS
}

async fn run_group(
    tg: &TestGroup,
    mut groups: Vec<Group>,
    eval_interval: Duration,
    fuzzy: bool,
    opts: &Options,
    make: &QuerierFactory,
) -> Result<(), Vec<String>> {
    let mint = start_ms(tg).map_err(|e| vec![format!("    {e}")])?;
    let interval = match &tg.interval {
        Some(s) => dur_ms(s, "interval").map_err(|e| vec![format!("    {e}")])?,
        None => eval_interval.as_millis() as i64,
    };
    let storage = Arc::new(MemStorage::new());
    for s in &tg.input_series {
        let labels = series::parse_labels(&s.series).map_err(|e| vec![format!("    {e}")])?;
        if series::is_native_histogram(&s.values) {
            let vals = series::expand_mixed(&s.values)
                .map_err(|e| vec![format!("    {}: {e}", s.series)])?;
            let at = |i: usize| mint + i as i64 * interval;
            let (mut floats, mut hists) = (Vec::new(), Vec::new());
            for (i, v) in vals.into_iter().enumerate() {
                match v {
                    Some(series::Mixed::Float(f)) => floats.push((at(i), f)),
                    Some(series::Mixed::Histogram(h)) => hists.push((at(i), h)),
                    None => {}
                }
            }
            if !floats.is_empty() {
                storage.append(labels.clone(), floats);
            }
            storage.append_histograms(labels, hists);
            continue;
        }
        let vals = series::expand(&s.values).map_err(|e| vec![format!("    {}: {e}", s.series)])?;
        let samples = vals
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (mint + i as i64 * interval, v)));
        storage.append(labels, samples);
    }
    for t in &tg.promql_expr_test {
        check_features(&t.expr, opts).map_err(|e| vec![format!("    expr: {e}")])?;
    }
    let q = make(storage.clone());
    let mut alert_times: Vec<(i64, usize)> = Vec::new();
    for (i, t) in tg.alert_rule_test.iter().enumerate() {
        alert_times.push((
            dur_ms(&t.eval_time, "eval_time").map_err(|e| vec![format!("    {e}")])?,
            i,
        ));
    }
    alert_times.sort();
    let mut max_eval = alert_times.last().map_or(0, |x| x.0);
    for t in &tg.promql_expr_test {
        max_eval =
            max_eval.max(dur_ms(&t.eval_time, "eval_time").map_err(|e| vec![format!("    {e}")])?);
    }
    let step = eval_interval.as_millis().max(1) as i64;
    let mut errs = Vec::new();
    let mut curr = 0;
    let mut ts = 0;
    while ts <= max_eval {
        let mut eval_errs = Vec::new();
        for g in groups.iter_mut() {
            let out = g
                .eval(q.as_ref(), mint + ts, &tg.external_labels, &tg.external_url)
                .await;
            for (l, v) in out.series {
                storage.append(l, [(mint + ts, v)]);
            }
            for e in out.errors {
                eval_errs.push(format!("    {e}, time: {}", fmt_dur(ts)));
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return Err(errs);
        }
        while curr < alert_times.len()
            && ts <= alert_times[curr].0
            && alert_times[curr].0 < ts + step
        {
            let t = &tg.alert_rule_test[alert_times[curr].1];
            if let Some(e) = check_alerts(t, &groups, alert_times[curr].0) {
                errs.push(e);
            }
            curr += 1;
        }
        ts += step;
    }
    for t in &tg.promql_expr_test {
        let at = dur_ms(&t.eval_time, "eval_time").map_err(|e| vec![format!("    {e}")])?;
        match q.query(&t.expr, mint + at).await {
            Err(e) => errs.push(format!(
                "    expr: {:?}, time: {}, err: {e}",
                t.expr,
                fmt_dur(at)
            )),
            Ok(got) => {
                if let Some(e) = compare_samples(t, got, at, fuzzy) {
                    errs.push(e);
                }
            }
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn fmt_dur(ms: i64) -> String {
    tidewatch_common::duration::format_duration(Duration::from_millis(ms.max(0) as u64))
}

fn check_alerts(t: &AlertTest, groups: &[Group], at: i64) -> Option<String> {
    let mut got: Vec<(Labels, BTreeMap<String, String>)> = groups
        .iter()
        .flat_map(|g| g.alerts())
        .filter(|(name, a)| *name == t.alertname && a.state == AlertState::Firing)
        .map(|(_, a)| (a.labels, a.annotations))
        .collect();
    let mut exp: Vec<(Labels, BTreeMap<String, String>)> = t
        .exp_alerts
        .iter()
        .map(|e| {
            let mut l = Labels::from_pairs(e.exp_labels.clone());
            l.set("alertname", &t.alertname);
            (l, e.exp_annotations.clone())
        })
        .collect();
    got.sort();
    exp.sort();
    if got == exp {
        return None;
    }
    let show = |v: &[(Labels, BTreeMap<String, String>)]| {
        v.iter()
            .map(|(l, a)| format!("{{Labels:{l} Annotations:{a:?}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "    alertname: {}, time: {},\n        exp:[{}],\n        got:[{}]",
        t.alertname,
        fmt_dur(at),
        show(&exp),
        show(&got)
    ))
}

fn compare_samples(
    t: &ExprTest,
    got: Vec<crate::rules::querier::Sample>,
    at: i64,
    fuzzy: bool,
) -> Option<String> {
    let mut exp = Vec::new();
    for s in &t.exp_samples {
        // Histograms compare as promtool does: by their test notation.
        let hist = match s.histogram.as_deref().map(parse_histogram) {
            None => None,
            Some(Ok((h, rest))) if rest.trim().is_empty() => Some(format_histogram(&h)),
            Some(Ok(_)) => {
                return Some(format!(
                    "    expr: {:?}: expected exactly one histogram in {:?}",
                    t.expr, s.histogram
                ));
            }
            Some(Err(e)) => return Some(format!("    expr: {:?}, histogram: {e}", t.expr)),
        };
        let l = if s.labels.trim().is_empty() {
            Labels::empty()
        } else {
            match series::parse_labels(&s.labels) {
                Ok(l) => l,
                Err(e) => {
                    return Some(format!(
                        "    expr: {:?}, time: {}, err: {e}",
                        t.expr,
                        fmt_dur(at)
                    ));
                }
            }
        };
        exp.push((l, s.value, hist));
    }
    let mut got: Vec<(Labels, f64, Option<String>)> = got
        .into_iter()
        .map(|s| (s.labels, s.value, s.histogram.map(|h| format_histogram(&h))))
        .collect();
    exp.sort_by(|a, b| a.0.cmp(&b.0));
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let same = exp.len() == got.len()
        && exp
            .iter()
            .zip(&got)
            .all(|(e, g)| e.0 == g.0 && almost_equal(e.1, g.1, fuzzy) && e.2 == g.2);
    if same {
        return None;
    }
    let show = |v: &[(Labels, f64, Option<String>)]| {
        v.iter()
            .map(|(l, x, h)| match h {
                Some(h) => format!("{{Labels:{l} Histogram:{h}}}"),
                None => format!("{{Labels:{l} Value:{x}}}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "    expr: {:?}, time: {},\n        exp: [{}]\n        got: [{}]",
        t.expr,
        fmt_dur(at),
        show(&exp),
        show(&got)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzzy_compare_matches_promtool() {
        assert!(almost_equal(2.9999999999999996, 3.0, true));
        assert!(almost_equal(3.0000000000000004, 3.0, true));
        assert!(!almost_equal(2.9999999999999987, 3.0, true));
        assert!(!almost_equal(3.0000000000000013, 3.0, true));
        assert!(!almost_equal(2.9999999999999996, 3.0, false));
    }
}
