//! `gateway audit verify|export|report|vkey|rotate-key`.

use super::OutputFormat;
use crate::config::Config;
use crate::log::checkpoint::{KeySet, LogKey};
use crate::log::merkle::{Hash, Levels};
use crate::log::verify::{ExportLine, Report};
use crate::store::Db;
use anyhow::Context;
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Audit commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every hash of the disclosure log, its chain, its stored tree, its head and every
    /// checkpoint signature, and check every searchable column against its entry; exit 1 naming
    /// the first bad sequence number.
    Verify {
        /// Configuration file (for the database URL and the log keys).
        #[arg(long, default_value_os_t = super::serve::default_config())]
        config: PathBuf,
        /// The log's verifier keys (`name+id+key`, one per line: the current key and every
        /// retired one), instead of those of the configuration.
        #[arg(long)]
        vkey: Option<PathBuf>,
        /// Verify this database instead of the configured one.
        #[arg(long)]
        database_url: Option<String>,
        /// Verify an export file (from `gateway audit export`) instead of a database.
        #[arg(long, conflicts_with = "database_url")]
        export: Option<PathBuf>,
        /// `text` or `json` (`{"ok": …, "entries": …, "first_bad": {"seq": …, "problem": …}}`).
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
        /// A witness's verifier key (repeat for each, as in the covenant's `[[witness]]`): say
        /// which checkpoints each cosigned, and fail on a cosignature that does not verify.
        #[arg(long = "witness", value_name = "VKEY")]
        witnesses: Vec<String>,
        /// How many of the witnesses must have cosigned a checkpoint for it to count as
        /// witnessed (default: all of them); fail when none is.
        #[arg(long, requires = "witnesses")]
        quorum: Option<usize>,
        /// A directory of receipts a partner kept (`audit_receipt` of its answers, one per
        /// file): fail on any the log does not hold with that seq and leaf hash.
        #[arg(long, value_name = "DIR", conflicts_with = "export")]
        receipts: Option<PathBuf>,
        /// With --export: accept entries that no signed checkpoint in the file covers (an
        /// export of an older gateway); they are then named, not proven.
        #[arg(long, requires = "export")]
        accept_unproven: bool,
    },
    /// Write the whole log as JSON lines: header, signed checkpoints (the last one signed now,
    /// over every entry exported), then every entry with its inclusion proof against it. Verify
    /// it with `gateway audit verify --export FILE` (`--vkey` alone is enough offline).
    Export {
        /// Configuration file.
        #[arg(long, default_value_os_t = super::serve::default_config())]
        config: PathBuf,
        /// Export this database instead of the configured one.
        #[arg(long)]
        database_url: Option<String>,
        /// Output file (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Write a closed range of the log (entries 1 to the last checkpoint at or below --until,
    /// their inclusion proofs against it, and the checkpoints) as a self-contained file that
    /// `gateway audit verify --export` checks offline; with --recipient, encrypted with age.
    Archive {
        /// Configuration file.
        #[arg(long, default_value_os_t = super::serve::default_config())]
        config: PathBuf,
        /// Archive this database instead of the configured one.
        #[arg(long)]
        database_url: Option<String>,
        /// The last sequence number wanted; the archive ends at the largest checkpoint size at
        /// or below it, so that a signed checkpoint covers every entry in it.
        #[arg(long)]
        until: i64,
        /// The archive file.
        #[arg(long)]
        output: PathBuf,
        /// An archivist's age recipient (`age1…`): the file is encrypted to it (`age --decrypt`
        /// opens it).
        #[arg(long)]
        recipient: Option<String>,
    },
    /// A readable GDPR art. 15 report: every disclosure about one person, with purposes and
    /// grounds as the version that decided each one names them (read from the database).
    Report {
        /// Configuration file (for the database and the pseudonym key).
        #[arg(long, default_value_os_t = super::serve::default_config())]
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
        /// `text` or `json`.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
        /// Also write the report with what proves it complete (every entry about the person up
        /// to a cosigned checkpoint, issue 28) to this file, for `gateway audit verify-report`.
        #[arg(long, value_name = "FILE")]
        prove: Option<PathBuf>,
    },
    /// Check a proven report (`audit report --prove`) offline: that it holds every entry about
    /// the person up to its checkpoint, signed by the log and cosigned by the witnesses.
    VerifyReport {
        /// The proven report.
        file: PathBuf,
        /// The log's verifier keys (`name+id+key`, one per line).
        #[arg(long)]
        vkey: PathBuf,
        /// A witness's verifier key (repeat for each).
        #[arg(long = "witness", value_name = "VKEY")]
        witnesses: Vec<String>,
        /// How many of them must have cosigned the checkpoint (default: all given).
        #[arg(long)]
        quorum: Option<usize>,
        /// `text` or `json`.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Print the log's verifier keys (current first, then retired), for partners to pin.
    Vkey {
        /// Configuration file.
        #[arg(long, default_value_os_t = super::serve::default_config())]
        config: PathBuf,
        /// `text` (one per line) or `json` (`{"current": …, "retired": […]}`).
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Replace the log's signing key: a new key is written to `secrets.log_key_file`, the old
    /// key's verifier key is added to the retired keys, and a serving gateway records the
    /// rotation and signs with the new key within `secrets.reload_secs` (a stopped one from its
    /// next start).
    RotateKey {
        /// Configuration file.
        #[arg(long, default_value_os_t = super::serve::default_config())]
        config: PathBuf,
    },
}

pub(super) fn origin(cfg: &Config) -> String {
    format!("{}/disclosures", cfg.gateway_id)
}

/// The verifier keys: from `--vkey` alone when given (offline, no configuration needed), else
/// the configuration's log keys.
fn keys_for(config: &std::path::Path, vkey: Option<&PathBuf>) -> anyhow::Result<KeySet> {
    match vkey {
        Some(p) => vkey_file(p),
        None => key_set(&Config::load(config, std::env::vars())?, None),
    }
}

/// `audit verify-report`: the proof of completeness, and the report's disclosures against it.
fn verify_report(
    file: &std::path::Path,
    vkey: &std::path::Path,
    witnesses: &[String],
    quorum: Option<usize>,
    format: OutputFormat,
) -> anyhow::Result<i32> {
    #[derive(serde::Deserialize)]
    struct Proven {
        report: ProvenReport,
        proof: crate::log::subjects::SubjectProof,
    }
    #[derive(serde::Deserialize)]
    struct ProvenReport {
        disclosures: Vec<Seq>,
        #[serde(default)]
        confidential_purposes_left_out: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let p: Proven = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a proven report (`audit report --prove`)",
            file.display()
        )
    })?;
    let keys = vkey_file(vkey)?;
    let (verifiers, quorum) = witness_quorum(witnesses, quorum)?;
    let listed: Vec<u64> = p.report.disclosures.iter().map(|d| d.seq).collect();
    let checked = crate::log::subjects::verify_proof(&p.proof, &keys, &verifiers, quorum).and_then(
        |proven| {
            crate::log::subjects::check_report(
                &p.proof,
                &proven,
                &listed,
                &p.report.confidential_purposes_left_out,
            )
            .map(|()| proven)
        },
    );
    match (checked, format) {
        (Ok(proven), OutputFormat::Json) => {
            super::print_json(&serde_json::json!({"ok": true, "proven": proven}))?;
            Ok(0)
        }
        (Ok(proven), OutputFormat::Text) => {
            println!(
                "complete: {} entries about this person up to checkpoint {} ({} of them removed by retention), cosigned by {}; the report's {} disclosures are among them",
                proven.entries,
                proven.size,
                proven.removed,
                if proven.witnesses.is_empty() {
                    "no witness".to_owned()
                } else {
                    proven.witnesses.join(", ")
                },
                p.report.disclosures.len()
            );
            for k in &proven.not_covered {
                println!(
                    "not covered: entries under pseudonym key {}, retired at entry {} ({}): that key is gone, so they can no longer be found by BSN",
                    k.key, k.seq, k.at
                );
            }
            Ok(0)
        }
        (Err(why), OutputFormat::Json) => {
            super::print_json(&serde_json::json!({"ok": false, "problem": why}))?;
            Ok(1)
        }
        (Err(why), OutputFormat::Text) => {
            println!("NOT PROVEN: {why}");
            Ok(1)
        }
    }
}

