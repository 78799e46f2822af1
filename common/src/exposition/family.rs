//! OpenMetrics family semantics: which sample names belong to a family,
//! grouping of metric points, ordering of timestamps and the value rules of
//! each type (counters, histograms, summaries, info, state sets).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use crate::labels::Label;

/// Metric family type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl Kind {
    /// Parses a `# TYPE` word (`untyped` only in the Prometheus dialect).
    pub fn parse(s: &str, om: bool) -> Option<Kind> {
        Some(match s {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            "summary" => Kind::Summary,
            "untyped" if !om => Kind::Unknown,
            "unknown" if om => Kind::Unknown,
            "gaugehistogram" if om => Kind::GaugeHistogram,
            "info" if om => Kind::Info,
            "stateset" if om => Kind::StateSet,
            _ => return None,
        })
    }

    /// Suffixes a sample name may add to the family name.
    pub fn suffixes(self) -> &'static [&'static str] {
        match self {
            Kind::Counter => &["_total", "_created"],
            Kind::Histogram => &["_bucket", "_sum", "_count", "_created"],
            Kind::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
            Kind::Summary => &["", "_sum", "_count", "_created"],
            Kind::Info => &["_info"],
            Kind::Gauge | Kind::StateSet | Kind::Unknown => &[""],
        }
    }

    /// Suffix of `sample` within family `family`, if it belongs.
    pub fn member_suffix(self, family: &str, sample: &str) -> Option<&'static str> {
        let rest = sample.strip_prefix(family)?;
        self.suffixes().iter().copied().find(|s| *s == rest)
    }
}

/// Every suffix any type adds to its family name.
const ALL_SUFFIXES: [&str; 8] = [
    "_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info",
];

/// Per metric-point (label group) accumulated state for the checks that
/// can only run when the group ends.
#[derive(Default)]
struct Group {
    key: u64,
    active: bool,
    last_le: Option<f64>,
    last_bucket: f64,
    inf_bucket: Option<f64>,
    negative_bucket: bool,
    sum: Option<f64>,
    count: Option<f64>,
}

/// The family being read.
pub(super) struct Family<'a> {
    pub name: &'a str,
    pub kind: Kind,
    pub has_type: bool,
    pub has_help: bool,
    pub has_unit: bool,
    pub unit_nonempty: bool,
    pub has_samples: bool,
    /// Index into the output metadata, when any metadata line was seen.
    pub meta: Option<usize>,
}

/// Validator state over one exposition.
pub(super) struct Validator<'a> {
    /// Every family name seen with its type.
    seen: HashMap<&'a str, Kind>,
    current: Option<Family<'a>>,
    group: Group,
    done_groups: HashSet<u64>,
    /// Previous sample's series hash and timestamp, for ordering checks.
    prev_series: Option<(u64, Option<f64>)>,
    /// Whether per-type value and shape rules are checked.
    pub strict: bool,
}

impl<'a> Validator<'a> {
    /// A validator; `strict` enables the per-type value and shape rules.
    pub fn new(strict: bool) -> Self {
        Validator {
            seen: HashMap::new(),
            current: None,
            group: Group::default(),
            done_groups: HashSet::new(),
            prev_series: None,
            strict,
        }
    }

