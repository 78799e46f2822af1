//! Assembly of Tidewatch's components into the one `tidewatch` binary.
//!
//! - [`cli`]: command-line interface (clap).
//! - [`config`]: the one YAML config schema, with a section per component.
//! - [`stack`]: starting one component or the whole stack on one address.

pub mod cli;
pub mod config;
pub mod stack;
