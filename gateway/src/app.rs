//! The application: what every service and handler reaches. One value, built at start-up (or by
//! a test), shared behind an `Arc`.

use crate::auth::TokenPolicy;
use crate::clock::Clock;
use crate::config::{AdministrationConfig, Limits};
use crate::crypto::Secrets;
use crate::lifecycle::{PolicyBuilder, PolicyCell};
use crate::limits::Limiter;
use crate::log::Log;
use crate::sources::{OpenedRecords, Upstream};
use crate::store::Db;
use std::sync::Arc;

/// Everything the gateway works with.
pub struct App {
    /// The database.
    pub db: Db,
    /// The disclosure log.
    pub log: Arc<Log>,
    /// The active policy version: covenant, partner registry, TLS. Load it once per request.
    pub policy: PolicyCell,
    /// Builds policy versions (drafts, activations, CRL reloads).
    pub builder: PolicyBuilder,
    /// Who administers the policy.
    pub administration: AdministrationConfig,
    /// Serialises activations and reloads on this instance.
    pub activation: tokio::sync::Mutex<()>,
    /// The gateway's own secrets.
    pub secrets: Secrets,
    /// Deposited records already opened, by their deposit's digest (the SHA-256 of the sealed
    /// form its deposit entry names; a new deposit has a new one).
    pub opened: crate::cache::Bounded<[u8; 32], OpenedRecords>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Token requirements.
    pub tokens: TokenPolicy,
    /// Limits.
    pub limits: Limits,
    /// Upstream sources.
    pub upstream: Upstream,
    /// Rate limits.
    pub limiter: Limiter,
    /// Requests handled at once (`limits.concurrent_requests` permits).
    pub in_flight: tokio::sync::Semaphore,
    /// What readiness checks beyond the database.
    pub health: HealthBounds,
    /// What the gateway knows of its witnesses.
    pub witnesses: crate::witnessing::Witnesses,
    /// Seconds within which a periodic checkpoint includes a new entry (the promise of a
    /// receipt); `None` without periodic checkpoints, and then no receipts are given.
    pub receipt_within: Option<i64>,
    /// Why the database's active covenant version disagrees with the log, while it does: then
    /// nothing is served (issue 37).
    pub policy_mismatch: arc_swap::ArcSwapOption<String>,
}

impl App {
    /// The signed receipt of an entry that records an answer, when receipts are given.
    pub fn receipt(&self, a: &crate::log::Appended) -> Option<String> {
        self.receipt_within
            .map(|w| self.log.receipt(a, self.clock.now().saturating_add(w)))
    }
}

/// What `/readyz` holds the running gateway to.
#[derive(Debug, Clone)]
pub struct HealthBounds {
    /// The checkpoint signing key's file: it must still be there (a restart needs it).
    pub log_key_file: std::path::PathBuf,
    /// A log that grew must have a checkpoint at most this old (seconds); `None`: no
    /// periodic checkpoints are configured, so none is expected.
    pub checkpoint_max_age: Option<i64>,
}
