//! Runs rule groups on their intervals: evaluates through a [`Querier`],
//! hands alerts to the engine, writes recording results and
//! `ALERTS`/`ALERTS_FOR_STATE`, and persists each group's alert state so a
//! restart keeps `for` progress and does not re-notify.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tidewatch_common::Labels;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::model::Alert;
use crate::persist::{read_json, write_json};
use crate::rules::group::{ActiveAlert, AlertState, Group, Rule, with_external};
use crate::rules::querier::Querier;
use crate::rules::writer::{ResultWriter, RuleBackend};

/// Where alerts go.
pub type AlertSink = Arc<dyn Fn(Vec<Alert>) + Send + Sync>;

/// Persisted state of one group.
#[derive(Default, Serialize, Deserialize)]
struct GroupState {
    /// Per rule, in order: name and instances.
    rules: Vec<(String, Vec<ActiveAlert>)>,
}

/// Rule group status for the API.
#[derive(Clone, Debug, Serialize)]
pub struct GroupStatus {
    /// Group name.
    pub name: String,
    /// Source.
    pub source: String,
    /// Interval, seconds.
    pub interval_seconds: f64,
    /// Last evaluation (RFC 3339), if any.
    pub last_evaluation: Option<String>,
    /// Last errors.
    pub last_errors: Vec<String>,
    /// Alert instances: (rule, state, labels).
    pub alerts: Vec<serde_json::Value>,
}

/// Last evaluation time and errors of a group.
type StatusCell = Arc<Mutex<(Option<String>, Vec<String>)>>;

struct Running {
    group: Arc<tokio::sync::Mutex<Group>>,
    stop: CancellationToken,
    status: StatusCell,
}

/// The rule manager.
pub struct RuleManager {
    querier: Arc<dyn Querier>,
    sink: AlertSink,
    writer: Option<Arc<dyn ResultWriter>>,
    external_labels: BTreeMap<String, String>,
    external_url: String,
    state_dir: PathBuf,
    running: Mutex<HashMap<String, Running>>,
    metrics: Metrics,
    shutdown: CancellationToken,
}

impl RuleManager {
    /// A manager; groups are added with [`RuleManager::set_groups`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backend: RuleBackend,
        sink: AlertSink,
        external_labels: BTreeMap<String, String>,
        external_url: String,
        state_dir: PathBuf,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> std::io::Result<Arc<RuleManager>> {
        std::fs::create_dir_all(&state_dir)?;
        Ok(Arc::new(RuleManager {
            querier: backend.querier,
            sink,
            writer: backend.writer,
            external_labels,
            external_url,
            state_dir,
            running: Mutex::new(HashMap::new()),
            metrics,
            shutdown,
        }))
    }

    fn state_path(&self, key: &str) -> PathBuf {
        let h = Labels::from_pairs([("k", key)]).stable_hash();
        self.state_dir.join(format!("{h:016x}.json"))
    }

    /// Replaces the groups whose source starts with `source_prefix` by
    /// `groups` (restarting changed ones, keeping persisted state).
    pub fn set_groups(self: &Arc<Self>, source_prefix: &str, groups: Vec<Group>) {
        let mut running = self.running.lock();
        let keys: Vec<String> = running
            .keys()
            .filter(|k| k.starts_with(source_prefix))
            .cloned()
            .collect();
        let new_keys: std::collections::HashSet<String> = groups.iter().map(|g| g.key()).collect();
        for k in keys {
            if let Some(r) = running.remove(&k) {
                r.stop.cancel();
                if !new_keys.contains(&k) {
                    // A removed group resolves what it had firing.
                    let m = Arc::clone(self);
                    let path = self.state_path(&k);
                    tokio::spawn(async move {
                        let g = r.group.lock().await;
                        let now = chrono::Utc::now();
                        let resolved: Vec<Alert> = g
                            .alerts()
                            .into_iter()
                            .filter(|(_, a)| a.state == AlertState::Firing)
                            .map(|(_, a)| Alert {
                                labels: with_external(&a.labels, &m.external_labels),
                                annotations: a.annotations,
                                starts_at: chrono::DateTime::from_timestamp_millis(
                                    a.fired_at.unwrap_or(a.active_at),
                                )
                                .unwrap_or_default(),
                                ends_at: now,
                                generator_url: String::new(),
                                updated_at: now,
                                timeout: false,
                            })
                            .collect();
                        let _ = std::fs::remove_file(path);
                        if !resolved.is_empty() {
                            (m.sink)(resolved);
                        }
                    });
                }
            }
        }
        for mut g in groups {
            let key = g.key();
            if let Ok(Some(st)) = read_json::<GroupState>(&self.state_path(&key)) {
                for (i, r) in g.rules.iter().enumerate() {
                    if let Some((name, alerts)) = st.rules.get(i)
                        && name == r.name()
                        && matches!(r, Rule::Alerting { .. })
                    {
                        g.active[i] = alerts
                            .iter()
                            .map(|a| (a.labels.stable_hash(), a.clone()))
                            .collect();
                    }
                }
            }
            let stop = self.shutdown.child_token();
            let group = Arc::new(tokio::sync::Mutex::new(g));
            let status = Arc::new(Mutex::new((None, Vec::new())));
            let m = Arc::clone(self);
            let (g2, s2, st2) = (Arc::clone(&group), stop.clone(), Arc::clone(&status));
            tokio::spawn(async move { m.run(g2, s2, st2).await });
            running.insert(
                key,
                Running {
                    group,
                    stop,
                    status,
                },
            );
        }
    }

