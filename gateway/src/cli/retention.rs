//! `gateway retention run`: removes what the active covenant's retention periods say has been
//! kept long enough, each step recorded in the log, then gives the space back.

use super::OutputFormat;
use super::audit::{origin, runtime};
use crate::config::Config;
use crate::log::Log;
use crate::service::retention::{self, RunReport};
use crate::store::Db;
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;
use std::sync::Arc;

/// Retention commands.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Remove expired deposits, closed cases past their period and the content of expired log
    /// entries (their hashes stay: `audit verify` still passes), as the active covenant's
    /// `[retention]` says; every step is a log entry. Then reclaim the space (VACUUM).
    Run(RunArgs),
}

/// `gateway retention run` options.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Configuration file (database, log keys).
    #[arg(long, default_value_os_t = super::serve::default_config())]
    config: PathBuf,
    /// Run on this database instead of the configured one.
    #[arg(long)]
    database_url: Option<String>,
    /// Remove nothing; print what a run would remove now.
    #[arg(long)]
    dry_run: bool,
    /// `text` or `json`.
    #[arg(long, value_enum, default_value_t)]
    format: OutputFormat,
}

/// Runs a retention command.
pub fn run(cmd: RetentionCommand) -> anyhow::Result<i32> {
    let RetentionCommand::Run(args) = cmd;
    crate::install_crypto_provider();
    let cfg = Config::load(&args.config, std::env::vars())?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| cfg.database_url.clone());
    let origin = origin(&cfg);
    let keys = crate::runtime::load_log_keys(&cfg.secrets, &origin).map_err(anyhow::Error::msg)?;
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let (report, reclaimed) = runtime()?.block_on(async {
        let db = Db::connect(&url).await?;
        db.migrate().await.context("applying database migrations")?;
        let active = db
            .active_policy_draft()
            .await?
            .context("the database has no policy version: has a gateway ever run on it?")?;
        let cc = crate::lifecycle::PolicyBuilder::compile_stored(&active)
            .context("the active policy version in the database")?;
        let log = Log::open(
            db.clone(),
            keys,
            origin,
            Arc::new(crate::clock::SystemClock),
        )
        .await
        .context("opening the disclosure log")?;
        let report = if args.dry_run {
            retention::dry_run(&db, cc.covenant(), now).await
        } else {
            retention::run(&log, cc.covenant(), cc.version().as_str(), now).await
        };
        let mut reclaimed = None;
        if let Ok(r) = &report
            && !r.entries.is_empty()
        {
            // The steps are signed into a checkpoint at once.
            log.checkpoint(now)
                .await
                .context("signing a checkpoint over the retention entries")?;
        }
        log.shutdown().await;
        if report.as_ref().is_ok_and(RunReport::removed_any) && !args.dry_run {
            reclaimed = Some(
                db.reclaim(true)
                    .await
                    .context("reclaiming the space (VACUUM)")?,
            );
        }
        db.close().await;
        Ok::<_, anyhow::Error>((report?, reclaimed))
    })?;
    if args.format == OutputFormat::Json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("reclaimed".into(), serde_json::json!(reclaimed));
        }
        super::print_json(&v)?;
        return Ok(0);
    }
    print!("{}", readable(&report, reclaimed));
    Ok(0)
}

fn readable(r: &RunReport, reclaimed: Option<bool>) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let verb = if r.dry_run { "would remove" } else { "removed" };
    if r.rules.is_empty() {
        let _ = writeln!(
            o,
            "retention: nothing has expired (or the active covenant has no [retention])"
        );
        return o;
    }
    let _ = writeln!(
        o,
        "retention{}: {verb}",
        if r.dry_run { " (dry run)" } else { "" }
    );
    for (rule, t) in &r.rules {
        let what = match t.target {
            crate::log::entry::RetentionTarget::Log => "log entries (content; hashes stay)",
            crate::log::entry::RetentionTarget::Cases => "closed cases",
            crate::log::entry::RetentionTarget::Deposits => "deposits",
        };
        let _ = writeln!(
            o,
            "  {:>7} {what} under {rule} ({} days, before {}; {})",
            t.removed, t.days, t.before, t.ground
        );
    }
    if !r.entries.is_empty() {
        let seqs: Vec<String> = r.entries.iter().map(ToString::to_string).collect();
        let _ = writeln!(o, "recorded in log entries {}", seqs.join(", "));
    }
    match reclaimed {
        Some(true) => {
            let _ = writeln!(
                o,
                "space reclaimed (VACUUM): the removed values are gone from the database files"
            );
        }
        Some(false) => {
            let _ = writeln!(
                o,
                "space reclaimed (VACUUM), but the write-ahead log is still held by a reader: it is emptied at its next checkpoint"
            );
        }
        None => {}
    }
    o
}
