//! The environment overlay: `TIDEWATCH_*` variables (those the Helm chart
//! sets from its values) override the config file. Precedence, highest
//! first: command-line flag > environment > file > default. An empty
//! variable counts as unset. Errors name the variable.

use std::path::PathBuf;

use tidewatch_alertmanager::config::SmtpTls;
use tidewatch_collector::logs::config::{BufferConfig, OutputConfig};
use tidewatch_common::config::FieldError;

use super::Config;

/// Metrics retention (`aggregator.retention_time`), e.g. `15d`.
pub const RETENTION: &str = "TIDEWATCH_RETENTION";
/// Where the host's filesystem is mounted in a collector pod (`/host`):
/// sets `collector.node.{proc_path,sys_path,rootfs_path}` and
/// `collector.cgroup.root` below it.
pub const HOST_ROOT: &str = "TIDEWATCH_HOST_ROOT";
/// Prefix of the collector's Kafka log output (`_BROKERS`, `_TOPIC`, …).
pub const KAFKA: &str = "TIDEWATCH_KAFKA_";
/// Prefix of the collector's Elasticsearch log output (`_URL`, `_INDEX`, …).
pub const ELASTICSEARCH: &str = "TIDEWATCH_ELASTICSEARCH_";
/// Prefix of the alert engine's default SMTP server (`_HOST`, `_PORT`, …).
pub const SMTP: &str = "TIDEWATCH_SMTP_";
/// `<namespace>/<name>` of the Lease the collectors elect a leader with:
/// sets `collector.kubernetes.lease_{namespace,name}` and turns the
/// per-node `mode: node` into `mode: elected` (one collector reports the
/// cluster-scoped series). `mode: cluster` is left as it is.
pub const LEADER_ELECTION_LEASE: &str = "TIDEWATCH_LEADER_ELECTION_LEASE";

/// Name of the log output defined by `TIDEWATCH_KAFKA_*`.
pub const KAFKA_OUTPUT: &str = "kafka";
/// Name of the log output defined by `TIDEWATCH_ELASTICSEARCH_*`.
pub const ELASTICSEARCH_OUTPUT: &str = "elasticsearch";

/// Applies the variables `get` returns to `config`; problems go to
/// `errors` with the variable's name as the path.
pub fn apply(
    config: &mut Config,
    get: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<FieldError>,
) {
    let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let mut err = |name: &str, message: String| {
        errors.push(FieldError {
            path: name.to_string(),
            message,
            line: None,
        })
    };

    if let Some(v) = var(RETENTION) {
        match tidewatch_common::duration::parse_duration(v.trim()) {
            Ok(d) => config.aggregator.retention_time = d,
            Err(e) => err(RETENTION, format!("invalid duration {v:?}: {e}")),
        }
    }

    if let Some(root) = var(HOST_ROOT) {
        let root = PathBuf::from(root.trim());
        if !root.is_absolute() {
            err(HOST_ROOT, format!("must be an absolute path, got {root:?}"));
        } else {
            let node = &mut config.collector.node;
            node.proc_path = root.join("proc");
            node.sys_path = root.join("sys");
            node.rootfs_path = root.clone();
            config.collector.cgroup.root = root.join("sys/fs/cgroup");
        }
    }

    if let Some(v) = var(LEADER_ELECTION_LEASE) {
        match v.trim().split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                let kube = &mut config.collector.kubernetes;
                kube.lease_namespace = ns.to_string();
                kube.lease_name = name.to_string();
                if kube.mode == tidewatch_collector::metrics::kube::Mode::Node {
                    kube.mode = tidewatch_collector::metrics::kube::Mode::Elected;
                }
            }
            _ => err(
                LEADER_ELECTION_LEASE,
                format!("expected <namespace>/<name>, got {v:?}"),
            ),
        }
    }

    let kafka = |k: &str| var(&format!("{KAFKA}{k}"));
    if let Some(output) = kafka_output(&kafka, &mut err) {
        put_output(&mut config.collector.logs.outputs, output);
    }
    let es = |k: &str| var(&format!("{ELASTICSEARCH}{k}"));
    if let Some(output) = elasticsearch_output(&es, &mut err) {
        put_output(&mut config.collector.logs.outputs, output);
    }
    let smtp = |k: &str| var(&format!("{SMTP}{k}"));
    apply_smtp(config, &smtp, &mut err);
}

