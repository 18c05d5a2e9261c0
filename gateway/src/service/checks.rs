//! The aanpak-check: is this person known in an approach? Known / not known and whom to call,
//! never content.

use super::disclose::{SubjectSelector, parse_bsn};
use super::{Call, binding, clip};
use crate::app::App;
use crate::problem::ApiError;
use policy::CaseStatus;
use serde::{Deserialize, Serialize};

/// The purpose under which `/v1/checks` answers known / not known.
pub const CHECK_PURPOSE: &str = "aanpak-check";

/// `POST /v1/checks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// `{"bsn": "…"}`.
    pub subject: SubjectSelector,
    /// Must be the check purpose (the example: `aanpak-check`).
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
}

/// Answers a check.
pub async fn check(
    app: &App,
    call: &mut Call,
    body: CheckRequest,
) -> Result<CheckAnswer, ApiError> {
    let req = call.requester.clone();
    call.record.processing_activity = Some(clip(&body.purpose, 64));
    // Only the check purpose answers without a case: any other purpose would turn a check
    // into a probe of who is in the approach.
    if body.purpose != CHECK_PURPOSE {
        return Err(ApiError::PurposeNotForChecks(clip(&body.purpose, 64)));
    }
    let bound = binding::purpose_role(call.covenant(), &req, &body.purpose)?;
    call.record.role = call.role_id(bound.role);
    let SubjectSelector::Bsn(bsn) = &body.subject else {
        return Err(ApiError::InvalidBody(
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
            vec!["iPGA-R".to_owned()]
        } else {
            vec![]
        },
        contact_partner: open.map(|k| {
            k.regisseur
                .as_ref()
                .map_or_else(|| "oov".to_owned(), |r| r.partner.clone())
        }),
        audit_seq: appended.seq,
    })
}
