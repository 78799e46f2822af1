//! The series index: every known series' labels and time range, with
//! postings (label name → value → series ids) to resolve label matchers.
//!
//! Series ids are [`Labels::stable_hash`] values, so a series has the same id
//! in the head, in every block and across restarts.

use std::collections::HashMap;

use promql_parser::label::{MatchOp, Matcher};
use tidewatch_common::Labels;

/// One series' entry.
#[derive(Clone, Debug)]
pub struct SeriesEntry {
    /// Labels, `__name__` included.
    pub labels: Labels,
    /// Oldest sample time (ms) anywhere in the store.
    pub min_t: i64,
    /// Newest sample time (ms) anywhere in the store.
    pub max_t: i64,
}

/// Labels → series ids.
#[derive(Default, Debug)]
pub struct SeriesIndex {
    series: HashMap<u64, SeriesEntry>,
    postings: HashMap<String, HashMap<String, Vec<u64>>>,
}

impl SeriesIndex {
    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series is known.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The entry of `id`.
    pub fn get(&self, id: u64) -> Option<&SeriesEntry> {
        self.series.get(&id)
    }

    /// Whether `id` is known.
    pub fn contains(&self, id: u64) -> bool {
        self.series.contains_key(&id)
    }

    /// Adds a series (or widens its time range to `[min_t, max_t]`).
    pub fn observe(&mut self, id: u64, labels: &Labels, min_t: i64, max_t: i64) {
        if let Some(e) = self.series.get_mut(&id) {
            e.min_t = e.min_t.min(min_t);
            e.max_t = e.max_t.max(max_t);
            return;
        }
        for l in labels.iter() {
            self.postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default()
                .push(id);
        }
        self.series.insert(
            id,
            SeriesEntry {
                labels: labels.clone(),
                min_t,
                max_t,
            },
        );
    }

    /// Widens the time range of a known series.
    pub fn widen(&mut self, id: u64, min_t: i64, max_t: i64) {
        if let Some(e) = self.series.get_mut(&id) {
            e.min_t = e.min_t.min(min_t);
            e.max_t = e.max_t.max(max_t);
        }
    }

    /// Forgets data older than `floor` (ms) after retention deleted it:
    /// series whose newest sample is older are dropped, the others' ranges
    /// are clipped.
    pub fn truncate_before(&mut self, floor: i64) {
        self.series.retain(|_, e| {
            e.min_t = e.min_t.max(floor);
            e.max_t >= floor
        });
        let series = &self.series;
        for values in self.postings.values_mut() {
            for ids in values.values_mut() {
                ids.retain(|id| series.contains_key(id));
            }
            values.retain(|_, ids| !ids.is_empty());
        }
        self.postings.retain(|_, v| !v.is_empty());
    }

    /// Ids of the series matching every matcher and having data in
    /// `[start, end]`, in no particular order.
    pub fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<u64> {
        let candidates = self.candidates(matchers);
        let keep = |id: &u64| match self.series.get(id) {
            Some(e) => {
                e.max_t >= start
                    && e.min_t <= end
                    && matchers
                        .iter()
                        .all(|m| m.is_match(e.labels.get(&m.name).unwrap_or("")))
            }
            None => false,
        };
        match candidates {
            Some(c) => c.into_iter().filter(keep).collect(),
            None => self.series.keys().copied().filter(keep).collect(),
        }
    }

    /// A superset of the matching ids from postings, or `None` for "all".
    fn candidates(&self, matchers: &[Matcher]) -> Option<Vec<u64>> {
        let mut best: Option<Vec<u64>> = None;
        for m in matchers {
            let set: Option<Vec<u64>> = match &m.op {
                MatchOp::Equal if !m.value.is_empty() => Some(
                    self.postings
                        .get(&m.name)
                        .and_then(|v| v.get(&m.value))
                        .cloned()
                        .unwrap_or_default(),
                ),
                MatchOp::Re(_) if !m.is_match("") => Some(
                    self.postings
                        .get(&m.name)
                        .map(|values| {
                            values
                                .iter()
                                .filter(|(v, _)| m.is_match(v))
                                .flat_map(|(_, ids)| ids.iter().copied())
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                _ => None,
            };
            if let Some(s) = set
                && best.as_ref().is_none_or(|b| s.len() < b.len())
            {
                best = Some(s);
            }
        }
        best
    }

    /// Iterates every entry.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &SeriesEntry)> {
        self.series.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v)
    }

    #[test]
    fn postings_resolve_matchers() {
        let mut idx = SeriesIndex::default();
        let a = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let b = Labels::from_pairs([("__name__", "up"), ("job", "b")]);
        let c = Labels::from_pairs([("__name__", "down")]);
        for (l, t) in [(&a, 10), (&b, 20), (&c, 30)] {
            idx.observe(l.stable_hash(), l, t, t);
        }
        let mut r = idx.select(&[m(MatchOp::Equal, "__name__", "up")], 0, 100);
        r.sort();
        let mut want = vec![a.stable_hash(), b.stable_hash()];
        want.sort();
        assert_eq!(r, want);
        let re = regex::Regex::new("^(?:b|c)$").unwrap();
        let r = idx.select(
            &[
                m(MatchOp::Equal, "__name__", "up"),
                m(MatchOp::Re(re), "job", ""),
            ],
            0,
            100,
        );
        assert_eq!(r, vec![b.stable_hash()]);
        // Empty-value matcher matches series without the label.
        let r = idx.select(&[m(MatchOp::Equal, "job", "")], 0, 100);
        assert_eq!(r, vec![c.stable_hash()]);
        // Time range filters.
        assert!(
            idx.select(&[m(MatchOp::Equal, "__name__", "up")], 21, 100)
                .is_empty()
        );
        idx.truncate_before(25);
        assert_eq!(idx.len(), 1);
        assert!(
            idx.select(&[m(MatchOp::Equal, "__name__", "up")], 0, 100)
                .is_empty()
        );
    }
}
