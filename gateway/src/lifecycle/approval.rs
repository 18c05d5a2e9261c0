//! Partner-signed approvals of covenant changes (issue 37). A partner approves a draft by
//! signing, with its governance key (which never leaves the partner), a signed note that names
//! the draft's version, the version it changes and until when the approval holds. Which partners
//! must sign follows from the change's review: a partner's own entry, products or data need that
//! partner; a shared part needs the covenant's threshold of core partners. The keys and the
//! threshold are those of the version being changed, so that no change can lower its own bar.
//!
//! Pure: notes, covenants and the clock's reading in, a verdict out. The notes themselves live
//! in the disclosure log (the `sign` and `activate` steps carry them), so that the log alone
//! shows, and `audit verify` can check, who agreed to every version.

use crate::log::checkpoint::{LogKey, NoteVerifier};
use policy::review::{Needs, Review};
use policy::{CompiledCovenant, PartnerKind};
use std::collections::BTreeSet;

/// The first line of an approval note.
pub const HEADER: &str = "iPGA-R covenant approval";

/// What a partner agrees to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The covenant's id.
    pub covenant: String,
    /// The signing partner.
    pub partner: String,
    /// The draft's version hash.
    pub version: String,
    /// The version hash of the version it changes.
    pub base: String,
    /// The draft that made that version active (a rollback to the same text is another).
    pub base_draft: String,
    /// Unix seconds after which the approval no longer counts.
    pub expires: i64,
}

impl Approval {
    /// The note's body, as signed.
    pub fn body(&self) -> String {
        format!(
            "{HEADER}\ncovenant {}\npartner {}\nversion {}\nbase {}\nbase-draft {}\nexpires {}\n",
            self.covenant, self.partner, self.version, self.base, self.base_draft, self.expires
        )
    }

    /// Parses a body in exactly the form [`Approval::body`] writes.
    fn parse(body: &str) -> Option<Approval> {
        let mut lines = body.strip_suffix('\n')?.split('\n');
        if lines.next()? != HEADER {
            return None;
        }
        let mut next = |name: &str| -> Option<String> {
            let v = lines.next()?.strip_prefix(name)?.strip_prefix(' ')?;
            (!v.is_empty() && !v.contains(char::is_whitespace)).then(|| v.to_owned())
        };
        let a = Approval {
            covenant: next("covenant")?,
            partner: next("partner")?,
            version: next("version")?,
            base: next("base")?,
            base_draft: next("base-draft")?,
            expires: next("expires")
                .and_then(|e| crate::log::checkpoint::canonical_decimal(&e))
                .and_then(|e| i64::try_from(e).ok())?,
        };
        lines.next().is_none().then_some(a)
    }
}

/// The key name of a partner's governance key.
pub fn key_name(partner: &str) -> String {
    format!("{partner}.governance")
}

/// Signs an approval with a partner's governance key (its 32-byte Ed25519 seed).
pub fn sign(seed: &[u8], a: &Approval) -> Result<String, ApprovalError> {
    let key = LogKey::from_seed(&key_name(&a.partner), seed)
        .map_err(|e| ApprovalError::Key(e.to_string()))?;
    Ok(key.sign_body(&a.body()))
}

/// The verifier key of a governance seed, for the covenant's `governance_vkey`.
pub fn vkey(partner: &str, seed: &[u8]) -> Result<String, ApprovalError> {
    LogKey::from_seed(&key_name(partner), seed)
        .map(|k| k.vkey())
        .map_err(|e| ApprovalError::Key(e.to_string()))
}

/// Why an approval note does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// Not a signed note of the approval form.
    #[error("not an approval note: {0}")]
    Malformed(String),
    /// The partner has no governance key in the version being changed.
    #[error("partner {0} has no governance key in the active covenant")]
    NoKey(String),
    /// The signature does not verify under the partner's key.
    #[error("the signature does not verify under {0}'s governance key")]
    BadSignature(String),
    /// For another covenant, draft, base or base activation.
    #[error("it approves {0}, not this change")]
    OtherChange(String),
    /// Past its expiry.
    #[error("it expired at {0}")]
    Expired(i64),
    /// A key could not be made.
    #[error("governance key: {0}")]
    Key(String),
}

