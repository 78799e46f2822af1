//! Drops exact re-deliveries: an entry with the same stream, timestamp and
//! line as one accepted recently is ignored (Loki's rule), so a sender that
//! retries after a lost acknowledgement does not store a line twice.

use std::collections::{HashSet, VecDeque};

use xxhash_rust::xxh3::Xxh3;

/// A bounded FIFO set of entry fingerprints.
pub struct Dedupe {
    cap: usize,
    set: HashSet<u128>,
    order: VecDeque<u128>,
}

/// Fingerprint of an entry.
pub fn fingerprint(stream_key: &str, ts: i64, line: &str) -> u128 {
    let mut h = Xxh3::new();
    h.update(stream_key.as_bytes());
    h.update(&[0xff]);
    h.update(&ts.to_le_bytes());
    h.update(line.as_bytes());
    h.digest128()
}

impl Dedupe {
    /// Remembers at most `cap` entries.
    pub fn new(cap: usize) -> Dedupe {
        Dedupe {
            cap,
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `fp`; false if it was already seen.
    pub fn insert(&mut self, fp: u128) -> bool {
        if self.cap == 0 {
            return true;
        }
        if !self.set.insert(fp) {
            return false;
        }
        self.order.push_back(fp);
        if self.order.len() > self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded() {
        let mut d = Dedupe::new(2);
        assert!(d.insert(fingerprint("{}", 1, "a")));
        assert!(!d.insert(fingerprint("{}", 1, "a")));
        assert!(d.insert(fingerprint("{}", 2, "a")));
        assert!(d.insert(fingerprint("{}", 3, "a")));
        // The first one was evicted.
        assert!(d.insert(fingerprint("{}", 1, "a")));
    }
}
