//! Aggregator configuration (`aggregator:` section).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate, join};
use tidewatch_common::duration::serde_duration;

/// Aggregator settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Blocks whose newest sample is older than this are deleted (`0s` keeps
    /// everything).
    #[serde(with = "serde_duration")]
    pub retention_time: Duration,
    /// Oldest blocks are deleted while all blocks together exceed this many
    /// bytes (0 = no size limit).
    pub retention_size_bytes: u64,
    /// How often the head is flushed into Parquet blocks.
    #[serde(with = "serde_duration")]
    pub flush_interval: Duration,
    /// The head is also flushed once it holds this many samples.
    pub flush_max_head_samples: usize,
    /// Width of a block's time partition.
    #[serde(with = "serde_duration")]
    pub block_duration: Duration,
    /// A partition is compacted into one block once it holds this many blocks.
    pub compact_min_blocks: usize,
    /// Samples older than the newest sample seen minus this window are
    /// rejected as too old.
    #[serde(with = "serde_duration")]
    pub out_of_order_window: Duration,
    /// Ingest limits.
    pub limits: Limits,
    /// Query limits and defaults.
    pub query: QueryConfig,
    /// Log store and Loki API (issue 5).
    pub logs: crate::logs::LogsConfig,
    /// Distributed mode (Kafka ingest bus, blocks in object storage, query
    /// fan-out); standalone by default. See `docs/scaling.md`.
    pub distributed: crate::distributed::DistributedConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            retention_time: Duration::from_secs(15 * 24 * 3600),
            retention_size_bytes: 0,
            flush_interval: Duration::from_secs(30 * 60),
            flush_max_head_samples: 20_000_000,
            block_duration: Duration::from_secs(2 * 3600),
            compact_min_blocks: 4,
            out_of_order_window: Duration::from_secs(3600),
            limits: Limits::default(),
            query: QueryConfig::default(),
            logs: Default::default(), // logs (issue 5)
            distributed: Default::default(),
        }
    }
}

/// Explicit ingest limits; each violation is answered with an error naming
/// the limit (`aggregator.limits.<field>`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted request body (compressed), bytes: 413 beyond.
    pub max_body_bytes: usize,
    /// Largest accepted decompressed remote-write body, bytes: 413 beyond.
    pub max_decompressed_bytes: usize,
    /// Most series in one request: 400 beyond.
    pub max_series_per_request: usize,
    /// Most labels on one series: 400 beyond.
    pub max_labels_per_series: usize,
    /// Longest label name, bytes: 400 beyond.
    pub max_label_name_length: usize,
    /// Longest label value, bytes: 400 beyond.
    pub max_label_value_length: usize,
    /// Most distinct series held in the head (0 = unlimited): 429 beyond.
    pub max_active_series: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 32 << 20,
            max_decompressed_bytes: 256 << 20,
            max_series_per_request: 100_000,
            max_labels_per_series: 64,
            max_label_name_length: 1024,
            max_label_value_length: 4096,
            max_active_series: 0,
        }
    }
}

/// Query settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Longest a query may run (a `timeout` parameter may only shorten it).
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
    /// Most samples a query may load.
    pub max_samples: usize,
    /// Instant-selector lookback.
    #[serde(with = "serde_duration")]
    pub lookback_delta: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            lookback_delta: Duration::from_secs(300),
        }
    }
}

fn positive(errors: &mut Vec<FieldError>, path: &str, field: &str, ok: bool, what: &str) {
    if !ok {
        errors.push(FieldError {
            path: join(path, field),
            message: what.to_string(),
            line: None,
        });
    }
}

impl Validate for Config {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        self.logs.validate(&join(path, "logs"), errors); // logs (issue 5)
        let e = errors;
        positive(
            e,
            path,
            "flush_interval",
            self.flush_interval >= Duration::from_millis(100),
            "must be at least 100ms",
        );
        positive(
            e,
            path,
            "block_duration",
            self.block_duration >= Duration::from_secs(60),
            "must be at least 1m",
        );
        positive(
            e,
            path,
            "flush_max_head_samples",
            self.flush_max_head_samples > 0,
            "must be positive",
        );
        positive(
            e,
            path,
            "compact_min_blocks",
            self.compact_min_blocks >= 2,
            "must be at least 2",
        );
        let lp = join(path, "limits");
        let l = &self.limits;
        for (field, v) in [
            ("max_body_bytes", l.max_body_bytes),
            ("max_decompressed_bytes", l.max_decompressed_bytes),
            ("max_series_per_request", l.max_series_per_request),
            ("max_labels_per_series", l.max_labels_per_series),
            ("max_label_name_length", l.max_label_name_length),
            ("max_label_value_length", l.max_label_value_length),
        ] {
            positive(e, &lp, field, v > 0, "must be positive");
        }
        self.distributed.validate(&join(path, "distributed"), e);
        let qp = join(path, "query");
        positive(
            e,
            &qp,
            "timeout",
            !self.query.timeout.is_zero(),
            "must be positive",
        );
        positive(
            e,
            &qp,
            "max_samples",
            self.query.max_samples > 0,
            "must be positive",
        );
        positive(
            e,
            &qp,
            "lookback_delta",
            !self.query.lookback_delta.is_zero(),
            "must be positive",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewatch_common::config::load_str;

    #[test]
    fn defaults_validate_and_errors_name_fields() {
        let c: Config = load_str("{}").unwrap();
        assert_eq!(c.flush_interval, Duration::from_secs(1800));
        let c: Config =
            load_str("retention_time: 1d\nlimits:\n  max_series_per_request: 5\n").unwrap();
        assert_eq!(c.retention_time, Duration::from_secs(86400));
        assert_eq!(c.limits.max_series_per_request, 5);
        let e = load_str::<Config>("limits:\n  max_labels_per_series: 0\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "limits.max_labels_per_series: must be positive (line 2)"
        );
        let e = load_str::<Config>("query:\n  nope: 1\n").unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
