//! Rule evaluation: Prometheus rule files and TKEStack alarm policies,
//! evaluated on schedule against a Prometheus-compatible query API.

pub mod file;
pub mod group;
pub mod manager;
pub mod policy;
pub mod querier;
pub mod writer;
