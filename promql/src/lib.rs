//! PromQL evaluation with Prometheus semantics.
//!
//! Expressions are parsed with the `promql-parser` crate. Evaluation is split
//! in two phases: first every selector's data is fetched from a [`Storage`]
//! (asynchronously, so the aggregator can run DataFusion scans), then the
//! expression is evaluated over those columnar series in memory.

pub mod engine;
mod eval;
pub mod memory;
pub mod preprocess;
pub mod promqltest;
pub mod storage;
pub mod value;

pub use engine::{Engine, EngineOptions, QueryError, QueryResult};
pub use memory::MemStorage;
pub use storage::{SelectRequest, Series, Storage, StorageError};
pub use value::{Sample, Value};
