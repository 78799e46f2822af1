//! Cluster events (TKEStack's PersistentEvent): `POST /api/v1/events` and
//! the `events` table.
//!
//! Events are few (thousands per hour), so they live in memory and in an
//! append-only JSON-lines log that is fsynced before the request is
//! acknowledged and replayed on open. An event is identified by its `uid`
//! and `count` (Kubernetes bumps `count` when an event repeats), so posting
//! the same event twice stores it once.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The object an event is about.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InvolvedObject {
    /// Kind (`Pod`, `Node`, …).
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// UID.
    pub uid: String,
}

/// One cluster event.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Cluster the event comes from.
    pub cluster_id: String,
    /// Namespace of the event object.
    #[serde(default)]
    pub namespace: String,
    /// Name of the event object.
    #[serde(default)]
    pub name: String,
    /// UID of the event object.
    pub uid: String,
    /// Short machine-readable reason (`BackOff`).
    #[serde(default)]
    pub reason: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// `Normal` or `Warning`.
    #[serde(default, rename = "type")]
    pub event_type: String,
    /// How many times it occurred.
    #[serde(default = "one")]
    pub count: i64,
    /// First occurrence.
    pub first_timestamp: DateTime<Utc>,
    /// Last occurrence.
    pub last_timestamp: DateTime<Utc>,
    /// The object it is about.
    #[serde(default)]
    pub involved_object: InvolvedObject,
    /// Component that reported it (`kubelet`).
    #[serde(default)]
    pub source_component: String,
    /// Resource version of the event object.
    #[serde(default)]
    pub resource_version: String,
}

fn one() -> i64 {
    1
}

/// Body of `POST /api/v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// The events.
    pub events: Vec<Event>,
}

/// The event store.
pub struct EventStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    seen: HashSet<(String, i64)>,
    events: Vec<Arc<Event>>,
}

