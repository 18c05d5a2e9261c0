//! `gateway witness …`: a covenant partner's witness of the gateway's log.

use crate::clock::SystemClock;
use crate::witness::server::{Witness, WitnessConfig, router};
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;
use std::sync::Arc;

/// `gateway witness` commands.
#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Make a witness: a new cosigning key and a `witness.toml` following one log. Prints the
    /// witness's verifier key, for the covenant's `[[witness]]` entry.
    Init {
        /// Directory to write `witness.toml` and `witness-ed25519.key` to.
        dir: PathBuf,
        /// The witness's name, e.g. `witness.politie.ipga-r.example`.
        #[arg(long)]
        name: String,
        /// The log's verifier key (`gateway audit vkey`); its name is the log's origin.
        #[arg(long)]
        log_vkey: String,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8481")]
        listen: String,
    },
    /// Serve the C2SP tlog-witness protocol for the configured logs until SIGINT or SIGTERM.
    Serve {
        /// The witness's configuration.
        #[arg(long)]
        config: PathBuf,
    },
}

/// Runs a witness command.
pub fn run(cmd: WitnessCommand) -> anyhow::Result<i32> {
    crate::install_crypto_provider();
    match cmd {
        WitnessCommand::Init {
            dir,
            name,
            log_vkey,
            listen,
        } => init(&dir, &name, &log_vkey, &listen),
        WitnessCommand::Serve { config } => serve(&config),
    }
}

fn init(dir: &std::path::Path, name: &str, log_vkey: &str, listen: &str) -> anyhow::Result<i32> {
    let origin = log_vkey
        .split('+')
        .next()
        .filter(|o| !o.is_empty())
        .context("a log vkey starts with the log's origin")?;
    crate::log::checkpoint::NoteVerifier::from_vkey(log_vkey)
        .map_err(|e| anyhow::anyhow!("--log-vkey: {e}"))?;
    std::fs::create_dir_all(dir)?;
    let mut seed = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let key = dir.join("witness-ed25519.key");
    write_private(&key, &format!("{}\n", hex::encode(seed)))?;
    let cosigner = crate::log::cosign::Cosigner::from_seed(name, &seed)
        .map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let config = format!(
        "# A witness of the iPGA-R gateway's log (`gateway witness serve --config {}`).\n\
         name = {name:?}\nkey_file = \"witness-ed25519.key\"\nlisten = {listen:?}\ndatabase = \"sqlite://witness.db\"\n\n\
         [[log]]\norigin = {origin:?}\nvkeys = [{log_vkey:?}]\n",
        dir.join("witness.toml").display()
    );
    std::fs::write(dir.join("witness.toml"), config)?;
    println!("{}", cosigner.vkey());
    Ok(0)
}

/// Writes a new file readable by its owner only; refuses to overwrite one.
pub fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn serve(config: &std::path::Path) -> anyhow::Result<i32> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let cfg: WitnessConfig =
        toml::from_str(&text).with_context(|| format!("{}", config.display()))?;
    crate::telemetry::init(&crate::config::LogConfig::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let base = config.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
        let w = Arc::new(Witness::open(&cfg, &base, Arc::new(SystemClock)).await?);
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        // Readiness for scripts and tests: one JSON line once it listens.
        println!(
            "{}",
            serde_json::json!({"event": "listening", "witness": listener.local_addr()?.to_string(), "vkey": w.vkey()})
        );
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
            }
        };
        axum::serve(listener, router(w))
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(0)
}
