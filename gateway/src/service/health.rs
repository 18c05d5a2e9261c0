//! Readiness: whether this instance can do its work now. Each check names what is wrong and
//! what to do; `/readyz` answers 503 with them when any fails.

use crate::app::App;
use serde::Serialize;
use std::sync::atomic::Ordering;

/// A writer batch taking longer than this means the writer is stuck.
const WRITER_STUCK_MS: u64 = 30_000;

/// One check.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it holds.
    pub ok: bool,
    /// When it does not: what is wrong and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Every check, and whether all hold.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready` or `not-ready`.
    pub status: &'static str,
    /// Each check.
    pub checks: Vec<Check>,
}

impl Readiness {
    /// Whether every check holds.
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

fn check(name: &'static str, problem: Option<String>) -> Check {
    Check {
        name,
        ok: problem.is_none(),
        problem,
    }
}

/// The oldest entry no signed checkpoint covers must be younger than `max` seconds.
async fn checkpoint_problem(app: &App, now: i64, max: i64) -> Option<String> {
    let unreadable = || Some("the log's checkpoints cannot be read; see the database".to_owned());
    let Ok(latest) = app.db.latest_checkpoint().await else {
        return unreadable();
    };
    let covered = latest.as_ref().map_or(0, |c| c.size);
    let Ok(first_uncovered) = app.db.entries(covered, 1).await else {
        return unreadable();
    };
    let oldest = first_uncovered.first()?.record.as_ref()?.at;
    (now.saturating_sub(oldest) > max).then(|| {
        format!(
            "entries older than {max} s are in no signed checkpoint (the latest covers {covered}): the periodic checkpoint is not running; see the operational log (`checkpoint`)"
        )
    })
}

fn signing_key_problem(file: &std::path::Path) -> Option<String> {
    (!file.is_file()).then(|| {
        "the checkpoint signing key file (`secrets.log_key_file`) is missing: restore it from backup before the next restart".to_owned()
    })
}

/// The log is blind: too few witnesses cosigned within the covenant's bound.
fn witness_problem(app: &App, now: i64) -> Option<String> {
    let set = app.policy.load().witnesses.clone();
    let b = app.witnesses.blind(&set, now)?;
    let down: Vec<String> = app
        .witnesses
        .status(&set)
        .into_iter()
        .filter_map(|w| w.error.map(|e| format!("{}: {e}", w.name)))
        .collect();
    Some(format!(
        "only {} of the {} witnesses the covenant requires cosigned the log in the last {} s: disclosures are refused (`log-unwitnessed`) until they do{}",
        b.have,
        b.need,
        b.bound,
        if down.is_empty() {
            String::new()
        } else {
            format!("; {}", down.join("; "))
        }
    ))
}

/// Runs every check.
pub async fn readiness(app: &App) -> Readiness {
    let now = app.clock.now();
    let database = app.db.ping().await.err().map(|e| {
        tracing::warn!(error = %e, "readiness: database");
        "the database does not answer; check the database server and `database_url`".to_owned()
    });
    let w = &crate::metrics::metrics().writer;
    let (ok, failed, busy) = (
        w.last_ok.load(Ordering::Relaxed),
        w.last_failure.load(Ordering::Relaxed),
        w.waiting_since.load(Ordering::Relaxed),
    );
    let uptime = crate::metrics::uptime_ms();
    let writer = if failed > ok {
        Some("the log writer's last batch failed and none has committed since: nothing is disclosed; see the operational log (`disclosure log batch failed`) and the database".to_owned())
    } else if busy > 0 && uptime.saturating_sub(busy) > WRITER_STUCK_MS {
        Some(format!(
            "the log writer has been writing one batch for more than {} s: the database may be locked or overloaded",
            WRITER_STUCK_MS / 1000
        ))
    } else {
        None
    };
    let key = signing_key_problem(&app.health.log_key_file);
    let crl = app
        .policy
        .load()
        .crl_validity
        .next_update
        .filter(|next| *next < now)
        .map(|next| {
            format!(
                "a CRL is past its nextUpdate ({}): revocations since may be missing; publish a fresh CRL to the `tls.crl` file (the gateway reloads it)",
                crate::log::entry::rfc3339::format(next).unwrap_or_else(|| next.to_string())
            )
        });
    let checkpoint = match app.health.checkpoint_max_age {
        None => None,
        Some(max) => checkpoint_problem(app, now, max).await,
    };
    let checks = vec![
        check("database", database),
        check("log-writer", writer),
        check("signing-key", key),
        check("crl", crl),
        check("checkpoint", checkpoint),
        check("witnesses", witness_problem(app, now)),
    ];
    let ready = checks.iter().all(|c| c.ok);
    Readiness {
        status: if ready { "ready" } else { "not-ready" },
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::testkit;

    #[tokio::test]
    async fn a_fresh_gateway_is_ready_and_a_missing_key_file_is_named() {
        let (app, clock) = testkit::app().await;
        let r = readiness(&app).await;
        assert!(r.ready(), "{r:?}");
        assert_eq!(r.status, "ready");
        // Entries that no checkpoint covers for too long: not ready, until one is signed.
        clock.advance(1_000);
        let r = readiness(&app).await;
        let failed: Vec<&str> = r.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
        assert_eq!(failed, vec!["checkpoint"]);
        app.log.checkpoint(clock.now()).await.unwrap();
        assert!(readiness(&app).await.ready());
        assert!(signing_key_problem(&app.health.log_key_file).is_none());
        let gone = app.health.log_key_file.with_extension("gone");
        assert!(
            signing_key_problem(&gone)
                .unwrap()
                .contains("secrets.log_key_file")
        );
    }
}
