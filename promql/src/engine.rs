//! The query engine's public interface.

use std::time::Duration;

use crate::storage::{Storage, StorageError};
use crate::value::Value;

/// Engine limits and defaults.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus: 5m).
    pub lookback_delta: Duration,
    /// Maximum samples a query may hold in memory at once.
    pub max_samples: usize,
    /// Wall-clock limit of one query.
    pub timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
        }
    }
}

/// The result of a query with its annotations.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// The value (a matrix for range queries).
    pub value: Value,
    /// Warnings (Prometheus `warnings`).
    pub warnings: Vec<String>,
    /// Informational annotations (Prometheus `infos`).
    pub infos: Vec<String>,
}

/// Query failures, mapped to the Prometheus API's error types.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse or is invalid (`bad_data`, HTTP 400).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (`execution`, HTTP 422).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout (`timeout`, HTTP 503).
    #[error("query timed out in {0}")]
    Timeout(String),
    /// The storage failed (`execution`, HTTP 422).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl QueryError {
    /// Prometheus API `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::Storage(_) => "execution",
            QueryError::Timeout(_) => "timeout",
        }
    }

    /// HTTP status the Prometheus API uses for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            QueryError::BadData(_) => 400,
            QueryError::Execution(_) | QueryError::Storage(_) => 422,
            QueryError::Timeout(_) => 503,
        }
    }
}

/// Evaluates PromQL over a [`Storage`].
#[derive(Clone, Debug, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    /// An engine with the given options.
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `time_ms`.
    pub async fn instant_query(
        &self,
        storage: &dyn Storage,
        query: &str,
        time_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        let _ = (storage, query, time_ms);
        Err(QueryError::Execution(
            "PromQL engine not implemented yet".into(),
        ))
    }

    /// Evaluates `query` at every step in `[start_ms, end_ms]`; the value is a
    /// [`Value::Matrix`].
    pub async fn range_query(
        &self,
        storage: &dyn Storage,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        let _ = (storage, query, start_ms, end_ms, step_ms);
        Err(QueryError::Execution(
            "PromQL engine not implemented yet".into(),
        ))
    }
}
