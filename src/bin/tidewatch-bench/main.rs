//! `tidewatch-bench`: side-by-side benchmarks of Tidewatch and its real
//! peers. One module per subcommand (`metrics`; others add `logs`,
//! `alerts`, …), shared process/measurement helpers in `procs`.

mod metrics;
mod procs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tidewatch benchmarks.
#[derive(Parser, Debug)]
#[command(name = "tidewatch-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Remote-write ingest, disk usage and range-query latency against
    /// Debian's Prometheus.
    Metrics(metrics::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = match cli.command {
        Command::Metrics(a) => runtime.block_on(metrics::run(a)),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
