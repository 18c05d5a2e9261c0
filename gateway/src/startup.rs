//! Wiring a running gateway: the database migrated, the log opened, the active policy version
//! loaded (or the first one bootstrapped, recorded), the background tasks started, the
//! listeners served until shutdown, the log drained. Used by `gateway serve` and the demo.

use crate::app::App;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::listener::{health_router, serve_plain, serve_tls};
use crate::http::router;
use crate::limits::Limiter;
use crate::log::entry::{KeyChange, Kind, Outcome, PolicyAction, PolicyChange};
use crate::log::{Log, Signer};
use crate::runtime::Loaded;
use crate::service::policy_admin::{follow_database, gateway_entry, new_draft_id, reload_crls};
use crate::store::{Change, Db, DraftKind, DraftStatus, PolicyDraftRow};
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;

/// Opens the configured database and serves until `shutdown` resolves; `ready` is called once
/// the database is migrated, the log open and the active policy version loaded.
pub async fn run_any(
    loaded: Loaded,
    cfg: Config,
    api: tokio::net::TcpListener,
    health: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
    ready: impl FnOnce() + Send,
) -> anyhow::Result<()> {
    let db = Db::connect(&cfg.database_url)
        .await
        .with_context(|| format!("opening the {:?} database", loaded.backend))?;
    let app = prepare(db, loaded, &cfg, Arc::new(SystemClock)).await?;
    background(&app, &cfg);
    serve(app, &cfg, api, health, shutdown, ready).await
}

/// Spawns a task that runs `f` every `every` (the first run after one interval).
fn every<F, Fut>(every: Duration, f: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    every_from(every, every, f);
}

/// Spawns a task that runs `f` after `first`, then every `every`.
fn every_from<F, Fut>(first: Duration, every: Duration, f: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
        loop {
            tick.tick().await;
            f().await;
        }
    });
}

