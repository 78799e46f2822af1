//! `aggregator.distributed` settings: the role of this process in a
//! scaled-out deployment (see `docs/scaling.md`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate, join};
use tidewatch_common::duration::serde_duration;

/// What this aggregator process does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One process stores and answers everything (the default). Blocks are
    /// still uploaded when `object_store` is set.
    #[default]
    Standalone,
    /// Stateless ingest: `POST /api/v1/write` publishes to Kafka and answers
    /// 204 once the broker acknowledged.
    Ingester,
    /// Consumes its share of the Kafka partitions (consumer group), stores
    /// them, uploads blocks, serves remote-read for its head.
    Consumer,
    /// Answers queries by fanning out to the consumers (remote-read) and
    /// reading blocks from object storage; with `kafka.brokers` set it
    /// also publishes remote-write like an ingester.
    Query,
    /// Owns the bucket: deletes replaced blocks and blocks past
    /// `aggregator.retention_time`, merges the blocks of each time
    /// partition from every replica into one. Run exactly one.
    Compactor,
}

/// `aggregator.distributed`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributedConfig {
    /// This process's role.
    pub mode: Mode,
    /// Name of this replica (unique per consumer: its blocks go under
    /// `<prefix>/blocks/<replica>/`); `$POD_NAME` when empty.
    pub replica: String,
    /// The Kafka ingest bus (ingester and consumer modes).
    pub kafka: KafkaConfig,
    /// Object storage for blocks (optional in standalone and consumer
    /// modes; read by the query mode; required by the compactor).
    pub object_store: Option<ObjectStoreConfig>,
    /// Query fan-out (query mode).
    pub query: FanoutConfig,
}

/// `aggregator.distributed.kafka`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Topic carrying remote-write payloads.
    pub topic: String,
    /// Consumer group of the aggregator replicas.
    pub group: String,
    /// Consumer session timeout: how soon a dead replica's partitions move.
    #[serde(with = "serde_duration")]
    pub session_timeout: Duration,
    /// How long the ingester waits for the broker's acknowledgement before
    /// answering 503.
    #[serde(with = "serde_duration")]
    pub ack_timeout: Duration,
    /// Most messages a consumer appends (one WAL commit) before committing
    /// offsets.
    pub max_batch_messages: usize,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: Vec::new(),
            topic: "tidewatch-remote-write".into(),
            group: "tidewatch-aggregators".into(),
            session_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(30),
            max_batch_messages: 512,
        }
    }
}

/// `aggregator.distributed.object_store`: an S3-compatible bucket. Unset
/// fields fall back to the `AWS_*` environment variables read by the
/// `object_store` crate (`AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, …).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// Bucket name (`$AWS_BUCKET` when empty).
    pub bucket: String,
    /// Endpoint URL, e.g. `http://127.0.0.1:8333` for SeaweedFS/MinIO.
    pub endpoint: String,
    /// Region.
    pub region: String,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Allow plain-HTTP endpoints.
    pub allow_http: bool,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// How often new local blocks are uploaded (consumer, standalone),
    /// the bucket is listed (query) or compacted (compactor).
    #[serde(with = "serde_duration")]
    pub sync_interval: Duration,
    /// Local cache of downloaded blocks (query mode); default
    /// `<data-dir>/object-cache`.
    pub cache_dir: Option<PathBuf>,
}

impl Default for ObjectStoreConfig {
    fn default() -> Self {
        ObjectStoreConfig {
            bucket: String::new(),
            endpoint: String::new(),
            region: "us-east-1".into(),
            prefix: "tidewatch".into(),
            allow_http: false,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            sync_interval: Duration::from_secs(10),
            cache_dir: None,
        }
    }
}

/// `aggregator.distributed.query`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FanoutConfig {
    /// Base URLs of the consumer replicas (`http://host:port`), read with
    /// Prometheus remote-read. Every one must answer for a query to succeed.
    pub replicas: Vec<String>,
    /// Timeout of one remote-read request.
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig {
            replicas: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }
}

