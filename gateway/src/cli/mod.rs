//! Command-line interface of the `gateway` binary.

use crate::clock::{Clock, SystemClock};
use clap::{Parser, Subcommand};

pub mod approach;
pub mod audit;
pub mod backup;
pub mod certs;
pub mod console;
pub mod keys;
pub mod monitor;
pub mod policy;
pub mod remote;
pub mod retention;
pub mod serve;
pub mod witness;

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
    /// Run a scripted day of the approach on a fresh example PKI and database, and print it.
    Demo(DemoArgs),
    /// Serve the partner API over mutual TLS.
    Serve(serve::ServeArgs),
    /// Validate, explain, tabulate and compare covenant policy files.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Check a configuration file and everything it points to.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Verify the tamper-evident disclosure log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Make or change the EXAMPLE PKI.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Mint a token from the example keys, bound to a certificate, for trying the API with curl.
    Token(certs::TokenArgs),
    /// Witness the gateway's log (what a covenant partner runs).
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
    /// The privacy officer's web console, a partner-side companion that reaches the gateway
    /// through its API with the officer's token (loopback, one-time login link).
    Console(console::ConsoleArgs),
    /// Monitor the gateway's log for a partner: forks, rewinds, and receipts not included.
    Monitor(monitor::MonitorArgs),
    /// For another approach's register: its key and its signed, padded set of members for the
    /// oblivious aanpak-check (RFC 9497 POPRF; docs/api.md).
    #[command(subcommand)]
    Approach(approach::ApproachCommand),
    /// A consistent online backup of the SQLite database, encrypted with age, with a manifest
    /// of the log it holds (PostgreSQL: the manifest beside a pg_dump).
    Backup(backup::BackupArgs),
    /// Restore a SQLite backup to a new database file, checked against its manifest and
    /// verified like `audit verify`.
    Restore(backup::RestoreArgs),
    /// The gateway's keys: which storage key seals how many rows; a new storage key.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Remove what the covenant's retention periods say has been kept long enough.
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Ask a running gateway whether it is ready (exit 0) or not (exit 1, with what is wrong):
    /// for container health checks and scripts.
    Health(HealthArgs),
    /// Print shell completions for bash, zsh, fish, elvish or PowerShell.
    Completions(CompletionsArgs),
    /// Write the manual pages (gateway.1 and one per command) to a directory.
    Man(ManArgs),
}

/// `gateway health` options.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// The readiness URL of the gateway's plain loopback listener.
    #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
    pub url: String,
}

fn health(args: HealthArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()?;
        match client.get(&args.url).send().await {
            Ok(r) => {
                let ready = r.status().is_success();
                match r.text().await {
                    Ok(body) => println!("{body}"),
                    Err(e) => eprintln!("error: reading the answer: {e}"),
                }
                Ok(if ready { 0 } else { 1 })
            }
            Err(e) => {
                eprintln!("error: {}: {e}", args.url);
                Ok(1)
            }
        }
    })
}

/// `gateway completions` options.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `gateway man` options.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Where to write the pages.
    pub dir: std::path::PathBuf,
}

fn completions(args: CompletionsArgs) -> anyhow::Result<i32> {
    use clap::CommandFactory;
    use std::io::Write;
    let mut cmd = Cli::command();
    // Into memory first: writing to a closed pipe is then an error here, not a panic there.
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "gateway", &mut out);
    match std::io::stdout().write_all(&out) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        r => r.map(|()| 0).map_err(Into::into),
    }
}

fn man(args: ManArgs) -> anyhow::Result<i32> {
    use clap::CommandFactory;
    std::fs::create_dir_all(&args.dir)?;
    clap_mangen::generate_to(Cli::command(), &args.dir)?;
    let pages = std::fs::read_dir(&args.dir)?.count();
    eprintln!("wrote {pages} manual pages to {}", args.dir.display());
    Ok(0)
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON document, for scripts.
    Json,
}

/// Prints `value` as pretty JSON on standard output.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `gateway demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the gateway running afterwards, with the PKI and a curl example.
    #[arg(long)]
    pub keep: bool,
    /// Working directory (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

fn demo(args: DemoArgs, now: i64) -> anyhow::Result<i32> {
    crate::install_crypto_provider();
    // Operational logs go to stderr, quiet unless asked: the story is on stdout.
    let level = std::env::var("GATEWAY_LOG_LEVEL").unwrap_or_else(|_| "warn".into());
    crate::telemetry::init(&crate::config::LogConfig {
        format: crate::config::LogFormat::Json,
        level,
    });
    let dir = args.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("gateway-demo-{}-{now}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::demo::run(dir, args.keep))?;
    Ok(0)
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
        Command::Demo(args) => demo(args, now),
        Command::Serve(args) => serve::serve(args),
        Command::Policy(cmd) => policy::run(cmd, now),
        Command::Config(ConfigCommand::Check(args)) => serve::config_check(args),
        Command::Certs(cmd) => certs::run(cmd, now),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Token(args) => certs::token(args, now),
        Command::Health(args) => health(args),
        Command::Witness(cmd) => witness::run(cmd),
        Command::Monitor(args) => monitor::run(args),
        Command::Console(args) => console::run(args),
        Command::Approach(cmd) => approach::run_command(cmd, now),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::Retention(cmd) => retention::run(cmd),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Completions(args) => completions(args),
        Command::Man(args) => man(args),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
