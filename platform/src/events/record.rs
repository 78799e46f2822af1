//! An event as the platform stores and forwards it, its conversion from a
//! core v1 Event, and the `(uid, count)` de-duplication.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The object an event is about.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InvolvedObject {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Uid.
    pub uid: String,
}

/// One event as the aggregator receives it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EventRecord {
    /// Platform cluster id.
    pub cluster_id: String,
    /// Namespace.
    pub namespace: String,
    /// Event object name.
    pub name: String,
    /// Event object uid.
    pub uid: String,
    /// Reason (`BackOff`, `Scheduled`…).
    pub reason: String,
    /// Message.
    pub message: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Occurrences.
    pub count: i64,
    /// First occurrence (RFC 3339), empty if unknown.
    pub first_timestamp: String,
    /// Last occurrence (RFC 3339), empty if unknown.
    pub last_timestamp: String,
    /// The object it is about.
    pub involved_object: InvolvedObject,
    /// Reporting component.
    pub source_component: String,
    /// Event resourceVersion.
    pub resource_version: String,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// Converts a core v1 Event (as JSON) to a record.
pub fn record_of(cluster_id: &str, ev: &Value) -> EventRecord {
    let m = &ev["metadata"];
    let series = &ev["series"];
    let count = ev["count"]
        .as_i64()
        .or_else(|| series["count"].as_i64())
        .unwrap_or(1);
    let first = Some(s(&ev["firstTimestamp"]))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| s(&ev["eventTime"]));
    let last = Some(s(&ev["lastTimestamp"]))
        .filter(|t| !t.is_empty())
        .or_else(|| Some(s(&series["lastObservedTime"])).filter(|t| !t.is_empty()))
        .unwrap_or_else(|| first.clone());
    let io = &ev["involvedObject"];
    let source = Some(s(&ev["source"]["component"]))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| s(&ev["reportingComponent"]));
    EventRecord {
        cluster_id: cluster_id.to_string(),
        namespace: s(&m["namespace"]),
        name: s(&m["name"]),
        uid: s(&m["uid"]),
        reason: s(&ev["reason"]),
        message: s(&ev["message"]),
        kind: s(&ev["type"]),
        count,
        first_timestamp: first,
        last_timestamp: last,
        involved_object: InvolvedObject {
            kind: s(&io["kind"]),
            name: s(&io["name"]),
            namespace: s(&io["namespace"]),
            uid: s(&io["uid"]),
        },
        source_component: source,
        resource_version: s(&m["resourceVersion"]),
    }
}

impl EventRecord {
    /// The last occurrence, if the timestamp parses.
    pub fn last_seen(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.last_timestamp)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// Remembers the highest `count` seen per uid, forgetting the oldest uids
/// beyond `capacity`.
pub struct Dedupe {
    seen: HashMap<String, i64>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Dedupe {
    /// Empty, holding at most `capacity` uids.
    pub fn new(capacity: usize) -> Dedupe {
        Dedupe {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// True when `(uid, count)` is new (and remembers it).
    pub fn admit(&mut self, uid: &str, count: i64) -> bool {
        match self.seen.get_mut(uid) {
            Some(c) if *c >= count => false,
            Some(c) => {
                *c = count;
                true
            }
            None => {
                if self.order.len() >= self.capacity
                    && let Some(old) = self.order.pop_front()
                {
                    self.seen.remove(&old);
                }
                self.order.push_back(uid.to_string());
                self.seen.insert(uid.to_string(), count);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_by_uid_and_count() {
        let mut d = Dedupe::new(2);
        assert!(d.admit("a", 1));
        assert!(!d.admit("a", 1));
        assert!(d.admit("a", 2));
        assert!(!d.admit("a", 1));
        assert!(d.admit("b", 1));
        assert!(d.admit("c", 1)); // evicts "a"
        assert!(d.admit("a", 2));
    }

    #[test]
    fn records_fall_back_to_events_k8s_io_fields() {
        let ev = serde_json::json!({"metadata": {"name": "e", "namespace": "n", "uid": "u", "resourceVersion": "7"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "series": {"count": 4, "lastObservedTime": "2026-01-01T00:05:00.000000Z"},
            "reportingComponent": "scheduler", "reason": "FailedScheduling", "type": "Warning",
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "n", "uid": "pu"}});
        let r = record_of("c1", &ev);
        assert_eq!(r.count, 4);
        assert_eq!(r.first_timestamp, "2026-01-01T00:00:00.000000Z");
        assert_eq!(r.last_timestamp, "2026-01-01T00:05:00.000000Z");
        assert_eq!(r.source_component, "scheduler");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["type"], "Warning");
        assert_eq!(j["involved_object"]["uid"], "pu");
    }
}
