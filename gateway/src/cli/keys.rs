//! `gateway keys status|rotate-storage`: which key seals how many rows, and a new storage key.

use super::OutputFormat;
use super::audit::{origin, runtime, write_atomically};
use crate::config::Config;
use crate::crypto::{StorageKeys, read_age_identities};
use crate::store::{Db, KeyUse};
use anyhow::Context;
use clap::Subcommand;
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The gateway's keys: the storage key ring (which key seals how many deposits and sealed
    /// BSNs, which older keys are unused and may leave the file) and the log's signing keys.
    /// Exit 1 when rows are sealed with a key the file no longer has.
    Status {
        /// Configuration file.
        #[arg(long, default_value_os_t = super::serve::default_config())]
        config: PathBuf,
        /// Look at this database instead of the configured one.
        #[arg(long)]
        database_url: Option<String>,
        /// `text` or `json`.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// A new storage key, first in `secrets.storage_identity_file` (the old keys stay below it
    /// and still open what they sealed). A serving gateway picks it up within
    /// `secrets.reload_secs`, records the rotation, seals new data with it and re-seals every
    /// older row in the background; remove an old key once `keys status` shows it unused.
    RotateStorage {
        /// Configuration file.
        #[arg(long, default_value_os_t = super::serve::default_config())]
        config: PathBuf,
    },
    /// A new pseudonym key, first in `secrets.pseudonym_key_file` (at most four in use). A
    /// serving gateway picks it up within `secrets.reload_secs`: new subject pseudonyms and new
    /// partner pseudonyms (`pseudonymize`) come from it, so receiving partners' old and new copies
    /// no longer link; cases are re-keyed in the background; the log and the officers' search
    /// still find a person under every key in the file.
    RotatePseudonym {
        /// Configuration file.
        #[arg(long, default_value_os_t = super::serve::default_config())]
        config: PathBuf,
    },
}

/// Runs a key command.
pub fn run(cmd: KeysCommand) -> anyhow::Result<i32> {
    crate::install_crypto_provider();
    match cmd {
        KeysCommand::Status {
            config,
            database_url,
            format,
        } => status(&config, database_url, format),
        KeysCommand::RotateStorage { config } => rotate_storage(&config),
        KeysCommand::RotatePseudonym { config } => rotate_pseudonym(&config),
    }
}

fn status(
    config: &Path,
    database_url: Option<String>,
    format: OutputFormat,
) -> anyhow::Result<i32> {
    let cfg = Config::load(config, std::env::vars())?;
    let url = database_url.unwrap_or_else(|| cfg.database_url.clone());
    let file = &cfg.secrets.storage_identity_file;
    let ring = StorageKeys::new(read_age_identities(file)?)
        .with_context(|| format!("{}: no storage key", file.display()))?;
    let pfile = &cfg.secrets.pseudonym_key_file;
    let pring = crate::crypto::PseudonymKeys::new(crate::crypto::read_pseudonym_keys(pfile)?)
        .with_context(|| format!("{}: no pseudonym key", pfile.display()))?;
    let (uses, recorded, puses) = runtime()?.block_on(async {
        let db = Db::connect(&url).await?;
        let uses = db.storage_key_use().await?;
        let recorded = crate::service::keys::recorded_storage_key(&db).await?;
        let puses = db.pseudonym_key_use().await?;
        db.close().await;
        Ok::<_, anyhow::Error>((uses, recorded, puses))
    })?;
    let pcount = |id: Option<&str>| {
        puses
            .iter()
            .find(|(k, _)| k.as_deref() == id)
            .map_or(0, |(_, n)| *n)
    };
    let pkeys: Vec<serde_json::Value> = pring
        .ids()
        .iter()
        .enumerate()
        .map(|(i, id)| serde_json::json!({"id": id, "current": i == 0, "cases": pcount(Some(id))}))
        .collect();
    let punknown: Vec<&(Option<String>, i64)> = puses
        .iter()
        .filter(|(k, n)| *n > 0 && k.as_ref().is_some_and(|k| !pring.ids().contains(k)))
        .collect();
    let log_keys =
        crate::runtime::load_log_keys(&cfg.secrets, &origin(&cfg)).map_err(anyhow::Error::msg)?;
    let of = |id: Option<&str>| -> KeyUse {
        uses.iter()
            .find(|u| u.key.as_deref() == id)
            .cloned()
            .unwrap_or(KeyUse {
                key: id.map(str::to_owned),
                deposits: 0,
                cases: 0,
            })
    };
    let keys: Vec<serde_json::Value> = ring
        .ids()
        .iter()
        .zip(ring.recipients())
        .enumerate()
        .map(|(i, (id, recipient))| {
            let u = of(Some(id));
            serde_json::json!({"id": id, "recipient": recipient, "current": i == 0, "deposits": u.deposits, "cases": u.cases})
        })
        .collect();
    let unrecorded = of(None);
    let unknown: Vec<&KeyUse> = uses
        .iter()
        .filter(|u| u.key.as_ref().is_some_and(|k| !ring.ids().contains(k)))
        .collect();
    let code = i32::from(!unknown.is_empty() || !punknown.is_empty());
    if format == OutputFormat::Json {
        super::print_json(&serde_json::json!({
            "storage": {
                "file": file,
                "keys": keys,
                "unrecorded": {"deposits": unrecorded.deposits, "cases": unrecorded.cases},
                "not_in_file": unknown,
                "recorded_current": recorded,
            },
            "pseudonym": {
                "file": pfile,
                "keys": pkeys,
                "unrecorded": {"cases": pcount(None)},
                "not_in_file": punknown.iter().map(|(k, n)| serde_json::json!({"key": k, "cases": n})).collect::<Vec<_>>(),
            },
            "log": {"current": log_keys.current.vkey(), "retired": log_keys.retired.len()},
        }))?;
        return Ok(code);
    }
    println!("storage key ring ({}):", file.display());
    for k in &keys {
        let (d, c) = (
            k["deposits"].as_i64().unwrap_or(0),
            k["cases"].as_i64().unwrap_or(0),
        );
        let role = if k["current"] == true {
            "current"
        } else {
            "older  "
        };
        let note = if k["current"] != true && d + c == 0 {
            "  (unused: may leave the file)"
        } else {
            ""
        };
        println!(
            "  {} {role} seals {d} deposits, {c} case BSNs{note}   {}",
            k["id"].as_str().unwrap_or(""),
            k["recipient"].as_str().unwrap_or("")
        );
    }
    if unrecorded.deposits + unrecorded.cases > 0 {
        println!(
            "  sealed before key ids were recorded: {} deposits, {} case BSNs (a serving gateway re-seals them)",
            unrecorded.deposits, unrecorded.cases
        );
    }
    for u in &unknown {
        eprintln!(
            "error: {} deposits and {} case BSNs are sealed with {}, which is not in the file: put that key back",
            u.deposits,
            u.cases,
            u.key.as_deref().unwrap_or("")
        );
    }
    println!("pseudonym key ring ({}):", pfile.display());
    for k in &pkeys {
        let c = k["cases"].as_i64().unwrap_or(0);
        let role = if k["current"] == true {
            "current"
        } else {
            "older  "
        };
        println!(
            "  {} {role} made the pseudonyms of {c} cases{}",
            k["id"].as_str().unwrap_or(""),
            if k["current"] != true && c == 0 {
                "  (unused by the register: may leave the file; log entries made with it are then no longer found by BSN)"
            } else {
                ""
            }
        );
    }
    if pcount(None) > 0 {
        println!(
            "  made before key ids were recorded: {} cases (a serving gateway re-keys them)",
            pcount(None)
        );
    }
    for (k, n) in &punknown {
        eprintln!(
            "error: {n} cases have a pseudonym made with {}, which is not in the file: put that key back",
            k.as_deref().unwrap_or("")
        );
    }
    println!(
        "log signing key: {} ({} retired keys still verify older checkpoints)",
        log_keys.current.vkey(),
        log_keys.retired.len()
    );
    Ok(code)
}

