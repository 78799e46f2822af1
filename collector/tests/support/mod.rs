//! Shared helpers of the collector's integration tests.

pub mod kube_api;
