//! Self-metrics of the distributed mode.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Self-metrics of the distributed parts (registered under the
/// aggregator's `/metrics` prefix).
#[derive(Clone, Default)]
pub struct DistMetrics {
    /// Kafka messages appended durably and committed (consumer).
    pub messages_consumed: Counter,
    /// Kafka messages dropped as undecodable or refused by the store.
    pub messages_dropped: Counter,
    /// Series dropped by the consumer's limits (stricter than the
    /// ingester's).
    pub series_dropped: Counter,
    /// Remote-write requests published and acknowledged (ingester).
    pub requests_published: Counter,
    /// Remote-write requests the broker did not acknowledge (503).
    pub requests_unacknowledged: Counter,
    /// Blocks uploaded to object storage.
    pub blocks_uploaded: Counter,
}

impl DistMetrics {
    /// Registers the counters.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kafka_messages_consumed",
            "Kafka messages appended durably, offsets committed",
            self.messages_consumed.clone(),
        );
        registry.register(
            "kafka_messages_dropped",
            "Kafka messages dropped as undecodable or refused by the store",
            self.messages_dropped.clone(),
        );
        registry.register(
            "kafka_series_dropped",
            "Series from Kafka refused by this replica's limits",
            self.series_dropped.clone(),
        );
        registry.register(
            "kafka_requests_published",
            "Remote-write requests published to Kafka and acknowledged",
            self.requests_published.clone(),
        );
        registry.register(
            "kafka_requests_unacknowledged",
            "Remote-write requests answered 503: the broker did not acknowledge",
            self.requests_unacknowledged.clone(),
        );
        registry.register(
            "blocks_uploaded",
            "Blocks uploaded to object storage",
            self.blocks_uploaded.clone(),
        );
    }
}
