//! The one YAML config schema: top-level settings plus a section per component.
//! Documented in `docs/configuration.md`.

pub mod env;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tidewatch_common::config::{ConfigErrors, FieldError, Validate, join};
use tidewatch_common::telemetry::LogFormat;

/// Default listen address of `tidewatch up`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9800";

/// The whole config file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to serve on (`--listen` overrides).
    pub listen: String,
    /// Data directory (`--data-dir` overrides).
    pub data_dir: PathBuf,
    /// Log format, `text` or `json` (`--log-format` overrides).
    pub log_format: LogFormat,
    /// Aggregator section.
    pub aggregator: tidewatch_aggregator::Config,
    /// Collector section.
    pub collector: tidewatch_collector::Config,
    /// Alert engine section.
    pub alerting: tidewatch_alertmanager::Config,
    /// Platform section.
    pub platform: tidewatch_platform::Config,
    /// The file this config was loaded from (for components that reload).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.to_string(),
            data_dir: PathBuf::from("./data"),
            log_format: LogFormat::Text,
            aggregator: Default::default(),
            collector: Default::default(),
            alerting: Default::default(),
            platform: Default::default(),
            source: None,
        }
    }
}

impl Validate for Config {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(FieldError {
                path: join(path, "listen"),
                message: format!("invalid address {:?} (expected host:port)", self.listen),
                line: None,
            });
        }
        self.aggregator.validate(&join(path, "aggregator"), errors);
        self.collector.validate(&join(path, "collector"), errors);
        self.alerting.validate(&join(path, "alerting"), errors);
        self.platform.validate(&join(path, "platform"), errors);
    }
}

impl Config {
    /// Loads a file, or the defaults when `path` is `None`, then applies
    /// the `TIDEWATCH_*` environment overlay ([`env`]) and validates.
    /// Secrets may come from the environment too (documented per field).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        let get = |k: &str| std::env::var(k).ok();
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|e| {
                ConfigErrors(vec![FieldError {
                    path: String::new(),
                    message: format!("cannot read {}: {e}", p.display()),
                    line: None,
                }])
            })?,
            None => "{}".to_string(),
        };
        Config::load_text(&text, &get).map(|c| Config {
            source: path.map(Path::to_path_buf),
            ..c
        })
    }

    /// Parses `text`, applies the environment overlay read through `get`,
    /// validates.
    pub fn load_text(
        text: &str,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        tidewatch_common::config::load_str_adjusted(text, |c: &mut Config, errors| {
            env::apply(c, get, errors)
        })
    }
}
