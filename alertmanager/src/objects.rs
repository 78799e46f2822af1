//! TKEStack-style alerting objects managed through the platform API:
//! channels, templates, receivers, receiver groups and alarm policies
//! (one atomically written snapshot), plus the per-user inbox, alert
//! history and acknowledgements (journals).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::config::SmtpTls;
use crate::model::Fingerprint;
use crate::persist::{Journal, read_json, write_json};

/// A delivery channel (exactly one kind).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Unique name.
    pub name: String,
    /// Human name.
    #[serde(default)]
    pub display_name: String,
    /// SMTP settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpChannel>,
    /// Webhook settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookChannel>,
}

/// SMTP channel (TKEStack `SMTP{SMTPHost, SMTPPort, TLS, Email, Password}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpChannel {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// `plain`, `starttls` or `tls`.
    #[serde(default)]
    pub tls: SmtpTls,
    /// Sender address (also the AUTH user when `username` is empty).
    pub email: String,
    /// AUTH user.
    #[serde(default)]
    pub username: Option<String>,
    /// AUTH password.
    #[serde(default)]
    pub password: Option<String>,
}

/// Webhook channel (TKEStack `Webhook{URL, Headers}`); each receiver's
/// `webhook` identity overrides the URL when set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    /// Target URL.
    pub url: String,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A message template of a channel (`Text{Header, Body}`), minijinja with
/// TKEStack's variables.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTemplate {
    /// Unique name.
    pub name: String,
    /// Channel it belongs to.
    pub channel: String,
    /// Human name.
    #[serde(default)]
    pub display_name: String,
    /// Subject/title template.
    #[serde(default)]
    pub header: String,
    /// Body template.
    #[serde(default)]
    pub body: String,
}

/// A receiver: a platform user with one identity per channel type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// Unique name.
    pub name: String,
    /// Human name.
    #[serde(default)]
    pub display_name: String,
    /// Platform user name.
    #[serde(default)]
    pub username: String,
    /// `email`, `webhook`, `mobile`, `wechat_openid` → identity.
    #[serde(default)]
    pub identities: BTreeMap<String, String>,
}

/// A named set of receivers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverGroup {
    /// Unique name.
    pub name: String,
    /// Human name.
    #[serde(default)]
    pub display_name: String,
    /// Receiver names.
    #[serde(default)]
    pub receivers: Vec<String>,
}

/// One channel + template pair of a policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyWay {
    /// Channel name.
    pub channel: String,
    /// Template name.
    pub template: String,
}

/// Threshold of a metric (`gt`, `lt`, `eq`; value a number or `true`/`false`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluator {
    /// `gt`, `lt` or `eq`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Number, `true` or `false`.
    pub value: String,
}

/// One metric of a policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmMetric {
    /// The metric (a recorded series name).
    pub metric_name: String,
    /// Shown name.
    #[serde(default)]
    pub display_name: String,
    /// `k8s_cluster`, `k8s_node`, `k8s_pod`, …
    #[serde(default)]
    pub measurement: String,
    /// Periods the condition must hold (1–5).
    pub continue_period: u32,
    /// Threshold.
    pub evaluator: Evaluator,
    /// Unit shown in messages (`%`, `MB`, …).
    #[serde(default)]
    pub unit: String,
}

/// A raw PromQL alerting rule of an alarm policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// Alert name (a metric-style name); empty: the policy's name.
    #[serde(default)]
    pub alert: String,
    /// PromQL expression; every result sample is an alert.
    pub expr: String,
    /// How long the expression must hold (`5m`); empty: fires at once.
    #[serde(default, rename = "for")]
    pub for_: String,
    /// The `severity` label (empty: none).
    #[serde(default)]
    pub severity: String,
    /// The `summary` annotation (Go template: `{{ $labels.x }}`, `{{ $value }}`).
    #[serde(default)]
    pub summary: String,
}

