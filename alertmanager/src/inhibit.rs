//! Inhibition: a firing source alert mutes target alerts that share the
//! rule's `equal` labels. Sources are indexed by their `equal` values so a
//! check costs one hash lookup per rule.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use tidewatch_common::Labels;

use crate::config::InhibitRuleConfig;
use crate::matcher::Matchers;
use crate::model::{Alert, Fingerprint};

struct Rule {
    source: Matchers,
    target: Matchers,
    equal: Vec<String>,
    /// equal-label values → source fingerprint → ends_at.
    sources: HashMap<Vec<String>, HashMap<Fingerprint, DateTime<Utc>>>,
}

/// Evaluates the configured inhibition rules.
pub struct Inhibitor {
    rules: RwLock<Vec<Rule>>,
}

impl Inhibitor {
    /// Compiles the rules (validated by the config).
    pub fn new(cfg: &[InhibitRuleConfig]) -> Result<Inhibitor, String> {
        let mut rules = Vec::new();
        for r in cfg {
            rules.push(Rule {
                source: Matchers::parse_list(&r.source_matchers)?,
                target: Matchers::parse_list(&r.target_matchers)?,
                equal: r.equal.clone(),
                sources: HashMap::new(),
            });
        }
        Ok(Inhibitor {
            rules: RwLock::new(rules),
        })
    }

    /// Records a new or updated alert as a possible source.
    pub fn observe(&self, a: &Alert) {
        let mut rules = self.rules.write();
        let fp = a.fingerprint();
        for r in rules.iter_mut() {
            if !r.source.matches(&a.labels) {
                continue;
            }
            let key = key(&r.equal, &a.labels);
            r.sources.entry(key).or_default().insert(fp, a.ends_at);
        }
    }

    /// Fingerprints of the firing alerts inhibiting `labels` (own `fp` excluded).
    pub fn inhibited_by(
        &self,
        labels: &Labels,
        fp: Fingerprint,
        now: DateTime<Utc>,
    ) -> Vec<Fingerprint> {
        let rules = self.rules.read();
        let mut out = Vec::new();
        for r in rules.iter() {
            if r.sources.is_empty() || !r.target.matches(labels) {
                continue;
            }
            if let Some(srcs) = r.sources.get(&key(&r.equal, labels)) {
                out.extend(
                    srcs.iter()
                        .filter(|(f, ends)| **f != fp && **ends > now)
                        .map(|(f, _)| *f),
                );
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Forgets sources resolved before `now`.
    pub fn gc(&self, now: DateTime<Utc>) {
        let mut rules = self.rules.write();
        for r in rules.iter_mut() {
            for m in r.sources.values_mut() {
                m.retain(|_, ends| *ends > now);
            }
            r.sources.retain(|_, m| !m.is_empty());
        }
    }
}

fn key(equal: &[String], l: &Labels) -> Vec<String> {
    equal
        .iter()
        .map(|n| l.get(n).unwrap_or("").to_string())
        .collect()
}
