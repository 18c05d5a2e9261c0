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
        /// Verify an export file (from `gateway audit export`) instead of a database.
        #[arg(long, conflicts_with = "database_url")]
        export: Option<PathBuf>,
    },
    /// Write the whole log as JSON lines: header, signed checkpoints, then every entry with its
    /// inclusion proof against the latest checkpoint that covers it. Verify it with
    /// `gateway audit verify --export FILE`.
    Export {
        /// Configuration file.
        #[arg(long, default_value = super::serve::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Export this database instead of the configured one.
        #[arg(long)]
        database_url: Option<String>,
        /// Output file (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// A readable GDPR art. 15 report: every disclosure about one person.
    Report {
        /// Configuration file (for the database and the pseudonym key).
        #[arg(long, default_value = super::serve::DEFAULT_CONFIG)]
        config: PathBuf,
        /// The person's BSN.
        #[arg(long)]
        subject: String,
        /// Also list purposes the covenant marks confidential from the data subject.
        #[arg(long)]
        include_confidential: bool,
        /// Report from this database instead of the configured one.
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
    print_report(&report, started.elapsed().as_secs_f64())
}

fn print_report(report: &crate::audit::verify::Report, secs: f64) -> anyhow::Result<i32> {
    match &report.first_bad {
        None => {
            println!(
                "OK: {} entries and {} checkpoints verified{} in {secs:.2} s ({:.0} entries/minute); the log is intact",
                report.entries,
                report.checkpoints,
                if report.proofs > 0 {
                    format!(", {} inclusion proofs", report.proofs)
                } else {
                    String::new()
                },
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

async fn export<S: Store>(
    store: &S,
    origin: &str,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<i64> {
    use crate::audit::verify::ExportLine;
    let (head_size, head_chain) = store.log_head().await?;
    let checkpoints = store.checkpoints().await?;
    writeln!(
        out,
        "{}",
        serde_json::to_string(&ExportLine::Header {
            origin: origin.into(),
            head_size,
            head_chain
        })?
    )?;
    let proof_size = checkpoints.last().map(|(s, _, _)| *s);
    for (size, root, note) in &checkpoints {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&ExportLine::Checkpoint {
                size: *size,
                root: root.clone(),
                note: note.clone()
            })?
        )?;
    }
    let levels = match proof_size {
        Some(size) => {
            let leaves: Vec<crate::audit::merkle::Hash> = store
                .leaf_hashes(size)
                .await?
                .iter()
                .filter_map(|h| crate::audit::parse_hash(h))
                .collect();
            Some(crate::audit::merkle::Levels::new(leaves))
        }
        None => None,
    };
    let (mut after, mut n) = (0i64, 0i64);
    loop {
        let page = store.disclosures(after, 20_000).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (seq, row) in page {
            let covered = proof_size.filter(|s| seq <= *s);
            let proof = match (&levels, covered) {
                (Some(l), Some(_)) => l
                    .proof((seq - 1) as usize)
                    .iter()
                    .map(hex::encode)
                    .collect(),
                _ => Vec::new(),
            };
            let line = ExportLine::Entry {
                seq,
                entry: row.entry,
                leaf_hash: row.leaf_hash,
                chain_hash: row.chain_hash,
                proof_size: covered,
                proof,
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The art. 15 report as text for people.
fn readable(report: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Disclosures about data subject {} (pseudonym)",
        report["data_subject"].as_str().unwrap_or("")
    );
    if let Some(left) = report["confidential_purposes_left_out"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        let names: Vec<&str> = left.iter().filter_map(|v| v.as_str()).collect();
        let _ = writeln!(
            o,
            "Left out as confidential from the data subject: {}",
            names.join(", ")
        );
    }
    let list = report["disclosures"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        let _ = writeln!(o, "\nNo disclosures.");
    }
    for d in &list {
        let _ = writeln!(
            o,
            "\n#{} {}  to {} ({}) for {} — {}",
            d["seq"],
            d["at"].as_str().unwrap_or(""),
            d["to"].as_str().unwrap_or(""),
            d["role"].as_str().unwrap_or(""),
            d["purpose"].as_str().unwrap_or(""),
            d["purpose_name"].as_str().unwrap_or("")
        );
        for (product, fields) in d["data_received"].as_object().into_iter().flatten() {
            let names: Vec<String> = fields
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    format!(
                        "{}{}",
                        f["field"].as_str().unwrap_or(""),
                        if f["how"] == "transformed" {
                            " (transformed)"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            let _ = writeln!(o, "    {product}: {}", names.join(", "));
        }
        for (rule, ground) in d["legal_grounds"].as_object().into_iter().flatten() {
            let _ = writeln!(o, "    ground ({rule}): {}", ground.as_str().unwrap_or(""));
        }
    }
    o
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
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
            export: Some(file),
            ..
        } => {
            let cfg = Config::load(&config, std::env::vars())?;
            let v = verifier(&cfg, vkey.as_ref())?;
            let reader = std::io::BufReader::new(
                std::fs::File::open(&file)
                    .with_context(|| format!("opening {}", file.display()))?,
            );
            let started = std::time::Instant::now();
            let report =
                crate::audit::verify::verify_export(reader, &v).map_err(anyhow::Error::msg)?;
            print_report(&report, started.elapsed().as_secs_f64())
        }
        AuditCommand::Verify {
            config,
            vkey,
            database_url,
            export: None,
        } => {
            let cfg = Config::load(&config, std::env::vars())?;
            let v = verifier(&cfg, vkey.as_ref())?;
            let url = database_url.unwrap_or_else(|| cfg.database_url.clone());
            runtime()?.block_on(async move {
                match Backend::from_url(&url)? {
                    Backend::Sqlite => verify_with(SqliteStore::connect(&url).await?, &v).await,
                    Backend::Postgres => verify_with(PgStore::connect(&url).await?, &v).await,
                }
            })
        }
        AuditCommand::Export {
            config,
            database_url,
            output,
        } => {
            let cfg = Config::load(&config, std::env::vars())?;
            let url = database_url.unwrap_or_else(|| cfg.database_url.clone());
            let origin = format!("{}/disclosures", cfg.gateway_id);
            let mut out: Box<dyn std::io::Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let n = runtime()?.block_on(async {
                match Backend::from_url(&url)? {
                    Backend::Sqlite => {
                        export(&SqliteStore::connect(&url).await?, &origin, &mut out).await
                    }
                    Backend::Postgres => {
                        export(&PgStore::connect(&url).await?, &origin, &mut out).await
                    }
                }
            })?;
            out.flush()?;
            if let Some(p) = output {
                eprintln!("exported {n} entries to {}", p.display());
            }
            Ok(0)
        }
        AuditCommand::Report {
            config,
            subject,
            include_confidential,
            database_url,
        } => {
            let cfg = Config::load(&config, std::env::vars())?;
            let url = database_url.unwrap_or_else(|| cfg.database_url.clone());
            let secrets = crate::crypto::Secrets::load(
                &cfg.secrets.storage_identity_file,
                &cfg.secrets.pseudonym_key_file,
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    e.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            let bsn = policy::Bsn::parse(subject.trim())
                .map_err(|e| anyhow::anyhow!("--subject: {e}"))?;
            let pseudonym = secrets.subject_pseudonym(&bsn);
            let src = std::fs::read_to_string(&cfg.covenant)?;
            let cc = policy::compile_toml(&src).map_err(|d| {
                anyhow::anyhow!(d.render(&cfg.covenant.display().to_string(), &src))
            })?;
            let report = runtime()?.block_on(async {
                let c = cc.covenant();
                let r = match Backend::from_url(&url)? {
                    Backend::Sqlite => {
                        crate::audit::officer::subject_report(
                            &SqliteStore::connect(&url).await?,
                            c,
                            &pseudonym,
                            include_confidential,
                            None,
                        )
                        .await
                    }
                    Backend::Postgres => {
                        crate::audit::officer::subject_report(
                            &PgStore::connect(&url).await?,
                            c,
                            &pseudonym,
                            include_confidential,
                            None,
                        )
                        .await
                    }
                };
                r.map_err(|e| anyhow::anyhow!("{}", e.describe().1))
            })?;
            print!("{}", readable(&report));
            Ok(0)
        }
    }
}
