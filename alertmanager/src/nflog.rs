//! The notification log: what was last delivered per group, receiver and
//! integration, so a flush (or a restart) does not re-send an unchanged
//! group before its repeat interval.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::model::Fingerprint;
use crate::persist::Journal;

/// Entries not updated for this long are dropped.
const RETENTION_HOURS: i64 = 120;

/// One delivered notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Group key.
    pub group_key: String,
    /// Receiver name.
    pub receiver: String,
    /// Integration name.
    pub integration: String,
    /// Firing alerts delivered.
    pub firing: BTreeSet<Fingerprint>,
    /// Resolved alerts delivered.
    pub resolved: BTreeSet<Fingerprint>,
    /// When.
    pub timestamp: DateTime<Utc>,
}

type Key = (String, String, String);

/// The log.
pub struct NotificationLog {
    entries: RwLock<HashMap<Key, Entry>>,
    journal: Journal,
}

impl NotificationLog {
    /// Opens the log in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<NotificationLog> {
        let (journal, recs) = Journal::open::<Entry>(&dir.join("nflog.jsonl"))?;
        let mut entries = HashMap::new();
        for e in recs {
            entries.insert(key(&e.group_key, &e.receiver, &e.integration), e);
        }
        let log = NotificationLog {
            entries: RwLock::new(entries),
            journal,
        };
        log.gc(Utc::now())?;
        Ok(log)
    }

    /// The last entry of a group/receiver/integration.
    pub fn get(&self, group_key: &str, receiver: &str, integration: &str) -> Option<Entry> {
        self.entries
            .read()
            .get(&key(group_key, receiver, integration))
            .cloned()
    }

    /// Records a delivery durably.
    pub fn log(&self, e: Entry) -> std::io::Result<()> {
        self.journal.append(std::slice::from_ref(&e))?;
        self.entries
            .write()
            .insert(key(&e.group_key, &e.receiver, &e.integration), e);
        Ok(())
    }

    /// Drops old entries and compacts the journal.
    pub fn gc(&self, now: DateTime<Utc>) -> std::io::Result<()> {
        let mut g = self.entries.write();
        let cutoff = now - ChronoDuration::hours(RETENTION_HOURS);
        g.retain(|_, e| e.timestamp > cutoff);
        if self.journal.len() > g.len() * 2 + 64 {
            let v: Vec<&Entry> = g.values().collect();
            self.journal.rewrite(&v)?;
        }
        Ok(())
    }
}

fn key(g: &str, r: &str, i: &str) -> Key {
    (g.to_string(), r.to_string(), i.to_string())
}

/// Whether a group must be (re-)notified (Alertmanager's `DedupStage`):
/// new firing alerts, newly resolved ones (when delivered), everything
/// resolved after a firing notification, or the repeat interval passed.
/// `acked` suppresses the repeat-only case.
pub fn needs_update(
    entry: Option<&Entry>,
    firing: &BTreeSet<Fingerprint>,
    resolved: &BTreeSet<Fingerprint>,
    send_resolved: bool,
    repeat: ChronoDuration,
    now: DateTime<Utc>,
    acked: bool,
) -> bool {
    let Some(e) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&e.firing) {
        return true;
    }
    if firing.is_empty() {
        return !e.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&e.resolved) {
        return true;
    }
    !acked && e.timestamp + repeat <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_rules() {
        let now = Utc::now();
        let s = |v: &[u64]| v.iter().copied().collect::<BTreeSet<_>>();
        let rep = ChronoDuration::seconds(60);
        assert!(needs_update(None, &s(&[1]), &s(&[]), true, rep, now, false));
        assert!(!needs_update(
            None,
            &s(&[]),
            &s(&[2]),
            true,
            rep,
            now,
            false
        ));
        let e = Entry {
            group_key: "g".into(),
            receiver: "r".into(),
            integration: "i".into(),
            firing: s(&[1, 2]),
            resolved: s(&[]),
            timestamp: now,
        };
        assert!(!needs_update(
            Some(&e),
            &s(&[1]),
            &s(&[]),
            false,
            rep,
            now,
            false
        ));
        assert!(needs_update(
            Some(&e),
            &s(&[1]),
            &s(&[2]),
            true,
            rep,
            now,
            false
        ));
        assert!(needs_update(
            Some(&e),
            &s(&[1, 3]),
            &s(&[]),
            true,
            rep,
            now,
            true
        ));
        assert!(needs_update(
            Some(&e),
            &s(&[]),
            &s(&[1, 2]),
            false,
            rep,
            now,
            false
        ));
        let later = now + ChronoDuration::seconds(61);
        assert!(needs_update(
            Some(&e),
            &s(&[1, 2]),
            &s(&[]),
            true,
            rep,
            later,
            false
        ));
        assert!(!needs_update(
            Some(&e),
            &s(&[1, 2]),
            &s(&[]),
            true,
            rep,
            later,
            true
        ));
    }
}
