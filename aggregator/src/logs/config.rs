//! Settings of the log store (`aggregator.logs` in the config file).

use serde::{Deserialize, Serialize};
use std::time::Duration;
use tidewatch_common::config::{FieldError, Validate, join};

/// Log store and Loki API settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// How long log lines and events are kept (by their timestamp).
    #[serde(with = "tidewatch_common::duration::serde_duration")]
    pub retention: Duration,
    /// Width of one Parquet time partition.
    #[serde(with = "tidewatch_common::duration::serde_duration")]
    pub partition: Duration,
    /// Flush the in-memory head to Parquet at least this often.
    #[serde(with = "tidewatch_common::duration::serde_duration")]
    pub flush_interval: Duration,
    /// Flush the head early once it holds this many bytes of lines.
    pub max_head_bytes: u64,
    /// Largest accepted (decompressed) push or bulk body.
    pub max_push_bytes: usize,
    /// Largest accepted single line; longer lines are refused with a 400.
    pub max_line_bytes: usize,
    /// Most label columns (distinct label names) the store accepts.
    pub max_label_names: usize,
    /// Entries remembered to drop exact re-deliveries (same stream,
    /// timestamp and line), as Loki does.
    pub dedupe_entries: usize,
    /// Most entries one log query may return (`limit` is capped to it).
    pub max_entries_per_query: usize,
    /// Most series a metric query may produce.
    pub max_query_series: usize,
    /// Most evaluation steps of a range query.
    pub max_query_steps: usize,
    /// Document fields of `POST /api/v1/logs/_bulk` that become labels
    /// (string values only); `_index` always becomes the `index` label.
    pub bulk_label_fields: Vec<String>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            retention: Duration::from_secs(7 * 24 * 3600),
            partition: Duration::from_secs(3600),
            flush_interval: Duration::from_secs(60),
            max_head_bytes: 64 << 20,
            max_push_bytes: 64 << 20,
            max_line_bytes: 256 << 10,
            max_label_names: 64,
            dedupe_entries: 1_000_000,
            max_entries_per_query: 5000,
            max_query_series: 10_000,
            max_query_steps: 11_000,
            bulk_label_fields: [
                "cluster_id",
                "namespace",
                "pod",
                "container",
                "node",
                "stream",
                "host",
                "service",
                "job",
                "level",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl Validate for LogsConfig {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        let mut err = |field: &str, message: &str| {
            errors.push(FieldError {
                path: join(path, field),
                message: message.to_string(),
                line: None,
            })
        };
        if self.partition.as_secs() < 1 {
            err("partition", "must be at least 1s");
        }
        if self.flush_interval.is_zero() {
            err("flush_interval", "must be positive");
        }
        if self.retention < self.partition {
            err("retention", "must be at least one partition");
        }
        if self.max_push_bytes == 0 {
            err("max_push_bytes", "must be positive");
        }
        if self.max_line_bytes == 0 {
            err("max_line_bytes", "must be positive");
        }
        if self.max_entries_per_query == 0 {
            err("max_entries_per_query", "must be positive");
        }
    }
}