    /// The current family, if any.
    pub fn current(&mut self) -> Option<&mut Family<'a>> {
        self.current.as_mut()
    }

    /// Ends the current family (running end-of-group checks) and starts
    /// `name`; errors when `name` was already used or clashes with the
    /// sample names of another family.
    pub fn start_family(&mut self, name: &'a str, kind: Kind) -> Result<(), String> {
        self.end_family()?;
        if self.seen.contains_key(name) {
            return Err(format!(
                "metric family {name:?} appears twice (its metadata and samples must be contiguous)"
            ));
        }
        self.check_clash(name, kind)?;
        self.seen.insert(name, kind);
        self.current = Some(Family {
            name,
            kind,
            has_type: false,
            has_help: false,
            has_unit: false,
            unit_nonempty: false,
            has_samples: false,
            meta: None,
        });
        Ok(())
    }

    /// Records the type of the current family (after `# TYPE`).
    pub fn set_kind(&mut self, kind: Kind) -> Result<(), String> {
        let name = match &self.current {
            Some(f) => f.name,
            None => return Ok(()),
        };
        self.check_clash(name, kind)?;
        self.seen.insert(name, kind);
        if let Some(f) = &mut self.current {
            f.kind = kind;
        }
        Ok(())
    }

    /// Errors when a family `name` of `kind` would produce sample names that
    /// another family already used, or vice versa.
    fn check_clash(&self, name: &str, kind: Kind) -> Result<(), String> {
        let mut buf = String::with_capacity(name.len() + 8);
        for s in kind.suffixes().iter().filter(|s| !s.is_empty()) {
            buf.clear();
            buf.push_str(name);
            buf.push_str(s);
            if self.seen.contains_key(buf.as_str()) {
                return Err(format!(
                    "metric family {name:?} clashes with family {buf:?}"
                ));
            }
        }
        if let Some(base) = self.owner(name) {
            return Err(format!(
                "metric family {name:?} clashes with family {base:?}"
            ));
        }
        Ok(())
    }

    /// A seen family (other than `name` itself) whose samples may be named `name`.
    fn owner(&self, name: &str) -> Option<&'a str> {
        ALL_SUFFIXES.iter().find_map(|s| {
            let base = name.strip_suffix(s)?;
            let (b, k) = self.seen.get_key_value(base)?;
            k.member_suffix(b, name).map(|_| *b)
        })
    }

    /// Whether a sample named `sample` belongs to the current family.
    pub fn member_suffix(&self, sample: &str) -> Option<&'static str> {
        let f = self.current.as_ref()?;
        f.kind.member_suffix(f.name, sample)
    }

    /// Starts an implicit (metadata-less, `unknown`) family for `sample`,
    /// rejecting samples that belong to a family that already ended.
    pub fn start_implicit(&mut self, sample: &'a str) -> Result<(), String> {
        if let Some(fam) = self.owner(sample) {
            return Err(format!(
                "sample {sample:?} belongs to family {fam:?}, whose samples must be contiguous"
            ));
        }
        self.start_family(sample, Kind::Unknown)
    }

    /// Checks one sample of the current family. `labels` excludes `__name__`.
    pub fn sample(
        &mut self,
        suffix: &str,
        labels: &[Label],
        value: f64,
        ts: Option<f64>,
        has_exemplar: bool,
    ) -> Result<(), String> {
        let (kind, fam_name) = match &self.current {
            Some(f) => (f.kind, f.name),
            None => return Ok(()),
        };
        if let Some(f) = &mut self.current {
            f.has_samples = true;
        }
        if !self.strict {
            return Ok(());
        }
        // Grouping: labels other than le/quantile/the state label.
        let skip = match kind {
            Kind::Histogram | Kind::GaugeHistogram if suffix == "_bucket" => "le",
            Kind::Summary if suffix.is_empty() => "quantile",
            Kind::StateSet => fam_name,
            _ => "\u{0}",
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for l in labels
            .iter()
            .filter(|l| l.name != skip && l.name != crate::labels::METRIC_NAME)
        {
            l.name.hash(&mut h);
            l.value.hash(&mut h);
        }
        let key = h.finish();
        if !self.group.active || self.group.key != key {
            self.end_group()?;
            if !self.done_groups.insert(key) {
                return Err(format!(
                    "samples of one metric point of {fam_name:?} are not grouped together"
                ));
            }
            self.group = Group {
                key,
                active: true,
                ..Group::default()
            };
        }
        // Series ordering: repeats need increasing timestamps.
        let mut sh = h;
        suffix.hash(&mut sh);
        for l in labels.iter().filter(|l| l.name == skip) {
            l.value.hash(&mut sh);
        }
        let series = sh.finish();
        if let Some((_, prev_ts)) = self.prev_series.filter(|(prev, _)| *prev == series) {
            match (prev_ts, ts) {
                (Some(a), Some(b)) if b < a => {
                    return Err("timestamps of a series must not go backwards".into());
                }
                (Some(_), Some(_)) => {}
                _ => {
                    return Err("repeated series must all carry timestamps (or appear once)".into());
                }
            }
        }
        self.prev_series = Some((series, ts));

        let label = |n: &str| {
            labels
                .iter()
                .find(|l| l.name == n)
                .map(|l| l.value.as_str())
        };
        let nonneg = |what: &str| -> Result<(), String> {
            if value.is_nan() || value < 0.0 {
                Err(format!("{what} must be a non-negative number, got {value}"))
            } else {
                Ok(())
            }
        };
        if has_exemplar {
            let allowed = matches!(
                (kind, suffix),
                (Kind::Counter, "_total") | (Kind::Histogram | Kind::GaugeHistogram, "_bucket")
            );
            if !allowed {
                return Err(
                    "exemplars are only allowed on counter _total and histogram _bucket samples"
                        .into(),
                );
            }
        }
        match (kind, suffix) {
            (Kind::Counter, "_total") => nonneg("counter value")?,
            (Kind::Histogram | Kind::GaugeHistogram, "_bucket") => {
                nonneg("bucket count")?;
                let le = label("le").ok_or("histogram bucket without an 'le' label")?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    match le.parse::<f64>() {
                        Ok(v) if v.is_finite() => v,
                        _ => return Err(format!("invalid 'le' value {le:?}")),
                    }
                };
                let g = &mut self.group;
                if g.inf_bucket.is_some() {
                    return Err("bucket after the +Inf bucket".into());
                }
                if let Some(prev) = g.last_le {
                    if bound <= prev {
                        return Err("histogram buckets must be in increasing 'le' order".into());
                    }
                    if value < g.last_bucket {
                        return Err("histogram bucket counts must not decrease".into());
                    }
                }
                if bound < 0.0 {
                    g.negative_bucket = true;
                }
                g.last_le = Some(bound);
                g.last_bucket = value;
                if bound.is_infinite() {
                    g.inf_bucket = Some(value);
                }
            }
            // Negative histogram sums are tolerated (Prometheus's own
            // OpenMetrics test data has one); NaN is not.
            (Kind::Histogram, "_sum") | (Kind::GaugeHistogram, "_gsum") => {
                if value.is_nan() {
                    return Err(format!("histogram {suffix} must not be NaN"));
                }
                self.group.sum = Some(value);
            }
            (Kind::Histogram, "_count") | (Kind::GaugeHistogram, "_gcount") => {
                nonneg("histogram count")?;
                self.group.count = Some(value);
            }
            (Kind::Summary, "") => {
                let q = label("quantile")
                    .ok_or("summary quantile sample without a 'quantile' label")?;
                match q.parse::<f64>() {
                    Ok(v) if (0.0..=1.0).contains(&v) => {}
                    _ => return Err(format!("quantile {q:?} must be a number in [0, 1]")),
                }
                if value < 0.0 {
                    return Err(format!(
                        "summary quantile value must not be negative, got {value}"
                    ));
                }
            }
            (Kind::Summary, "_sum") => nonneg("summary sum")?,
            (Kind::Summary, "_count") => nonneg("summary count")?,
            (Kind::Info, _) if value != 1.0 => {
                return Err(format!("info value must be 1, got {value}"));
            }
            (Kind::StateSet, _) => {
                if label(fam_name).is_none() {
                    return Err(format!("state set sample needs a label named {fam_name:?}"));
                }
                if value != 0.0 && value != 1.0 {
                    return Err(format!("state set value must be 0 or 1, got {value}"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// End-of-group checks of histogram shapes.
    fn end_group(&mut self) -> Result<(), String> {
        let g = std::mem::take(&mut self.group);
        if !g.active || !self.strict {
            return Ok(());
        }
        let (kind, name) = match &self.current {
            Some(f) => (f.kind, f.name),
            None => return Ok(()),
        };
        if !matches!(kind, Kind::Histogram | Kind::GaugeHistogram) {
            return Ok(());
        }
        let (sum, count) = if kind == Kind::Histogram {
            ("_sum", "_count")
        } else {
            ("_gsum", "_gcount")
        };
        let inf = g
            .inf_bucket
            .ok_or_else(|| format!("histogram {name:?} has no +Inf bucket"))?;
        if g.sum.is_some() != g.count.is_some() {
            return Err(format!(
                "histogram {name:?} must have both {sum} and {count}, or neither"
            ));
        }
        if let Some(c) = g.count.filter(|c| *c != inf) {
            return Err(format!(
                "histogram {name:?}: {count} {c} differs from the +Inf bucket {inf}"
            ));
        }
        if let Some(s) = g.sum {
            if kind == Kind::Histogram && g.negative_bucket {
                return Err(format!(
                    "histogram {name:?} with negative buckets must not have {sum}"
                ));
            }
            if kind == Kind::GaugeHistogram && s < 0.0 && !g.negative_bucket {
                return Err(format!("{name}{sum} is negative without negative buckets"));
            }
        }
        Ok(())
    }

    /// Ends the current family.
    pub fn end_family(&mut self) -> Result<(), String> {
        self.end_group()?;
        self.done_groups.clear();
        self.prev_series = None;
        self.current = None;
        Ok(())
    }
}
