//! `gateway serve` and `gateway config check`.

use crate::config::{Config, Source};
use crate::runtime::load;
use crate::startup::run_any;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Where the Debian package puts the configuration.
pub const PACKAGED_CONFIG: &str = "/etc/gateway/gateway.toml";
/// Where `gateway certs init` puts the example's, in a checkout.
pub const EXAMPLE_CONFIG: &str = "certs-example/generated/gateway.toml";

/// The default `--config`: the packaged path when it exists, else the example's.
pub fn default_config() -> PathBuf {
    if std::path::Path::new(PACKAGED_CONFIG).exists() {
        PathBuf::from(PACKAGED_CONFIG)
    } else {
        PathBuf::from(EXAMPLE_CONFIG)
    }
}

/// `gateway serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Environment variables GATEWAY_* override it.
    #[arg(long, default_value_os_t = default_config())]
    pub config: PathBuf,
    /// Accept the example PKI made by `gateway certs init` (demonstrations and tests only).
    #[arg(long)]
    pub allow_example_pki: bool,
    /// Start although none of the covenant's witnesses can be asked whether this database is
    /// the log they cosigned (a disaster where the network to every partner is down). The start
    /// and REASON are recorded in the disclosure log; a rewound or forked log is refused anyway.
    #[arg(long, value_name = "REASON")]
    pub without_witnesses: Option<String>,
}

/// `gateway config check` options.
#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// Configuration file (TOML).
    #[arg(long, default_value_os_t = default_config())]
    pub config: PathBuf,
    /// Do not report the example PKI as a problem.
    #[arg(long)]
    pub allow_example_pki: bool,
    /// List every key with where its value came from (file, environment, a secret file, default).
    #[arg(long)]
    pub sources: bool,
    /// `text` or `json` (`{"ok": …, "problems": […], "sources": {key: source}, …}`).
    #[arg(long, value_enum, default_value_t)]
    pub format: super::OutputFormat,
}

/// Checks a configuration and everything it points to; prints each problem; exit 1 if any.
pub fn config_check(args: ConfigCheckArgs) -> anyhow::Result<i32> {
    crate::install_crypto_provider();
    let json = args.format == super::OutputFormat::Json;
    let cfg = match Config::load(&args.config, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            if json {
                super::print_json(&serde_json::json!({
                    "config": args.config, "ok": false, "problems": [e.to_string()],
                }))?;
            } else {
                eprintln!("error: {e}");
            }
            return Ok(1);
        }
    };
    if json {
        let sources: std::collections::BTreeMap<&String, String> = cfg
            .value_sources
            .iter()
            .map(|(k, s)| (k, s.to_string()))
            .collect();
        let (ok, problems, detail) = match load(&cfg, args.allow_example_pki) {
            Ok(l) => (
                true,
                Vec::new(),
                serde_json::json!({
                    "gateway_id": cfg.gateway_id,
                    "listen": l.listen.to_string(),
                    "health_listen": l.health_listen.to_string(),
                    "database": format!("{:?}", l.backend),
                    "covenant_file_version": l.file_policy.version(),
                    "example_pki": l.example_pki,
                }),
            ),
            Err(problems) => (
                false,
                problems.iter().map(ToString::to_string).collect(),
                serde_json::Value::Null,
            ),
        };
        super::print_json(&serde_json::json!({
            "config": args.config, "ok": ok, "problems": problems, "loaded": detail, "sources": sources,
        }))?;
        return Ok(i32::from(!ok));
    }
    match load(&cfg, args.allow_example_pki) {
        Ok(l) => {
            println!("{}: ok", args.config.display());
            println!("  gateway id    {}", cfg.gateway_id);
            println!(
                "  listen        {} (mutual TLS), health {}",
                l.listen, l.health_listen
            );
            println!("  database      {:?}", l.backend);
            println!(
                "  covenant      {} ({} partners; used when the database has no active version)",
                l.file_policy.version(),
                l.file_policy.covenant.covenant().partners.len()
            );
            if l.example_pki {
                println!("  WARNING       the CA is the EXAMPLE PKI: for demonstrations only");
            }
            if args.sources {
                println!("  where each value came from:");
                for (key, source) in &cfg.value_sources {
                    println!("    {key:<44} {source}");
                }
            } else {
                let overridden: Vec<String> = cfg
                    .value_sources
                    .iter()
                    .filter(|(_, s)| !matches!(s, Source::File | Source::Default))
                    .map(|(k, s)| format!("{k} ({s})"))
                    .collect();
                if !overridden.is_empty() {
                    println!("  not from the file: {}", overridden.join(", "));
                }
            }
            Ok(0)
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            eprintln!(
                "{}: {} problem{}",
                args.config.display(),
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            Ok(1)
        }
    }
}

/// Runs the gateway until SIGINT or SIGTERM.
pub fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    crate::install_crypto_provider();
    let mut cfg = Config::load(&args.config, std::env::vars())?;
    cfg.without_witnesses = args.without_witnesses.filter(|r| !r.trim().is_empty());
    crate::telemetry::init(&cfg.log);
    let loaded = match load(&cfg, args.allow_example_pki) {
        Ok(l) => l,
        Err(problems) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            anyhow::bail!(
                "{} problem(s) in {}; `gateway config check --config {}` lists them too",
                problems.len(),
                args.config.display(),
                args.config.display()
            );
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let api = tokio::net::TcpListener::bind(loaded.listen)
            .await
            .with_context(|| format!("binding {}", loaded.listen))?;
        let health = tokio::net::TcpListener::bind(loaded.health_listen)
            .await
            .with_context(|| format!("binding {}", loaded.health_listen))?;
        let ready = serde_json::json!({
            "event": "listening",
            "api": api.local_addr()?.to_string(),
            "health": health.local_addr()?.to_string(),
            "covenant_file_version": loaded.file_policy.version(),
            "example_pki": loaded.example_pki,
        });
        // One line on stdout, once the database and the log are ready, so that scripts and
        // tests know where to connect.
        let stop = shutdown_signal()?;
        run_any(loaded, cfg, api, health, stop, move || println!("{ready}")).await
    })?;
    Ok(0)
}

/// SIGINT or SIGTERM. The handlers are installed when this is called, not when the future is
/// first polled: a stop that arrives right after the ready line is a clean stop, not the
/// signal's default (the process killed).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