/// Everything before serving: migrations, the log, the active policy version (the first one of
/// an empty database bootstrapped and recorded), a log key rotation recorded. `clock` is the
/// time everything after this reads.
pub async fn prepare(
    db: Db,
    loaded: Loaded,
    cfg: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<App>> {
    db.migrate().await.context("applying database migrations")?;
    let log = Arc::new(
        Log::open(
            db.clone(),
            loaded.log_keys,
            loaded.log_origin.clone(),
            clock.clone(),
        )
        .await
        .context("opening the disclosure log")?,
    );
    let now = clock.now();
    let boot = PolicyDraftRow {
        id: new_draft_id(),
        version: loaded.file_policy.version().to_owned(),
        source: loaded.covenant_source.clone(),
        key_material: serde_json::to_string(&loaded.key_material)?,
        kind: DraftKind::Bootstrap,
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
        status: DraftStatus::Active,
    };
    let stored = db
        .active_policy_draft()
        .await
        .context("reading the active policy version")?;
    let mut file_policy = loaded.file_policy;
    let active = match &stored {
        None => {
            file_policy.draft = boot.id.clone();
            file_policy
        }
        Some(row) => {
            // Fail closed on a version the log did not activate (switched in the database).
            crate::service::policy_admin::check_logged(&db, row)
                .await
                .map_err(anyhow::Error::msg)?;
            if row.version != file_policy.version() {
                tracing::warn!(active = %row.version, file = %file_policy.version(), "the covenant file differs from the active version in the database; the file only starts an empty database: submit it as a draft (`gateway policy submit`) to change the active version");
            }
            let cc = crate::lifecycle::PolicyBuilder::compile_stored(row).with_context(|| {
                format!(
                    "the active policy version {} ({}) in the database",
                    row.id, row.version
                )
            })?;
            loaded
                .builder
                .build(Arc::new(cc), &row.id, &loaded.secrets)
                .map_err(|es| {
                    anyhow::anyhow!("loading the active policy version: {}", es.join("; "))
                })?
        }
    };
    let app = Arc::new(App {
        db: db.clone(),
        log: log.clone(),
        policy: crate::lifecycle::PolicyCell::from_pointee(active),
        builder: loaded.builder.clone(),
        administration: cfg.administration.clone(),
        activation: tokio::sync::Mutex::new(()),
        secrets: loaded.secrets,
        opened: crate::cache::Bounded::new(cfg.limits.opened_records_cached),
        clock,
        tokens: loaded.tokens,
        limits: cfg.limits.clone(),
        upstream: loaded.upstream,
        limiter: Limiter::new(cfg.limits.partner_per_second, cfg.limits.staff_per_second),
        in_flight: tokio::sync::Semaphore::new(cfg.limits.concurrent_requests.max(1)),
        health: crate::app::HealthBounds {
            log_key_file: cfg.secrets.log_key_file.clone(),
            // Three intervals and a minute: one missed round is not yet an alarm.
            checkpoint_max_age: (cfg.audit.checkpoint_interval_secs > 0).then(|| {
                i64::try_from(cfg.audit.checkpoint_interval_secs.saturating_mul(3))
                    .unwrap_or(i64::MAX)
                    .saturating_add(60)
            }),
        },
        // The periodic task looks every second; a few seconds' margin on the interval.
        policy_mismatch: arc_swap::ArcSwapOption::empty(),
        receipt_within: (cfg.audit.checkpoint_interval_secs > 0).then(|| {
            i64::try_from(cfg.audit.checkpoint_interval_secs)
                .unwrap_or(i64::MAX)
                .saturating_add(5)
        }),
        witnesses: crate::witnessing::Witnesses::new(
            &db.latest_cosignatures()
                .await
                .context("reading the stored cosignatures")?,
        )
        .context("the HTTP client for the witnesses")?,
    });
    if stored.is_none() {
        // The first version of an empty database, activated and recorded in one transaction,
        // with the core partners' installation signatures where the covenant asks for them.
        let signatures = installation_signatures(cfg, &app.policy.load().covenant, now)?;
        let mut e = gateway_entry(&app, &app.policy.load(), Kind::Policy);
        e.policy_change = Some(PolicyChange {
            action: Some(PolicyAction::Bootstrap),
            draft: Some(boot.id.clone()),
            version: Some(boot.version.clone()),
            source: Some(boot.author_staff.clone()),
            signatures: (!signatures.is_empty()).then_some(signatures),
            ..PolicyChange::default()
        });
        e.outcome = Outcome::Answered;
        let a = log
            .append_with(e, Change::Bootstrap(boot))
            .await
            .context("recording the first policy version in the disclosure log")?;
        if !a.applied {
            // Another instance bootstrapped first: its version is the active one.
            follow_database(&app)
                .await
                .map_err(|e| anyhow::anyhow!("loading the active policy version: {e}"))?;
        }
    }
    record_key_rotation(&app).await?;
    crate::service::keys::record_storage_key(
        &app.log,
        &app.secrets,
        app.policy.load().version(),
        app.clock.now(),
    )
    .await
    .context("recording the storage key in use")?;
    crate::service::keys::record_pseudonym_key(
        &app.log,
        &app.secrets,
        app.policy.load().version(),
        app.clock.now(),
    )
    .await
    .context("recording the pseudonym key in use")?;
    check_witnesses(&app, cfg.without_witnesses.as_deref()).await?;
    Ok(app)
}

/// The core partners' approvals of the covenant file as an installation's first version (the
/// installation ceremony, issue 37), read from `[administration] installation_signatures`;
/// refuses to install a version they did not all sign, naming who is missing.
fn installation_signatures(
    cfg: &Config,
    cc: &policy::CompiledCovenant,
    now: i64,
) -> anyhow::Result<Vec<String>> {
    if cc.covenant().governance.approval_threshold.is_none() {
        return Ok(Vec::new());
    }
    let mut notes = Vec::new();
    if let Some(dir) = &cfg.administration.installation_signatures {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading the installation signatures in {}", dir.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("reading {}", dir.display()))?
                .path();
            if path.extension().is_some_and(|x| x == "note") {
                notes.push(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?,
                );
            }
        }
    }
    crate::lifecycle::approval::check_installation(cc, &notes, now).map_err(|missing| {
        anyhow::anyhow!(
            "refusing to install covenant version {} on this empty database: its governance needs every core partner's signature on the first version, and it lacks {} (in {}). Each core partner signs it with `gateway policy sign --installation` (docs/policy-lifecycle.md, \"The installation ceremony\") and the notes go into [administration] installation_signatures",
            cc.version().as_str(),
            missing.join(", "),
            cfg.administration
                .installation_signatures
                .as_ref()
                .map_or_else(|| "no directory is configured".to_owned(), |d| d.display().to_string())
        )
    })
}

