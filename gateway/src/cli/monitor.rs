//! `gateway monitor`: a partner's monitor of the gateway's log (see `crate::monitor`).

use crate::monitor::{Finding, Monitor, MonitorConfig, Round};
use anyhow::Context;
use clap::Args;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::path::PathBuf;
use std::sync::Arc;

/// `gateway monitor` options.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The monitor's configuration (`monitor.toml`).
    #[arg(long)]
    pub config: PathBuf,
    /// One round: exit 0 when nothing was found against the log, 1 when a fork, rewind,
    /// missing entry, late inclusion or bad receipt was, 2 when the round could not be made or
    /// a receipt could not be checked (the gateway gave no proof: rate limited, unavailable).
    #[arg(long)]
    pub once: bool,
    /// `text` or `json` (one JSON object per round).
    #[arg(long, value_enum, default_value_t)]
    pub format: super::OutputFormat,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// The monitor's metrics.
struct Metrics {
    registry: Registry,
    findings: Family<KindLabel, Gauge>,
    size: Gauge,
    cosigned: Gauge,
    round_ok: Gauge,
    last_round: Gauge,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gateway_monitor");
        let m = Metrics {
            registry: Registry::default(),
            findings: Family::default(),
            size: Gauge::default(),
            cosigned: Gauge::default(),
            round_ok: Gauge::default(),
            last_round: Gauge::default(),
        };
        registry.register("findings", "Findings of the last round by kind (fork, rewind, missing-entry, late-inclusion, bad-receipt, unwitnessed)", m.findings.clone());
        registry.register(
            "checkpoint_size",
            "Size of the served checkpoint in the last round",
            m.size.clone(),
        );
        registry.register(
            "cosignatures",
            "Valid witness cosignatures of the served checkpoint",
            m.cosigned.clone(),
        );
        registry.register(
            "round_ok",
            "1 when the last round could be made",
            m.round_ok.clone(),
        );
        registry.register(
            "last_round_timestamp_seconds",
            "Unix time of the last round",
            m.last_round.clone(),
        );
        Metrics { registry, ..m }
    }

    fn record(&self, r: Option<&Round>, now: i64) {
        self.last_round.set(now);
        self.round_ok.set(i64::from(r.is_some()));
        for kind in [
            "fork",
            "rewind",
            "missing-entry",
            "late-inclusion",
            "bad-receipt",
            "unwitnessed",
            "subjects-shrank",
        ] {
            let n = r.map_or(0, |r| {
                r.findings.iter().filter(|f| f.kind() == kind).count()
            });
            self.findings
                .get_or_create(&KindLabel { kind })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if let Some(r) = r {
            self.size.set(i64::try_from(r.size).unwrap_or(i64::MAX));
            self.cosigned
                .set(i64::try_from(r.cosigned_by.len()).unwrap_or(i64::MAX));
        }
    }
}

fn print_round(r: &Round, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(&serde_json::to_value(r)?);
    }
    println!(
        "checkpoint of size {} cosigned by {} ({}); receipts: {} included, {} not yet due",
        r.size,
        r.cosigned_by.len(),
        r.cosigned_by.join(", "),
        r.receipts_included,
        r.receipts_pending
    );
    for u in &r.unreachable {
        println!("warning: witness unreachable: {u}");
    }
    for f in &r.findings {
        println!("{f}");
    }
    if !r.findings.iter().any(Finding::is_evidence) {
        println!("OK: the log only grew, as every witness saw it, and every due receipt is in it");
    }
    Ok(())
}

/// Runs the monitor: one round, or rounds until SIGINT/SIGTERM.
pub fn run(args: MonitorArgs) -> anyhow::Result<i32> {
    crate::install_crypto_provider();
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let cfg: MonitorConfig =
        toml::from_str(&text).with_context(|| args.config.display().to_string())?;
    let base = args
        .config
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let client = super::remote::mtls_client(
        &base.join(&cfg.ca),
        &base.join(&cfg.cert),
        &base.join(&cfg.key),
    )?;
    let monitor = Monitor::new(cfg, &base, client)?;
    let json = args.format == super::OutputFormat::Json;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let now = || crate::clock::Clock::now(&crate::clock::SystemClock);
        if args.once {
            return match monitor.round(now()).await {
                Ok(r) => {
                    print_round(&r, json)?;
                    Ok(if r.findings.iter().any(Finding::is_evidence) {
                        1
                    } else if r.findings.iter().any(Finding::is_unchecked) {
                        2
                    } else {
                        0
                    })
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(2)
                }
            };
        }
        crate::telemetry::init(&crate::config::LogConfig::default());
        let metrics = Arc::new(Metrics::new());
        if let Some(addr) = &monitor.config().metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let m = metrics.clone();
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let m = m.clone();
                    async move {
                        let mut out = String::new();
                        match prometheus_client::encoding::text::encode(&mut out, &m.registry) {
                            Ok(()) => (
                                [(
                                    "content-type",
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                )],
                                out,
                            ),
                            Err(_) => ([("content-type", "text/plain")], String::new()),
                        }
                    }
                }),
            );
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
        let every = std::time::Duration::from_secs(monitor.config().interval_secs.max(1));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::signal::ctrl_c() => return Ok(0),
            }
            let t = now();
            match monitor.round(t).await {
                Ok(r) => {
                    metrics.record(Some(&r), t);
                    for f in &r.findings {
                        if f.is_evidence() {
                            tracing::error!(finding = f.kind(), "{f}");
                        } else {
                            tracing::warn!(finding = f.kind(), "{f}");
                        }
                    }
                    for u in &r.unreachable {
                        tracing::warn!("witness unreachable: {u}");
                    }
                    tracing::info!(
                        size = r.size,
                        cosigned = r.cosigned_by.len(),
                        receipts_included = r.receipts_included,
                        receipts_pending = r.receipts_pending,
                        "monitor round"
                    );
                }
                Err(e) => {
                    metrics.record(None, t);
                    tracing::error!(error = %e, "monitor round failed");
                }
            }
        }
    })
}
