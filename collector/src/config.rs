//! Collector configuration (`collector:` section).

use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate};

/// Collector settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Log tailing and shipping (issue 5).
    pub logs: crate::logs::LogsConfig,
}

impl Validate for Config {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        self.logs
            .validate(&tidewatch_common::config::join(path, "logs"), errors); // logs (issue 5)
    }
}