fn rotate_storage(config: &Path) -> anyhow::Result<i32> {
    let cfg = Config::load(config, std::env::vars())?;
    let file = &cfg.secrets.storage_identity_file;
    let old =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    // The old keys must still read: they open what they sealed until the re-seal is done.
    let before = StorageKeys::new(read_age_identities(file)?)
        .with_context(|| format!("{}: no storage key", file.display()))?;
    let new = age::x25519::Identity::generate();
    let created =
        crate::log::entry::rfc3339::format(crate::clock::Clock::now(&crate::clock::SystemClock))
            .unwrap_or_default();
    let text = format!(
        "# created: {created} (current: seals from now on; the keys below still open what they sealed)\n# public key: {}\n{}\n{old}",
        new.to_public(),
        new.to_string().expose_secret()
    );
    write_atomically(file, &text, true)?;
    let id = crate::crypto::storage_key_id(&new.to_public());
    println!(
        "new storage key {id} ({}) first in {}; the previous current key {} stays below it",
        new.to_public(),
        file.display(),
        before.current()
    );
    println!(
        "A serving gateway picks it up within secrets.reload_secs ({} s), records the rotation, seals new data with it and re-seals older rows while it serves; remove {} from the file once `gateway keys status` shows it unused.",
        cfg.secrets.reload_secs,
        before.current()
    );
    Ok(0)
}

fn rotate_pseudonym(config: &Path) -> anyhow::Result<i32> {
    let cfg = Config::load(config, std::env::vars())?;
    let file = &cfg.secrets.pseudonym_key_file;
    let old =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let keys = crate::crypto::read_pseudonym_keys(file)?;
    if keys.len() >= crate::crypto::MAX_PSEUDONYM_KEYS {
        anyhow::bail!(
            "{} already holds {} keys, the most in use at once: remove the oldest once `gateway keys status` shows it unused",
            file.display(),
            keys.len()
        );
    }
    let before = crate::crypto::PseudonymKeys::new(keys)
        .with_context(|| format!("{}: no pseudonym key", file.display()))?;
    let new = crate::pki::random_hex().map_err(|e| anyhow::anyhow!("{e}"))?;
    let created =
        crate::log::entry::rfc3339::format(crate::clock::Clock::now(&crate::clock::SystemClock))
            .unwrap_or_default();
    let text = format!(
        "# created: {created} (current: makes new pseudonyms; the keys below still find earlier ones)\n{new}{old}"
    );
    write_atomically(file, &text, true)?;
    let after = crate::crypto::PseudonymKeys::new(crate::crypto::read_pseudonym_keys(file)?)
        .context("the new pseudonym key file")?;
    println!(
        "new pseudonym key {} first in {}; the previous current key {} stays below it",
        after.current(),
        file.display(),
        before.current()
    );
    println!(
        "A serving gateway picks it up within secrets.reload_secs ({} s): new pseudonyms (and what partners receive from `pseudonymize`) come from it, and cases are re-keyed while it serves. Receiving partners' pseudonyms change: old and new copies no longer link.",
        cfg.secrets.reload_secs
    );
    Ok(0)
}
