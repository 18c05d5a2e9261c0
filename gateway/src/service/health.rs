//! Readiness: whether this instance can do its work now. Each check names what is wrong and
//! what to do; `/readyz` answers 503 with them when any fails.

use crate::app::App;
use crate::log::availability::Unavailable;
use serde::Serialize;
use std::time::Duration;

/// How long readiness waits for the database: `/readyz` answers within a second even when the
/// database does not.
const DATABASE_LIMIT: Duration = Duration::from_millis(400);

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
    let database = match tokio::time::timeout(DATABASE_LIMIT, app.db.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database");
            Some(
                "the database does not answer; check the database server and `database_url`"
                    .to_owned(),
            )
        }
        Err(_) => Some(format!(
            "the database did not answer within {} ms; check the database server and `database_url`",
            DATABASE_LIMIT.as_millis()
        )),
    };
    let writer = app.log.availability().unavailable().map(|u| match u {
        Unavailable::Down(_) => format!(
            "{u}: nothing is disclosed (every request that needs an entry gets 503 disclosure-log-unavailable); the writer retries on its own and writes a log-outage entry when it succeeds; see the operational log (`disclosure log batch failed`) and docs/operations.md, \"Storage faults\""
        ),
        Unavailable::Stalled => format!(
            "{u}: new requests are refused until it ends; the database may be locked or overloaded"
        ),
    });
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
        Some(max) => tokio::time::timeout(DATABASE_LIMIT, checkpoint_problem(app, now, max))
            .await
            .unwrap_or_else(|_| {
                Some("the log's checkpoints could not be read in time; see the database".to_owned())
            }),
    };
    let covenant = app.policy_mismatch.load().as_deref().cloned();
    let checks = vec![
        check("database", database),
        check("log-writer", writer),
        check("covenant", covenant),
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
