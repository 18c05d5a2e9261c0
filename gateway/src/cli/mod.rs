//! Command-line interface of the `gateway` binary.

use clap::{Parser, Subcommand};

pub mod policy;

/// Secure multi-party information-sharing gateway for the iPGA-R covenant.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, explain, tabulate and compare covenant policy files.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Policy(cmd) => policy::run(cmd),
    }
}
