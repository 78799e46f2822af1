//! The `tidewatch` binary.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tidewatch::cli::Cli::parse();
    tidewatch::cli::run(cli)
}
