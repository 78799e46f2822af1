//! Platform configuration (`platform:` section).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate, join};
use tidewatch_common::duration::serde_duration;

/// Platform settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Metadata store: `sqlite://PATH` or `postgres://…`. Default: the SQLite
    /// file `platform.db` under the data directory.
    pub database_url: Option<String>,
    /// Password of the first `admin` user (env `TIDEWATCH_ADMIN_PASSWORD`
    /// wins over the default `admin`, which logs a warning).
    pub admin_password: Option<String>,
    /// Base64 of the 32-byte AES-256-GCM key that encrypts cluster
    /// credentials at rest (env `TIDEWATCH_PLATFORM_KEY`). Default: a key
    /// generated once into `<data dir>/secret.key` (mode 0600).
    pub encryption_key: Option<String>,
    /// How long a dashboards login session lasts.
    #[serde(with = "serde_duration")]
    pub session_ttl: Duration,
    /// Base URL of the aggregator that receives cluster events
    /// (`{aggregator_url}/api/v1/events`). Unset: events are not watched.
    pub aggregator_url: Option<String>,
    /// How often each imported cluster's health and version are refreshed.
    #[serde(with = "serde_duration")]
    pub cluster_health_interval: Duration,
    /// Authentication settings.
    pub auth: AuthConfig,
    /// Event watching and forwarding.
    pub events: EventsConfig,
    /// Request limits.
    pub limits: Limits,
    /// How tenants' queries are scoped.
    pub query_scope: QueryScopeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            admin_password: None,
            encryption_key: None,
            session_ttl: Duration::from_secs(12 * 3600),
            aggregator_url: None,
            cluster_health_interval: Duration::from_secs(30),
            auth: AuthConfig::default(),
            events: EventsConfig::default(),
            limits: Limits::default(),
            query_scope: QueryScopeConfig::default(),
        }
    }
}

/// What anonymous (unauthenticated) query requests may see.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AnonymousQueries {
    /// Full view, as a plain Prometheus/Loki would give (compatibility with
    /// Grafana and Prometheus peers that send no credentials).
    #[default]
    Allow,
    /// Reject with 401.
    Deny,
}

/// Authentication settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Anonymous PromQL/LogQL/SQL requests: `allow` (default) or `deny`.
    pub anonymous_queries: AnonymousQueries,
}

/// Event watching, the outputs events go to, and their retention.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Watch events in every imported cluster.
    pub enabled: bool,
    /// Most events per request to an output.
    pub batch_size: usize,
    /// Bound of each output's disk buffer (`<data dir>/events/<output>`);
    /// the watchers pause (back-pressure) while a buffer is full.
    pub buffer_max_bytes: u64,
    /// Most remembered `(uid, count)` pairs per cluster for de-duplication.
    pub dedupe_capacity: usize,
    /// How long events are kept in the aggregator's `events` table, unless
    /// `cluster_retention` names the cluster. The aggregator's own
    /// `logs.retention` still applies on top (whichever is shorter wins).
    #[serde(with = "serde_duration")]
    pub retention: Duration,
    /// Per-cluster retention (by cluster name or id).
    pub cluster_retention: Vec<ClusterRetention>,
    /// How often retention is enforced.
    #[serde(with = "serde_duration")]
    pub retention_interval: Duration,
    /// Also index events into Elasticsearch / OpenSearch.
    pub elasticsearch: Option<EsOutput>,
    /// Also produce events to a Kafka topic.
    pub kafka: Option<KafkaOutput>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: true,
            batch_size: 500,
            buffer_max_bytes: 64 << 20,
            dedupe_capacity: 200_000,
            retention: Duration::from_secs(7 * 24 * 3600),
            cluster_retention: Vec::new(),
            retention_interval: Duration::from_secs(60),
            elasticsearch: None,
            kafka: None,
        }
    }
}

/// The event retention of one cluster.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRetention {
    /// Cluster name or id.
    pub cluster: String,
    /// How long its events are kept.
    #[serde(with = "serde_duration")]
    pub retention: Duration,
}

/// Elasticsearch / OpenSearch event output (bulk API; `_id` =
/// `cluster/uid/count`, so a re-sent event overwrites itself).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EsOutput {
    /// Base URLs, tried in turn.
    pub hosts: Vec<String>,
    /// Index name; `%Y`, `%m`, `%d` expand from the event's last timestamp.
    pub index: String,
    /// Basic-auth user.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
}

impl Default for EsOutput {
    fn default() -> Self {
        EsOutput {
            hosts: Vec::new(),
            index: "tidewatch-events-%Y.%m.%d".into(),
            username: None,
            password: None,
        }
    }
}

/// Kafka event output (idempotent producer, `acks=all`; key
/// `cluster_id/uid`, value the event JSON).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaOutput {
    /// `host:port[,host:port]`.
    pub brokers: String,
    /// Topic.
    pub topic: String,
    /// Extra librdkafka properties (`security.protocol`, `sasl.*`, …).
    pub properties: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaOutput {
    fn default() -> Self {
        KafkaOutput {
            brokers: String::new(),
            topic: "tidewatch-events".into(),
            properties: Default::default(),
        }
    }
}

impl EventsConfig {
    /// The retention of a cluster (matched by id or name).
    pub fn retention_of(&self, id: &str, name: &str) -> Duration {
        self.cluster_retention
            .iter()
            .find(|c| c.cluster == id || c.cluster == name)
            .map(|c| c.retention)
            .unwrap_or(self.retention)
    }
}

