//! Aggregator configuration (`aggregator:` section).

use serde::{Deserialize, Serialize};
use tidewatch_common::config::{FieldError, Validate};

/// Aggregator settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

impl Validate for Config {
    fn validate(&self, _path: &str, _errors: &mut Vec<FieldError>) {}
}
