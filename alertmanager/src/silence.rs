//! Silences: matchers plus a time window muting matching alerts; persisted in
//! a journal so they survive restarts.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tidewatch_common::Labels;

use crate::matcher::{ApiMatcher, Matchers};
use crate::persist::Journal;

/// How long expired silences are kept (Alertmanager: 120h).
const RETENTION_HOURS: i64 = 120;

/// A silence as stored and served (Alertmanager API v2 `gettableSilence`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// Id (UUID).
    pub id: String,
    /// Matchers, all of which must match.
    pub matchers: Vec<ApiMatcher>,
    /// Start of the muting window.
    pub starts_at: DateTime<Utc>,
    /// End of the muting window.
    pub ends_at: DateTime<Utc>,
    /// Author.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// `pending`, `active` or `expired` at a time.
pub fn state(s: &Silence, now: DateTime<Utc>) -> &'static str {
    if s.ends_at <= now {
        "expired"
    } else if s.starts_at > now {
        "pending"
    } else {
        "active"
    }
}

/// A silence to create or update (`postableSilence`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    /// Existing id to update, if any.
    #[serde(default)]
    pub id: Option<String>,
    /// Matchers.
    pub matchers: Vec<ApiMatcher>,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End.
    pub ends_at: DateTime<Utc>,
    /// Author.
    #[serde(default)]
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

/// Errors of silence operations (all client errors).
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// Invalid input; the first field names the offending field.
    #[error("{1}")]
    Invalid(&'static str, String),
    /// No such silence.
    #[error("silence {0} not found")]
    NotFound(String),
    /// Storage failure.
    #[error("persisting silences: {0}")]
    Io(#[from] std::io::Error),
}

/// The silence store.
pub struct Silences {
    inner: RwLock<HashMap<String, (Silence, Matchers)>>,
    journal: Journal,
    max: usize,
}

impl Silences {
    /// Opens the store in `dir`.
    pub fn open(dir: &Path, max: usize) -> std::io::Result<Silences> {
        let (journal, recs) = Journal::open::<Silence>(&dir.join("silences.jsonl"))?;
        let mut map = HashMap::new();
        for s in recs {
            if let Ok(m) = compile(&s.matchers) {
                map.insert(s.id.clone(), (s, m));
            }
        }
        let store = Silences {
            inner: RwLock::new(map),
            journal,
            max,
        };
        store.gc(Utc::now())?;
        Ok(store)
    }

    /// Creates or updates a silence; returns its id.
    pub fn upsert(&self, p: PostableSilence, now: DateTime<Utc>) -> Result<String, SilenceError> {
        if p.matchers.is_empty() {
            return Err(SilenceError::Invalid(
                "matchers",
                "at least one matcher is required".into(),
            ));
        }
        let compiled = compile(&p.matchers).map_err(|e| SilenceError::Invalid("matchers", e))?;
        if compiled.0.iter().all(|m| m.matches_value("")) {
            return Err(SilenceError::Invalid(
                "matchers",
                "at least one matcher must not match the empty string".into(),
            ));
        }
        if p.ends_at <= p.starts_at {
            return Err(SilenceError::Invalid(
                "endsAt",
                "start time must be before end time".into(),
            ));
        }
        if p.ends_at <= now {
            return Err(SilenceError::Invalid(
                "endsAt",
                "end time is in the past".into(),
            ));
        }
        let mut map = self.inner.write();
        let mut expire_old = None;
        let id = match p.id.as_deref().filter(|s| !s.is_empty()) {
            Some(id) => {
                let (old, _) = map
                    .get(id)
                    .ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
                let in_place = state(old, now) != "expired"
                    && old.matchers == p.matchers
                    && (state(old, now) == "pending" || old.starts_at == p.starts_at);
                if in_place {
                    id.to_string()
                } else {
                    expire_old = Some(id.to_string());
                    uuid::Uuid::new_v4().to_string()
                }
            }
            None => {
                if map.len() >= self.max {
                    return Err(SilenceError::Invalid(
                        "matchers",
                        format!("silence limit of {} reached", self.max),
                    ));
                }
                uuid::Uuid::new_v4().to_string()
            }
        };
        let mut recs = Vec::new();
        if let Some(old) = expire_old
            && let Some((s, _)) = map.get_mut(&old)
        {
            expire(s, now);
            recs.push(s.clone());
        }
        let s = Silence {
            id: id.clone(),
            matchers: p.matchers,
            starts_at: p.starts_at.max(now),
            ends_at: p.ends_at,
            created_by: p.created_by,
            comment: p.comment,
            updated_at: now,
        };
        recs.push(s.clone());
        self.journal.append(&recs)?;
        map.insert(id.clone(), (s, compiled));
        Ok(id)
    }

    /// Expires a silence now.
    pub fn expire(&self, id: &str, now: DateTime<Utc>) -> Result<(), SilenceError> {
        let mut map = self.inner.write();
        let (s, _) = map
            .get_mut(id)
            .ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
        if state(s, now) == "expired" {
            return Err(SilenceError::Invalid(
                "id",
                format!("silence {id} already expired"),
            ));
        }
        expire(s, now);
        self.journal.append(std::slice::from_ref(s))?;
        Ok(())
    }

    /// One silence.
    pub fn get(&self, id: &str) -> Option<Silence> {
        self.inner.read().get(id).map(|(s, _)| s.clone())
    }

    /// Every silence.
    pub fn list(&self) -> Vec<Silence> {
        let mut v: Vec<Silence> = self.inner.read().values().map(|(s, _)| s.clone()).collect();
        v.sort_by_key(|b| std::cmp::Reverse(b.updated_at));
        v
    }

    /// Ids of the active silences muting `labels`.
    pub fn mutes(&self, labels: &Labels, now: DateTime<Utc>) -> Vec<String> {
        self.inner
            .read()
            .values()
            .filter(|(s, m)| state(s, now) == "active" && m.matches(labels))
            .map(|(s, _)| s.id.clone())
            .collect()
    }

    /// Drops silences expired longer than the retention and compacts.
    pub fn gc(&self, now: DateTime<Utc>) -> std::io::Result<()> {
        let mut map = self.inner.write();
        let cutoff = now - ChronoDuration::hours(RETENTION_HOURS);
        map.retain(|_, (s, _)| s.ends_at > cutoff);
        if self.journal.len() > map.len() * 2 + 16 || map.is_empty() {
            let all: Vec<&Silence> = map.values().map(|(s, _)| s).collect();
            self.journal.rewrite(&all)?;
        }
        Ok(())
    }
}

fn expire(s: &mut Silence, now: DateTime<Utc>) {
    if s.starts_at > now {
        s.starts_at = now;
    }
    s.ends_at = now;
    s.updated_at = now;
}

fn compile(ms: &[ApiMatcher]) -> Result<Matchers, String> {
    ms.iter()
        .map(|m| m.compile())
        .collect::<Result<Vec<_>, _>>()
        .map(Matchers)
}
