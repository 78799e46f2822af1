//! Prometheus rule files: parsing and the checks `promtool check rules`
//! makes (one of `record`/`alert`, a valid expression, valid names and
//! templates, no duplicate group names).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use tidewatch_common::duration::parse_duration;

/// A rule file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct RuleFile {
    /// Rule groups.
    #[serde(default)]
    pub groups: Vec<GroupDef>,
}

/// A rule group as written.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct GroupDef {
    /// Group name (unique per file).
    pub name: String,
    /// Evaluation interval (default: the global one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Most alerts/series a rule may produce (0: no limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: usize,
    /// Labels added to every rule of the group.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RuleDef>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One rule as written.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct RuleDef {
    /// Recording rule output name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Alert name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// PromQL expression (numbers are accepted as written).
    #[serde(deserialize_with = "string_or_number")]
    pub expr: String,
    /// Pending duration.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// How long to keep firing after the condition cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    /// Labels added (templated for alerts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations (templated).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
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

/// The strict variant rejects unknown fields (promtool's default).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StrictFile {
    #[serde(default)]
    groups: Vec<StrictGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StrictGroup {
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    query_offset: Option<String>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<StrictRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StrictRule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    expr: String,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Parses and checks rule-file text; errors are human-readable lines.
pub fn parse(text: &str, ignore_unknown_fields: bool) -> Result<RuleFile, Vec<String>> {
    if !ignore_unknown_fields {
        serde_yaml::from_str::<StrictFile>(text).map_err(|e| vec![e.to_string()])?;
    }
    let f: RuleFile = serde_yaml::from_str(text).map_err(|e| vec![e.to_string()])?;
    let errs = check(&f);
    if errs.is_empty() { Ok(f) } else { Err(errs) }
}

/// Reads and checks a rule file.
pub fn load(path: &Path, ignore_unknown_fields: bool) -> Result<RuleFile, Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    parse(&text, ignore_unknown_fields).map_err(|es| {
        es.into_iter()
            .map(|e| format!("{}: {e}", path.display()))
            .collect()
    })
}

/// Parses an optional duration field.
pub fn opt_duration(s: &Option<String>) -> Result<Option<Duration>, String> {
    s.as_deref().map(parse_duration).transpose()
}

/// The checks of `promtool check rules`.
pub fn check(f: &RuleFile) -> Vec<String> {
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (gi, g) in f.groups.iter().enumerate() {
        let gp = format!("groups[{gi}]");
        if g.name.is_empty() {
            errs.push(format!("{gp}: group name must not be empty"));
        }
        if !names.insert(g.name.as_str()) {
            errs.push(format!("{gp}: {:?}: repeated in the same file", g.name));
        }
        if let Err(e) = opt_duration(&g.interval) {
            errs.push(format!("{gp}.interval: {e}"));
        }
        for (ri, r) in g.rules.iter().enumerate() {
            errs.extend(
                check_rule(r)
                    .into_iter()
                    .map(|e| format!("{gp}.rules[{ri}]: {e}")),
            );
        }
    }
    errs
}

/// The `promtool check rules` checks of one rule.
pub(crate) fn check_rule(r: &RuleDef) -> Vec<String> {
    let mut errs = Vec::new();
    match (&r.record, &r.alert) {
        (Some(_), Some(_)) => errs.push("only one of 'record' and 'alert' must be set".into()),
        (None, None) => errs.push("one of 'record' or 'alert' must be set".into()),
        (Some(rec), None) => {
            if !tidewatch_common::labels::is_valid_metric_name(rec) {
                errs.push(format!("invalid recording rule name: {rec}"));
            }
            if !r.annotations.is_empty() {
                errs.push("invalid field 'annotations' in recording rule".into());
            }
            if r.for_.is_some() {
                errs.push("invalid field 'for' in recording rule".into());
            }
            if r.keep_firing_for.is_some() {
                errs.push("invalid field 'keep_firing_for' in recording rule".into());
            }
        }
        (None, Some(a)) => {
            if a.is_empty() {
                errs.push("alert name must not be empty".into());
            }
        }
    }
    if r.expr.trim().is_empty() {
        errs.push("field 'expr' must be set in rule".into());
    } else if let Err(e) = promql_parser::parser::parse(&r.expr) {
        errs.push(format!("could not parse expression {:?}: {e}", r.expr));
    }
    for (name, d) in [("for", &r.for_), ("keep_firing_for", &r.keep_firing_for)] {
        if let Err(e) = opt_duration(d) {
            errs.push(format!("{name}: {e}"));
        }
    }
    for k in r.labels.keys() {
        if !tidewatch_common::labels::is_valid_label_name(k) {
            errs.push(format!("invalid label name: {k}"));
        }
    }
    for k in r.annotations.keys() {
        if !tidewatch_common::labels::is_valid_label_name(k) {
            errs.push(format!("invalid annotation name: {k}"));
        }
    }
    if r.alert.is_some() {
        let empty = BTreeMap::new();
        for (kind, m) in [("label", &r.labels), ("annotation", &r.annotations)] {
            for (k, v) in m {
                if let Err(e) = crate::template::expand_go(v, &empty, 0.0, &empty) {
                    errs.push(format!("{kind} {k:?}: {e}"));
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_like_promtool() {
        let ok = "groups:\n- name: a\n  rules:\n  - alert: X\n    expr: 1\n    for: 5m\n    annotations: {s: '{{ $labels.a }}'}\n";
        assert!(parse(ok, false).is_ok());
        assert!(parse("groups:\n- name: a\n  x: 1\n  rules: []\n", false).is_err());
        assert!(parse("groups:\n- name: a\n  x: 1\n  rules: []\n", true).is_ok());
        assert!(
            parse(
                "groups:\n- name: a\n  rules:\n  - record: x\n    expr: 'test +'\n",
                false
            )
            .is_err()
        );
        assert!(parse("groups:\n- name: a\n  rules:\n  - alert: x\n    expr: up\n    annotations: {s: '{{ $label.x }}'}\n", false).is_err());
        assert!(
            parse(
                "groups:\n- name: a\n  rules: []\n- name: a\n  rules: []\n",
                false
            )
            .is_err()
        );
    }
}