impl EventStore {
    /// Opens `dir/events.jsonl`, replaying it.
    pub fn open(dir: &Path) -> anyhow::Result<EventStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("events.jsonl");
        let mut seen = HashSet::new();
        let mut events = Vec::new();
        let mut valid_len = 0u64;
        if path.exists() {
            let mut r = BufReader::new(File::open(&path)?);
            let mut line = String::new();
            loop {
                line.clear();
                let n = r.read_line(&mut line)?;
                if n == 0 || !line.ends_with('\n') {
                    break;
                }
                let Ok(e) = serde_json::from_str::<Event>(&line) else {
                    break;
                };
                valid_len += n as u64;
                if seen.insert((e.uid.clone(), e.count)) {
                    events.push(Arc::new(e));
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if file.metadata()?.len() > valid_len {
            tracing::warn!(path = %path.display(), valid_len, "truncating torn tail of the event log");
            file.set_len(valid_len)?;
        }
        Ok(EventStore {
            path,
            inner: Mutex::new(Inner { file, seen, events }),
        })
    }

    /// Validates and stores events durably; returns how many were new.
    pub fn append(&self, events: Vec<Event>) -> Result<usize, String> {
        for (i, e) in events.iter().enumerate() {
            if e.uid.is_empty() {
                return Err(format!("events[{i}].uid: must not be empty"));
            }
            if e.cluster_id.is_empty() {
                return Err(format!("events[{i}].cluster_id: must not be empty"));
            }
            if e.count < 1 {
                return Err(format!("events[{i}].count: must be at least 1"));
            }
            if e.last_timestamp < e.first_timestamp {
                return Err(format!(
                    "events[{i}].last_timestamp: is before first_timestamp"
                ));
            }
        }
        let mut inner = self.inner.lock();
        let mut buf = Vec::new();
        let mut fresh = Vec::new();
        for e in events {
            if inner.seen.contains(&(e.uid.clone(), e.count))
                || fresh
                    .iter()
                    .any(|f: &Event| f.uid == e.uid && f.count == e.count)
            {
                continue;
            }
            serde_json::to_writer(&mut buf, &e).map_err(|e| e.to_string())?;
            buf.push(b'\n');
            fresh.push(e);
        }
        if fresh.is_empty() {
            return Ok(0);
        }
        let io = |e: std::io::Error| format!("{}: {e}", self.path.display());
        inner.file.write_all(&buf).map_err(io)?;
        inner.file.sync_data().map_err(io)?;
        let n = fresh.len();
        for e in fresh {
            inner.seen.insert((e.uid.clone(), e.count));
            inner.events.push(Arc::new(e));
        }
        Ok(n)
    }

    /// Drops events whose last occurrence is before `cutoff` and rewrites
    /// the log atomically.
    pub fn apply_retention(&self, cutoff: DateTime<Utc>) -> anyhow::Result<usize> {
        self.delete_where(|e| e.last_timestamp < cutoff)
    }

    /// Drops the events of `cluster_id` whose last occurrence is before
    /// `cutoff` (a per-cluster retention the platform enforces).
    pub fn delete_cluster_before(
        &self,
        cluster_id: &str,
        cutoff: DateTime<Utc>,
    ) -> anyhow::Result<usize> {
        self.delete_where(|e| e.cluster_id == cluster_id && e.last_timestamp < cutoff)
    }

    fn delete_where(&self, drop: impl Fn(&Event) -> bool) -> anyhow::Result<usize> {
        let mut inner = self.inner.lock();
        let before = inner.events.len();
        inner.events.retain(|e| !drop(e));
        let removed = before - inner.events.len();
        if removed == 0 {
            return Ok(0);
        }
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut f = File::create(&tmp)?;
        for e in &inner.events {
            serde_json::to_writer(&mut f, &**e)?;
            f.write_all(b"\n")?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        inner.file = OpenOptions::new().append(true).open(&self.path)?;
        inner.seen = inner
            .events
            .iter()
            .map(|e| (e.uid.clone(), e.count))
            .collect();
        Ok(removed)
    }

    /// Schema of the `events` table.
    pub fn schema() -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        let s = |n: &str| Field::new(n, DataType::Utf8, false);
        Arc::new(Schema::new(vec![
            s("cluster_id"),
            s("namespace"),
            s("name"),
            s("uid"),
            s("reason"),
            s("message"),
            s("type"),
            Field::new("count", DataType::Int64, false),
            Field::new("first_timestamp", ts.clone(), false),
            Field::new("last_timestamp", ts, false),
            s("involved_kind"),
            s("involved_name"),
            s("involved_namespace"),
            s("involved_uid"),
            s("source_component"),
            s("resource_version"),
        ]))
    }

    /// All events as one record batch.
    pub fn batch(&self) -> datafusion::error::Result<RecordBatch> {
        let events: Vec<Arc<Event>> = self.inner.lock().events.clone();
        let col = |f: &dyn Fn(&Event) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(events.iter().map(|e| f(e))))
        };
        let ts = |f: &dyn Fn(&Event) -> DateTime<Utc>| -> ArrayRef {
            Arc::new(
                TimestampNanosecondArray::from_iter_values(
                    events
                        .iter()
                        .map(|e| f(e).timestamp_nanos_opt().unwrap_or(i64::MAX)),
                )
                .with_timezone("UTC"),
            )
        };
        Ok(RecordBatch::try_new(
            Self::schema(),
            vec![
                col(&|e| &e.cluster_id),
                col(&|e| &e.namespace),
                col(&|e| &e.name),
                col(&|e| &e.uid),
                col(&|e| &e.reason),
                col(&|e| &e.message),
                col(&|e| &e.event_type),
                Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.count))),
                ts(&|e| e.first_timestamp),
                ts(&|e| e.last_timestamp),
                col(&|e| &e.involved_object.kind),
                col(&|e| &e.involved_object.name),
                col(&|e| &e.involved_object.namespace),
                col(&|e| &e.involved_object.uid),
                col(&|e| &e.source_component),
                col(&|e| &e.resource_version),
            ],
        )?)
    }
}