/// A TKEStack alarm policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmPolicy {
    /// Unique name (at most 60 characters).
    pub name: String,
    /// Cluster it applies to (added as `cluster_id` to the filter when set).
    #[serde(default)]
    pub cluster_id: String,
    /// `cluster`, `node`, `pod` or `virtualMachine`.
    #[serde(rename = "type")]
    pub policy_type: String,
    /// `all` or `part` (pod policies: selected workloads).
    #[serde(default = "all")]
    pub objects_type: String,
    /// Selected workload names when `objects_type` is `part`.
    #[serde(default)]
    pub objects: Vec<String>,
    /// Namespace of pod policies.
    #[serde(default)]
    pub namespace: String,
    /// `Deployment`, `DaemonSet` or `StatefulSet` (pod policies).
    #[serde(default)]
    pub workload_type: String,
    /// Statistics period in seconds.
    pub statistics_period: u64,
    /// Metrics and thresholds (TKEStack template mode).
    #[serde(default)]
    pub metrics: Vec<AlarmMetric>,
    /// Raw PromQL alerting rules (the dashboards' PromQL mode), compiled
    /// into the same group beside the template metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<PolicyRule>,
    /// Receivers to notify.
    #[serde(default)]
    pub receivers: Vec<String>,
    /// Receiver groups to notify.
    #[serde(default)]
    pub receiver_groups: Vec<String>,
    /// Channel + template pairs.
    #[serde(default)]
    pub notify_ways: Vec<NotifyWay>,
    /// Bumped on every update (the `version` label).
    #[serde(default)]
    pub version: u64,
}

fn all() -> String {
    "all".into()
}

/// A message in a receiver's inbox (TKEStack `Message`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboxMessage {
    /// Id.
    pub id: String,
    /// Receiver name.
    pub receiver: String,
    /// Platform user name.
    pub username: String,
    /// Channel used.
    pub channel: String,
    /// Identity the message went to.
    pub identity: String,
    /// Rendered header.
    pub header: String,
    /// Rendered body.
    pub body: String,
    /// Alarm policy, if any.
    pub alarm_policy_name: String,
    /// Cluster, if any.
    pub cluster_id: String,
    /// `firing` or `resolved`.
    pub alert_status: String,
    /// Alert fingerprint.
    pub fingerprint: String,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// Read by the user.
    pub read: bool,
}

/// One delivery attempt outcome of a notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When.
    pub time: DateTime<Utc>,
    /// Group key.
    pub group_key: String,
    /// Receiver.
    pub receiver: String,
    /// Integration (`webhook[0]`, `email[0]`, `platform`).
    pub integration: String,
    /// Firing alert fingerprints.
    pub firing: Vec<String>,
    /// Resolved alert fingerprints.
    pub resolved: Vec<String>,
    /// Alert names involved.
    pub alertnames: Vec<String>,
    /// Delivered or not.
    pub ok: bool,
    /// Error when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An acknowledgement of a firing alert: repeats stop until it resolves or
/// `until` passes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// Alert fingerprint (hex).
    pub fingerprint: String,
    /// Who.
    pub by: String,
    /// Why.
    pub comment: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Expiry.
    pub until: DateTime<Utc>,
    /// Withdrawn (alert resolved or ack deleted).
    #[serde(default)]
    pub cleared: bool,
}

/// The snapshot-persisted configuration objects.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Objects {
    /// Channels by name.
    pub channels: BTreeMap<String, Channel>,
    /// Templates by name.
    pub templates: BTreeMap<String, NotifyTemplate>,
    /// Receivers by name.
    pub receivers: BTreeMap<String, Receiver>,
    /// Receiver groups by name.
    pub receiver_groups: BTreeMap<String, ReceiverGroup>,
    /// Alarm policies by name.
    pub alarm_policies: BTreeMap<String, AlarmPolicy>,
}

/// The object store.
pub struct ObjectStore {
    path: PathBuf,
    objects: RwLock<Objects>,
    inbox: RwLock<Vec<InboxMessage>>,
    inbox_journal: Journal,
    history: RwLock<std::collections::VecDeque<HistoryEntry>>,
    history_journal: Journal,
    acks: RwLock<HashMap<Fingerprint, Ack>>,
    ack_journal: Journal,
    max_history: usize,
}

impl ObjectStore {
    /// Opens the store in `dir`.
    pub fn open(dir: &Path, max_history: usize) -> std::io::Result<ObjectStore> {
        let path = dir.join("objects.json");
        let objects: Objects = read_json(&path)?.unwrap_or_default();
        let (inbox_journal, msgs) = Journal::open::<InboxMessage>(&dir.join("inbox.jsonl"))?;
        let mut by_id: BTreeMap<String, InboxMessage> = BTreeMap::new();
        for m in msgs {
            by_id.insert(m.id.clone(), m);
        }
        let mut inbox: Vec<InboxMessage> = by_id.into_values().collect();
        inbox.sort_by_key(|a| a.created_at);
        if inbox.len() > max_history {
            inbox.drain(..inbox.len() - max_history);
        }
        if inbox_journal.len() > inbox.len() * 2 + 16 {
            inbox_journal.rewrite(&inbox)?;
        }
        let (history_journal, mut hist) =
            Journal::open::<HistoryEntry>(&dir.join("history.jsonl"))?;
        if hist.len() > max_history {
            hist.drain(..hist.len() - max_history);
            history_journal.rewrite(&hist)?;
        }
        let (ack_journal, ack_recs) = Journal::open::<Ack>(&dir.join("acks.jsonl"))?;
        let mut acks = HashMap::new();
        for a in ack_recs {
            if let Some(fp) = crate::model::parse_fp(&a.fingerprint) {
                if a.cleared {
                    acks.remove(&fp);
                } else {
                    acks.insert(fp, a);
                }
            }
        }
        let live: Vec<&Ack> = acks.values().collect();
        ack_journal.rewrite(&live)?;
        Ok(ObjectStore {
            path,
            objects: RwLock::new(objects),
            inbox: RwLock::new(inbox),
            inbox_journal,
            history: RwLock::new(hist.into()),
            history_journal,
            acks: RwLock::new(acks),
            ack_journal,
            max_history,
        })
    }

