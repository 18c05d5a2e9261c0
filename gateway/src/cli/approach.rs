//! `gateway approach-index`: what another approach's register runs to answer the aanpak-check
//! without ever receiving a BSN: its own BSNs turned into the pseudonyms the gateway sends it.

use anyhow::Context;
use clap::Args;
use std::io::BufRead;
use std::path::PathBuf;

/// `gateway approach-index` options.
#[derive(Debug, Args)]
pub struct ApproachIndexArgs {
    /// The key shared between this approach and the gateway (64 hex digits; the gateway's
    /// `[[approach]] key_file`).
    #[arg(long)]
    pub key: PathBuf,
    /// A CSV of the approach's subjects, the BSN in the first column (a header line is
    /// skipped); standard input when left out.
    pub input: Option<PathBuf>,
}

/// Prints the pseudonym of every BSN, sorted and without duplicates, one per line.
pub fn run(args: ApproachIndexArgs) -> anyhow::Result<i32> {
    let key =
        crate::crypto::read_approach_key(&args.key).map_err(|e| anyhow::anyhow!("--key {e}"))?;
    let reader: Box<dyn BufRead> = match &args.input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut out = std::collections::BTreeSet::new();
    let mut bad = 0usize;
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        let field = line
            .split([',', ';'])
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches('"');
        if field.is_empty() || (i == 0 && !field.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        match policy::Bsn::parse(field) {
            Ok(bsn) => {
                out.insert(crate::crypto::approach_pseudonym(&key, &bsn));
            }
            Err(e) => {
                // The line number only: the value may be personal data.
                eprintln!("line {}: not a valid BSN ({e})", i + 1);
                bad += 1;
            }
        }
    }
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    for p in &out {
        writeln!(stdout, "{p}")?;
    }
    if bad > 0 {
        eprintln!("{bad} line(s) skipped; {} pseudonyms written", out.len());
        return Ok(1);
    }
    Ok(0)
}
