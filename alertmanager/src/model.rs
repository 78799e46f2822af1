//! The alert: labels, annotations and its active period, as Alertmanager
//! models it; fingerprints are Prometheus's (FNV-1a over sorted labels).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tidewatch_common::Labels;

/// An alert's identity: the hash of its label set.
pub type Fingerprint = u64;

/// Formats a fingerprint as Alertmanager does (16 hex digits).
pub fn fp_hex(fp: Fingerprint) -> String {
    format!("{fp:016x}")
}

/// Parses a 16-hex-digit fingerprint.
pub fn parse_fp(s: &str) -> Option<Fingerprint> {
    u64::from_str_radix(s, 16).ok()
}

/// One alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Identifying labels.
    #[serde(with = "labels_map")]
    pub labels: Labels,
    /// Free-form annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started.
    pub starts_at: DateTime<Utc>,
    /// When it ends (in the future while firing).
    pub ends_at: DateTime<Utc>,
    /// Link to the source (rule expression).
    pub generator_url: String,
    /// Last update.
    pub updated_at: DateTime<Utc>,
    /// Whether `ends_at` was computed from the resolve timeout.
    pub timeout: bool,
}

impl Alert {
    /// The alert's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.labels.stable_hash()
    }

    /// Whether it has resolved at `now`.
    pub fn resolved_at(&self, now: DateTime<Utc>) -> bool {
        self.ends_at <= now
    }

    /// The `alertname` label.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").unwrap_or("")
    }

    /// Merges a newer version of the same alert, keeping the earliest start
    /// of an overlapping period (Alertmanager's `Alert.Merge`).
    pub fn merge(&self, newer: &Alert) -> Alert {
        let mut out = newer.clone();
        // Only the same period (overlapping) keeps the older start.
        if self.ends_at >= newer.starts_at && self.starts_at < newer.starts_at {
            out.starts_at = self.starts_at;
        }
        // A timeout-derived end never overrides a real one still in the future.
        if newer.timeout && !self.timeout && self.ends_at > newer.updated_at {
            out.ends_at = self.ends_at;
            out.timeout = false;
        }
        out
    }
}

/// Serde adapter: [`Labels`] as a JSON object `{"name":"value"}`.
pub mod labels_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use tidewatch_common::Labels;

    /// Writes the labels as a map.
    pub fn serialize<S: Serializer>(l: &Labels, s: S) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<&str, &str> = l
            .iter()
            .map(|x| (x.name.as_str(), x.value.as_str()))
            .collect();
        m.serialize(s)
    }

    /// Reads a map into labels.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        let m = BTreeMap::<String, String>::deserialize(d)?;
        Ok(Labels::from_pairs(m))
    }
}

/// Labels as a name → value map (templates, JSON bodies).
pub fn labels_to_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_alertmanager() {
        // Alertmanager 0.25 gave a95a76968dc9254d for this label set.
        let l = Labels::from_pairs([("alertname", "A"), ("sev", "x")]);
        assert_eq!(fp_hex(l.stable_hash()), "a95a76968dc9254d");
    }
}