/// The governance verifier of a partner in a compiled (key-resolved) covenant.
fn verifier(base: &CompiledCovenant, partner: &str) -> Option<NoteVerifier> {
    let c = base.covenant();
    let p = c.partner(partner).and_then(|r| c.partner_at(r))?;
    match p.governance_vkey.as_ref()? {
        policy::covenant::KeyRef::Inline(v) => NoteVerifier::from_vkey(v).ok(),
        // Not resolved: nothing can be verified against it.
        policy::covenant::KeyRef::File(_) => None,
    }
}

/// Reads the partner an approval note claims to be from (its body's `partner` line).
pub fn claimed_partner(note: &str) -> Result<String, ApprovalError> {
    let (body, _) = note
        .split_once("\n\n")
        .ok_or_else(|| ApprovalError::Malformed("no blank line before the signature".into()))?;
    Approval::parse(&format!("{body}\n"))
        .map(|a| a.partner)
        .ok_or_else(|| {
            ApprovalError::Malformed(format!("the body is not the form `{HEADER}` names"))
        })
}

/// Verifies a note against the partner's governance key in `base` (the version being changed)
/// and against the change it must approve.
pub fn verify(
    note: &str,
    base: &CompiledCovenant,
    expected: &Approval,
    now: i64,
) -> Result<Approval, ApprovalError> {
    let partner = claimed_partner(note)?;
    let v = verifier(base, &partner).ok_or_else(|| ApprovalError::NoKey(partner.clone()))?;
    let body = v
        .verify_body(note)
        .map_err(|_| ApprovalError::BadSignature(partner.clone()))?;
    let a = Approval::parse(&body).ok_or_else(|| ApprovalError::Malformed("body".into()))?;
    let same = a.covenant == expected.covenant
        && a.version == expected.version
        && a.base == expected.base
        && a.base_draft == expected.base_draft;
    if !same {
        return Err(ApprovalError::OtherChange(format!(
            "version {} of {} (drafted on {} as activated by {})",
            a.version, a.covenant, a.base, a.base_draft
        )));
    }
    if now > a.expires {
        return Err(ApprovalError::Expired(a.expires));
    }
    Ok(a)
}

/// Whose signatures a change needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// These partners each.
    pub partners: BTreeSet<String>,
    /// And, for a shared part, this many core partners.
    pub threshold: Option<u32>,
}

/// The signatures `review` needs under `base`: `None` where `base` sets no
/// `approval_threshold` (changes then need the administrators' four eyes only). A line that
/// needs a partner without a governance key in `base` needs the threshold instead.
pub fn requirement(base: &CompiledCovenant, review: &Review) -> Option<Requirement> {
    let t = base.covenant().governance.approval_threshold?;
    let mut partners = BTreeSet::new();
    let mut shared = false;
    for line in &review.lines {
        match &line.needs {
            Needs::Threshold => shared = true,
            Needs::Partners(ps) => {
                for p in ps {
                    if verifier(base, p).is_some() {
                        partners.insert(p.clone());
                    } else {
                        shared = true;
                    }
                }
            }
        }
    }
    Some(Requirement {
        partners,
        threshold: shared.then_some(t),
    })
}

/// What is still missing of a requirement, given the partners whose approvals verified; empty
/// when it is met.
pub fn missing(
    base: &CompiledCovenant,
    req: &Requirement,
    signed: &BTreeSet<String>,
) -> Vec<String> {
    let mut out: Vec<String> = req
        .partners
        .iter()
        .filter(|p| !signed.contains(*p))
        .map(|p| format!("{p}'s signature"))
        .collect();
    if let Some(t) = req.threshold {
        let c = base.covenant();
        let core = signed
            .iter()
            .filter(|p| {
                c.partner(p)
                    .and_then(|r| c.partner_at(r))
                    .is_some_and(|x| x.kind == PartnerKind::Kernpartner)
            })
            .count();
        if u32::try_from(core).unwrap_or(u32::MAX) < t {
            out.push(format!(
                "{} more core partners' signatures (the threshold is {t}, {core} signed)",
                t - u32::try_from(core).unwrap_or(0)
            ));
        }
    }
    out
}
