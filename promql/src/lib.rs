//! PromQL evaluation with Prometheus 3 semantics.
//!
//! A query goes through three phases:
//!
//! 1. **Parse** with the `promql-parser` crate, after [`preprocess`] has
//!    rewritten the syntax that crate does not know yet (duration
//!    expressions, `anchored`/`smoothed`, `info()` label selectors).
//! 2. **Plan and fetch**: the expression is walked once to work out the time
//!    range every selector needs (offset, `@`, range, subqueries, lookback,
//!    `info()` joins); each selector is then read once through the async
//!    [`Storage::select`], so the aggregator can run DataFusion scans.
//! 3. **Evaluate** synchronously in memory. Every node is evaluated for all
//!    steps of the query at once into dense per-series step columns;
//!    selectors and range functions slide two-pointer windows over the
//!    columnar samples, aggregations accumulate per group and step, vector
//!    matching computes signatures once per series. Nothing allocates per
//!    sample.
//!
//! [`memory::MemStorage`] is an in-memory [`Storage`] for tests and rule unit
//! tests; [`promqltest`] runs Prometheus's PromQL test corpus format against
//! any [`promqltest::Target`].

pub mod engine;
mod eval;
pub mod memory;
pub mod native;
pub mod preprocess;
pub mod promqltest;
pub mod storage;
pub mod value;

pub use engine::{Engine, EngineOptions, QueryError, QueryResult, format_query};
pub use memory::MemStorage;
pub use storage::{SelectRequest, Series, Storage, StorageError};
pub use value::{Sample, Value};
