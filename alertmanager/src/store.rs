//! The alert store: every alert received (from the API or the rule
//! evaluator), merged by fingerprint and journaled before it is
//! acknowledged, so a restart re-dispatches what was pending.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use crate::model::{Alert, Fingerprint};
use crate::persist::Journal;

/// The store.
pub struct AlertStore {
    alerts: RwLock<HashMap<Fingerprint, Alert>>,
    journal: Journal,
    max: usize,
}

/// The store is full.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// Too many alerts.
    #[error("alert limit of {0} reached")]
    Full(usize),
    /// Disk failure.
    #[error("persisting alerts: {0}")]
    Io(#[from] std::io::Error),
}

impl AlertStore {
    /// Opens the store in `dir`, replaying its journal.
    pub fn open(dir: &Path, max: usize) -> std::io::Result<AlertStore> {
        let (journal, recs) = Journal::open::<Alert>(&dir.join("alerts.jsonl"))?;
        let mut alerts = HashMap::new();
        for a in recs {
            alerts.insert(a.fingerprint(), a);
        }
        Ok(AlertStore {
            alerts: RwLock::new(alerts),
            journal,
            max,
        })
    }

    /// Merges `incoming` into the store durably; returns the merged alerts.
    pub fn put(&self, incoming: Vec<Alert>) -> Result<Vec<Alert>, PutError> {
        let mut g = self.alerts.write();
        let new = incoming
            .iter()
            .filter(|a| !g.contains_key(&a.fingerprint()))
            .count();
        if g.len() + new > self.max {
            return Err(PutError::Full(self.max));
        }
        let merged: Vec<Alert> = incoming
            .into_iter()
            .map(|a| match g.get(&a.fingerprint()) {
                Some(old) => old.merge(&a),
                None => a,
            })
            .collect();
        self.journal.append(&merged)?;
        for a in &merged {
            g.insert(a.fingerprint(), a.clone());
        }
        Ok(merged)
    }

    /// One alert.
    pub fn get(&self, fp: Fingerprint) -> Option<Alert> {
        self.alerts.read().get(&fp).cloned()
    }

    /// Every alert.
    pub fn list(&self) -> Vec<Alert> {
        self.alerts.read().values().cloned().collect()
    }

    /// Number of alerts held.
    pub fn len(&self) -> usize {
        self.alerts.read().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops alerts resolved before `cutoff`; compacts the journal.
    pub fn gc(&self, cutoff: DateTime<Utc>) -> std::io::Result<usize> {
        let mut g = self.alerts.write();
        let before = g.len();
        g.retain(|_, a| a.ends_at > cutoff);
        let removed = before - g.len();
        if removed > 0 || self.journal.len() > g.len() * 2 + 64 {
            let v: Vec<&Alert> = g.values().collect();
            self.journal.rewrite(&v)?;
        }
        Ok(removed)
    }
}