    async fn run(
        self: Arc<Self>,
        group: Arc<tokio::sync::Mutex<Group>>,
        stop: CancellationToken,
        status: StatusCell,
    ) {
        let (interval, key) = {
            let g = group.lock().await;
            (g.interval, g.key())
        };
        let interval_ms = interval.as_millis().max(1) as i64;
        // Evaluate at a stable offset within the interval, like Prometheus.
        let offset =
            (Labels::from_pairs([("k", key.as_str())]).stable_hash() % interval_ms as u64) as i64;
        loop {
            let now = chrono::Utc::now().timestamp_millis();
            let next = (now - offset).div_euclid(interval_ms) * interval_ms + offset + interval_ms;
            let first = status.lock().0.is_none();
            let wait = if first { 0 } else { (next - now).max(0) as u64 };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = stop.cancelled() => return,
            }
            let ts = chrono::Utc::now().timestamp_millis();
            let mut g = group.lock().await;
            let out = g
                .eval(
                    self.querier.as_ref(),
                    ts,
                    &self.external_labels,
                    &self.external_url,
                )
                .await;
            self.metrics.rule_evaluations.inc();
            if !out.errors.is_empty() {
                self.metrics.rule_evaluation_failures.inc();
                tracing::warn!(group = %g.name, errors = ?out.errors, "rule evaluation errors");
            }
            let state = GroupState {
                rules: g
                    .rules
                    .iter()
                    .zip(&g.active)
                    .map(|(r, a)| (r.name().to_string(), a.values().cloned().collect()))
                    .collect(),
            };
            if let Err(e) = write_json(&self.state_path(&key), &state) {
                tracing::error!(group = %g.name, error = %e, "persisting rule state");
            }
            drop(g);
            if !out.alerts.is_empty() {
                let alerts = out
                    .alerts
                    .into_iter()
                    .map(|mut a| {
                        a.labels = with_external(&a.labels, &self.external_labels);
                        a
                    })
                    .collect();
                (self.sink)(alerts);
            }
            if let Some(w) = &self.writer
                && !out.series.is_empty()
            {
                let series: Vec<(Labels, f64)> = out
                    .series
                    .iter()
                    .map(|(l, v)| (with_external(l, &self.external_labels), *v))
                    .collect();
                if let Err(e) = w.write(&series, ts).await {
                    tracing::warn!(error = %e, "writing rule results back failed");
                }
            }
            let t = chrono::DateTime::from_timestamp_millis(ts).unwrap_or_default();
            *status.lock() = (Some(t.to_rfc3339()), out.errors);
        }
    }

    /// Status of every group.
    pub async fn status(&self) -> Vec<GroupStatus> {
        let running: Vec<(Arc<tokio::sync::Mutex<Group>>, StatusCell)> = self
            .running
            .lock()
            .values()
            .map(|r| (Arc::clone(&r.group), Arc::clone(&r.status)))
            .collect();
        let mut out = Vec::new();
        for (g, st) in running {
            let g = g.lock().await;
            let (last, errors) = st.lock().clone();
            out.push(GroupStatus {
                name: g.name.clone(),
                source: g.source.clone(),
                interval_seconds: g.interval.as_secs_f64(),
                last_evaluation: last,
                last_errors: errors,
                alerts: g
                    .alerts()
                    .into_iter()
                    .map(|(rule, a)| {
                        serde_json::json!({
                            "rule": rule,
                            "state": a.state.as_str(),
                            "labels": crate::model::labels_to_map(&a.labels),
                            "value": a.value,
                        })
                    })
                    .collect(),
            });
        }
        out.sort_by(|a, b| (&a.source, &a.name).cmp(&(&b.source, &b.name)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::file::GroupDef;
    use crate::rules::querier::{QueryFuture, Sample};

    struct One;
    impl Querier for One {
        fn query<'a>(&'a self, _e: &'a str, _t: i64) -> QueryFuture<'a> {
            Box::pin(async {
                Ok(vec![Sample {
                    labels: Labels::from_pairs([("instance", "a")]),
                    value: 1.0,
                    histogram: None,
                }])
            })
        }
    }

    fn group() -> Group {
        let def: GroupDef = serde_yaml::from_str(
            "name: g\ninterval: 50ms\nrules:\n- alert: Slow\n  expr: x\n  for: 10m\n",
        )
        .unwrap();
        Group::compile(&def, "file:t", Duration::from_secs(60)).unwrap()
    }

    async fn active_at(m: &RuleManager) -> Option<(String, f64)> {
        for _ in 0..200 {
            let st = m.status().await;
            if let Some(g) = st.first()
                && g.last_evaluation.is_some()
                && let Some(a) = g.alerts.first()
            {
                return Some((
                    a["state"].as_str().unwrap().to_string(),
                    a["value"].as_f64().unwrap(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    #[tokio::test]
    async fn for_progress_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sink: AlertSink = Arc::new(|_| {});
        let make = |stop: CancellationToken| {
            RuleManager::new(
                RuleBackend {
                    querier: Arc::new(One),
                    writer: None,
                },
                sink.clone(),
                BTreeMap::new(),
                "http://x".into(),
                dir.path().to_path_buf(),
                Metrics::default(),
                stop,
            )
            .unwrap()
        };
        let stop = CancellationToken::new();
        let m = make(stop.clone());
        m.set_groups("file:", vec![group()]);
        assert_eq!(active_at(&m).await.unwrap().0, "pending");
        let key = group().key();
        let first: GroupState = read_json(&m.state_path(&key)).unwrap().unwrap();
        let since = first.rules[0].1[0].active_at;
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(120)).await;

        let stop = CancellationToken::new();
        let m = make(stop.clone());
        m.set_groups("file:", vec![group()]);
        assert_eq!(active_at(&m).await.unwrap().0, "pending");
        // Give it a few evaluations: the pending alert keeps its start.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let after: GroupState = read_json(&m.state_path(&key)).unwrap().unwrap();
        assert_eq!(after.rules[0].1[0].active_at, since);
        stop.cancel();
    }

    #[tokio::test]
    async fn results_go_to_the_backend_writer_with_external_labels() {
        use crate::rules::writer::FnWriter;
        let dir = tempfile::tempdir().unwrap();
        let got: Arc<Mutex<Vec<(Labels, f64, i64)>>> = Arc::default();
        let g2 = Arc::clone(&got);
        let writer = FnWriter(move |series: Vec<(Labels, f64)>, ts: i64| {
            g2.lock()
                .extend(series.into_iter().map(|(l, v)| (l, v, ts)));
            async { Ok(()) }
        });
        let stop = CancellationToken::new();
        let m = RuleManager::new(
            RuleBackend {
                querier: Arc::new(One),
                writer: Some(Arc::new(writer)),
            },
            Arc::new(|_| {}),
            BTreeMap::from([("replica".to_string(), "r1".to_string())]),
            "http://x".into(),
            dir.path().to_path_buf(),
            Metrics::default(),
            stop.clone(),
        )
        .unwrap();
        m.set_groups("file:", vec![group()]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !got
            .lock()
            .iter()
            .any(|(l, _, _)| l.get("__name__") == Some("ALERTS"))
        {
            assert!(std::time::Instant::now() < deadline, "nothing written");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        let w = got.lock();
        let alerts = w
            .iter()
            .find(|(l, _, _)| l.get("__name__") == Some("ALERTS"))
            .unwrap();
        assert_eq!(alerts.0.get("alertstate"), Some("pending"));
        assert_eq!(alerts.0.get("replica"), Some("r1"));
        assert_eq!(alerts.1, 1.0);
        assert!(alerts.2 > 0);
    }
}