/// Before serving: the witnesses' latest cosigned checkpoints against the database (a restored
/// old backup, a rewound or forked database is refused), then a first round of cosignatures.
/// `without`: the operator's reason to start although no witness can be asked, recorded.
async fn check_witnesses(app: &Arc<App>, without: Option<&str>) -> anyhow::Result<()> {
    let active = app.policy.load_full();
    let set = active.witnesses.clone();
    if !set.enabled() {
        // Issue 37: no start goes unwitnessed without the log saying so, however it came about
        // (a version that names no witnesses is a change the threshold signed, but each start
        // under it is still a start that no witness checked).
        let mut e = gateway_entry(app, &active, Kind::WitnessOverride);
        e.witness_override = Some(crate::log::entry::WitnessOverride {
            reason: format!(
                "the active covenant version {} names no witnesses",
                active.version()
            ),
            unreachable: Vec::new(),
        });
        e.outcome = Outcome::Answered;
        app.log
            .append(e)
            .await
            .context("recording a start that no witness checked")?;
        tracing::warn!(
            "started without witnesses: the active covenant names none; recorded in the disclosure log"
        );
        return Ok(());
    }
    match (app.witnesses.check_at_start(&app.log, &set).await, without) {
        (Ok(unreachable), _) => {
            // Issue 37: every start is in the log, with the witnesses the version in force
            // named, so that `audit verify` can hold it to that version.
            let mut e = gateway_entry(app, &active, Kind::Start);
            e.start = Some(crate::log::entry::StartCheck {
                witnesses: set.members.iter().map(|m| m.name.clone()).collect(),
                unreachable,
            });
            e.outcome = Outcome::Answered;
            app.log
                .append(e)
                .await
                .context("recording the start checked against the witnesses")?;
        }
        (Err(crate::witnessing::StartRefusal::NoWitness(..)), Some(reason)) => {
            let reason = reason.to_owned();
            let mut e = gateway_entry(app, &active, Kind::WitnessOverride);
            e.witness_override = Some(crate::log::entry::WitnessOverride {
                reason: reason.clone(),
                unreachable: set.members.iter().map(|m| m.name.clone()).collect(),
            });
            e.outcome = Outcome::Answered;
            app.log
                .append(e)
                .await
                .context("recording the start without witnesses")?;
            tracing::warn!(%reason, "started without the witnesses' word (--without-witnesses); recorded in the disclosure log");
        }
        (Err(e), _) => return Err(anyhow::anyhow!("refusing to serve: {e}")),
    }
    let now = app.clock.now();
    app.log
        .checkpoint(now)
        .await
        .context("signing a checkpoint for the witnesses")?;
    app.witnesses.round(&app.log, &set, now, 0).await;
    Ok(())
}

