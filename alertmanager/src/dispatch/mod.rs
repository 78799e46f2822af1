//! Dispatch: alerts are routed into aggregation groups; each group waits
//! `group_wait`, then flushes every `group_interval` through the pipeline
//! mute (silences, inhibition, time intervals) → dedup (notification log,
//! acknowledgements, repeat interval) → deliver (with retries) → log.

pub mod route;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tidewatch_common::Labels;
use tokio_util::sync::CancellationToken;

use crate::inhibit::Inhibitor;
use crate::metrics::Metrics;
use crate::model::{Alert, Fingerprint, fp_hex};
use crate::nflog::{self, NotificationLog};
use crate::notify::{Integration, Notification, Notifier};
use crate::objects::{HistoryEntry, ObjectStore};
use crate::silence::Silences;
use crate::timeinterval::TimeInterval;
pub use route::Route;

/// The parameters of the route a group belongs to.
#[derive(Clone, Debug)]
struct RouteParams {
    receiver: String,
    group_wait: Duration,
    group_interval: Duration,
    repeat_interval: Duration,
    mute: Vec<String>,
    active: Vec<String>,
}

/// An aggregation group.
pub struct Group {
    /// `route id` + `:` + grouping labels.
    pub key: String,
    /// Grouping labels.
    pub labels: Labels,
    params: RouteParams,
    alerts: Mutex<HashMap<Fingerprint, Alert>>,
}

impl Group {
    /// Receiver name.
    pub fn receiver(&self) -> &str {
        &self.params.receiver
    }

    /// The group's alerts.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.lock().values().cloned().collect()
    }
}

/// What muting says about one alert.
#[derive(Clone, Debug, Default)]
pub struct MuteStatus {
    /// Active silences matching it.
    pub silenced_by: Vec<String>,
    /// Firing alerts inhibiting it.
    pub inhibited_by: Vec<String>,
}

/// Shared services of the pipeline.
pub struct Pipeline {
    /// Silences.
    pub silences: Arc<Silences>,
    /// Inhibition.
    pub inhibitor: Arc<Inhibitor>,
    /// Notification log.
    pub nflog: Arc<NotificationLog>,
    /// Delivery.
    pub notifier: Arc<Notifier>,
    /// Platform objects (history, acks).
    pub objects: Arc<ObjectStore>,
    /// Self-metrics.
    pub metrics: Metrics,
}

impl Pipeline {
    /// Silences and inhibitions of an alert now.
    pub fn mute_status(&self, a: &Alert, now: DateTime<Utc>) -> MuteStatus {
        MuteStatus {
            silenced_by: self.silences.mutes(&a.labels, now),
            inhibited_by: self
                .inhibitor
                .inhibited_by(&a.labels, a.fingerprint(), now)
                .into_iter()
                .map(fp_hex)
                .collect(),
        }
    }
}

/// Routes alerts into groups and runs their timers.
pub struct Dispatcher {
    route: Route,
    receivers: HashMap<String, Vec<Integration>>,
    intervals: HashMap<String, Vec<TimeInterval>>,
    groups: Mutex<HashMap<String, Arc<Group>>>,
    pipeline: Arc<Pipeline>,
    shutdown: CancellationToken,
}

