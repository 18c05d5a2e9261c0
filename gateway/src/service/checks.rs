//! The aanpak-check: is this person known in an approach? Known / not known and whom to call,
//! never content.

use super::disclose::parse_bsn;
use super::{Call, binding, clip};
use crate::app::App;
use crate::log::entry::{ApproachStatus, CheckOutcome};
use crate::refusal::Refusal;
use crate::sources::ApproachAnswer;
use policy::CaseStatus;
use serde::{Deserialize, Serialize};

/// Whom a check is about.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum CheckSubject {
    /// By BSN (11-proef checked): this approach and every other one is asked.
    Bsn(String),
}

/// `POST /v1/checks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// `{"bsn": "…"}`.
    pub subject: CheckSubject,
    /// Must be the covenant's check purpose (`[governance] check_purpose`; the example:
    /// `aanpak-check`).
    pub purpose: String,
}

/// One approach's answer to a check.
#[derive(Debug, Serialize)]
pub struct ApproachResult {
    /// The approach's id (this approach: its name).
    pub approach: String,
    /// Its name.
    pub name: String,
    /// `known`, `not-known` or `unavailable`.
    pub status: ApproachStatus,
    /// Whom to call, when it knows the person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

/// The answer to a check: no content.
#[derive(Debug, Serialize)]
pub struct CheckAnswer {
    /// Is the person known in any approach that answered?
    pub known: bool,
    /// The names of the approaches that know the person.
    pub approaches: Vec<String>,
    /// Every approach asked (this one first) and what it answered.
    pub across: Vec<ApproachResult>,
    /// Whether every approach answered (`false`: `known = false` is not the whole answer).
    pub complete: bool,
    /// Which partner to call (the regisseur's, else the programme team).
    pub contact_partner: Option<String>,
    /// Sequence number of the check's record in the disclosure log.
    pub audit_seq: i64,
    /// The gateway's signed receipt of that record (docs/audit.md, "Receipts").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_receipt: Option<String>,
}

/// Answers a check.
pub async fn check(app: &App, call: &mut Call, body: CheckRequest) -> Result<CheckAnswer, Refusal> {
    let req = call.requester.clone();
    call.record.processing_activity = Some(clip(&body.purpose, 64));
    // Only the check purpose answers without a case: any other purpose would turn a check
    // into a probe of who is in the approach.
    let g = &call.covenant().governance;
    let check = g
        .check_purpose
        .and_then(|u| call.covenant().purposes.get(u.index()))
        .map(|u| u.id.clone());
    if check.as_deref() != Some(body.purpose.as_str()) {
        return Err(Refusal::PurposeNotForChecks(
            clip(&body.purpose, 64),
            check.unwrap_or_else(|| "(none named in the covenant)".into()),
        ));
    }
    let approach = g.approach.clone();
    let programme = g
        .programme_partner
        .and_then(|p| call.covenant().partner_at(p))
        .map(|p| p.id.clone());
    let bound = binding::purpose_role(call.covenant(), &req, &body.purpose)?;
    call.record.role = call.role_id(bound.role);
    app.limiter
        .check_probe(&req, call.covenant().checks.per_staff_per_minute)?;
    let bsn = match &body.subject {
        CheckSubject::Bsn(b) => parse_bsn(b)?,
    };
    let pseudonyms = app.secrets.subject_pseudonyms(&bsn);
    call.record.data_subject = pseudonyms.first().cloned();
    // The other approaches, concurrently, each within its timeout, with the case register.
    let others = call.covenant().checks.approaches.clone();
    let now = app.clock.now();
    let trace = crate::trace::Propagation::of(&call.record);
    let (cases, answers) = tokio::join!(
        app.db.subject_cases(&pseudonyms),
        futures::future::join_all(
            others
                .iter()
                .map(|a| app.upstream.ask_approach(&a.id, &bsn, &trace, now))
        )
    );
    let cases = cases?;
    let open = cases
        .iter()
        .rev()
        .find(|k| !matches!(k.status, CaseStatus::Afgesloten | CaseStatus::NietOpgenomen));
    call.record.case_id = open.map(|k| k.id.clone());
    let contact_partner = open.and_then(|k| {
        k.regisseur
            .as_ref()
            .map(|r| r.partner.clone())
            .or(programme)
    });
    let mut across = vec![ApproachResult {
        approach: approach.clone(),
        name: approach.clone(),
        status: if open.is_some() {
            ApproachStatus::Known
        } else {
            ApproachStatus::NotKnown
        },
        contact: open.and(contact_partner.clone()),
    }];
    let mut unavailable = std::collections::BTreeMap::new();
    let mut epochs = std::collections::BTreeMap::new();
    for (a, answer) in others.iter().zip(answers) {
        let (status, contact) = match answer {
            ApproachAnswer::Known(e) => {
                epochs.insert(a.id.clone(), e.to_string());
                (ApproachStatus::Known, Some(a.contact.clone()))
            }
            ApproachAnswer::NotKnown(e) => {
                epochs.insert(a.id.clone(), e.to_string());
                (ApproachStatus::NotKnown, None)
            }
            ApproachAnswer::Unavailable(why) => {
                unavailable.insert(a.id.clone(), why);
                (ApproachStatus::Unavailable, None)
            }
        };
        across.push(ApproachResult {
            approach: a.id.clone(),
            name: a.name.clone(),
            status,
            contact,
        });
    }
    call.record.check = Some(CheckOutcome {
        approaches: across
            .iter()
            .map(|r| (r.approach.clone(), r.status))
            .collect(),
        unavailable,
        epochs,
        register_for: None,
    });
    let appended = call.commit(app).await?;
    let approaches: Vec<String> = across
        .iter()
        .filter(|r| r.status == ApproachStatus::Known)
        .map(|r| r.name.clone())
        .collect();
    Ok(CheckAnswer {
        known: !approaches.is_empty(),
        approaches,
        complete: across
            .iter()
            .all(|r| r.status != ApproachStatus::Unavailable),
        across,
        contact_partner,
        audit_seq: appended.seq,
        audit_receipt: app.receipt(&appended),
    })
}

/// `POST /v1/checks/evaluate` body: another approach's register asking obliviously whether
/// iPGA-R knows a person (issue 38).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// The asking approach (the covenant's `[[approach]] id`); its partner must be the requester's.
    pub approach: String,
    /// The epoch of the set it holds (`YYYY-MM`): this month or the last.
    pub epoch: String,
    /// One blinded element, 64 hex digits.
    pub blinded: String,
}

