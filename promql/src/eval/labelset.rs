//! Keying series by (a subset of) their labels without cloning them: a label
//! set is identified by a 64-bit xxh3 hash of its pairs, and a [`HashIndex`]
//! maps hashes to entry ids, resolving collisions by comparing the labels
//! themselves. Grouping, vector matching and duplicate detection use it so
//! that only the first series of each group builds an owned label set.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use tidewatch_common::Label;

/// Hasher for keys that already are well-mixed 64-bit hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `HashMap<u64, _>`; fold anything else.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Hash of the label pairs `labels` yields, in order; `buf` is scratch
/// space reused across calls.
pub(crate) fn hash_labels<'l>(labels: impl Iterator<Item = &'l Label>, buf: &mut Vec<u8>) -> u64 {
    buf.clear();
    for l in labels {
        buf.extend_from_slice(l.name.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(l.value.as_bytes());
        buf.push(0xff);
    }
    xxhash_rust::xxh3::xxh3_64(buf)
}

const NONE: u32 = u32::MAX;

/// Entry ids `0, 1, 2, …` keyed by label-set hash. Entries whose hashes
/// collide are chained, and [`HashIndex::find`] asks the caller to compare
/// the actual labels, so a collision can never merge two label sets.
#[derive(Default)]
pub(crate) struct HashIndex {
    /// Hash → the latest entry with that hash.
    head: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    /// Entry → the previous entry with the same hash.
    next: Vec<u32>,
}

impl HashIndex {
    /// An index sized for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        HashIndex {
            head: HashMap::with_capacity_and_hasher(n, Default::default()),
            next: Vec::with_capacity(n),
        }
    }

    /// The entry with hash `h` whose labels `same(entry)` says are equal.
    #[inline]
    pub fn find(&self, h: u64, mut same: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut e = *self.head.get(&h)?;
        while e != NONE {
            if same(e as usize) {
                return Some(e as usize);
            }
            e = self.next[e as usize];
        }
        None
    }

    /// Adds the next entry under hash `h` and returns its id.
    pub fn insert(&mut self, h: u64) -> usize {
        let id = self.next.len() as u32;
        assert!(id != NONE, "too many label sets");
        let prev = self.head.insert(h, id).unwrap_or(NONE);
        self.next.push(prev);
        id as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_hashes_stay_distinct_entries() {
        let mut ix = HashIndex::default();
        let names = ["a", "b", "c"];
        // Every entry under the same hash: only `same` tells them apart.
        for _ in names {
            ix.insert(7);
        }
        for (i, n) in names.iter().enumerate() {
            assert_eq!(ix.find(7, |e| names[e] == *n), Some(i));
        }
        assert_eq!(ix.find(7, |_| false), None);
        assert_eq!(ix.find(8, |_| true), None);
    }

    #[test]
    fn hash_separates_names_from_values() {
        let mut buf = Vec::new();
        let a = [Label::new("ab", "c")];
        let b = [Label::new("a", "bc")];
        assert_ne!(
            hash_labels(a.iter(), &mut buf),
            hash_labels(b.iter(), &mut buf)
        );
    }
}
