//! The aanpak-check: is this person known in an approach? Known / not known and whom to call,
//! never content.

use super::disclose::{SubjectSelector, parse_bsn};
use super::{Call, binding, clip};
use crate::app::App;
use crate::refusal::Refusal;
use policy::CaseStatus;
use serde::{Deserialize, Serialize};

/// `POST /v1/checks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// `{"bsn": "…"}`.
    pub subject: SubjectSelector,
    /// Must be the covenant's check purpose (`[governance] check_purpose`; the example:
    /// `aanpak-check`).
    pub purpose: String,
}

/// The answer to a check: no content.
#[derive(Debug, Serialize)]
pub struct CheckAnswer {
    /// Is the person in an approach?
    pub known: bool,
    /// Which approaches.
    pub approaches: Vec<String>,
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
    let SubjectSelector::Bsn(bsn) = &body.subject else {
        return Err(Refusal::InvalidBody(
            "a check names the subject by `bsn`".into(),
        ));
    };
    let pseudonym = app.secrets.subject_pseudonym(&parse_bsn(bsn)?);
    call.record.data_subject = Some(pseudonym.clone());
    let cases = app.db.subject_cases(&pseudonym).await?;
    let open = cases
        .iter()
        .rev()
        .find(|k| !matches!(k.status, CaseStatus::Afgesloten | CaseStatus::NietOpgenomen));
    call.record.case_id = open.map(|k| k.id.clone());
    let appended = call.commit(app).await?;
    Ok(CheckAnswer {
        known: open.is_some(),
        approaches: if open.is_some() {
            vec![approach]
        } else {
            vec![]
        },
        contact_partner: open.and_then(|k| {
            k.regisseur
                .as_ref()
                .map(|r| r.partner.clone())
                .or(programme)
        }),
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
            subject: SubjectSelector::Bsn(bsn.into()),
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