/// What another approach is told of iPGA-R's register: its key for that approach and its name.
struct AsRegister {
    asker: String,
    ours: String,
    key: crate::oprf::RegisterKey,
    seed: [u8; 32],
}

/// The asking approach, checked: its partner is the requester's, the purpose is the covenant's
/// check purpose (the requester's role must be open to it), and the per-staff check limit holds.
fn as_register(app: &App, call: &mut Call, approach: &str) -> Result<AsRegister, Refusal> {
    let c = call.covenant();
    let g = &c.governance;
    let purpose = g
        .check_purpose
        .and_then(|u| c.purposes.get(u.index()))
        .map(|u| u.id.clone())
        .ok_or_else(|| {
            Refusal::PurposeNotForChecks(
                "aanpak-check".into(),
                "(none named in the covenant)".into(),
            )
        })?;
    let other = c
        .checks
        .approaches
        .iter()
        .find(|a| a.id == approach)
        .ok_or_else(|| Refusal::ApproachUnknown(clip(approach, 64)))?;
    let runner = c
        .partner_at(other.partner)
        .map(|x| x.id.clone())
        .unwrap_or_default();
    if call.requester.partner_id != runner {
        return Err(Refusal::ApproachNotYours(other.id.clone(), runner));
    }
    let (asker, ours) = (other.id.clone(), g.approach.clone());
    call.record.processing_activity = Some(clip(&purpose, 64));
    let bound = binding::purpose_role(call.covenant(), &call.requester, &purpose)?;
    call.record.role = call.role_id(bound.role);
    app.limiter
        .check_probe(&call.requester, call.covenant().checks.per_staff_per_minute)?;
    let seed = app.secrets.register_seed(&asker);
    let key = crate::oprf::RegisterKey::from_seed(&seed).map_err(|_| Refusal::Internal)?;
    Ok(AsRegister {
        asker,
        ours,
        key,
        seed,
    })
}

/// What an entry of iPGA-R answering as a register holds: the asking approach and the epoch.
fn as_register_outcome(asker: String, epoch: &crate::oprf::Epoch) -> CheckOutcome {
    CheckOutcome {
        approaches: std::collections::BTreeMap::new(),
        unavailable: std::collections::BTreeMap::new(),
        epochs: [(asker.clone(), epoch.to_string())].into_iter().collect(),
        register_for: Some(asker),
    }
}