/// The background tasks: versions activated by other instances, new CRLs, forgetting idle rate
/// limit keys, and checkpoints when they are due by the application's clock.
pub fn background(app: &Arc<App>, cfg: &Config) {
    // The deposits opened once, and the per-subject map loaded, beside the first requests.
    {
        let app = app.clone();
        tokio::spawn(async move {
            crate::service::disclose::warm(&app).await;
            let started = std::time::Instant::now();
            match app.log.warm_subject_map().await {
                Ok((people, entries)) => tracing::info!(
                    people,
                    entries,
                    secs = started.elapsed().as_secs_f64(),
                    "per-subject map loaded"
                ),
                // The first checkpoint tries again (and fails closed if it cannot).
                Err(e) => tracing::warn!(error = %e, "cannot load the per-subject map yet"),
            }
        });
    }
    // Versions activated by another instance sharing the database.
    if cfg.administration.poll_secs > 0 {
        let app = app.clone();
        every(
            Duration::from_secs(cfg.administration.poll_secs),
            move || {
                let app = app.clone();
                async move {
                    if let Err(e) = follow_database(&app).await {
                        tracing::error!(error = %e, "cannot load the version active in the database; keeping the current one");
                    }
                }
            },
        );
    }
    // New revocation lists, without a restart.
    if cfg.tls.crl_check_secs > 0 {
        let app = app.clone();
        every(Duration::from_secs(cfg.tls.crl_check_secs), move || {
            let app = app.clone();
            async move {
                if let Err(e) = reload_crls(&app).await {
                    tracing::error!(error = %e, "cannot reload the revocation lists; keeping the current ones");
                }
            }
        });
    }
    // The notification duty's overdue cases, counted every minute for the metric.
    {
        let app = app.clone();
        every_from(Duration::from_secs(1), Duration::from_secs(60), move || {
            let app = app.clone();
            async move {
                if let Err(e) = crate::service::aggregates::measure_notifications(&app).await {
                    tracing::warn!(error = %e, "counting overdue notifications failed");
                }
            }
        });
    }
    // Rate-limit keys of staff who stopped asking are forgotten every minute.
    {
        let app = app.clone();
        every(Duration::from_secs(60), move || {
            let app = app.clone();
            async move { app.limiter.prune() }
        });
    }
    // The witnesses: every second, the newest checkpoint to those that have not cosigned it, and
    // a fresh cosignature of it at a third of the blind bound (at most every checkpoint
    // interval), so that a log that does not grow stays witnessed. Each round in its own task:
    // a slow witness holds up nothing.
    {
        let app = app.clone();
        let interval = i64::try_from(cfg.audit.checkpoint_interval_secs).unwrap_or(i64::MAX);
        every(Duration::from_secs(1), move || {
            let app = app.clone();
            async move {
                let set = app.policy.load().witnesses.clone();
                if set.enabled() {
                    // Without periodic checkpoints, a third of the bound alone.
                    let cap = if interval > 0 { interval } else { i64::MAX };
                    let refresh = (set.blind_after / 3).min(cap).max(1);
                    tokio::spawn(async move {
                        let now = app.clock.now();
                        app.witnesses.round(&app.log, &set, now, refresh).await;
                        let blind = app.witnesses.blind(&set, app.clock.now()).is_some();
                        crate::metrics::metrics().log_blind.set(i64::from(blind));
                    });
                }
            }
        });
    }
    // The key rings: a rotation picked up from the key files, then the rows made with older
    // keys made again (re-sealed, re-keyed), a step at a time, while requests are served.
    if cfg.secrets.reload_secs > 0 {
        let app = app.clone();
        let storage = cfg.secrets.storage_identity_file.clone();
        let pseudonyms = cfg.secrets.pseudonym_key_file.clone();
        let secrets = cfg.secrets.clone();
        every(Duration::from_secs(cfg.secrets.reload_secs), move || {
            let app = app.clone();
            let (storage, pseudonyms) = (storage.clone(), pseudonyms.clone());
            let secrets = secrets.clone();
            async move {
                log_key_round(&app, &secrets).await;
                storage_key_round(&app, &storage).await;
                pseudonym_key_round(&app, &pseudonyms).await;
            }
        });
    }
    // Retention runs: what the active covenant says has expired is removed, each step logged.
    // The first a minute after the start, so that a gateway restarted more often than the
    // interval still runs it.
    if cfg.audit.retention_interval_secs > 0 {
        let app = app.clone();
        let interval = Duration::from_secs(cfg.audit.retention_interval_secs);
        every_from(interval.min(Duration::from_secs(60)), interval, move || {
            let app = app.clone();
            async move { retention_round(&app).await }
        });
    }
    // Periodic checkpoints, so that the log is committed to even when nobody asks: due by the
    // application's clock (looked at every second), so that a test's clock moves them too.
    if cfg.audit.checkpoint_interval_secs > 0 {
        let app = app.clone();
        let interval = i64::try_from(cfg.audit.checkpoint_interval_secs).unwrap_or(i64::MAX);
        every(Duration::from_secs(1), move || {
            let app = app.clone();
            async move {
                // The per-subject map follows the log second by second; the checkpoint then
                // finds little left to index.
                if let Err(e) = app.log.index_subjects().await {
                    tracing::warn!(error = %e, "indexing the per-subject map failed; the next checkpoint tries again");
                }
                if let Err(e) = app.log.checkpoint_if_due(app.clock.now(), interval).await {
                    tracing::warn!(error = %e, "periodic checkpoint failed");
                }
            }
        });
    }
}

