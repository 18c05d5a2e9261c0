//! The services: the covenant's rules applied to plain inputs (a requester, a request, the
//! time), returning an answer or a domain refusal. No HTTP types here; the edge (`crate::http`)
//! extracts the inputs and maps refusals to RFC 9457 problems in one place.
//!
//! Every service works on a [`Call`]: who asks, under which policy version, and the log entry
//! being filled in as the request is checked. A service that answers commits that entry (with
//! the state change it describes, in one transaction) before it returns; a refusal is recorded
//! by the edge from the same entry.

pub mod access;
pub mod aggregates;
pub mod audit;
pub mod binding;
pub mod cases;
pub mod checks;
pub mod disclose;
pub mod health;
pub mod keys;

pub mod policy_admin;
pub mod records;
pub mod retention;
pub mod signatures;

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
        let a = self.finish(r)?;
        if !a.applied {
            // A disclosure whose case changed while it was decided: recorded as
            // that refusal, nothing answered.
            return Err(Refusal::CaseConflict);
        }
        Ok(a)
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

/// An identifier as the API takes it in paths and bodies (a case, a subject reference, a
/// product, a draft): 1 to 128 characters of `A-Z a-z 0-9 . _ - ~ :`, never trimmed. Parsed
/// once at the edge; anything else is refused before it reaches a query or a log entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Longest identifier accepted.
    pub const MAX: usize = 128;

    /// Checks `s`; the refusal names `what`.
    pub fn parse(what: &str, s: &str) -> Result<Ident, Refusal> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-~:".contains(&b));
        if ok {
            Ok(Ident(s.to_owned()))
        } else {
            Err(Refusal::InvalidIdentifier(clip(what, 32)))
        }
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Ident {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Ident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Ident {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ident::parse("identifier", &s).map_err(|_| {
            serde::de::Error::custom(format!(
                "an identifier is 1 to {} characters of A-Z a-z 0-9 . _ - ~ :",
                Ident::MAX
            ))
        })
    }
}

#[cfg(test)]
mod ident_tests {
    use super::*;

    #[test]
    fn identifiers_are_strict_and_never_trimmed() {
        for ok in [
            "case-3f2c9a4e",
            "politie.registraties",
            "subj-AbC_1",
            "v1:abc~2",
        ] {
            assert!(Ident::parse("id", ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(129);
        for bad in [
            "",
            " case-1",
            "case-1 ",
            "a/b",
            "é",
            "a\u{0}",
            "a%20b",
            long.as_str(),
        ] {
            assert_eq!(
                Ident::parse("case", bad).unwrap_err(),
                Refusal::InvalidIdentifier("case".into()),
                "{bad:?}"
            );
        }
    }
}
