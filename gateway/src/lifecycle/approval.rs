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

/// The `base` and `base-draft` of an approval of the first version of an installation: there is
/// no version before it.
pub const INSTALLATION: &str = "none";

/// What partner `partner` signs to agree to `cc` as an installation's first version.
pub fn installation(cc: &CompiledCovenant, partner: &str, expires: i64) -> Approval {
    Approval {
        covenant: cc.covenant().id.clone(),
        partner: partner.to_owned(),
        version: cc.version().as_str().to_owned(),
        base: INSTALLATION.to_owned(),
        base_draft: INSTALLATION.to_owned(),
        expires,
    }
}

/// The installation ceremony (issue 37): under a covenant that sets `approval_threshold`, its
/// first version is served only with every core partner's approval, each verified under the
/// governance key that this version itself names for that partner (each partner checks, before
/// it signs, that the key is its own). Returns the notes that count, one per core partner, or
/// what is missing. Notes for another version or covenant are passed over (one directory may
/// hold the notes of several). `Ok(empty)` where the covenant sets no threshold.
pub fn check_installation(
    cc: &CompiledCovenant,
    notes: &[String],
    now: i64,
) -> Result<Vec<String>, Vec<String>> {
    let c = cc.covenant();
    if c.governance.approval_threshold.is_none() {
        return Ok(Vec::new());
    }
    let mut used = Vec::new();
    let mut missing = Vec::new();
    for p in c
        .partners
        .iter()
        .filter(|p| p.kind == PartnerKind::Kernpartner)
    {
        if verifier(cc, &p.id).is_none() {
            missing.push(format!("{} has no governance key in this version", p.id));
            continue;
        }
        let expected = installation(cc, &p.id, i64::MAX);
        let mut last = None;
        let found = notes.iter().find(|n| {
            claimed_partner(n).is_ok_and(|q| q == p.id)
                && match verify(n, cc, &expected, now) {
                    Ok(_) => true,
                    Err(e) => {
                        if !matches!(e, ApprovalError::OtherChange(_)) {
                            last = Some(e);
                        }
                        false
                    }
                }
        });
        match (found, last) {
            (Some(n), _) => used.push(n.clone()),
            (None, Some(e)) => missing.push(format!("{}'s signature ({e})", p.id)),
            (None, None) => missing.push(format!("{}'s signature", p.id)),
        }
    }
    if missing.is_empty() {
        Ok(used)
    } else {
        Err(missing)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    /// The example covenant with its keys read from the test PKI, and the core partners' seeds.
    fn example(source: &str) -> CompiledCovenant {
        let dir = testkit::pki();
        policy::compile_toml_resolving(source, &mut |p| {
            std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string())
        })
        .unwrap()
    }

    fn seed(partner: &str) -> Vec<u8> {
        let dir = testkit::pki();
        let text =
            std::fs::read_to_string(dir.join(crate::pki::layout::governance_key(partner))).unwrap();
        hex::decode(text.trim()).unwrap()
    }

    fn core(cc: &CompiledCovenant) -> Vec<String> {
        cc.covenant()
            .partners
            .iter()
            .filter(|p| p.kind == PartnerKind::Kernpartner)
            .map(|p| p.id.clone())
            .collect()
    }

    fn all_signed(cc: &CompiledCovenant, expires: i64) -> Vec<String> {
        core(cc)
            .iter()
            .map(|p| sign(&seed(p), &installation(cc, p, expires)).unwrap())
            .collect()
    }

    #[test]
    fn the_first_version_needs_every_core_partner_and_nothing_else_counts() {
        let cc = example(crate::demo::EXAMPLE_COVENANT);
        let t = testkit::T0;
        let notes = all_signed(&cc, t + 100);
        assert_eq!(check_installation(&cc, &notes, t).unwrap().len(), 7);

        // One core partner short.
        let without_rn: Vec<String> = notes
            .iter()
            .filter(|n| claimed_partner(n).unwrap() != "rn")
            .cloned()
            .collect();
        let missing = check_installation(&cc, &without_rn, t).unwrap_err();
        assert_eq!(missing, vec!["rn's signature".to_owned()]);

        // rn's note for another text does not count (and is passed over without a word).
        let other = example(
            &crate::demo::EXAMPLE_COVENANT
                .replace("approval_threshold = 4", "approval_threshold = 5"),
        );
        let mut mixed = without_rn.clone();
        mixed.push(sign(&seed("rn"), &installation(&other, "rn", t + 100)).unwrap());
        assert_eq!(
            check_installation(&cc, &mixed, t).unwrap_err(),
            vec!["rn's signature".to_owned()]
        );

        // A note in rn's name under oov's key, and an expired one, say why.
        let mut forged = without_rn.clone();
        let mut a = installation(&cc, "rn", t + 100);
        let key = LogKey::from_seed(&key_name("rn"), &seed("oov")).unwrap();
        forged.push(key.sign_body(&a.body()));
        let why = check_installation(&cc, &forged, t).unwrap_err();
        assert!(why[0].contains("does not verify"), "{why:?}");
        a.expires = t - 1;
        let mut expired = without_rn;
        expired.push(sign(&seed("rn"), &a).unwrap());
        let why = check_installation(&cc, &expired, t).unwrap_err();
        assert!(why[0].contains("expired"), "{why:?}");

        // A covenant without a threshold asks for nothing.
        let open =
            example(&crate::demo::EXAMPLE_COVENANT.replace("approval_threshold = 4", "# none"));
        assert_eq!(check_installation(&open, &[], t), Ok(Vec::new()));
    }
}
