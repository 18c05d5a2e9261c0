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
    /// By another approach's pseudonym (that approach's register asking us): only this
    /// approach's case register is asked.
    Pseudonym(ApproachPseudonym),
}

/// A subject as another approach knows it: its pseudonym under the key shared with it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproachPseudonym {
    /// The approach's id in the covenant's `[[approach]]`.
    pub approach: String,
    /// The pseudonym, 64 lower-case hex digits.
    pub value: String,
}

/// `POST /v1/checks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// `{"bsn": "…"}`, or `{"pseudonym": {"approach": "top600", "value": "…"}}`.
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
        CheckSubject::Pseudonym(p) => {
            return by_pseudonym(app, call, p, approach, programme).await;
        }
    };
    let pseudonyms = app.secrets.subject_pseudonyms(&bsn);
    call.record.data_subject = pseudonyms.first().cloned();
    // The other approaches, concurrently, each within its timeout, with the case register.
    let others = call.covenant().checks.approaches.clone();
    let trace = crate::trace::Propagation::of(&call.record);
    let (cases, answers) = tokio::join!(
        app.db.subject_cases(&pseudonyms),
        futures::future::join_all(
            others
                .iter()
                .map(|a| app.upstream.ask_approach(&a.id, &bsn, &trace))
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
    for (a, answer) in others.iter().zip(answers) {
        let (status, contact) = match answer {
            ApproachAnswer::Known(c) => (
                ApproachStatus::Known,
                Some(c.unwrap_or_else(|| a.contact.clone())),
            ),
            ApproachAnswer::NotKnown => (ApproachStatus::NotKnown, None),
            ApproachAnswer::Unavailable => (ApproachStatus::Unavailable, None),
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

/// Another approach asks whether this approach knows a person it knows by its pseudonym: the
/// open cases' sealed BSNs are opened and compared under the key shared with that approach
/// (O(open cases); the register of an approach holds hundreds, not millions).
async fn by_pseudonym(
    app: &App,
    call: &mut Call,
    p: &ApproachPseudonym,
    approach: String,
    programme: Option<String>,
) -> Result<CheckAnswer, Refusal> {
    let c = call.covenant();
    let other = c
        .checks
        .approaches
        .iter()
        .find(|a| a.id == p.approach)
        .ok_or_else(|| Refusal::ApproachUnknown(clip(&p.approach, 64)))?;
    let runner = c
        .partner_at(other.partner)
        .map(|x| x.id.clone())
        .unwrap_or_default();
    if call.requester.partner_id != runner {
        return Err(Refusal::ApproachNotYours(other.id.clone(), runner));
    }
    let key = app
        .upstream
        .approach_key(&other.id)
        .ok_or_else(|| Refusal::ApproachUnknown(other.id.clone()))?
        .to_vec();
    if p.value.len() != 64
        || !p
            .value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(Refusal::InvalidBody(
            "`pseudonym.value` is 64 lower-case hex digits".into(),
        ));
    }
    let mut found = None;
    for s in app.db.open_case_subjects().await? {
        let Ok(plain) = app.secrets.open(&s.subject_sealed) else {
            tracing::error!(case = %s.id, "a sealed subject cannot be opened");
            return Err(Refusal::Internal);
        };
        let Ok(bsn) = policy::Bsn::parse(&String::from_utf8_lossy(&plain)) else {
            continue;
        };
        if crate::crypto::approach_pseudonym(&key, &bsn) == p.value {
            found = Some(s);
            break;
        }
    }
    call.record.data_subject = found.as_ref().map(|s| s.subject_pseudonym.clone());
    call.record.case_id = found.as_ref().map(|s| s.id.clone());
    let contact = found
        .as_ref()
        .and_then(|s| s.regisseur_partner.clone().or(programme));
    let status = if found.is_some() {
        ApproachStatus::Known
    } else {
        ApproachStatus::NotKnown
    };
    call.record.check = Some(CheckOutcome {
        approaches: [(approach.clone(), status)].into_iter().collect(),
    });
    let appended = call.commit(app).await?;
    Ok(CheckAnswer {
        known: found.is_some(),
        approaches: if found.is_some() {
            vec![approach.clone()]
        } else {
            vec![]
        },
        across: vec![ApproachResult {
            approach: approach.clone(),
            name: approach,
            status,
            contact: contact.clone(),
        }],
        complete: true,
        contact_partner: contact,
        audit_seq: appended.seq,
        audit_receipt: app.receipt(&appended),
    })
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
