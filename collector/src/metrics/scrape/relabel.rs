//! Prometheus relabelling (`relabel_configs`, `metric_relabel_configs`):
//! `replace`, `keep`, `drop`, `labelmap`, `labeldrop`, `labelkeep`,
//! `hashmod`, `lowercase`, `uppercase`, with Prometheus's defaults
//! (separator `;`, regex `(.*)` anchored, replacement `$1`).

use regex::Regex;
use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate, join};
use tidewatch_common::labels::{Label, Labels};

/// Relabel action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Set `target_label` to `replacement` with regex groups expanded.
    #[default]
    Replace,
    /// Keep the series/target only if the regex matches.
    Keep,
    /// Drop the series/target if the regex matches.
    Drop,
    /// Copy labels whose name matches to the name given by `replacement`.
    Labelmap,
    /// Remove labels whose name matches.
    Labeldrop,
    /// Remove labels whose name does not match.
    Labelkeep,
    /// `target_label` = hash(source) mod `modulus`.
    Hashmod,
    /// `target_label` = lowercased source.
    Lowercase,
    /// `target_label` = uppercased source.
    Uppercase,
}

/// One relabel rule as written in YAML.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator`.
    pub source_labels: Vec<String>,
    /// Join separator.
    pub separator: String,
    /// Regular expression (fully anchored).
    pub regex: String,
    /// Label written by replace/hashmod/lowercase/uppercase.
    pub target_label: String,
    /// Replacement with `$1`/`${name}` references.
    pub replacement: String,
    /// Modulus for hashmod.
    pub modulus: u64,
    /// The action.
    pub action: Action,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: ";".into(),
            regex: "(.*)".into(),
            target_label: String::new(),
            replacement: "$1".into(),
            modulus: 0,
            action: Action::Replace,
        }
    }
}

impl Validate for RelabelConfig {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        let mut err = |f: &str, m: &str| {
            errors.push(FieldError {
                path: join(path, f),
                message: m.to_string(),
                line: None,
            })
        };
        if let Err(e) = Regex::new(&format!("^(?:{})$", self.regex)) {
            err("regex", &format!("invalid regular expression: {e}"));
        }
        let needs_target = matches!(
            self.action,
            Action::Replace | Action::Hashmod | Action::Lowercase | Action::Uppercase
        );
        if needs_target && self.target_label.is_empty() {
            err("target_label", "required for this action");
        }
        if self.action == Action::Hashmod && self.modulus == 0 {
            err("modulus", "required (non-zero) for hashmod");
        }
    }
}

/// A compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    cfg: RelabelConfig,
    regex: Regex,
}

impl Rule {
    /// Compiles a rule (the regex is anchored as Prometheus does).
    pub fn new(cfg: RelabelConfig) -> anyhow::Result<Rule> {
        let regex = Regex::new(&format!("^(?:{})$", cfg.regex))?;
        Ok(Rule { cfg, regex })
    }
}

/// Compiles a list of rules.
pub fn compile(cfgs: &[RelabelConfig]) -> anyhow::Result<Vec<Rule>> {
    cfgs.iter().cloned().map(Rule::new).collect()
}

/// Applies `rules` in order; `None` means the series/target is dropped.
pub fn apply(rules: &[Rule], mut labels: Labels) -> Option<Labels> {
    for r in rules {
        if !apply_one(r, &mut labels) {
            return None;
        }
    }
    Some(labels)
}

fn source_value(r: &Rule, labels: &Labels) -> String {
    let mut out = String::new();
    for (i, n) in r.cfg.source_labels.iter().enumerate() {
        if i > 0 {
            out.push_str(&r.cfg.separator);
        }
        out.push_str(labels.get(n).unwrap_or(""));
    }
    out
}