/// The set iPGA-R publishes to approach `approach`: its open cases' outputs under that
/// approach's key and this month, padded and signed; a signed note. The entry names the
/// approach and the epoch, and no subject.
pub async fn published_set(app: &App, call: &mut Call, approach: &str) -> Result<String, Refusal> {
    let r = as_register(app, call, approach)?;
    let now = app.clock.now();
    let epoch = crate::oprf::Epoch::of(now);
    let mut open = Vec::new();
    for s in app.db.open_case_subjects().await? {
        let Ok(plain) = app.secrets.open(&s.subject_sealed) else {
            tracing::error!(case = %s.id, "a sealed subject cannot be opened");
            return Err(Refusal::Internal);
        };
        open.push(plain);
    }
    let (_, note) = crate::oprf::publish(
        &r.ours,
        &r.seed,
        epoch.clone(),
        (now, now.saturating_add(86_400)),
        open.iter().map(Vec::as_slice),
        &mut crate::oprf::SystemRng,
    )
    .map_err(|_| Refusal::Internal)?;
    call.record.check = Some(as_register_outcome(r.asker, &epoch));
    call.commit(app).await?;
    Ok(note)
}

/// Evaluates another approach's blinded element under its key (with the proof). iPGA-R learns
/// that the approach asked, not about whom; the entry says so.
pub async fn evaluate(
    app: &App,
    call: &mut Call,
    body: EvaluateRequest,
) -> Result<crate::register::EvaluateAnswer, Refusal> {
    let r = as_register(app, call, &body.approach)?;
    let at = app.clock.now();
    let now = crate::oprf::Epoch::of(at);
    let epoch = crate::oprf::Epoch::parse(&body.epoch)
        .filter(|e| e.answered_at(at))
        .ok_or_else(|| {
            Refusal::InvalidBody(format!(
                "`epoch` is {now} (or, while the set rolls over, {})",
                now.previous()
            ))
        })?;
    let mut blinded = [0u8; crate::oprf::ELEMENT_LEN];
    hex::decode_to_slice(&body.blinded, &mut blinded)
        .map_err(|_| Refusal::InvalidBody("`blinded` is 64 hex digits".into()))?;
    let info = crate::oprf::info(&r.ours, &epoch);
    let (e, p) = r
        .key
        .evaluate_blinded(&mut crate::oprf::SystemRng, &blinded, &info)
        .map_err(|_| Refusal::InvalidBody("`blinded` is not a group element".into()))?;
    call.record.check = Some(as_register_outcome(r.asker, &epoch));
    call.commit(app).await?;
    Ok(crate::register::EvaluateAnswer {
        evaluated: hex::encode(e),
        proof: hex::encode(p),
    })
}

/// What another approach pins for iPGA-R's register: the POPRF public key and the set
/// verifier key for `asker` (`gateway approach pins`).
pub fn pins(
    secrets: &crate::crypto::Secrets,
    ours: &str,
    asker: &str,
) -> Result<(String, String), crate::oprf::OprfError> {
    crate::oprf::pins(ours, &secrets.register_seed(asker))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::entry::Kind;
    use crate::testkit;

    fn ask(bsn: &str, purpose: &str) -> CheckRequest {
        CheckRequest {
            subject: CheckSubject::Bsn(bsn.into()),
            purpose: purpose.into(),
        }
    }

    #[tokio::test]
    async fn known_or_not_under_the_covenants_check_purpose_only() {
        let (app, _) = testkit::app().await;
        let mut c = testkit::call(&app, Kind::Check, "oov", "map.1", &["melder-intake"]);
        let a = check(&app, &mut c, ask("999993331", "aanpak-check"))
            .await
            .unwrap();
        assert!(!a.known && a.approaches.is_empty() && a.contact_partner.is_none());
        testkit::register(&app, "999993331").await;
        let mut c = testkit::call(&app, Kind::Check, "oov", "map.1", &["melder-intake"]);
        let a = check(&app, &mut c, ask("999993331", "aanpak-check"))
            .await
            .unwrap();
        // Known; no regisseur yet, so the programme's partner is the contact.
        assert_eq!(
            (a.known, a.approaches, a.contact_partner.as_deref()),
            (true, vec!["iPGA-R".to_owned()], Some("oov"))
        );
        assert!(c.record.case_id.is_some() && c.record.data_subject.is_some());
        // Any other purpose would make a check a probe.
        let mut c = testkit::call(&app, Kind::Check, "oov", "map.1", &["melder-intake"]);
        assert_eq!(
            check(&app, &mut c, ask("999993331", "regie"))
                .await
                .unwrap_err(),
            Refusal::PurposeNotForChecks("regie".into(), "aanpak-check".into())
        );
        // And a role the check purpose is not open to.
        let mut c = testkit::call(&app, Kind::Check, "rn", "reg.1", &["regisseur"]);
        assert!(matches!(
            check(&app, &mut c, ask("999993331", "aanpak-check")).await,
            Err(Refusal::PurposeRole(..))
        ));
    }
}
