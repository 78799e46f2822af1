//! Self-metrics of the alert engine.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labeled = Family<Vec<(String, String)>, Counter>;

/// Counters and gauges, registered under `tidewatch_alertmanager_*`.
#[derive(Clone, Default)]
pub struct Metrics {
    /// Alerts received, by source (`api`, `rules`).
    pub alerts_received: Labeled,
    /// Notifications delivered, by integration kind.
    pub notifications: Labeled,
    /// Notifications that failed after retries, by integration kind.
    pub notifications_failed: Labeled,
    /// Rule group evaluations.
    pub rule_evaluations: Counter,
    /// Rule evaluations that failed.
    pub rule_evaluation_failures: Counter,
    /// Aggregation groups alive.
    pub groups: Gauge,
}

impl Metrics {
    /// Registers every metric.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "alerts_received",
            "Alerts received",
            self.alerts_received.clone(),
        );
        r.register(
            "notifications",
            "Notifications delivered",
            self.notifications.clone(),
        );
        r.register(
            "notifications_failed",
            "Notifications failed after retries",
            self.notifications_failed.clone(),
        );
        r.register(
            "rule_evaluations",
            "Rule evaluations",
            self.rule_evaluations.clone(),
        );
        r.register(
            "rule_evaluation_failures",
            "Failed rule evaluations",
            self.rule_evaluation_failures.clone(),
        );
        r.register(
            "aggregation_groups",
            "Aggregation groups alive",
            self.groups.clone(),
        );
    }

    /// Increments a labeled counter.
    pub fn inc(f: &Labeled, key: &str, value: &str) {
        f.get_or_create(&vec![(key.to_string(), value.to_string())])
            .inc();
    }
}
