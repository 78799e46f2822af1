//! Assembly of Tidewatch's components into the one `tidewatch` binary.
//!
//! - [`cli`]: command-line interface (clap).
//! - [`config`]: the one YAML config schema, with a section per component.
//! - [`stack`]: starting one component or the whole stack on one address.
//! - [`rule_backend`]: in-process rule evaluation for the alert engine in `up`.

pub mod cli;
pub mod config;
pub mod rule_backend;
pub mod stack;
