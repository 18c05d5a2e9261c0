//! Cost as the work grows (issue 40): S1 and S3 on three gateways in the same run, one with
//! 200 subjects, one with 5,000, and one with 200 subjects on a log pre-filled with 1,000,000
//! entries. The log is filled through the gateway's own log writer (the library, not the API),
//! with the gateway's log key, and checkpointed (so that the per-subject map is built before the
//! gateway starts), which takes minutes instead of hours.

use crate::{Sample, Server, measure, plans, seed, start_gateway};
use anyhow::Context;
use gateway::log::entry::{Kind, LogEntry, Outcome, ProductStatus, ProductSummary, Start};
use load::{Settings, Tls};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::load;

/// S1's and S3's CPU per request (µs) on one gateway.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Cost {
    /// S1.
    pub s1: f64,
    /// S3.
    pub s3: f64,
}

/// The three gateways' costs.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Scale {
    /// Subjects of the small register.
    pub small: usize,
    /// Subjects of the large one.
    pub large: usize,
    /// Entries the long log was filled with.
    pub log_entries: usize,
    /// At `small` subjects.
    pub at_small: Cost,
    /// At `large` subjects.
    pub at_large: Option<Cost>,
    /// At `small` subjects on the long log.
    pub on_long_log: Option<Cost>,
}

async fn costs(gw: &Server, tls: &Tls, dir: &Path, n: usize, s: Settings) -> anyhow::Result<Cost> {
    let cases = seed(gw, tls, dir, n).await?;
    let p = plans(dir, &cases)?;
    let s1: Sample = measure(gw, tls, p.s1.clone(), s).await?;
    let s3: Sample = measure(gw, tls, p.s3.clone(), s).await?;
    eprintln!(
        "  {n} subjects: S1 {:.0} µs CPU/req ({:.0} req/s), S3 {:.0} µs CPU/req ({:.0} req/s)",
        s1.cpu_us_per_req, s1.rps, s3.cpu_us_per_req, s3.rps
    );
    Ok(Cost {
        s1: s1.cpu_us_per_req,
        s3: s3.cpu_us_per_req,
    })
}

/// Runs the three gateways one after the other, each on its own SQLite database in `work`.
pub async fn run(
    work: &Path,
    dir: &Path,
    tls: &Tls,
    small: usize,
    large: usize,
    log_entries: usize,
    s: Settings,
) -> anyhow::Result<Scale> {
    eprintln!(
        "cost as the work grows: {small} subjects, {large} subjects, a log of {log_entries} entries"
    );
    let url = |name: &str| format!("sqlite://{}", work.join(name).display());
    let at_small = {
        let gw = start_gateway(dir, &url("scale-small.db"))?;
        settle(&gw).await?;
        costs(&gw, tls, dir, small, s).await?
    };
    let at_large = if large > 0 {
        let gw = start_gateway(dir, &url("scale-large.db"))?;
        settle(&gw).await?;
        Some(costs(&gw, tls, dir, large, s).await?)
    } else {
        None
    };
    let on_long_log = if log_entries > 0 {
        let db = url("scale-log.db");
        // The gateway installs its covenant and stops; then the log is filled beside it.
        drop(start_gateway(dir, &db)?);
        fill(dir, &db, log_entries).await?;
        // The fill's gigabytes on their way to the disk are the fill's work, not the gateway's
        // (its first fsync would otherwise write them back on its CPU).
        sync(&work.join("scale-log.db"))?;
        let gw = start_gateway(dir, &db)?;
        settle(&gw).await?;
        Some(costs(&gw, tls, dir, small, s).await?)
    } else {
        None
    };
    for f in ["scale-small.db", "scale-large.db", "scale-log.db"] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(work.join(format!("{f}{suffix}")));
        }
    }
    Ok(Scale {
        small,
        large,
        log_entries,
        at_small,
        at_large,
        on_long_log,
    })
}

