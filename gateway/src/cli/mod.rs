//! Command-line interface of the `gateway` binary.

use crate::clock::{Clock, SystemClock};
use clap::{Parser, Subcommand};

pub mod certs;
pub mod policy;
pub mod serve;

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
    /// Serve the partner API over mutual TLS.
    Serve(serve::ServeArgs),
    /// Validate, explain, tabulate and compare covenant policy files.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Check a configuration file and everything it points to.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Make or change the EXAMPLE PKI.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Mint a token from the example keys, bound to a certificate, for trying the API with curl.
    Token(certs::TokenArgs),
}

/// `gateway config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load the configuration, covenant, keys and certificates; report every problem.
    Check(serve::ConfigCheckArgs),
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let now = SystemClock.now();
    match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Config(ConfigCommand::Check(args)) => serve::config_check(args),
        Command::Certs(cmd) => certs::run(cmd, now),
        Command::Token(args) => certs::token(args, now),
    }
}
