//! The services: the covenant's rules applied to plain inputs (a requester, a request, the
//! time), returning an answer or a domain refusal. No HTTP types here; the edge (`crate::http`)
//! extracts the inputs and maps refusals to RFC 9457 problems in one place.
//!
//! Every service works on a [`Call`]: who asks, under which policy version, and the log entry
//! being filled in as the request is checked. A service that answers commits that entry (with
//! the state change it describes, in one transaction) before it returns; a refusal is recorded
//! by the edge from the same entry.

pub mod aggregates;
pub mod audit;
pub mod binding;
pub mod cases;
pub mod checks;
pub mod disclose;

pub mod policy_admin;
pub mod records;

use crate::app::App;
use crate::auth::Requester;
use crate::lifecycle::ActivePolicy;
use crate::log::Appended;
use crate::log::entry::LogEntry;
use crate::refusal::Refusal;
use crate::store::Change;
use policy::{Covenant, RoleRef};
use std::sync::Arc;

/// One authenticated request on its way through a service.
#[derive(Debug)]
pub struct Call {
    /// Who asks.
    pub requester: Requester,
    /// The policy version the request runs under (loaded once, kept to the end).
    pub policy: Arc<ActivePolicy>,
    /// The log entry under construction.
    pub record: LogEntry,
    /// Set once the entry is durable: its sequence number.
    pub committed: Option<i64>,
}

impl Call {
    /// The covenant of the request's policy version.
    pub fn covenant(&self) -> &Covenant {
        self.policy.covenant.covenant()
    }

    /// A role's id.
    pub fn role_id(&self, r: RoleRef) -> Option<String> {
        self.covenant().roles.get(r.index()).map(|r| r.id.clone())
    }

    /// Records the entry as answered; nothing may be answered unless this succeeds. A call has
    /// one entry: committing twice is a bug, refused.
    pub async fn commit(&mut self, app: &App) -> Result<Appended, Refusal> {
        if self.committed.is_some() {
            return Err(Refusal::Internal);
        }
        if self.record.outcome == crate::log::entry::Outcome::Refused {
            self.record.outcome = crate::log::entry::Outcome::Answered;
        }
        let r = app.log.append(self.record.clone()).await;
        self.finish(r)
    }

    /// Records the entry as answered together with the change it describes, in one
    /// transaction. If the change's precondition no longer holds, nothing changes, the entry is
    /// recorded as that refusal, and `conflict` is returned.
    pub async fn commit_change(
        &mut self,
        app: &App,
        change: Change,
        conflict: Refusal,
    ) -> Result<Appended, Refusal> {
        debug_assert_eq!(change.conflict_problem(), conflict.slug());
        if self.committed.is_some() {
            return Err(Refusal::Internal);
        }
        if self.record.outcome == crate::log::entry::Outcome::Refused {
            self.record.outcome = crate::log::entry::Outcome::Answered;
        }
        let r = app.log.append_with(self.record.clone(), change).await;
        let a = self.finish(r)?;
        if !a.applied {
            return Err(conflict);
        }
        Ok(a)
    }

    fn finish(&mut self, r: Result<Appended, crate::log::LogError>) -> Result<Appended, Refusal> {
        match r {
            Ok(a) => {
                self.committed = Some(a.seq);
                self.record = a.entry.clone();
                Ok(a)
            }
            Err(e) => {
                tracing::error!(error = %e, kind = self.record.kind.as_str(), "the log entry could not be written; nothing answered or changed");
                self.record.outcome = crate::log::entry::Outcome::Refused;
                Err(Refusal::DisclosureLogUnavailable)
            }
        }
    }
}

/// Clips untrusted text before it goes into a log entry or a problem detail.
pub fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