/// Flushes the database file and its WAL to the disk.
fn sync(db: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", db.display());
        if let Ok(f) = std::fs::File::open(&path) {
            f.sync_all().with_context(|| format!("sync {path}"))?;
        }
    }
    Ok(())
}

/// Waits until a freshly started gateway has done its start-up work in the background (the
/// deposits opened, the per-subject map of the long log loaded): its CPU under 2 % of a core
/// for a second. That work is done once per start, not per request; it is reported here, apart
/// from the requests' cost.
async fn settle(gw: &Server) -> anyhow::Result<()> {
    let started = Instant::now();
    let first = crate::procstat::cpu_micros(gw.pid())?;
    let mut last = first;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = crate::procstat::cpu_micros(gw.pid())?;
        let quiet = now.saturating_sub(last) < 20_000;
        last = now;
        if quiet || started.elapsed().as_secs() >= 300 {
            break;
        }
    }
    eprintln!(
        "  start-up work done in {:.0} s ({:.1} s CPU), before any request",
        started.elapsed().as_secs_f64(),
        last.saturating_sub(first) as f64 / 1e6
    );
    Ok(())
}

/// About the size of a real `regie` entry: seven products with their field lists, about the
/// people of a register of 5,000.
fn entry(i: usize, policy_version: &str) -> LogEntry {
    let mut e = LogEntry::new(Start {
        id: format!("fill-{i:032}"),
        at: 1_780_000_000 + i64::try_from(i / 10).unwrap_or(0),
        trace_id: &format!("{i:036}"),
        kind: Kind::Disclosure,
        partner: "rn".into(),
        policy_version,
    });
    e.staff_id = Some(format!("reg.{:03}", i % 100));
    e.role = Some("regisseur".into());
    e.processing_activity = Some("regie".into());
    e.case_id = Some(format!("case-fill-{:05}", i % 5000));
    e.data_subject = Some(format!("{:064x}", i % 5000));
    e.ciphertext_sha256 = Some(format!("{i:064}"));
    e.outcome = Outcome::Answered;
    for p in 0..7 {
        let mut s = ProductSummary::new(ProductStatus::Ok, "politie", 1);
        for f in ["naam", "adres", "telefoon"] {
            s.add(policy::OutcomeClass::Disclosed, f, "regie-basis");
        }
        s.add(
            policy::OutcomeClass::Withheld,
            "omschrijving",
            "regie-politie-omschrijving",
        );
        e.products.insert(format!("product{p}"), s);
    }
    e
}

/// Appends `n` entries through the log's writer, 256 appenders at once, then a checkpoint.
async fn fill(dir: &Path, url: &str, n: usize) -> anyhow::Result<()> {
    let cfg = gateway::config::Config::load(&dir.join("bench.toml"), std::iter::empty())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let origin = format!("{}/disclosures", cfg.gateway_id);
    let keys = gateway::runtime::load_log_keys(&cfg.secrets, &origin)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = gateway::store::Db::connect(url).await?;
    let version = db
        .active_policy_draft()
        .await?
        .map(|v| v.version)
        .context("the gateway installed no covenant version")?;
    let clock: Arc<dyn gateway::clock::Clock> = Arc::new(gateway::clock::SystemClock);
    let log = Arc::new(gateway::log::Log::open(db, keys, origin, clock.clone()).await?);
    let started = Instant::now();
    let writers = 256;
    let per = n.div_ceil(writers);
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (log, done, version) = (log.clone(), done.clone(), version.clone());
            tokio::spawn(async move {
                for k in 0..per {
                    let i = w * per + k;
                    if i >= n {
                        break;
                    }
                    log.append(entry(i, &version)).await?;
                    let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if d % 100_000 == 0 {
                        eprintln!(
                            "  log filled to {d} entries ({:.0} s)",
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    log.checkpoint(clock.now()).await?;
    log.shutdown().await;
    eprintln!(
        "  log filled with {n} entries and checkpointed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
