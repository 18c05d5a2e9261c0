//! `gateway backup` and `gateway restore` (see `crate::backup`).

use super::OutputFormat;
use super::audit::{key_set, origin, runtime};
use crate::config::Config;
use crate::store::{Backend, Db};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::str::FromStr;

/// `gateway backup` options.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Configuration file (for the database URL and the log's origin).
    #[arg(long, default_value_os_t = super::serve::default_config())]
    pub config: PathBuf,
    /// The encrypted backup to write; its manifest goes to OUTPUT.manifest.json. For
    /// PostgreSQL: the `pg_dump` file the manifest describes (with --manifest-only).
    #[arg(long)]
    pub output: PathBuf,
    /// The operator's age recipient (`age1…`) the backup is encrypted to.
    #[arg(long, required_unless_present_any = ["recipient_file", "manifest_only"])]
    pub recipient: Option<String>,
    /// A file whose first line (not `#`) is the recipient.
    #[arg(long, conflicts_with = "recipient")]
    pub recipient_file: Option<PathBuf>,
    /// Back up this database instead of the configured one.
    #[arg(long)]
    pub database_url: Option<String>,
    /// PostgreSQL: write only the manifest of the log as it is now, for the `pg_dump` file
    /// taken right after (docs/operations.md, "Backup").
    #[arg(long)]
    pub manifest_only: bool,
    /// `text` or `json` (the manifest).
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// `gateway restore` options.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The encrypted backup (`gateway backup --output`); its manifest is read beside it.
    pub file: PathBuf,
    /// Configuration file (for the log's verifier keys and the database path).
    #[arg(long, default_value_os_t = super::serve::default_config())]
    pub config: PathBuf,
    /// The operator's age identity file that decrypts it.
    #[arg(long)]
    pub identity: PathBuf,
    /// Where to write the database (default: the configured `sqlite://` path); it must not
    /// exist.
    #[arg(long)]
    pub to: Option<PathBuf>,
    /// `text` or `json`.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

fn recipient(args: &BackupArgs) -> anyhow::Result<age::x25519::Recipient> {
    let text = match (&args.recipient, &args.recipient_file) {
        (Some(r), _) => r.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading {}", f.display()))?
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or_default()
            .to_owned(),
        (None, None) => anyhow::bail!("give --recipient or --recipient-file"),
    };
    age::x25519::Recipient::from_str(text.trim())
        .map_err(|e| anyhow::anyhow!("the recipient is not an age X25519 recipient (age1…): {e}"))
}

fn now() -> i64 {
    crate::clock::Clock::now(&crate::clock::SystemClock)
}

/// Takes a backup (or, for PostgreSQL, the manifest of one).
pub fn backup(args: BackupArgs) -> anyhow::Result<i32> {
    crate::install_crypto_provider();
    let cfg = Config::load(&args.config, std::env::vars())?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| cfg.database_url.clone());
    let origin = origin(&cfg);
    let backend = Backend::from_url(&url)?;
    let manifest = runtime()?.block_on(async {
        let db = Db::connect(&url).await?;
        let m = match (backend, args.manifest_only) {
            (Backend::Sqlite, false) => {
                let r = recipient(&args)?;
                crate::backup::backup_sqlite(&db, &origin, &r, &args.output, now()).await?
            }
            (Backend::Postgres, true) => {
                crate::backup::manifest_postgres(&db, &origin, &args.output, now()).await?
            }
            (Backend::Postgres, false) => anyhow::bail!(
                "a PostgreSQL database is backed up with pg_dump: first `gateway backup --manifest-only --output {}`, then `pg_dump --format=custom --file={} …` (docs/operations.md, \"Backup\")",
                args.output.display(),
                args.output.display()
            ),
            (Backend::Sqlite, true) => anyhow::bail!(
                "--manifest-only is for PostgreSQL; a SQLite backup is the encrypted copy and its manifest"
            ),
        };
        db.close().await;
        Ok::<_, anyhow::Error>(m)
    })?;
    if args.format == OutputFormat::Json {
        super::print_json(&serde_json::to_value(&manifest)?)?;
    } else {
        println!(
            "backup of {} entries (root {}) written to {}; manifest {}",
            manifest.log_size,
            manifest.log_root.as_deref().unwrap_or("none"),
            args.output.display(),
            crate::backup::manifest_path(&args.output).display()
        );
        println!(
            "A restore of it is refused by the witnesses' check at start once the log has grown past it; take backups often and keep the newest."
        );
    }
    Ok(0)
}

/// Restores a SQLite backup and verifies it.
pub fn restore(args: RestoreArgs) -> anyhow::Result<i32> {
    crate::install_crypto_provider();
    let cfg = Config::load(&args.config, std::env::vars())?;
    let keys = key_set(&cfg, None)?;
    let identity = crate::crypto::read_age_identity(&args.identity)
        .map_err(|e| anyhow::anyhow!("--identity: {e}"))?;
    let target = match &args.to {
        Some(p) => p.clone(),
        None => cfg
            .database_url
            .strip_prefix("sqlite://")
            .map(|p| PathBuf::from(p.split('?').next().unwrap_or(p)))
            .context("the configured database is not SQLite: restore PostgreSQL with pg_restore (docs/operations.md, \"Backup\"); or give --to")?,
    };
    let (manifest, report) = runtime()?.block_on(crate::backup::restore_sqlite(
        &args.file, &identity, &keys, &target,
    ))?;
    if args.format == OutputFormat::Json {
        super::print_json(&serde_json::json!({
            "restored": target, "entries": report.entries, "checkpoints": report.checkpoints,
            "manifest": manifest,
        }))?;
    } else {
        println!(
            "restored {} to {}: {} entries and {} checkpoints verified; the log matches its manifest (size {}, taken at {})",
            args.file.display(),
            target.display(),
            report.entries,
            report.checkpoints,
            manifest.log_size,
            crate::log::entry::rfc3339::format(manifest.taken_at)
                .unwrap_or_else(|| manifest.taken_at.to_string())
        );
        println!(
            "At its start the gateway asks the witnesses for the checkpoint they last cosigned and refuses this log if they saw it grow further."
        );
    }
    Ok(0)
}
