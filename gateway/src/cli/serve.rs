//! `gateway serve` and `gateway config check`.

use crate::clock::SystemClock;
use crate::config::Config;
use crate::runtime::{Loaded, load};
use crate::server::{AppState, Shared, health_router, router, serve_plain, serve_tls};
use crate::store::{Backend, PolicyDraftRow, Store, postgres::PgStore, sqlite::SqliteStore};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default configuration path: the example PKI's.
pub const DEFAULT_CONFIG: &str = "certs-example/generated/gateway.toml";

/// `gateway serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Environment variables GATEWAY_* override it.
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Accept the example PKI made by `gateway certs init` (demonstrations and tests only).
    #[arg(long)]
    pub allow_example_pki: bool,
}

/// `gateway config check` options.
#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// Configuration file (TOML).
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Do not report the example PKI as a problem.
    #[arg(long)]
    pub allow_example_pki: bool,
}

/// Checks a configuration and everything it points to; prints each problem; exit 1 if any.
pub fn config_check(args: ConfigCheckArgs) -> anyhow::Result<i32> {
    crate::install_crypto_provider();
    let cfg = match Config::load(&args.config, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
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
    let cfg = Config::load(&args.config, std::env::vars())?;
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
        // One line on stdout so that scripts and tests know where to connect.
        println!("{ready}");
        run_any(loaded, cfg, api, health, shutdown_signal()).await
    })?;
    Ok(0)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Opens the configured database and serves until `shutdown` resolves.
pub async fn run_any(
    loaded: Loaded,
    cfg: Config,
    api: tokio::net::TcpListener,
    health: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    match loaded.backend {
        Backend::Sqlite => {
            let store = SqliteStore::connect(&cfg.database_url)
                .await
                .context("opening the SQLite database")?;
            run(store, loaded, cfg, api, health, shutdown).await
        }
        Backend::Postgres => {
            let store = PgStore::connect(&cfg.database_url)
                .await
                .context("connecting to PostgreSQL")?;
            run(store, loaded, cfg, api, health, shutdown).await
        }
    }
}

async fn run<S: Store>(
    store: S,
    loaded: Loaded,
    cfg: Config,
    api: tokio::net::TcpListener,
    health: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    let now = crate::clock::Clock::now(&SystemClock);
    let boot = PolicyDraftRow {
        id: crate::lifecycle::api::new_draft_id(),
        version: loaded.file_policy.version().to_owned(),
        source: loaded.covenant_source.clone(),
        key_material: serde_json::to_string(&loaded.key_material)?,
        kind: "bootstrap".into(),
        base_version: None,
        author_partner: "(configuration)".into(),
        author_staff: cfg.covenant.display().to_string(),
        created_at: now,
        approved_partner: None,
        approved_staff: None,
        approved_at: None,
        activated_partner: Some("(configuration)".into()),
        activated_staff: Some(cfg.covenant.display().to_string()),
        activated_at: Some(now),
        status: "active".into(),
    };
    let active_row = store
        .bootstrap_policy(&boot)
        .await
        .context("reading the active policy version")?;
    let bootstrapped = active_row.id == boot.id;
    let mut file_policy = loaded.file_policy;
    let active = if bootstrapped {
        file_policy.draft = boot.id.clone();
        file_policy
    } else {
        if active_row.version != file_policy.version() {
            tracing::warn!(active = %active_row.version, file = %file_policy.version(), "the covenant file differs from the active version in the database; the file only starts an empty database: submit it as a draft (`gateway policy submit`) to change the active version");
        }
        let cc =
            crate::lifecycle::PolicyBuilder::compile_stored(&active_row).with_context(|| {
                format!(
                    "the active policy version {} ({}) in the database",
                    active_row.id, active_row.version
                )
            })?;
        loaded
            .builder
            .build(Arc::new(cc), &active_row.id, &loaded.secrets)
            .map_err(|es| anyhow::anyhow!("loading the active policy version: {}", es.join("; ")))?
    };
    let active_version = active.version().to_owned();
    let shared = Arc::new(Shared {
        policy: crate::lifecycle::PolicyCell::from_pointee(active),
        builder: loaded.builder.clone(),
        administration: cfg.administration.clone(),
        activation: tokio::sync::Mutex::new(()),
        secrets: loaded.secrets,
        opened: crate::cache::Bounded::new(cfg.limits.opened_records_cached),
        clock: Arc::new(SystemClock),
        tokens: loaded.tokens,
        limits: cfg.limits.clone(),
        upstream: loaded.upstream,
        limiter: crate::disclose::Limiter::new(
            cfg.limits.partner_per_second,
            cfg.limits.staff_per_second,
        ),
        log: crate::audit::writer::LogWriter::start(store.clone()),
        frontier: tokio::sync::Mutex::new(Default::default()),
        log_key: loaded.log_key.clone(),
        log_origin: loaded.log_origin.clone(),
    });
    if bootstrapped {
        let details = serde_json::json!({"draft": boot.id, "version": boot.version, "source": boot.author_staff});
        crate::lifecycle::api::record_event(&shared, &shared.policy.load(), "bootstrap", details)
            .await
            .context("recording the first policy version in the disclosure log")?;
    }
    // Versions activated by another instance sharing the database.
    if cfg.administration.poll_secs > 0 {
        let (store, shared) = (store.clone(), shared.clone());
        let every = Duration::from_secs(cfg.administration.poll_secs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = crate::lifecycle::api::follow_database(&store, &shared).await {
                    tracing::error!(error = %e, "cannot load the version active in the database; keeping the current one");
                }
            }
        });
    }
    // New revocation lists, without a restart.
    if cfg.tls.crl_check_secs > 0 {
        let shared = shared.clone();
        let every = Duration::from_secs(cfg.tls.crl_check_secs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = crate::lifecycle::api::reload_crls(&shared).await {
                    tracing::error!(error = %e, "cannot reload the revocation lists; keeping the current ones");
                }
            }
        });
    }
    // Rate-limit keys of staff who stopped asking are forgotten every minute.
    {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                shared.limiter.prune();
            }
        });
    }
    // Periodic checkpoints, so that the log is committed to even when nobody asks.
    if cfg.audit.checkpoint_interval_secs > 0 {
        let (store, shared) = (store.clone(), shared.clone());
        let every = Duration::from_secs(cfg.audit.checkpoint_interval_secs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                use crate::clock::Clock;
                let s = &shared;
                if let Err(e) = crate::audit::api::checkpoint_now(
                    &store,
                    &s.frontier,
                    &s.log_key,
                    &s.log_origin,
                    SystemClock.now(),
                )
                .await
                {
                    tracing::warn!(error = %e, "periodic checkpoint failed");
                }
            }
        });
    }
    let app = router(AppState {
        store: store.clone(),
        shared: shared.clone(),
    });
    tracing::info!(api = %api.local_addr()?, health = %health.local_addr()?, covenant = %active_version, "gateway listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut health_stop = stop_rx.clone();
    let health_task = tokio::spawn(serve_plain(health, health_router(store), async move {
        let _ = health_stop.changed().await;
    }));
    let handshake = Duration::from_millis(cfg.tls.handshake_timeout_ms);
    serve_tls(
        api,
        shared,
        app,
        handshake,
        shutdown,
        Duration::from_secs(10),
    )
    .await;
    let _ = stop_tx.send(true);
    let _ = health_task.await;
    drop(stop_rx);
    tracing::info!("gateway stopped");
    Ok(())
}
