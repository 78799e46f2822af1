//! The label model shared by every component: a sorted, de-duplicated set of
//! name/value pairs identifying one series (or one log stream).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Name of the label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Label {
    /// Label name.
    pub name: String,
    /// Label value; never empty inside a [`Labels`] set.
    pub value: String,
}

impl Label {
    /// Builds a label pair.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A label set, always sorted by name, with empty values removed (an empty
/// value means "label absent" in Prometheus).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// The empty set.
    pub fn empty() -> Self {
        Labels(Vec::new())
    }

    /// Builds a set from pairs in any order; later duplicates win, empty
    /// values are dropped.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Self::from_vec(pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect())
    }

    /// Builds a set from a vector in any order (sorts, de-duplicates keeping
    /// the last occurrence, drops empty values).
    pub fn from_vec(mut v: Vec<Label>) -> Self {
        // Stable sort keeps insertion order among equal names, so the
        // de-duplication below can keep the last one.
        v.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(v.len());
        for l in v {
            match out.last_mut() {
                Some(last) if last.name == l.name => *last = l,
                _ => out.push(l),
            }
        }
        out.retain(|l| !l.value.is_empty());
        Labels(out)
    }

    /// Wraps a vector the caller guarantees is sorted, unique and without
    /// empty values.
    pub fn from_sorted_unchecked(v: Vec<Label>) -> Self {
        debug_assert!(v.windows(2).all(|w| w[0].name < w[1].name));
        Labels(v)
    }

    /// Value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Sets (or with an empty value, removes) a label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].value = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, Label::new(name, value)),
        }
    }

    /// Removes a label if present.
    pub fn remove(&mut self, name: &str) {
        self.set(name, "");
    }

    /// Iterates the pairs in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs as a slice.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// Consumes the set into its vector.
    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// A stable 64-bit hash of the set (FNV-1a over names and values with
    /// separators), used as series id; see [`stable_hash_pairs`].
    pub fn stable_hash(&self) -> u64 {
        stable_hash_pairs(self.0.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }
}

/// [`Labels::stable_hash`] of pairs already sorted by name, unique and
/// without empty values, computed without building a [`Labels`] (for ingest
/// paths that look a series up before allocating its labels).
pub fn stable_hash_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    // FNV-1a 64 over `name 0xff value 0xff …`: fast enough for ids of label
    // sets and dependency-free.
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= x as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    for (name, value) in pairs {
        eat(name.as_bytes());
        eat(&[0xff]);
        eat(value.as_bytes());
        eat(&[0xff]);
    }
    h
}

impl fmt::Display for Labels {
    /// Prometheus notation: `name{a="b", c="d"}` (the name outside braces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(n) = name {
            f.write_str(n)?;
        }
        let mut first = true;
        let mut any = false;
        for l in self.0.iter().filter(|l| l.name != METRIC_NAME) {
            if first {
                f.write_str("{")?;
                first = false;
            } else {
                f.write_str(", ")?;
            }
            any = true;
            write!(f, "{}=\"{}\"", l.name, escape_value(&l.value))?;
        }
        if any {
            f.write_str("}")?;
        } else if name.is_none() {
            f.write_str("{}")?;
        }
        Ok(())
    }
}

/// Escapes a label value for Prometheus notation (`\\`, `\"`, `\n`).
pub fn escape_value(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Whether `name` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_dedup_and_display() {
        let l = Labels::from_pairs([
            ("b", "2"),
            ("__name__", "up"),
            ("a", "1"),
            ("b", "3"),
            ("c", ""),
        ]);
        assert_eq!(l.len(), 3);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.to_string(), "up{a=\"1\", b=\"3\"}");
        let mut m = l.clone();
        m.set("a", "");
        assert_eq!(m.to_string(), "up{b=\"3\"}");
        assert_ne!(l.stable_hash(), m.stable_hash());
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("1a"));
        assert!(is_valid_metric_name("a:b"));
    }
}