/// How tenants' queries are scoped (see `docs/platform.md`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryScopeConfig {
    /// Label carrying the cluster id on metrics and log streams.
    pub cluster_label: String,
    /// Label carrying the Kubernetes namespace on metrics and log streams.
    pub namespace_label: String,
    /// SQL tables restricted to the caller's namespaces.
    pub sql_tables: Vec<String>,
    /// Column of those tables holding the cluster id.
    pub sql_cluster_column: String,
    /// Column of those tables holding the namespace.
    pub sql_namespace_column: String,
}

impl Default for QueryScopeConfig {
    fn default() -> Self {
        QueryScopeConfig {
            cluster_label: "cluster_id".into(),
            namespace_label: "namespace".into(),
            sql_tables: vec!["metrics".into(), "logs".into(), "events".into()],
            sql_cluster_column: "cluster_id".into(),
            sql_namespace_column: "namespace".into(),
        }
    }
}

/// Request limits.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body the query-scoping middleware buffers to rewrite.
    pub max_query_body_bytes: usize,
    /// Largest page of `GET /audit`.
    pub max_audit_page: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_query_body_bytes: 4 << 20,
            max_audit_page: 1000,
        }
    }
}

impl Validate for Config {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        let mut err = |field: &str, message: String| {
            errors.push(FieldError {
                path: join(path, field),
                message,
                line: None,
            })
        };
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:") || url.starts_with("postgres://"))
            && !url.starts_with("postgresql://")
        {
            err(
                "database_url",
                "must start with sqlite: or postgres://".into(),
            );
        }
        if let Some(key) = &self.encryption_key
            && let Err(e) = crate::crypto::decode_key(key)
        {
            err("encryption_key", e);
        }
        if let Some(url) = &self.aggregator_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            err(
                "aggregator_url",
                "must be an http:// or https:// URL".into(),
            );
        }
        if self.session_ttl.is_zero() {
            err("session_ttl", "must be positive".into());
        }
        if self.cluster_health_interval < Duration::from_secs(1) {
            err("cluster_health_interval", "must be at least 1s".into());
        }
        if self.events.batch_size == 0 {
            err("events.batch_size", "must be at least 1".into());
        }
        if self.events.buffer_max_bytes < 1 << 20 {
            err("events.buffer_max_bytes", "must be at least 1MiB".into());
        }
        if self.events.retention < Duration::from_secs(60) {
            err("events.retention", "must be at least 1m".into());
        }
        if self.events.retention_interval < Duration::from_secs(1) {
            err("events.retention_interval", "must be at least 1s".into());
        }
        for (i, c) in self.events.cluster_retention.iter().enumerate() {
            if c.cluster.is_empty() {
                err(
                    &format!("events.cluster_retention[{i}].cluster"),
                    "must not be empty".into(),
                );
            }
            if c.retention < Duration::from_secs(1) {
                err(
                    &format!("events.cluster_retention[{i}].retention"),
                    "must be at least 1s".into(),
                );
            }
        }
        if let Some(es) = &self.events.elasticsearch {
            if es.hosts.is_empty() {
                err("events.elasticsearch.hosts", "must not be empty".into());
            }
            for (i, h) in es.hosts.iter().enumerate() {
                if !(h.starts_with("http://") || h.starts_with("https://")) {
                    err(
                        &format!("events.elasticsearch.hosts[{i}]"),
                        "must be an http:// or https:// URL".into(),
                    );
                }
            }
            if es.index.is_empty() {
                err("events.elasticsearch.index", "must not be empty".into());
            }
        }
        if let Some(k) = &self.events.kafka {
            if k.brokers.is_empty() {
                err("events.kafka.brokers", "must not be empty".into());
            }
            if k.topic.is_empty() {
                err("events.kafka.topic", "must not be empty".into());
            }
        }
        if self.limits.max_query_body_bytes == 0 {
            err("limits.max_query_body_bytes", "must be positive".into());
        }
        if self.query_scope.cluster_label.is_empty() {
            err("query_scope.cluster_label", "must not be empty".into());
        }
        if self.query_scope.sql_cluster_column.is_empty() {
            err("query_scope.sql_cluster_column", "must not be empty".into());
        }
        if self.query_scope.namespace_label.is_empty() {
            err("query_scope.namespace_label", "must not be empty".into());
        }
        if self.query_scope.sql_namespace_column.is_empty() {
            err(
                "query_scope.sql_namespace_column",
                "must not be empty".into(),
            );
        }
        if self.limits.max_audit_page == 0 {
            err("limits.max_audit_page", "must be positive".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<String> {
        let c: Config = serde_json::from_str(json).unwrap();
        let mut errs = Vec::new();
        c.validate("platform", &mut errs);
        errs.into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn event_outputs_and_retention_are_validated_by_path() {
        assert!(errors("{}").is_empty());
        assert_eq!(
            errors(
                r#"{"events": {"retention": "10s",
                    "cluster_retention": [{"cluster": "", "retention": "1h"}],
                    "elasticsearch": {"hosts": ["es:9200"]},
                    "kafka": {"brokers": "", "topic": "t"}}}"#
            ),
            [
                "platform.events.retention",
                "platform.events.cluster_retention[0].cluster",
                "platform.events.elasticsearch.hosts[0]",
                "platform.events.kafka.brokers",
            ]
        );
        let c: Config = serde_json::from_str(
            r#"{"events": {"retention": "2d",
                "cluster_retention": [{"cluster": "staging", "retention": "6h"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            c.events.retention_of("id-1", "staging"),
            Duration::from_secs(6 * 3600)
        );
        assert_eq!(
            c.events.retention_of("staging-2", "other"),
            Duration::from_secs(2 * 86400)
        );
    }
}