/// Replaces the output of the same name, or appends.
fn put_output(outputs: &mut Vec<OutputConfig>, output: OutputConfig) {
    match outputs.iter_mut().find(|o| o.name() == output.name()) {
        Some(o) => *o = output,
        None => outputs.push(output),
    }
}

fn kafka_output(
    var: &dyn Fn(&str) -> Option<String>,
    err: &mut dyn FnMut(&str, String),
) -> Option<OutputConfig> {
    let keys = ["BROKERS", "TOPIC", "USERNAME", "PASSWORD"];
    if keys.iter().all(|k| var(k).is_none()) {
        return None;
    }
    let brokers = var("BROKERS").unwrap_or_default();
    let topic = var("TOPIC").unwrap_or_default();
    if brokers.is_empty() {
        err(
            "TIDEWATCH_KAFKA_BROKERS",
            "required when another TIDEWATCH_KAFKA_* variable is set (host:port,…)".into(),
        );
    }
    if topic.is_empty() {
        err(
            "TIDEWATCH_KAFKA_TOPIC",
            "required when TIDEWATCH_KAFKA_BROKERS is set".into(),
        );
    }
    let mut properties = std::collections::BTreeMap::new();
    match (var("USERNAME"), var("PASSWORD")) {
        (Some(user), password) => {
            properties.insert("sasl.username".to_string(), user);
            properties.insert("sasl.mechanism".to_string(), "PLAIN".to_string());
            properties.insert("security.protocol".to_string(), "SASL_SSL".to_string());
            if let Some(p) = password {
                properties.insert("sasl.password".to_string(), p);
            }
        }
        (None, Some(_)) => err(
            "TIDEWATCH_KAFKA_PASSWORD",
            "set without TIDEWATCH_KAFKA_USERNAME".into(),
        ),
        (None, None) => {}
    }
    if brokers.is_empty() || topic.is_empty() {
        return None;
    }
    Some(OutputConfig::Kafka {
        name: KAFKA_OUTPUT.into(),
        brokers,
        topic,
        compression: "lz4".into(),
        properties,
        buffer: BufferConfig::default(),
    })
}

fn elasticsearch_output(
    var: &dyn Fn(&str) -> Option<String>,
    err: &mut dyn FnMut(&str, String),
) -> Option<OutputConfig> {
    let keys = ["URL", "INDEX", "USERNAME", "PASSWORD"];
    if keys.iter().all(|k| var(k).is_none()) {
        return None;
    }
    let hosts: Vec<String> = var("URL")
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().trim_end_matches('/').to_string())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        err(
            "TIDEWATCH_ELASTICSEARCH_URL",
            "required when another TIDEWATCH_ELASTICSEARCH_* variable is set".into(),
        );
        return None;
    }
    if let Some(h) = hosts
        .iter()
        .find(|h| !(h.starts_with("http://") || h.starts_with("https://")))
    {
        err(
            "TIDEWATCH_ELASTICSEARCH_URL",
            format!("{h:?} is not an http:// or https:// URL"),
        );
        return None;
    }
    let password = var("PASSWORD");
    if password.is_some() && var("USERNAME").is_none() {
        err(
            "TIDEWATCH_ELASTICSEARCH_PASSWORD",
            "set without TIDEWATCH_ELASTICSEARCH_USERNAME".into(),
        );
    }
    Some(OutputConfig::Elasticsearch {
        name: ELASTICSEARCH_OUTPUT.into(),
        hosts,
        index: var("INDEX").unwrap_or_else(|| "tidewatch-logs".into()),
        user: var("USERNAME"),
        password,
        max_item_retries: 10,
        buffer: BufferConfig::default(),
    })
}

