//! `gateway console`: the privacy officer's web console (docs/console.md).

use std::path::PathBuf;

/// `gateway console` options.
#[derive(Debug, clap::Args)]
pub struct ConsoleArgs {
    /// Console configuration file (`console.toml`: the gateway's URL, the partner's client
    /// certificate, the log's verifier key, the command that prints the officer's token).
    #[arg(long, default_value = "console.toml")]
    pub config: PathBuf,
}

/// Serves the console until Ctrl-C; prints `{"console": ADDR, "login": LINK}` once it listens.
pub fn run(args: ConsoleArgs) -> anyhow::Result<i32> {
    crate::install_crypto_provider();
    // Operational log lines (routes and statuses, never a value) on stderr.
    let level = std::env::var("GATEWAY_LOG_LEVEL").unwrap_or_else(|_| "info".into());
    crate::telemetry::init(&crate::config::LogConfig {
        format: crate::config::LogFormat::Json,
        level,
    });
    let cfg = crate::console::ConsoleConfig::load(&args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&cfg.listen).await?;
        let addr = listener.local_addr()?;
        crate::console::serve(
            cfg,
            listener,
            std::sync::Arc::new(crate::clock::SystemClock),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            |link| {
                println!(
                    "{}",
                    serde_json::json!({"console": addr.to_string(), "login": link})
                );
                eprintln!("console: open {link} in your browser (the link works once)");
            },
        )
        .await?;
        Ok::<_, anyhow::Error>(0)
    })
}
