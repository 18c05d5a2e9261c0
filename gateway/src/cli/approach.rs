//! `gateway approach`: what another approach's register runs for the oblivious aanpak-check
//! (issue 38; docs/api.md): its key, its signed set of members, its evaluation endpoint; and
//! what iPGA-R's gateway gives an approach to pin for asking it.

use anyhow::Context;
use clap::Subcommand;
use std::io::BufRead;
use std::path::PathBuf;

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
    /// Serve the register: `GET /set` (the published set) and `POST /evaluate` (one blinded
    /// element, with its proof) over mutual TLS, with a quota per client certificate.
    Serve {
        /// The register's configuration (docs/operations.md, "Another approach's register").
        #[arg(long)]
        config: PathBuf,
    },
    /// On iPGA-R's gateway: what approach `asker` pins to ask iPGA-R obliviously (the POPRF
    /// public key and the set verifier key of iPGA-R's register for it).
    Pins {
        /// The gateway's configuration.
        #[arg(long)]
        config: PathBuf,
        /// The asking approach's id.
        #[arg(long = "for")]
        asker: String,
    },
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
            let (public, vkey) = crate::oprf::pins(&approach, &seed)?;
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
            let epoch = match epoch {
                Some(e) => crate::oprf::Epoch::parse(&e)
                    .ok_or_else(|| anyhow::anyhow!("--epoch is YYYY-MM"))?,
                None => crate::oprf::Epoch::of(now),
            };
            let (bsns, bad) = read_bsns(input.as_deref())?;
            let (set, note) = crate::oprf::publish(
                &approach,
                &seed,
                epoch,
                (now, now.saturating_add(i64::from(days) * 86_400)),
                bsns.iter().map(|b| b.expose().as_bytes()),
                &mut crate::oprf::SystemRng,
            )?;
            std::fs::write(&out, note).with_context(|| format!("writing {}", out.display()))?;
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
        ApproachCommand::Serve { config } => serve(&config),
        ApproachCommand::Pins { config, asker } => {
            let cfg = crate::config::Config::load(&config, std::env::vars())?;
            let loaded = crate::runtime::load(&cfg, true)
                .map_err(|p| anyhow::anyhow!("{}", p.join("\n")))?;
            let ours = loaded
                .file_policy
                .covenant
                .covenant()
                .governance
                .approach
                .clone();
            let (public, vkey) = crate::service::checks::pins(&loaded.secrets, &ours, &asker)?;
            println!(
                "# {asker}'s configuration for asking {ours} (its register at the gateway's /v1/checks)"
            );
            println!("oprf_public = \"{public}\"");
            println!("set_vkey = \"{vkey}\"");
            Ok(0)
        }
    }
}

/// `gateway approach serve`'s configuration.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterConfig {
    /// The register's approach id.
    approach: String,
    /// Where to listen.
    listen: String,
    /// The register's secret key (`approach key`).
    key_file: PathBuf,
    /// The signed set (`approach publish`), read at start.
    set_file: PathBuf,
    /// The covenant's CA, whose client certificates are accepted.
    ca: PathBuf,
    /// The register's server certificate and key.
    cert: PathBuf,
    /// Its private key.
    key: PathBuf,
    /// Evaluations per client.
    #[serde(default)]
    quota: crate::register::Quota,
}

fn serve(path: &std::path::Path) -> anyhow::Result<i32> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut cfg: RegisterConfig =
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    for p in [
        &mut cfg.key_file,
        &mut cfg.set_file,
        &mut cfg.ca,
        &mut cfg.cert,
        &mut cfg.key,
    ] {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    let key = crate::oprf::RegisterKey::from_seed(&read_seed(&cfg.key_file)?)?;
    let set = std::fs::read_to_string(&cfg.set_file)
        .with_context(|| format!("reading {}", cfg.set_file.display()))?;
    let tls = crate::tls::client_auth_server_config(&cfg.ca, &cfg.cert, &cfg.key)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        let register = std::sync::Arc::new(crate::register::Register::new(
            &cfg.approach,
            key,
            set,
            cfg.quota,
            std::sync::Arc::new(crate::clock::SystemClock),
        ));
        println!(
            "register {} listening on https://{}",
            cfg.approach,
            listener.local_addr()?
        );
        crate::register::serve(
            listener,
            tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls)),
            crate::register::router(register),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await;
        anyhow::Ok(0)
    })
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