    /// A copy of the objects.
    pub fn objects(&self) -> Objects {
        self.objects.read().clone()
    }

    /// Reads the objects under the lock.
    pub fn read<R>(&self, f: impl FnOnce(&Objects) -> R) -> R {
        f(&self.objects.read())
    }

    /// Changes the objects and persists them when `f` succeeds.
    pub fn update<R, E: From<std::io::Error>>(
        &self,
        f: impl FnOnce(&mut Objects) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut g = self.objects.write();
        let mut next = g.clone();
        let r = f(&mut next)?;
        write_json(&self.path, &next)?;
        *g = next;
        Ok(r)
    }

    /// Adds inbox messages.
    pub fn add_messages(&self, msgs: Vec<InboxMessage>) -> std::io::Result<()> {
        self.inbox_journal.append(&msgs)?;
        let mut g = self.inbox.write();
        g.extend(msgs);
        // The inbox keeps as many messages as the history keeps entries.
        if g.len() > self.max_history {
            let excess = g.len() - self.max_history;
            g.drain(..excess);
        }
        if self.inbox_journal.len() > self.max_history * 2 + 16 {
            self.inbox_journal.rewrite(&g)?;
        }
        Ok(())
    }

    /// Inbox messages, newest first, optionally for one receiver/user.
    pub fn inbox(&self, who: Option<&str>, unread_only: bool) -> Vec<InboxMessage> {
        self.inbox
            .read()
            .iter()
            .rev()
            .filter(|m| who.is_none_or(|w| m.receiver == w || m.username == w))
            .filter(|m| !unread_only || !m.read)
            .cloned()
            .collect()
    }

    /// Marks a message read or unread; `None` when it does not exist.
    pub fn set_read(&self, id: &str, read: bool) -> std::io::Result<Option<InboxMessage>> {
        let mut g = self.inbox.write();
        let Some(m) = g.iter_mut().find(|m| m.id == id) else {
            return Ok(None);
        };
        m.read = read;
        self.inbox_journal.append(std::slice::from_ref(m))?;
        Ok(Some(m.clone()))
    }

    /// Records delivery outcomes.
    pub fn add_history(&self, entries: Vec<HistoryEntry>) -> std::io::Result<()> {
        self.history_journal.append(&entries)?;
        let mut h = self.history.write();
        h.extend(entries);
        while h.len() > self.max_history {
            h.pop_front();
        }
        if self.history_journal.len() > self.max_history * 2 {
            let v: Vec<&HistoryEntry> = h.iter().collect();
            self.history_journal.rewrite(&v)?;
        }
        Ok(())
    }

    /// History, newest first.
    pub fn history(&self) -> Vec<HistoryEntry> {
        self.history.read().iter().rev().cloned().collect()
    }

    /// Records an acknowledgement.
    pub fn ack(&self, fp: Fingerprint, a: Ack) -> std::io::Result<()> {
        self.ack_journal.append(std::slice::from_ref(&a))?;
        self.acks.write().insert(fp, a);
        Ok(())
    }

    /// Withdraws an acknowledgement (resolved or deleted).
    pub fn clear_ack(&self, fp: Fingerprint) -> std::io::Result<bool> {
        let mut g = self.acks.write();
        match g.remove(&fp) {
            Some(mut a) => {
                a.cleared = true;
                self.ack_journal.append(std::slice::from_ref(&a))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The live acknowledgement of an alert at `now`.
    pub fn ack_of(&self, fp: Fingerprint, now: DateTime<Utc>) -> Option<Ack> {
        self.acks.read().get(&fp).filter(|a| a.until > now).cloned()
    }

    /// Every live acknowledgement.
    pub fn acks(&self) -> Vec<Ack> {
        self.acks.read().values().cloned().collect()
    }
}