/// A log key rotated by `gateway audit rotate-key` while serving: the change is recorded (the
/// entry is covered by the old key's checkpoints), then the new key signs, starting with a
/// checkpoint over that entry. Refused (the old key kept) when the old key is not among the
/// retired verifier keys, since its checkpoints would no longer verify.
pub async fn log_key_round(app: &App, secrets: &crate::config::SecretsConfig) {
    let keys = match crate::runtime::load_log_keys(secrets, app.log.origin()) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "log keys not reloaded; keeping the key in use");
            return;
        }
    };
    let (from, to) = (app.log.vkey(), keys.current.vkey());
    if from == to {
        return;
    }
    if !keys.key_set().is_ok_and(|s| s.contains(&from)) {
        tracing::error!(
            "the new log key's retired keys do not list the key in use: keeping it (use `gateway audit rotate-key`, which lists it)"
        );
        return;
    }
    let mut e = gateway_entry(app, &app.policy.load(), Kind::LogKey);
    e.key_change = Some(KeyChange { from, to });
    e.outcome = Outcome::Answered;
    if let Err(e) = app.log.append(e).await {
        tracing::error!(error = %e, "the log key rotation could not be recorded; keeping the key in use");
        return;
    }
    app.log.replace_keys(keys);
    if let Err(e) = app.log.checkpoint(app.clock.now()).await {
        tracing::warn!(error = %e, "the first checkpoint with the new log key failed; the next one is due soon");
    }
    tracing::info!("the log key was rotated while serving; recorded and a new checkpoint signed");
}

/// One look at the storage key ring: reload it if the file changed, then re-seal what older
/// keys sealed (at most ten steps of 200 rows each, so that a round stays short).
pub async fn storage_key_round(app: &App, path: &std::path::Path) {
    use crate::service::keys::{reload_storage, reseal_step};
    let version = app.policy.load().version().to_owned();
    match reload_storage(&app.log, &app.secrets, &version, app.clock.now(), path).await {
        Ok(true) => {
            tracing::info!(current = %app.secrets.storage().current(), "storage key ring reloaded")
        }
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "storage key ring not reloaded"),
    }
    for _ in 0..10 {
        match reseal_step(&app.log, &app.secrets, &version, app.clock.now(), 200).await {
            Ok((0, 0)) => break,
            Ok((deposits, cases)) => {
                tracing::info!(
                    deposits,
                    cases,
                    "rows sealed again with the current storage key"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "re-sealing with the current storage key failed");
                break;
            }
        }
    }
}