/// The `--witness` keys and `--quorum` (default: all of them), checked against each other.
fn witness_quorum(
    witnesses: &[String],
    quorum: Option<usize>,
) -> anyhow::Result<(Vec<crate::log::cosign::CosignVerifier>, usize)> {
    let verifiers = witnesses
        .iter()
        .map(|k| {
            crate::log::cosign::CosignVerifier::from_vkey(k)
                .map_err(|e| anyhow::anyhow!("--witness {k}: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let quorum = quorum.unwrap_or(verifiers.len());
    if quorum > verifiers.len() || (quorum == 0 && !verifiers.is_empty()) {
        anyhow::bail!(
            "--quorum {quorum} with {} --witness key(s): give 1 to {}",
            verifiers.len(),
            verifiers.len()
        );
    }
    Ok((verifiers, quorum))
}

/// A file of verifier keys (`name+id+key`, one per line).
fn vkey_file(p: &std::path::Path) -> anyhow::Result<KeySet> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    KeySet::parse(&text).with_context(|| format!("{}", p.display()))
}

pub(super) fn key_set(cfg: &Config, vkey: Option<&PathBuf>) -> anyhow::Result<KeySet> {
    match vkey {
        Some(p) => vkey_file(p),
        None => Ok(crate::runtime::load_log_keys(&cfg.secrets, &origin(cfg))
            .map_err(anyhow::Error::msg)?
            .key_set()?),
    }
}

/// Every regular file in `dir`, each a receipt, in name order.
fn read_receipts(dir: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        if !e.file_type()?.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(e.path())
            .with_context(|| format!("reading {}", e.path().display()))?;
        out.push((e.file_name().to_string_lossy().into_owned(), text));
    }
    out.sort();
    Ok(out)
}

/// The receipts' verdict (after the log's own): exit 1 when one does not hold.
fn print_receipts(h: &crate::log::verify::ReceiptReport, format: OutputFormat) -> i32 {
    if format == OutputFormat::Json {
        println!("{}", serde_json::json!({ "receipts": h }));
    } else if h.bad.is_empty() {
        println!(
            "receipts: {} checked, each names an entry the log holds with that hash",
            h.checked
        );
    } else {
        for b in &h.bad {
            eprintln!("FAILED: receipt {b}");
        }
        eprintln!(
            "FAILED: {} of {} receipts are not held by the log",
            h.bad.len(),
            h.checked
        );
    }
    i32::from(!h.bad.is_empty())
}

/// The log's report and the witnesses' (when keys were given); exit 1 when either fails.
fn print_report_witnessed(
    report: &Report,
    witnessed: Option<&crate::log::verify::WitnessReport>,
    secs: f64,
    format: OutputFormat,
) -> i32 {
    let Some(w) = witnessed else {
        return print_report(report, secs, format);
    };
    let failed = !w.bad.is_empty() || w.latest_witnessed().is_none();
    if format == OutputFormat::Json {
        let doc = serde_json::json!({
            "ok": report.first_bad.is_none() && !failed,
            "entries": report.entries,
            "nodes": report.nodes,
            "checkpoints": report.checkpoints,
            "proofs": report.proofs,
            "removed": report.removed,
            "removed_ranges": report.removed_ranges,
            "seconds": secs,
            "first_bad": report.first_bad.as_ref().map(|(seq, why)| serde_json::json!({"seq": seq, "problem": why})),
            "witnesses": w,
        });
        println!("{doc}");
        return i32::from(report.first_bad.is_some() || failed);
    }
    let code = print_report(report, secs, format);
    for c in &w.checkpoints {
        let names: Vec<&str> = c.by.iter().map(|(n, _)| n.as_str()).collect();
        println!(
            "  checkpoint {:>8}: cosigned by {} (quorum {}): {}{}",
            c.size,
            c.by.len(),
            w.quorum,
            names.join(", "),
            if c.by.len() >= w.quorum {
                ""
            } else {
                " (below the quorum)"
            }
        );
    }
    for b in &w.bad {
        eprintln!("FAILED: {b}");
    }
    match w.latest_witnessed() {
        Some(c) => println!(
            "witnessed: {} of {} cosigned checkpoints reach the quorum of {}; the latest is of size {} ({} of {} entries)",
            w.quorum_met,
            w.checkpoints.len(),
            w.quorum,
            c.size,
            c.size,
            report.entries
        ),
        None => eprintln!(
            "FAILED: no checkpoint is cosigned by {} of the given witnesses: nothing holds this log to what the partners saw",
            w.quorum
        ),
    }
    if failed { 1 } else { code }
}

fn print_report(report: &Report, secs: f64, format: OutputFormat) -> i32 {
    if format == OutputFormat::Json {
        let doc = serde_json::json!({
            "ok": report.first_bad.is_none(),
            "entries": report.entries,
            "nodes": report.nodes,
            "checkpoints": report.checkpoints,
            "proofs": report.proofs,
            "removed": report.removed,
            "removed_ranges": report.removed_ranges,
            "unproven": report.unproven.map(|(first, last)| serde_json::json!({"first": first, "last": last})),
            "seconds": secs,
            "first_bad": report.first_bad.as_ref().map(|(seq, why)| serde_json::json!({"seq": seq, "problem": why})),
        });
        println!("{doc}");
        return i32::from(report.first_bad.is_some());
    }
    if let Some((first, last)) = report.unproven {
        eprintln!(
            "NOTE: entries {first}..={last} are in no signed checkpoint of the export: accepted unproven (--accept-unproven)"
        );
    }
    match &report.first_bad {
        None => {
            println!(
                "OK: {} entries, {} tree nodes and {} checkpoints verified{} in {secs:.2} s ({:.0} entries/minute); the log is intact",
                report.entries,
                report.nodes,
                report.checkpoints,
                if report.proofs > 0 {
                    format!(", {} inclusion proofs", report.proofs)
                } else {
                    String::new()
                },
                report.entries as f64 / secs.max(1e-9) * 60.0
            );
            if report.removed > 0 {
                let ranges: Vec<String> = report
                    .removed_ranges
                    .iter()
                    .take(10)
                    .map(|r| format!("{}..={} ({})", r.first, r.last, r.rule))
                    .collect();
                let more = report.removed_ranges.len().saturating_sub(10);
                println!(
                    "  {} of them removed by retention, as the retention entries record (hashes verified, content gone): {}{}",
                    report.removed,
                    ranges.join(", "),
                    if more > 0 {
                        format!(" and {more} more ranges")
                    } else {
                        String::new()
                    }
                );
            }
            0
        }
        Some((seq, why)) => {
            eprintln!("FAILED at sequence number {seq}: {why}");
            eprintln!(
                "({} entries and {} checkpoints read)",
                report.entries, report.checkpoints
            );
            1
        }
    }
}

/// Progress on a terminal, nothing when piped.
fn progress(what: &'static str) -> impl FnMut(i64) {
    let tty = std::io::stderr().is_terminal();
    move |n| {
        if tty {
            eprint!("\r{what} {n} entries…");
        }
    }
}

fn end_progress() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

/// The checkpoint an export ends at: the stored one of the log's current size, or one signed
/// now. Not stored: an export reads the database and writes nothing to it (it may be a replica
/// or a restored copy); the checkpoint is in the export, signed by the log key. `None` for an
/// empty log.
async fn sign_head(
    db: &Db,
    origin: &str,
    key: &crate::log::checkpoint::LogKey,
) -> anyhow::Result<Option<crate::store::StoredCheckpoint>> {
    let head = db.log_head().await?;
    if head.size == 0 {
        return Ok(None);
    }
    if let Some(c) = db.latest_checkpoint().await?
        && c.size == head.size
    {
        return Ok(Some(c));
    }
    let root = head
        .root
        .context("the log head has no root: run `gateway audit verify`")?;
    let note = key.sign(&crate::log::checkpoint::Checkpoint {
        origin: origin.to_owned(),
        size: u64::try_from(head.size).context("the log's size")?,
        root,
        extensions: vec![crate::log::subjects::head_at(db, head.size).await?.line()],
    });
    Ok(Some(crate::store::StoredCheckpoint {
        size: head.size,
        root,
        note,
        at: crate::clock::Clock::now(&crate::clock::SystemClock),
    }))
}

async fn export(
    db: &Db,
    origin: &str,
    until: Option<i64>,
    covering: Option<crate::store::StoredCheckpoint>,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<i64> {
    let head = db.log_head().await?;
    let mut checkpoints = db.checkpoints().await?;
    // An export ends at the checkpoint signed for it (or the stored one that covered the log
    // when it began), also when a live gateway appends meanwhile: every entry is proven.
    let until = match covering {
        Some(c) => {
            let end = c.size;
            if checkpoints.last().is_none_or(|l| l.size < end) {
                checkpoints.push(c);
            }
            Some(end)
        }
        None => until,
    };
    // An archive ends at a checkpoint: its "head" is that checkpoint's size and the chain
    // hash of its last entry.
    let (head_size, head_chain) = match until {
        None => (head.size, head.chain_hash),
        Some(u) => {
            checkpoints.retain(|c| c.size <= u);
            let Some(end) = checkpoints.last().map(|c| c.size) else {
                anyhow::bail!(
                    "no signed checkpoint at or below sequence number {u}: nothing can be archived yet"
                );
            };
            let last = db
                .entries(end - 1, 1)
                .await?
                .into_iter()
                .next()
                .context("the archive's last entry")?;
            (end, last.leaf.chain_hash)
        }
    };
    writeln!(
        out,
        "{}",
        serde_json::to_string(&ExportLine::Header {
            origin: origin.into(),
            head_size,
            head_chain: hex::encode(head_chain),
        })?
    )?;
    let proof_size = checkpoints.last().map(|c| c.size);
    for c in &checkpoints {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&ExportLine::Checkpoint {
                size: c.size,
                root: hex::encode(c.root),
                note: c.note.clone(),
            })?
        )?;
    }
    // Proofs for every entry from one pass over the leaves: the export reads them all anyway.
    let levels = match proof_size {
        Some(size) => {
            let mut leaves: Vec<Hash> = Vec::new();
            let mut after = 0;
            while after < size {
                let page = db.leaf_hashes(after, size.min(after + 100_000)).await?;
                let Some((last, _)) = page.last() else { break };
                after = *last;
                leaves.extend(page.into_iter().map(|(_, h)| h));
            }
            Some(Levels::new(leaves))
        }
        None => None,
    };
    let tombstones = db.tombstones().await?;
    let removed_under = |seq: i64| {
        let i = tombstones.partition_point(|t| t.last_seq < seq);
        tombstones
            .get(i)
            .filter(|t| t.first_seq <= seq)
            .map(|t| t.rule.clone())
    };
    let mut report = progress("exported");
    let (mut after, mut n) = (0i64, 0i64);
    while after < head_size {
        let page = db.entries(after, 20_000.min(head_size - after)).await?;
        let Some(last) = page.last().map(|e| e.leaf.seq) else {
            break;
        };
        after = last;
        for e in page {
            let seq = e.leaf.seq;
            let covered = proof_size.filter(|s| seq <= *s);
            let proof = match (&levels, covered, usize::try_from(seq - 1)) {
                (Some(l), Some(_), Ok(i)) => l.proof(i).iter().map(hex::encode).collect(),
                _ => Vec::new(),
            };
            let line = ExportLine::Entry {
                seq,
                removed: e.record.is_none().then(|| removed_under(seq)).flatten(),
                entry: e.record.map(|r| r.entry),
                leaf_hash: hex::encode(e.leaf.leaf_hash),
                chain_hash: hex::encode(e.leaf.chain_hash),
                proof_size: covered,
                proof,
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
            n += 1;
        }
        report(n);
    }
    end_progress();
    Ok(n)
}

/// The art. 15 report as text for people.
fn readable(report: &crate::service::audit::SubjectReport) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Disclosures about data subject {} (pseudonym)",
        report.data_subject
    );
    if !report.confidential_purposes_left_out.is_empty() {
        let _ = writeln!(
            o,
            "Left out as confidential from the data subject: {}",
            report
                .confidential_purposes_left_out
                .iter()
                .map(|u| match report.confidential_grounds.get(u) {
                    Some(g) => format!("{u} ({g})"),
                    None => u.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if report.disclosures.is_empty() {
        let _ = writeln!(o, "\nNo disclosures.");
    }
    for n in &report.removed_under_retention {
        let _ = writeln!(
            o,
            "Removed under retention rule {} ({}): {} entries{} from before {}; those about this person are no longer listed",
            n.rule,
            n.ground,
            n.kinds.join(", "),
            if n.purposes.is_empty() {
                String::new()
            } else {
                format!(" for {}", n.purposes.join(", "))
            },
            n.removed_before
        );
    }
    for d in &report.disclosures {
        let _ = writeln!(
            o,
            "\n#{} {}  to {} ({}) for {} — {}",
            d.seq,
            d.at,
            d.to,
            d.role.as_deref().unwrap_or(""),
            d.purpose.as_deref().unwrap_or(""),
            d.purpose_name.as_deref().unwrap_or("")
        );
        for (product, fields) in &d.data_received {
            let names: Vec<String> = fields
                .iter()
                .map(|f| {
                    format!(
                        "{}{}",
                        f.field,
                        if f.how == "transformed" {
                            " (transformed)"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            let _ = writeln!(o, "    {product}: {}", names.join(", "));
        }
        for (rule, ground) in &d.legal_grounds {
            let _ = writeln!(o, "    ground ({rule}): {ground}");
        }
    }
    o
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Writes `text` to `path` via a temporary file in the same directory, so that a crash leaves
/// either the old or the new content (owner-only permissions for secrets).
pub(super) fn write_atomically(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if secret {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

fn rotate_key(cfg: &Config) -> anyhow::Result<i32> {
    let origin = origin(cfg);
    let old = crate::runtime::load_log_key(&cfg.secrets.log_key_file, &origin)
        .map_err(anyhow::Error::msg)?;
    let mut seed = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let new = LogKey::from_seed(&origin, &seed)?;
    // The old verifier key first, so that a crash between the two writes loses nothing: a
    // retired key that still signs is harmless, a lost one is not.
    let retired = cfg.secrets.retired_log_vkeys();
    let mut list = match std::fs::read_to_string(&retired) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# Verifier keys of retired log keys (gateway audit rotate-key); checkpoints they signed still verify.\n".into()
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", retired.display())),
    };
    if !list.lines().any(|l| l.trim() == old.vkey()) {
        if !list.ends_with('\n') {
            list.push('\n');
        }
        list.push_str(&old.vkey());
        list.push('\n');
    }
    write_atomically(&retired, &list, false)?;
    write_atomically(
        &cfg.secrets.log_key_file,
        &format!("{}\n", hex::encode(seed)),
        true,
    )?;
    println!("log key rotated");
    println!(
        "  retired  {} (listed in {})",
        old.vkey(),
        retired.display()
    );
    println!("  new      {}", new.vkey());
    println!(
        "A serving gateway picks it up within secrets.reload_secs (a stopped one at its next start): it records the rotation in the log and signs every checkpoint from then on with the new key. Give partners and their witnesses the new verifier key (`gateway audit vkey`): a witness cosigns only checkpoints of the key it was given."
    );
    Ok(0)
}

/// Runs an audit command.
pub fn run(cmd: AuditCommand) -> anyhow::Result<i32> {
    match cmd {
        AuditCommand::Vkey { config, format } => {
            let cfg = Config::load(&config, std::env::vars())?;
            let keys = key_set(&cfg, None)?.vkeys();
            match format {
                OutputFormat::Json => super::print_json(&serde_json::json!({
                    "current": keys.first(),
                    "retired": keys.get(1..).unwrap_or_default(),
                }))?,
                OutputFormat::Text => keys.iter().for_each(|k| println!("{k}")),
            }
            Ok(0)
        }
        AuditCommand::RotateKey { config } => {
            let cfg = Config::load(&config, std::env::vars())?;
            rotate_key(&cfg)
        }
        AuditCommand::Verify {
            config,
            vkey,
            export: Some(file),
            format,
            accept_unproven,
            ..
        } => {
            let keys = keys_for(&config, vkey.as_ref())?;
            let reader = std::io::BufReader::new(
                std::fs::File::open(&file)
                    .with_context(|| format!("opening {}", file.display()))?,
            );
            let started = std::time::Instant::now();
            let report = crate::log::verify::verify_export(reader, &keys, accept_unproven)
                .map_err(anyhow::Error::msg)?;
            Ok(print_report(
                &report,
                started.elapsed().as_secs_f64(),
                format,
            ))
        }
        AuditCommand::Verify {
            config,
            vkey,
            database_url,
            export: None,
            format,
            witnesses,
            quorum,
            receipts,
            accept_unproven: _,
        } => {
            let cfg = Config::load(&config, std::env::vars())?;
            let keys = key_set(&cfg, vkey.as_ref())?;
            let notes = match &receipts {
                Some(dir) => read_receipts(dir)?,
                None => Vec::new(),
            };
            let log_origin = origin(&cfg);
            let (verifiers, quorum) = witness_quorum(&witnesses, quorum)?;
            let url = database_url.unwrap_or_else(|| cfg.database_url.clone());
            runtime()?.block_on(async move {
                let db = Db::connect(&url).await?;
                let started = std::time::Instant::now();
                let versions = crate::service::policy_admin::stored_versions(&db).await?;
                let mut report = crate::log::verify::verify_with(
                    &db,
                    &keys,
                    Some(versions),
                    progress("verified"),
                )
                .await?;
                // Every activation against the partners' signatures it needed (issue 37).
                if let Some((seq, why)) =
                    crate::service::policy_admin::unsigned_activation(&db).await?
                    && report.first_bad.as_ref().is_none_or(|(s, _)| seq < *s)
                {
                    report.first_bad = Some((seq, why));
                }
                end_progress();
                let witnessed = if verifiers.is_empty() {
                    None
                } else {
                    Some(crate::log::verify::witnesses(&db, &verifiers, quorum).await?)
                };
                let held = if receipts.is_some() {
                    Some(crate::log::verify::receipts(&db, &keys, &log_origin, &notes).await?)
                } else {
                    None
                };
                let code = print_report_witnessed(
                    &report,
                    witnessed.as_ref(),
                    started.elapsed().as_secs_f64(),
                    format,
                );
                Ok(match held {
                    Some(h) => code.max(print_receipts(&h, format)),
                    None => code,
                })
            })
        }
        AuditCommand::Export {
            config,
            database_url,
            output,
        } => {
            let cfg = Config::load(&config, std::env::vars())?;
            let url = database_url.unwrap_or_else(|| cfg.database_url.clone());
            let mut out: Box<dyn std::io::Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let origin = origin(&cfg);
            let log_keys =
                crate::runtime::load_log_keys(&cfg.secrets, &origin).map_err(anyhow::Error::msg)?;
            let n = runtime()?.block_on(async {
                let db = Db::connect(&url).await?;
                // A checkpoint over every entry exported, so that each one carries a proof.
                let covering = sign_head(&db, &origin, &log_keys.current).await?;
                export(&db, &origin, None, covering, &mut out).await
            })?;
            out.flush()?;
            if let Some(p) = output {
                eprintln!("exported {n} entries to {}", p.display());
            }
            Ok(0)
        }
        AuditCommand::Archive {
            config,
            database_url,
            until,
            output,
            recipient,
        } => {
            let cfg = Config::load(&config, std::env::vars())?;
            let url = database_url.unwrap_or_else(|| cfg.database_url.clone());
            let origin = origin(&cfg);
            let recipient = recipient
                .map(|r| {
                    <age::x25519::Recipient as std::str::FromStr>::from_str(r.trim())
                        .map_err(|e| anyhow::anyhow!("--recipient: {e}"))
                })
                .transpose()?;
            // Streamed to a partial file (encrypted on the way when asked), renamed when done.
            let partial = output.with_extension("partial");
            let file = std::io::BufWriter::new(
                std::fs::File::create(&partial)
                    .with_context(|| format!("writing {}", partial.display()))?,
            );
            let n = runtime()?.block_on(async {
                let db = Db::connect(&url).await?;
                match &recipient {
                    None => {
                        let mut w = file;
                        let n = export(&db, &origin, Some(until), None, &mut w).await?;
                        std::io::Write::flush(&mut w)?;
                        Ok::<_, anyhow::Error>(n)
                    }
                    Some(r) => {
                        let mut w = age::Encryptor::with_recipients(std::iter::once(
                            r as &dyn age::Recipient,
                        ))
                        .and_then(|e| e.wrap_output(file).map_err(Into::into))
                        .map_err(|e| anyhow::anyhow!("age: {e}"))?;
                        let n = export(&db, &origin, Some(until), None, &mut w).await?;
                        std::io::Write::flush(&mut w.finish()?)?;
                        Ok(n)
                    }
                }
            });
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
            };
            std::fs::rename(&partial, &output)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "archived entries 1 to {n} with their proofs to {}{}; check it with `gateway audit verify --export`",
                output.display(),
                if recipient.is_some() {
                    " (encrypted with age: decrypt it first)"
                } else {
                    ""
                }
            );
            Ok(0)
        }
        AuditCommand::VerifyReport {
            file,
            vkey,
            witnesses,
            quorum,
            format,
        } => verify_report(&file, &vkey, &witnesses, quorum, format),
        AuditCommand::Report {
            config,
            subject,
            include_confidential,
            database_url,
            format,
            prove,
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
            let bsn =
                policy::Bsn::parse(&subject).map_err(|e| anyhow::anyhow!("--subject: {e}"))?;
            let pseudonyms = secrets.subject_pseudonyms(&bsn);
            let report = runtime()?.block_on(async {
                let db = Db::connect(&url).await?;
                // The database's versions, not the covenant file: each entry is reported as the
                // version that decided it names it.
                let active = db
                    .active_policy_draft()
                    .await?
                    .context("the database has no policy version: has a gateway ever run on it?")?;
                let cc = std::sync::Arc::new(
                    crate::lifecycle::PolicyBuilder::compile_stored(&active)
                        .context("the active policy version in the database")?,
                );
                let mut versions = crate::service::audit::Versions::new(db.clone(), [cc.clone()]);
                let report = crate::service::audit::subject_report(
                    &db,
                    &mut versions,
                    &cc,
                    &pseudonyms,
                    include_confidential,
                    None,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.describe().1))?;
                if let Some(path) = &prove {
                    let proof = crate::service::audit::prove_subject(&db, &pseudonyms, None)
                        .await
                        .map_err(|e| anyhow::anyhow!("proving the report complete: {e}"))?;
                    let text = serde_json::to_string_pretty(
                        &serde_json::json!({"report": &report, "proof": proof}),
                    )?;
                    std::fs::write(path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "wrote the report with its proof of completeness to {}; check it with `gateway audit verify-report {} --vkey … --witness …`",
                        path.display(),
                        path.display()
                    );
                }
                anyhow::Ok(report)
            })?;
            match format {
                OutputFormat::Json => super::print_json(&report)?,
                OutputFormat::Text => print!("{}", readable(&report)),
            }
            Ok(0)
        }
    }
}
