//! `gateway approach-index`: what another approach's register runs to answer the aanpak-check
//! without ever receiving a BSN: its own BSNs turned into the pseudonyms the gateway sends it.

use anyhow::Context;
use clap::{Args, Subcommand};
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
    let (bsns, bad) = read_bsns(args.input.as_deref())?;
    let out: std::collections::BTreeSet<String> = bsns
        .iter()
        .map(|bsn| crate::crypto::approach_pseudonym(&key, bsn))
        .collect();
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

/// `gateway approach`: what another approach's register runs for the oblivious aanpak-check.
#[derive(Debug, Subcommand)]
pub enum ApproachCommand {
    /// Make the register's secret key (never leaves the register) and print what the askers
    /// pin: the OPRF public key and the verifier key of its published sets.
    Key {
        /// The register's approach id (the covenant's `[[approach]] id`).
        #[arg(long)]
        approach: String,
        /// Where to write the secret key (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Publish the register's members for an epoch: their OPRF outputs, padded to a power of
    /// two and signed, for the askers to fetch (no BSN and nothing computable from one).
    Publish {
        /// The register's approach id.
        #[arg(long)]
        approach: String,
        /// The register's secret key (from `approach key`).
        #[arg(long)]
        key: PathBuf,
        /// A CSV of the members, the BSN in the first column (a header line is skipped);
        /// standard input when left out.
        input: Option<PathBuf>,
        /// The epoch (`YYYY-MM`); default: this month.
        #[arg(long)]
        epoch: Option<String>,
        /// Days the set may be used (default 35: a month and its overlap).
        #[arg(long, default_value_t = 35)]
        days: u32,
        /// Where to write the signed set.
        #[arg(long)]
        out: PathBuf,
    },
}

/// What `approach key` prints for the askers' configuration.
pub fn pins(approach: &str, seed: &[u8]) -> anyhow::Result<(String, String)> {
    let key = crate::oprf::RegisterKey::from_seed(seed)?;
    let sign = crate::oprf::set_signing_key(approach, seed)?;
    Ok((hex::encode(key.public()), sign.vkey()))
}

fn read_seed(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let seed = hex::decode(text.trim()).context("a register key is 64 hex digits")?;
    anyhow::ensure!(seed.len() == 32, "a register key is 64 hex digits");
    Ok(seed)
}

/// Runs an `approach` command; `now` is the clock's reading.
pub fn run_command(cmd: ApproachCommand, now: i64) -> anyhow::Result<i32> {
    match cmd {
        ApproachCommand::Key { approach, out } => {
            let mut seed = [0u8; 32];
            aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow::anyhow!("no randomness"))?;
            super::witness::write_private(&out, &format!("{}\n", hex::encode(seed)))?;
            let (public, vkey) = pins(&approach, &seed)?;
            println!("oprf_public = \"{public}\"");
            println!("set_vkey = \"{vkey}\"");
            Ok(0)
        }
        ApproachCommand::Publish {
            approach,
            key,
            input,
            epoch,
            days,
            out,
        } => {
            let seed = read_seed(&key)?;
            let oprf = crate::oprf::RegisterKey::from_seed(&seed)?;
            let sign = crate::oprf::set_signing_key(&approach, &seed)?;
            let epoch = match epoch {
                Some(e) => crate::oprf::Epoch::parse(&e)
                    .ok_or_else(|| anyhow::anyhow!("--epoch is YYYY-MM"))?,
                None => crate::oprf::Epoch::of(now),
            };
            let (bsns, bad) = read_bsns(input.as_deref())?;
            let info = crate::oprf::info(&approach, &epoch);
            let members = bsns
                .iter()
                .map(|b| oprf.member(b.expose().as_bytes(), &info))
                .collect::<Result<Vec<_>, _>>()?;
            let set = crate::oprf::PublishedSet::new(
                &approach,
                epoch,
                now,
                now.saturating_add(i64::from(days) * 86_400),
                members,
                &mut crate::oprf::SystemRng,
            );
            std::fs::write(&out, set.sign(&sign))
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{} members of {approach} for epoch {} published as a set of {} in {}",
                bsns.len(),
                set.epoch,
                set.members.len(),
                out.display()
            );
            if bad > 0 {
                eprintln!("{bad} line(s) skipped");
                return Ok(1);
            }
            Ok(0)
        }
    }
}

/// The BSNs of a CSV's first column (a header line skipped), deduplicated; and how many lines
/// held no valid BSN (reported by line number only: the value may be personal data).
fn read_bsns(input: Option<&std::path::Path>) -> anyhow::Result<(Vec<policy::Bsn>, usize)> {
    let reader: Box<dyn BufRead> = match input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut out = std::collections::BTreeMap::new();
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
                out.insert(bsn.expose().to_owned(), bsn);
            }
            Err(e) => {
                // The line number only: the value may be personal data.
                eprintln!("line {}: not a valid BSN ({e})", i + 1);
                bad += 1;
            }
        }
    }
    Ok((out.into_values().collect(), bad))
}
