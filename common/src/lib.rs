//! Shared building blocks of Tidewatch's components.
//!
//! Only things that two or more crates genuinely share live here: the Prometheus
//! remote-write wire types, the label model, the text exposition parser, the
//! durable on-disk buffer between producers and sinks, the
//! HTTP server plumbing (bind errors, health endpoints, graceful shutdown),
//! logging set-up and the self-metrics registry.

pub mod buffer;
pub mod config;
pub mod duration;
pub mod es_bulk;
pub mod exposition;
pub mod labels;
pub mod loki;
pub mod remote_write;
pub mod server;
pub mod telemetry;

pub use labels::{Label, Labels};