impl Dispatcher {
    /// A dispatcher.
    pub fn new(
        route: Route,
        receivers: HashMap<String, Vec<Integration>>,
        intervals: HashMap<String, Vec<TimeInterval>>,
        pipeline: Arc<Pipeline>,
        shutdown: CancellationToken,
    ) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            route,
            receivers,
            intervals,
            groups: Mutex::new(HashMap::new()),
            pipeline,
            shutdown,
        })
    }

    /// The routing tree.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The pipeline services.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// Receiver names known to the dispatcher.
    pub fn receiver_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        self.route.receivers(&mut v);
        for k in self.receivers.keys() {
            if !v.contains(k) {
                v.push(k.clone());
            }
        }
        v
    }

    /// Routes alerts into their groups (creating and starting groups).
    pub fn dispatch(self: &Arc<Self>, alerts: &[Alert]) {
        for a in alerts {
            self.pipeline.inhibitor.observe(a);
            for r in self.route.match_alert(&a.labels) {
                let labels = r.group_labels(&a.labels);
                let key = format!("{}:{}", r.id, labels_text(&labels));
                let mut groups = self.groups.lock();
                if let Some(g) = groups.get(&key) {
                    g.alerts.lock().insert(a.fingerprint(), a.clone());
                    continue;
                }
                let g = Arc::new(Group {
                    key: key.clone(),
                    labels,
                    params: RouteParams {
                        receiver: r.receiver.clone(),
                        group_wait: r.group_wait,
                        group_interval: r.group_interval,
                        repeat_interval: r.repeat_interval,
                        mute: r.mute_time_intervals.clone(),
                        active: r.active_time_intervals.clone(),
                    },
                    alerts: Mutex::new(HashMap::new()),
                });
                // The alert goes in before the group's timer starts: with
                // `group_wait: 0s` the first flush may run at once on
                // another thread and must see it.
                g.alerts.lock().insert(a.fingerprint(), a.clone());
                groups.insert(key, Arc::clone(&g));
                self.pipeline.metrics.groups.inc();
                let d = Arc::clone(self);
                tokio::spawn(async move { d.run_group(g).await });
            }
        }
    }

    /// A snapshot of the groups.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.groups.lock().values().cloned().collect()
    }

    async fn run_group(self: Arc<Self>, g: Arc<Group>) {
        tokio::select! {
            _ = tokio::time::sleep(g.params.group_wait) => {}
            _ = self.shutdown.cancelled() => return,
        }
        loop {
            self.flush(&g).await;
            {
                let mut groups = self.groups.lock();
                if g.alerts.lock().is_empty() {
                    groups.remove(&g.key);
                    self.pipeline.metrics.groups.dec();
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(g.params.group_interval) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    fn time_muted(&self, p: &RouteParams, now: DateTime<Utc>) -> bool {
        let in_any = |names: &[String]| {
            names.iter().any(|n| {
                self.intervals
                    .get(n)
                    .is_some_and(|tis| tis.iter().any(|t| t.contains(now)))
            })
        };
        in_any(&p.mute) || (!p.active.is_empty() && !in_any(&p.active))
    }

    /// Runs one flush of a group.
    async fn flush(&self, g: &Group) {
        let now = Utc::now();
        let snapshot: Vec<Alert> = g.alerts.lock().values().cloned().collect();
        let time_muted = self.time_muted(&g.params, now);
        let mut send = Vec::with_capacity(snapshot.len());
        if !time_muted {
            for a in &snapshot {
                let m = self.pipeline.mute_status(a, now);
                if m.silenced_by.is_empty() && m.inhibited_by.is_empty() {
                    send.push(a.clone());
                }
            }
        }
        send.sort_by(|a, b| a.starts_at.cmp(&b.starts_at).then(a.labels.cmp(&b.labels)));
        let firing: BTreeSet<Fingerprint> = send
            .iter()
            .filter(|a| !a.resolved_at(now))
            .map(|a| a.fingerprint())
            .collect();
        let resolved: BTreeSet<Fingerprint> = send
            .iter()
            .filter(|a| a.resolved_at(now))
            .map(|a| a.fingerprint())
            .collect();
        let acked = !firing.is_empty()
            && firing
                .iter()
                .all(|fp| self.pipeline.objects.ack_of(*fp, now).is_some());
        let platform = [Integration::Platform];
        let integrations: &[Integration] = match self.receivers.get(&g.params.receiver) {
            Some(v) => v,
            None if g.params.receiver == crate::PLATFORM_RECEIVER => &platform,
            None => &[],
        };
        let repeat = chrono::Duration::from_std(g.params.repeat_interval)
            .unwrap_or(chrono::Duration::hours(4));
        let mut all_ok = true;
        let mut history = Vec::new();
        for integ in integrations {
            let name = integ.name();
            let entry = self.pipeline.nflog.get(&g.key, &g.params.receiver, &name);
            if !nflog::needs_update(
                entry.as_ref(),
                &firing,
                &resolved,
                integ.send_resolved(),
                repeat,
                now,
                acked,
            ) {
                continue;
            }
            let n = Notification {
                receiver: g.params.receiver.clone(),
                group_key: g.key.clone(),
                group_labels: g.labels.clone(),
                alerts: send.clone(),
                now,
            };
            let result = self.pipeline.notifier.send(integ, &n).await;
            let kind = name.split('[').next().unwrap_or("").to_string();
            let mut names: Vec<String> = send.iter().map(|a| a.name().to_string()).collect();
            names.sort_unstable();
            names.dedup();
            history.push(HistoryEntry {
                time: now,
                group_key: g.key.clone(),
                receiver: g.params.receiver.clone(),
                integration: name.clone(),
                firing: firing.iter().map(|f| fp_hex(*f)).collect(),
                resolved: resolved.iter().map(|f| fp_hex(*f)).collect(),
                alertnames: names,
                ok: result.is_ok(),
                error: result.as_ref().err().cloned(),
            });
            match result {
                Ok(()) => {
                    Metrics::inc(&self.pipeline.metrics.notifications, "integration", &kind);
                    let e = nflog::Entry {
                        group_key: g.key.clone(),
                        receiver: g.params.receiver.clone(),
                        integration: name,
                        firing: firing.clone(),
                        resolved: resolved.clone(),
                        timestamp: now,
                    };
                    if let Err(e) = self.pipeline.nflog.log(e) {
                        tracing::error!(error = %e, "writing the notification log");
                        all_ok = false;
                    }
                }
                Err(e) => {
                    all_ok = false;
                    Metrics::inc(
                        &self.pipeline.metrics.notifications_failed,
                        "integration",
                        &kind,
                    );
                    tracing::warn!(group = %g.key, receiver = %g.params.receiver, error = %e, "notification failed");
                }
            }
        }
        if !history.is_empty()
            && let Err(e) = self.pipeline.objects.add_history(history)
        {
            tracing::error!(error = %e, "writing alert history");
        }
        if all_ok {
            // Resolved alerts that did not change meanwhile leave the group.
            let mut alerts = g.alerts.lock();
            for a in snapshot.iter().filter(|a| a.resolved_at(now)) {
                let fp = a.fingerprint();
                if alerts.get(&fp).is_some_and(|cur| cur == a) {
                    alerts.remove(&fp);
                    let _ = self.pipeline.objects.clear_ack(fp);
                }
            }
        }
    }
}

/// `{a="b", c="d"}`.
pub fn labels_text(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|x| {
            format!(
                "{}=\"{}\"",
                x.name,
                tidewatch_common::labels::escape_value(&x.value)
            )
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}