/// The SMTP server for email receivers that name none (Alertmanager's
/// `global.smtp_*`): fills empty `smarthost` (with `tls`), `from` and
/// `auth_username`. The password is read at send time from
/// `TIDEWATCH_SMTP_PASSWORD` when `auth_password` is unset.
fn apply_smtp(
    config: &mut Config,
    var: &dyn Fn(&str) -> Option<String>,
    err: &mut dyn FnMut(&str, String),
) {
    let keys = ["HOST", "PORT", "FROM", "TLS", "USERNAME"];
    if keys.iter().all(|k| var(k).is_none()) {
        return;
    }
    let Some(host) = var("HOST") else {
        err(
            "TIDEWATCH_SMTP_HOST",
            "required when another TIDEWATCH_SMTP_* variable is set".into(),
        );
        return;
    };
    let port = match var("PORT").map(|p| p.trim().parse::<u16>()) {
        None => 587,
        Some(Ok(p)) if p > 0 => p,
        Some(_) => {
            err(
                "TIDEWATCH_SMTP_PORT",
                format!("invalid port {:?}", var("PORT").unwrap_or_default()),
            );
            return;
        }
    };
    let tls = match var("TLS").as_deref().map(str::trim) {
        None | Some("starttls") => SmtpTls::Starttls,
        Some("tls") => SmtpTls::Tls,
        Some("none" | "plain") => SmtpTls::Plain,
        Some(other) => {
            err(
                "TIDEWATCH_SMTP_TLS",
                format!("expected starttls, tls or none, got {other:?}"),
            );
            return;
        }
    };
    let smarthost = format!("{}:{port}", host.trim());
    let from = var("FROM");
    let user = var("USERNAME");
    for r in &mut config.alerting.receivers {
        for e in &mut r.email_configs {
            if e.smarthost.trim().is_empty() {
                e.smarthost = smarthost.clone();
                e.tls = tls;
                if e.auth_username.is_none() {
                    e.auth_username = user.clone();
                }
            }
            if e.from.trim().is_empty()
                && let Some(f) = &from
            {
                e.from = f.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_text(yaml, &|k: &str| vars.get(k).cloned()).map_err(|e| e.to_string())
    }

    #[test]
    fn leader_election_lease_turns_node_mode_into_elected() {
        use tidewatch_collector::metrics::kube::Mode;
        let file = "collector: {kubernetes: {enabled: true}}\n";
        let c = load(file, &[]).unwrap();
        assert_eq!(c.collector.kubernetes.mode, Mode::Node);
        let c = load(file, &[(LEADER_ELECTION_LEASE, "monitoring/tw-collector")]).unwrap();
        let kube = &c.collector.kubernetes;
        assert_eq!(kube.mode, Mode::Elected);
        assert_eq!(
            (kube.lease_namespace.as_str(), kube.lease_name.as_str()),
            ("monitoring", "tw-collector")
        );
        let cluster = "collector: {kubernetes: {enabled: true, mode: cluster}}\n";
        let c = load(cluster, &[(LEADER_ELECTION_LEASE, "monitoring/tw")]).unwrap();
        assert_eq!(c.collector.kubernetes.mode, Mode::Cluster);
        for bad in ["tw-collector", "/tw", "ns/", "a/b/c"] {
            let e = load(file, &[(LEADER_ELECTION_LEASE, bad)]).unwrap_err();
            assert!(
                e.contains("TIDEWATCH_LEADER_ELECTION_LEASE: expected"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn retention_overrides_the_file_and_names_the_variable() {
        let c = load("aggregator: {retention_time: 1d}\n", &[]).unwrap();
        assert_eq!(c.aggregator.retention_time, Duration::from_secs(86_400));
        let c = load("aggregator: {retention_time: 1d}\n", &[(RETENTION, "30d")]).unwrap();
        assert_eq!(
            c.aggregator.retention_time,
            Duration::from_secs(30 * 86_400)
        );
        let c = load("{}", &[(RETENTION, "")]).unwrap();
        assert_eq!(
            c.aggregator.retention_time,
            Config::default().aggregator.retention_time
        );
        let e = load("{}", &[(RETENTION, "two weeks")]).unwrap_err();
        assert!(e.contains("TIDEWATCH_RETENTION: invalid duration"), "{e}");
    }

    #[test]
    fn kafka_and_elasticsearch_outputs_come_from_the_environment() {
        let file = "collector:\n  logs:\n    outputs:\n      - {type: loki, name: aggregator}\n      - {type: kafka, name: kafka, brokers: 'old:9092', topic: old}\n";
        let c = load(
            file,
            &[
                ("TIDEWATCH_KAFKA_BROKERS", "k0:9092,k1:9092"),
                ("TIDEWATCH_KAFKA_TOPIC", "logs"),
                ("TIDEWATCH_KAFKA_USERNAME", "tw"),
                ("TIDEWATCH_KAFKA_PASSWORD", "pw"),
                ("TIDEWATCH_ELASTICSEARCH_URL", "https://es:9200/"),
                ("TIDEWATCH_ELASTICSEARCH_USERNAME", "elastic"),
                ("TIDEWATCH_ELASTICSEARCH_PASSWORD", "secret"),
            ],
        )
        .unwrap();
        let outs = &c.collector.logs.outputs;
        assert_eq!(
            outs.iter().map(|o| o.name()).collect::<Vec<_>>(),
            ["aggregator", "kafka", "elasticsearch"]
        );
        match &outs[1] {
            OutputConfig::Kafka {
                brokers,
                topic,
                properties,
                ..
            } => {
                assert_eq!(brokers, "k0:9092,k1:9092");
                assert_eq!(topic, "logs");
                assert_eq!(properties["sasl.username"], "tw");
                assert_eq!(properties["sasl.password"], "pw");
            }
            o => panic!("{o:?}"),
        }
        match &outs[2] {
            OutputConfig::Elasticsearch {
                hosts,
                index,
                user,
                password,
                ..
            } => {
                assert_eq!(hosts, &["https://es:9200"]);
                assert_eq!(index, "tidewatch-logs");
                assert_eq!(user.as_deref(), Some("elastic"));
                assert_eq!(password.as_deref(), Some("secret"));
            }
            o => panic!("{o:?}"),
        }
        let e = load("{}", &[("TIDEWATCH_KAFKA_TOPIC", "logs")]).unwrap_err();
        assert!(e.contains("TIDEWATCH_KAFKA_BROKERS: required"), "{e}");
        let e = load("{}", &[("TIDEWATCH_ELASTICSEARCH_URL", "es:9200")]).unwrap_err();
        assert!(
            e.contains("TIDEWATCH_ELASTICSEARCH_URL: \"es:9200\" is not"),
            "{e}"
        );
    }

    #[test]
    fn smtp_fills_email_receivers_that_name_no_server() {
        let file = "alerting:\n  receivers:\n    - name: mail\n      email_configs:\n        - {to: a@example.com}\n        - {to: b@example.com, from: own@example.com, smarthost: 'own:25', tls: plain}\n";
        assert!(load(file, &[]).unwrap_err().contains("smarthost"));
        let c = load(
            file,
            &[
                ("TIDEWATCH_SMTP_HOST", "smtp.example.com"),
                ("TIDEWATCH_SMTP_PORT", "465"),
                ("TIDEWATCH_SMTP_FROM", "alerts@example.com"),
                ("TIDEWATCH_SMTP_TLS", "tls"),
                ("TIDEWATCH_SMTP_USERNAME", "alerts"),
            ],
        )
        .unwrap();
        let e = &c.alerting.receivers[0].email_configs;
        assert_eq!(e[0].smarthost, "smtp.example.com:465");
        assert_eq!(e[0].from, "alerts@example.com");
        assert_eq!(e[0].tls, SmtpTls::Tls);
        assert_eq!(e[0].auth_username.as_deref(), Some("alerts"));
        assert_eq!(e[1].smarthost, "own:25");
        assert_eq!(e[1].from, "own@example.com");
        assert_eq!(e[1].tls, SmtpTls::Plain);
        let e = load(
            file,
            &[("TIDEWATCH_SMTP_HOST", "h"), ("TIDEWATCH_SMTP_PORT", "x")],
        )
        .unwrap_err();
        assert!(e.contains("TIDEWATCH_SMTP_PORT: invalid port"), "{e}");
        let e = load(
            file,
            &[("TIDEWATCH_SMTP_HOST", "h"), ("TIDEWATCH_SMTP_TLS", "ssl")],
        )
        .unwrap_err();
        assert!(e.contains("TIDEWATCH_SMTP_TLS: expected"), "{e}");
    }

    #[test]
    fn host_root_moves_the_node_and_cgroup_sources() {
        let c = load("{}", &[(HOST_ROOT, "/host")]).unwrap();
        assert_eq!(c.collector.node.proc_path, PathBuf::from("/host/proc"));
        assert_eq!(c.collector.node.sys_path, PathBuf::from("/host/sys"));
        assert_eq!(c.collector.node.rootfs_path, PathBuf::from("/host"));
        assert_eq!(
            c.collector.cgroup.root,
            PathBuf::from("/host/sys/fs/cgroup")
        );
        let e = load("{}", &[(HOST_ROOT, "host")]).unwrap_err();
        assert!(
            e.contains("TIDEWATCH_HOST_ROOT: must be an absolute path"),
            "{e}"
        );
    }
}