fn apply_one(r: &Rule, labels: &mut Labels) -> bool {
    match r.cfg.action {
        Action::Keep => r.regex.is_match(&source_value(r, labels)),
        Action::Drop => !r.regex.is_match(&source_value(r, labels)),
        Action::Replace => {
            let src = source_value(r, labels);
            if let Some(caps) = r.regex.captures(&src) {
                let mut target = String::new();
                caps.expand(&r.cfg.target_label, &mut target);
                let mut value = String::new();
                caps.expand(&r.cfg.replacement, &mut value);
                if tidewatch_common::labels::is_valid_label_name(&target) {
                    labels.set(&target, &value);
                }
            }
            true
        }
        Action::Lowercase => {
            let v = source_value(r, labels).to_lowercase();
            labels.set(&r.cfg.target_label, &v);
            true
        }
        Action::Uppercase => {
            let v = source_value(r, labels).to_uppercase();
            labels.set(&r.cfg.target_label, &v);
            true
        }
        Action::Hashmod => {
            let src = source_value(r, labels);
            // Prometheus uses the first 8 bytes of md5; any stable hash
            // gives the same sharding guarantees within Tidewatch.
            let h = xxhash_rust::xxh3::xxh3_64(src.as_bytes());
            labels.set(&r.cfg.target_label, &(h % r.cfg.modulus).to_string());
            true
        }
        Action::Labelmap => {
            let mut add = Vec::new();
            for l in labels.iter() {
                if let Some(caps) = r.regex.captures(&l.name) {
                    let mut name = String::new();
                    caps.expand(&r.cfg.replacement, &mut name);
                    add.push(Label::new(name, l.value.clone()));
                }
            }
            for l in add {
                labels.set(&l.name, &l.value);
            }
            true
        }
        Action::Labeldrop | Action::Labelkeep => {
            let keep_matching = r.cfg.action == Action::Labelkeep;
            let v: Vec<Label> = labels
                .iter()
                .filter(|l| r.regex.is_match(&l.name) == keep_matching)
                .cloned()
                .collect();
            *labels = Labels::from_sorted_unchecked(v);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Vec<Rule> {
        let cfgs: Vec<RelabelConfig> = serde_yaml::from_str(yaml).unwrap();
        compile(&cfgs).unwrap()
    }

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn prometheus_semantics() {
        let r = rules(
            r#"
- source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
  action: keep
  regex: "true"
- source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
  regex: '([^:]+)(?::\d+)?;(\d+)'
  replacement: '$1:$2'
  target_label: __address__
- action: labelmap
  regex: __meta_kubernetes_pod_label_(.+)
- source_labels: [__meta_kubernetes_namespace]
  target_label: namespace
- action: labeldrop
  regex: 'tmp_.*'
"#,
        );
        let out = apply(
            &r,
            l(&[
                ("__address__", "10.0.0.5:8080"),
                (
                    "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
                    "true",
                ),
                (
                    "__meta_kubernetes_pod_annotation_prometheus_io_port",
                    "9102",
                ),
                ("__meta_kubernetes_pod_label_app", "web"),
                ("__meta_kubernetes_namespace", "prod"),
                ("tmp_x", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(out.get("__address__"), Some("10.0.0.5:9102"));
        assert_eq!(out.get("app"), Some("web"));
        assert_eq!(out.get("namespace"), Some("prod"));
        assert_eq!(out.get("tmp_x"), None);
        // keep: a non-matching target is dropped.
        assert!(apply(&r, l(&[("__address__", "a:1")])).is_none());
        // drop and labelkeep.
        let r = rules(
            "- source_labels: [__name__]\n  regex: 'go_.*'\n  action: drop\n- regex: '__name__|job'\n  action: labelkeep\n",
        );
        assert!(apply(&r, l(&[("__name__", "go_goroutines")])).is_none());
        let kept = apply(&r, l(&[("__name__", "up"), ("job", "j"), ("x", "y")])).unwrap();
        assert_eq!(kept.to_string(), "up{job=\"j\"}");
        // replace with a non-matching regex leaves the labels alone.
        let r = rules("- source_labels: [a]\n  regex: 'z(.*)'\n  target_label: b\n");
        assert_eq!(apply(&r, l(&[("a", "q")])).unwrap().get("b"), None);
        // hashmod is stable and in range.
        let r =
            rules("- source_labels: [a]\n  modulus: 4\n  target_label: shard\n  action: hashmod\n");
        let s1 = apply(&r, l(&[("a", "x")]))
            .unwrap()
            .get("shard")
            .unwrap()
            .to_string();
        let s2 = apply(&r, l(&[("a", "x")]))
            .unwrap()
            .get("shard")
            .unwrap()
            .to_string();
        assert_eq!(s1, s2);
        assert!(s1.parse::<u64>().unwrap() < 4);
    }

    #[test]
    fn validation_names_fields() {
        let cfg = RelabelConfig {
            regex: "(".into(),
            action: Action::Hashmod,
            ..RelabelConfig::default()
        };
        let mut errs = Vec::new();
        cfg.validate("scrape_configs[0].relabel_configs[1]", &mut errs);
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"scrape_configs[0].relabel_configs[1].regex"));
        assert!(paths.contains(&"scrape_configs[0].relabel_configs[1].target_label"));
        assert!(paths.contains(&"scrape_configs[0].relabel_configs[1].modulus"));
    }
}