fn err(errors: &mut Vec<FieldError>, path: String, message: &str) {
    errors.push(FieldError {
        path,
        message: message.to_string(),
        line: None,
    });
}

impl DistributedConfig {
    /// The replica name: `replica`, else `$POD_NAME`.
    pub fn replica_name(&self) -> Option<String> {
        if !self.replica.is_empty() {
            return Some(self.replica.clone());
        }
        std::env::var("POD_NAME").ok().filter(|s| !s.is_empty())
    }
}

impl Validate for DistributedConfig {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        let kp = join(path, "kafka");
        let k = &self.kafka;
        if matches!(self.mode, Mode::Ingester | Mode::Consumer) {
            if k.brokers.is_empty() {
                err(
                    errors,
                    join(&kp, "brokers"),
                    "at least one broker is required in ingester and consumer modes",
                );
            }
            if k.topic.is_empty() {
                err(errors, join(&kp, "topic"), "must not be empty");
            }
            if k.group.is_empty() && self.mode == Mode::Consumer {
                err(errors, join(&kp, "group"), "must not be empty");
            }
        }
        if k.session_timeout < Duration::from_secs(1) {
            err(errors, join(&kp, "session_timeout"), "must be at least 1s");
        }
        if k.ack_timeout.is_zero() {
            err(errors, join(&kp, "ack_timeout"), "must be positive");
        }
        if k.max_batch_messages == 0 {
            err(errors, join(&kp, "max_batch_messages"), "must be positive");
        }
        if let Some(o) = &self.object_store {
            let op = join(path, "object_store");
            if o.bucket.is_empty() && std::env::var_os("AWS_BUCKET").is_none() {
                err(errors, join(&op, "bucket"), "required (or set AWS_BUCKET)");
            }
            if o.sync_interval < Duration::from_millis(100) {
                err(errors, join(&op, "sync_interval"), "must be at least 100ms");
            }
            if self.mode == Mode::Consumer && self.replica_name().is_none() {
                err(
                    errors,
                    join(path, "replica"),
                    "required in consumer mode with object_store (or set POD_NAME): names this replica's blocks in the bucket",
                );
            }
        }
        if self.mode == Mode::Compactor && self.object_store.is_none() {
            err(
                errors,
                join(path, "object_store"),
                "required in compactor mode: the bucket it compacts",
            );
        }
        if self.mode == Mode::Query {
            let qp = join(path, "query");
            if self.query.replicas.is_empty() && self.object_store.is_none() {
                err(
                    errors,
                    join(&qp, "replicas"),
                    "query mode needs replicas to fan out to, or object_store, or both",
                );
            }
            for (i, r) in self.query.replicas.iter().enumerate() {
                if !(r.starts_with("http://") || r.starts_with("https://")) {
                    err(
                        errors,
                        format!("{}[{i}]", join(&qp, "replicas")),
                        "must be an http:// or https:// URL",
                    );
                }
            }
            if self.query.timeout.is_zero() {
                err(errors, join(&qp, "timeout"), "must be positive");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewatch_common::config::load_str;

    #[test]
    fn defaults_and_field_paths() {
        let c: DistributedConfig = load_str("{}").unwrap();
        assert_eq!(c.mode, Mode::Standalone);
        let e = load_str::<DistributedConfig>("mode: consumer\n").unwrap_err();
        assert!(e.to_string().contains("kafka.brokers"), "{e}");
        let e = load_str::<DistributedConfig>("mode: query\nquery: {replicas: [x]}\n").unwrap_err();
        assert!(e.to_string().contains("query.replicas[0]"), "{e}");
        let e = load_str::<DistributedConfig>("mode: sideways\n").unwrap_err();
        assert!(e.to_string().contains("sideways"), "{e}");
        let c: DistributedConfig = load_str(
            "mode: consumer\nreplica: a\nkafka: {brokers: ['127.0.0.1:9092']}\nobject_store: {bucket: b}\n",
        )
        .unwrap();
        assert_eq!(c.object_store.unwrap().bucket, "b");
        let e = load_str::<DistributedConfig>("mode: compactor\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("object_store: required in compactor"),
            "{e}"
        );
    }
}
