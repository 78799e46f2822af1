//! Command-line interface.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tidewatch_common::telemetry::{self, LogFormat};

use crate::config::Config;
use crate::stack::{self, Role};

/// Tidewatch: observability-first container platform.
#[derive(Parser, Debug)]
#[command(name = "tidewatch", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole stack (aggregator, collector, alert engine, platform,
    /// dashboards) in one process on one address.
    Up(RunArgs),
    /// Run the aggregator alone.
    Aggregator(RunArgs),
    /// Run the collector alone.
    Collector(RunArgs),
    /// Run the alert engine alone.
    Alertmanager(RunArgs),
    /// Run the platform API and dashboards alone.
    Platform(RunArgs),
    /// Config file tools.
    Config {
        /// What to do.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Alerting rule tools.
    Rules {
        /// What to do.
        #[command(subcommand)]
        command: RulesCommand,
    },
}

/// Flags shared by the serving subcommands; they override the config file.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// YAML config file.
    #[arg(long, env = "TIDEWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:9800).
    #[arg(long)]
    pub listen: Option<String>,
    /// Directory for all state (default ./data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long)]
    pub log_format: Option<LogFormat>,
    /// How long the aggregator keeps metrics (e.g. `15d`, `0s` = forever);
    /// overrides `aggregator.retention_time`.
    #[arg(long, value_parser = parse_retention)]
    pub retention: Option<std::time::Duration>,
}

fn parse_retention(s: &str) -> Result<std::time::Duration, String> {
    tidewatch_common::duration::parse_duration(s)
}

/// `tidewatch config …`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a config file; print every error with its field path and line.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Print the full default config as YAML (every field, every default).
    Default,
}

/// `tidewatch rules …`.
#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Run rule unit tests in promtool's `test rules` format.
    Test {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only run test groups whose name matches this regex (repeatable),
        /// like promtool's `--run`.
        #[arg(long = "run")]
        run: Vec<String>,
        /// Accept unknown fields in rule files.
        #[arg(long)]
        ignore_unknown_fields: bool,
    },
}

/// Runs the parsed command line; the exit code is the process's.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Up(a) => serve(Role::All, a),
        Command::Aggregator(a) => serve(Role::Aggregator, a),
        Command::Collector(a) => serve(Role::Collector, a),
        Command::Alertmanager(a) => serve(Role::Alertmanager, a),
        Command::Platform(a) => serve(Role::Platform, a),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match Config::load(Some(&file)) {
            Ok(_) => {
                println!("{}: OK", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: invalid config", file.display());
                for err in &e.0 {
                    eprintln!("  {err}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Config {
            command: ConfigCommand::Default,
        } => match serde_yaml::to_string(&Config::default()) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the default config: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Rules {
            command:
                RulesCommand::Test {
                    files,
                    run,
                    ignore_unknown_fields,
                },
        } => {
            let runtime = match runtime() {
                Ok(r) => r,
                Err(code) => return code,
            };
            let opts = tidewatch_alertmanager::unit_test::Options {
                run,
                ignore_unknown_fields,
                ..Default::default()
            };
            let code = runtime.block_on(tidewatch_alertmanager::unit_test::run_files_with(
                &files, &opts,
            ));
            ExitCode::from(code)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

fn serve(role: Role, args: RunArgs) -> ExitCode {
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid config:");
            for err in &e.0 {
                eprintln!("  {err}");
            }
            return ExitCode::FAILURE;
        }
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(f) = args.log_format {
        config.log_format = f;
    }
    if let Some(r) = args.retention {
        config.aggregator.retention_time = r;
    }
    telemetry::init(config.log_format);
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(stack::run(role, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