/// One look at the pseudonym key ring: reload it if the file changed, then re-key the cases
/// an older key made (at most ten steps of 200).
pub async fn pseudonym_key_round(app: &App, path: &std::path::Path) {
    use crate::service::keys::{rekey_step, reload_pseudonyms};
    match reload_pseudonyms(app, path).await {
        Ok(true) => {
            tracing::info!(current = %app.secrets.pseudonyms().current(), "pseudonym key ring reloaded")
        }
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "pseudonym key ring not reloaded"),
    }
    let version = app.policy.load().version().to_owned();
    for _ in 0..10 {
        match rekey_step(&app.log, &app.secrets, &version, app.clock.now(), 200).await {
            Ok(0) => break,
            Ok(cases) => tracing::info!(cases, "case pseudonyms made again with the current key"),
            Err(e) => {
                tracing::error!(error = %e, "re-keying case pseudonyms failed");
                break;
            }
        }
    }
}

/// One retention run while serving: the removed deposits' opened copies are forgotten and the
/// write-ahead log emptied (the file is not rewritten while serving: `gateway retention run`
/// does that).
pub async fn retention_round(app: &App) {
    let active = app.policy.load_full();
    let cc = &active.covenant;
    match crate::service::retention::run(&app.log, cc.covenant(), active.version(), app.clock.now())
        .await
    {
        Ok(report) => {
            for key in &report.forgotten {
                app.opened.remove(key);
            }
            if report.removed_any() {
                let removed: u64 = report.rules.values().map(|r| r.removed).sum();
                tracing::info!(
                    removed,
                    steps = report.entries.len(),
                    "retention run removed expired data"
                );
                if let Err(e) = app.db.reclaim(false).await {
                    tracing::warn!(error = %e, "retention: reclaiming the space failed; the next run tries again");
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "retention run failed; what it committed before stays, the next run goes on")
        }
    }
}

/// Serves the partner API and the health listener until `shutdown`, then drains the log.
pub async fn serve(
    app: Arc<App>,
    cfg: &Config,
    api: tokio::net::TcpListener,
    health: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
    ready: impl FnOnce() + Send,
) -> anyhow::Result<()> {
    let active_version = app.policy.load().version().to_owned();
    let log = app.log.clone();
    let router = router(app.clone());
    ready();
    tracing::info!(api = %api.local_addr()?, health = %health.local_addr()?, covenant = %active_version, "gateway listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut health_stop = stop_rx.clone();
    let health_task = tokio::spawn(serve_plain(
        health,
        health_router(app.clone(), cfg.tls.crl.first().cloned()),
        async move {
            let _ = health_stop.changed().await;
        },
    ));
    let handshake = Duration::from_millis(cfg.tls.handshake_timeout_ms);
    serve_tls(
        api,
        app.clone(),
        router,
        handshake,
        shutdown,
        Duration::from_secs(10),
    )
    .await;
    // Every request accepted has finished (or the grace period ended); the entries still queued
    // are written before the process ends.
    log.shutdown().await;
    let _ = stop_tx.send(true);
    let _ = health_task.await;
    drop(stop_rx);
    tracing::info!("gateway stopped");
    Ok(())
}

/// After `gateway audit rotate-key` and a restart: the latest checkpoint is signed by a
/// retired key. The change is recorded, and the next checkpoint (signed by the new key) covers
/// that record.
async fn record_key_rotation(app: &App) -> anyhow::Result<()> {
    let Signer::Retired(old) = app.log.signer().await.context("checking the log key")? else {
        return Ok(());
    };
    let mut e = gateway_entry(app, &app.policy.load(), Kind::LogKey);
    e.key_change = Some(KeyChange {
        from: old,
        to: app.log.vkey(),
    });
    e.outcome = Outcome::Answered;
    app.log
        .append(e)
        .await
        .context("recording the log key rotation")?;
    app.log
        .checkpoint(app.clock.now())
        .await
        .context("signing the first checkpoint with the new log key")?;
    tracing::info!("the log key was rotated; recorded and a new checkpoint signed");
    Ok(())
}
