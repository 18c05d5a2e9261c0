//! `gateway audit verify|vkey`.

use crate::audit::checkpoint::NoteVerifier;
use crate::config::Config;
use crate::store::{Backend, Store, postgres::PgStore, sqlite::SqliteStore};
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;

/// Audit commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every hash of the disclosure log, its chain, its tree heads and every checkpoint
    /// signature; exit 1 naming the first bad sequence number.
    Verify {
        /// Configuration file (for the database URL and the log key).
        #[arg(long, default_value = super::serve::DEFAULT_CONFIG)]
        config: PathBuf,
        /// The log's verifier key (`name+id+key`), instead of deriving it from the configured key.
        #[arg(long)]
        vkey: Option<PathBuf>,
        /// Verify this database instead of the configured one.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Print the log's verifier key, for partners to pin.
    Vkey {
        /// Configuration file.
        #[arg(long, default_value = super::serve::DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

fn verifier(cfg: &Config, vkey: Option<&PathBuf>) -> anyhow::Result<NoteVerifier> {
    let text = match vkey {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => {
            let origin = format!("{}/disclosures", cfg.gateway_id);
            crate::runtime::load_log_key(&cfg.secrets.log_key_file, &origin)
                .map_err(anyhow::Error::msg)?
                .vkey()
        }
    };
    Ok(NoteVerifier::from_vkey(&text)?)
}

async fn verify_with<S: Store>(store: S, v: &NoteVerifier) -> anyhow::Result<i32> {
    let started = std::time::Instant::now();
    let report = crate::audit::verify::verify(&store, v).await?;
    let secs = started.elapsed().as_secs_f64();
    match report.first_bad {
        None => {
            println!(
                "OK: {} entries and {} checkpoints verified in {secs:.2} s ({:.0} entries/minute); the log is intact",
                report.entries,
                report.checkpoints,
                report.entries as f64 / secs.max(1e-9) * 60.0
            );
            Ok(0)
        }
        Some((seq, why)) => {
            eprintln!("FAILED at sequence number {seq}: {why}");
            eprintln!(
                "({} entries and {} checkpoints read)",
                report.entries, report.checkpoints
            );
            Ok(1)
        }
    }
}

/// Runs an audit command.
pub fn run(cmd: AuditCommand) -> anyhow::Result<i32> {
    match cmd {
        AuditCommand::Vkey { config } => {
            let cfg = Config::load(&config, std::env::vars())?;
            println!("{}", verifier(&cfg, None)?.vkey_string());
            Ok(0)
        }
        AuditCommand::Verify {
            config,
            vkey,
            database_url,
        } => {
            let cfg = Config::load(&config, std::env::vars())?;
            let v = verifier(&cfg, vkey.as_ref())?;
            let url = database_url.unwrap_or_else(|| cfg.database_url.clone());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                match Backend::from_url(&url)? {
                    Backend::Sqlite => verify_with(SqliteStore::connect(&url).await?, &v).await,
                    Backend::Postgres => verify_with(PgStore::connect(&url).await?, &v).await,
                }
            })
        }
    }
}
