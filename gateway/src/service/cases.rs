//! The case register that purpose binding reads. Who may create, read and change it, and who
//! may make which status change, comes from the covenant. The BSN is stored only as a keyed
//! pseudonym and sealed with age; no answer ever contains it. Every change is a log entry
//! committed with the change; every read is one too (the answer says the person is in the
//! approach, and may carry the classification: special-category data).

use super::{Call, binding, clip};
use crate::app::App;
use crate::log::entry::{
    ApproachStatus, BodyDecision, CaseChange, CaseRead, InclusionCheck, Person,
};
use crate::refusal::Refusal;
use crate::store::{CaseAction, CaseEventRow, CaseRow, Change, Regisseur};
use policy::domain::{Ideology, parse_date};
use policy::{CaseStatus, Covenant, RoleRef};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /v1/cases` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    /// The person the signal is about.
    pub subject: SubjectIn,
    /// Date of the signal (`YYYY-MM-DD`).
    #[serde(default)]
    pub signal_date: Option<String>,
    /// Risk group 1–5, if already known.
    #[serde(default)]
    pub risk_group: Option<u8>,
    /// Ideology, if already known.
    #[serde(default)]
    pub ideology: Option<Ideology>,
}

/// A subject given by BSN.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectIn {
    /// Citizen service number (11-proef checked).
    pub bsn: String,
}

/// `PATCH /v1/cases/{id}` body: only the fields to change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasePatch {
    /// New status (must be an allowed step of the work process).
    #[serde(default)]
    pub status: Option<CaseStatus>,
    /// Risk group 1–5.
    #[serde(default)]
    pub risk_group: Option<u8>,
    /// Ideology.
    #[serde(default)]
    pub ideology: Option<Ideology>,
    /// The appointed regisseur.
    #[serde(default)]
    pub regisseur: Option<Regisseur>,
    /// Partners on the UVO.
    #[serde(default)]
    pub uvo_partners: Option<Vec<String>>,
    /// Date of the signal.
    #[serde(default)]
    pub signal_date: Option<String>,
    /// Date of the inclusion decision.
    #[serde(default)]
    pub decision_date: Option<String>,
    /// Date of the notification letter.
    #[serde(default)]
    pub notification_date: Option<String>,
    /// To whom it went (with the date, or once the date is recorded).
    #[serde(default)]
    pub notification_to: Option<policy::NotificationTo>,
    /// The body's decision, for a change the covenant gives to a body (`[[transition]] body`).
    #[serde(default)]
    pub decision: Option<DecisionIn>,
    /// The review by a body that precedes the change, where the covenant asks for one
    /// (`[[transition]] review`: the ITAT-R's review of a plan or an afsluitvoorstel).
    #[serde(default)]
    pub review: Option<DecisionIn>,
    /// For an inclusion under `[checks] before_inclusion` without a complete aanpak-check: the
    /// reason, recorded with the change.
    #[serde(default)]
    pub check_override: Option<String>,
}

/// A body's decision as a change carries it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionIn {
    /// The decision's reference in the body's minutes (1–80 characters).
    pub reference: String,
    /// The meeting's date, YYYY-MM-DD.
    pub date: String,
    /// The members who took it, each a partner and staff id.
    pub members: Vec<Regisseur>,
}

/// What a body's step on a change is: the decision itself, or the review before it.
#[derive(Debug, Clone, Copy)]
enum Taken {
    Decision,
    Review,
}

impl Taken {
    /// The request's field that carries it.
    fn field(self) -> &'static str {
        match self {
            Taken::Decision => "decision",
            Taken::Review => "review",
        }
    }
}

/// Checks a body's decision against the covenant: a reference, a date, and at least the
/// quorum of distinct members of at least so many partners, each of a partner that may hold
/// one of the body's roles. Returns it as the log records it.
fn body_decision(
    c: &Covenant,
    body: &policy::covenant::Body,
    d: Option<&DecisionIn>,
    kind: Taken,
) -> Result<BodyDecision, Refusal> {
    let required = || match kind {
        Taken::Decision => Refusal::DecisionRequired(body.name.clone(), body.quorum, body.partners),
        Taken::Review => Refusal::ReviewRequired(body.name.clone(), body.quorum, body.partners),
    };
    let d = d.ok_or_else(required)?;
    let reference = d.reference.trim();
    let field = kind.field();
    if reference.is_empty()
        || reference.chars().count() > 80
        || reference.chars().any(char::is_control)
    {
        return Err(Refusal::DecisionMembers(format!(
            "`{field}.reference` is the reference in the minutes: 1 to 80 printable characters"
        )));
    }
    check_date(
        match kind {
            Taken::Decision => "decision.date",
            Taken::Review => "review.date",
        },
        &Some(d.date.clone()),
    )?;
    let mut members: Vec<(String, String)> = Vec::new();
    for m in &d.members {
        let partner = c
            .partner(&m.partner)
            .ok_or_else(|| Refusal::UnknownPartner(clip(&m.partner, 64)))?;
        let may_sit = c
            .roles
            .iter()
            .zip(&body.roles)
            .any(|(r, on)| *on && r.held_by.get(partner.index()).copied().unwrap_or(false));
        if !may_sit || m.staff_id.trim().is_empty() {
            return Err(Refusal::DecisionMembers(format!(
                "`{}` is not a partner whose staff sit in the {} (or a member has no staff id)",
                clip(&m.partner, 64),
                body.name
            )));
        }
        let key = (m.partner.clone(), clip(&m.staff_id, 128));
        if !members.contains(&key) {
            members.push(key);
        }
    }
    let partners = members
        .iter()
        .map(|(p, _)| p.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if members.len() < body.quorum || partners < body.partners {
        return Err(required());
    }
    Ok(BodyDecision {
        body: body.id.clone(),
        reference: reference.to_owned(),
        date: d.date.clone(),
        members: members
            .into_iter()
            .map(|(partner, staff_id)| Person { partner, staff_id })
            .collect(),
    })
}

/// Key dates.
#[derive(Debug, Serialize)]
pub struct Dates {
    /// Signal.
    pub signal: Option<String>,
    /// Inclusion decision.
    pub decision: Option<String>,
    /// Notification letter.
    pub notification_letter: Option<String>,
    /// To whom it went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_to: Option<policy::NotificationTo>,
}

/// Risk group and ideology: only for roles the covenant lets read them, and each only where no
/// prohibition of the covenant bars its category from the requester's partner.
#[derive(Debug, Serialize)]
pub struct Classification {
    /// Risk group 1–5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_group: Option<Option<u8>>,
    /// Ideology.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ideology: Option<Option<Ideology>>,
}

/// One change, without values.
#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    /// Case version after the change.
    pub version: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who: partner.
    pub partner: String,
    /// Who: staff id.
    pub staff_id: String,
    /// In which role.
    pub role: String,
    /// `created` or `updated`.
    pub action: CaseAction,
    /// Which fields changed.
    pub fields: Vec<String>,
    /// New status, if it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<CaseStatus>,
}

/// A case as the API shows it. Never the BSN.
#[derive(Debug, Serialize)]
pub struct CaseView {
    /// Case id.
    pub id: String,
    /// Subject reference shared with partners.
    pub subject_ref: String,
    /// Status.
    pub status: CaseStatus,
    /// Regisseur, once appointed.
    pub regisseur: Option<Regisseur>,
    /// Partners on the UVO.
    pub uvo_partners: Vec<String>,
    /// Key dates.
    pub dates: Dates,
    /// Risk group and ideology, if the requester may read them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// Version, incremented on every change.
    pub version: i64,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
    /// Every change, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Sequence number of this answer's (or change's) log entry.
    pub audit_seq: i64,
}

/// What of the classification a requester may see: (risk group, ideology); `None`: nothing.
fn classification_for(c: &Covenant, call: &Call) -> Option<(bool, bool)> {
    let req = &call.requester;
    let reg = &c.case_register;
    req.roles
        .iter()
        .any(|r| reg.may_read_classification(*r))
        .then(|| {
            (
                !c.category_barred(req.partner, policy::Category::Risico),
                !c.category_barred(req.partner, policy::Category::Ideologie),
            )
        })
}

fn classified_fields(classified: Option<(bool, bool)>) -> Vec<String> {
    let (risk, ideology) = classified.unwrap_or((false, false));
    [("risk_group", risk), ("ideology", ideology)]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| n.to_owned())
        .collect()
}

fn rfc3339(t: i64) -> String {
    crate::log::entry::rfc3339::format(t).unwrap_or_default()
}

fn acting(call: &Call, allowed: impl Fn(RoleRef) -> bool) -> Option<RoleRef> {
    call.requester.roles.iter().copied().find(|r| allowed(*r))
}

fn check_date(field: &str, v: &Option<String>) -> Result<(), Refusal> {
    match v {
        Some(d) if parse_date(d).is_none() => Err(Refusal::InvalidBody(format!(
            "`{field}` must be a date as YYYY-MM-DD"
        ))),
        _ => Ok(()),
    }
}

fn check_risk_group(v: Option<u8>) -> Result<(), Refusal> {
    match v {
        Some(g) if !(1..=5).contains(&g) => {
            Err(Refusal::InvalidBody("`risk_group` must be 1 to 5".into()))
        }
        _ => Ok(()),
    }
}

/// The view of a case for this requester.
fn view(
    c: CaseRow,
    events: Vec<CaseEventRow>,
    classified: Option<(bool, bool)>,
    seq: i64,
) -> CaseView {
    CaseView {
        id: c.id,
        subject_ref: c.subject_ref,
        status: c.status,
        regisseur: c.regisseur,
        uvo_partners: c.uvo_partners,
        dates: Dates {
            signal: c.signal_date,
            decision: c.decision_date,
            notification_letter: c.notification_date,
            notification_to: c.notification_to,
        },
        classification: classified.map(|(risk, ideology)| Classification {
            risk_group: risk.then_some(c.risk_group),
            ideology: ideology.then_some(c.ideology),
        }),
        version: c.version,
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
        history: events
            .into_iter()
            .map(|e| HistoryEntry {
                version: e.version,
                at: rfc3339(e.at),
                partner: e.partner,
                staff_id: e.staff_id,
                role: e.role,
                action: e.action,
                fields: e.fields,
                status: e.status,
            })
            .collect(),
        audit_seq: seq,
    }
}

/// Registers a new case.
pub async fn create(app: &App, call: &mut Call, body: NewCase) -> Result<CaseView, Refusal> {
    let active = call.policy.clone();
    let c = active.covenant.covenant();
    let role = acting(call, |r| c.case_register.may_create(r))
        .ok_or(Refusal::CasePermission("register cases"))?;
    call.record.role = call.role_id(role);
    let bsn = super::disclose::parse_bsn(&body.subject.bsn)?;
    check_date("signal_date", &body.signal_date)?;
    check_risk_group(body.risk_group)?;
    let (pseudonym, pseudonym_key) = app.secrets.subject_pseudonym_keyed(&bsn);
    call.record.data_subject = Some(pseudonym.clone());
    let sealed = app
        .secrets
        .seal(bsn.expose().as_bytes())
        .map_err(|_| Refusal::Internal)?;
    // One case per person at a time: a new signal about someone with an open case belongs to
    // that case. Who reads the register is told which one; others only that there is one.
    if let Some(open) = app
        .db
        .subject_cases(&app.secrets.subject_pseudonyms(&bsn))
        .await?
        .into_iter()
        .find(|k| !k.status.is_closed())
    {
        let reads_all = call
            .requester
            .roles
            .iter()
            .any(|r| c.case_register.may_read_classification(*r));
        return Err(Refusal::CaseOpen(reads_all.then_some(open.id)));
    }
    // A reference of its own for every case: deposits made for an earlier case of the person
    // stay with that case and never open to a later one.
    let subject_ref = format!("subj-{}", uuid::Uuid::new_v4().simple());
    let now = app.clock.now();
    let row = CaseRow {
        id: format!("case-{}", uuid::Uuid::new_v4().simple()),
        subject_ref,
        subject_pseudonym: pseudonym,
        subject_sealed: sealed.bytes,
        sealed_key: Some(sealed.key),
        pseudonym_key: Some(pseudonym_key),
        status: CaseStatus::INITIAL,
        risk_group: body.risk_group,
        ideology: body.ideology,
        regisseur: None,
        uvo_partners: Vec::new(),
        signal_date: body.signal_date,
        decision_date: None,
        notification_date: None,
        notification_to: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let mut fields = vec!["subject".to_owned(), "status".to_owned()];
    for (name, present) in [
        ("signal_date", row.signal_date.is_some()),
        ("risk_group", row.risk_group.is_some()),
        ("ideology", row.ideology.is_some()),
    ] {
        if present {
            fields.push(name.to_owned());
        }
    }
    let event = CaseEventRow {
        case_id: row.id.clone(),
        version: 1,
        at: now,
        partner: call.requester.partner_id.clone(),
        staff_id: call.requester.staff_id.clone(),
        role: call.record.role.clone().ok_or(Refusal::Internal)?,
        action: CaseAction::Created,
        fields: fields.clone(),
        status: Some(row.status),
    };
    let mut dates = BTreeMap::new();
    if let Some(d) = &row.signal_date {
        dates.insert("signal".to_owned(), d.clone());
    }
    call.record.case_id = Some(row.id.clone());
    call.record.case_change = Some(CaseChange {
        action: CaseAction::Created,
        version: 1,
        fields,
        status: Some(row.status),
        previous_status: None,
        regisseur: None,
        uvo_partners: None,
        dates,
        decision: None,
        review: None,
        inclusion_check: None,
    });
    let appended = call
        .commit_change(
            app,
            Change::CreateCase {
                case: row.clone(),
                event: event.clone(),
            },
            Refusal::CaseConflict,
        )
        .await?;
    tracing::info!(case = %row.id, seq = appended.seq, "case registered");
    Ok(view(
        row,
        vec![event],
        classification_for(c, call),
        appended.seq,
    ))
}

/// Reads a case.
pub async fn read(app: &App, call: &mut Call, id: &str) -> Result<CaseView, Refusal> {
    let active = call.policy.clone();
    let c = active.covenant.covenant();
    let reg = &c.case_register;
    call.record.case_id = Some(clip(id, 80));
    // Permission before lookup: a role that may not read learns nothing, not even existence.
    let role = acting(call, |r| reg.may_read(r)).ok_or(Refusal::CasePermission("read cases"))?;
    call.record.role = call.role_id(role);
    let case = app.db.case(id).await?.ok_or(Refusal::CaseNotFound)?;
    call.record.data_subject = Some(case.subject_pseudonym.clone());
    if !binding::may_know_of(c, &call.requester, &case) {
        return Err(Refusal::CaseNotFound);
    }
    let events = app.db.case_events(id).await?;
    let classified = classification_for(c, call);
    call.record.case_read = Some(CaseRead {
        version: case.version,
        status: case.status,
        classification: classified_fields(classified),
    });
    let appended = call.commit(app).await?;
    Ok(view(case, events, classified, appended.seq))
}

/// The requester's role that takes an appointing decision on `case` now, or why none does. The
/// regisseur role takes one only as the case's own regisseur: a regisseur of another case
/// chooses nobody's UVO.
fn appointing(
    c: &Covenant,
    call: &Call,
    case: &CaseRow,
    field: &'static str,
    decision: &policy::Appointment,
) -> Result<RoleRef, Refusal> {
    let req = &call.requester;
    let own_regisseur = case
        .regisseur
        .as_ref()
        .is_some_and(|r| r.partner == req.partner_id && r.staff_id == req.staff_id);
    let takes =
        |r: RoleRef| decision.by(r) && (Some(r) != c.governance.regisseur_role || own_regisseur);
    let role = acting(call, takes).ok_or_else(|| {
        let by: Vec<String> = c
            .roles
            .iter()
            .zip(&decision.roles)
            .filter(|(_, on)| **on)
            .map(|(r, _)| match c.governance.regisseur_role {
                Some(g) if c.roles.get(g.index()).is_some_and(|x| x.id == r.id) => {
                    format!("{} (the case's own)", r.id)
                }
                _ => r.id.clone(),
            })
            .collect();
        let by = if by.is_empty() {
            "no role (the covenant names none)".to_owned()
        } else {
            by.join(", ")
        };
        Refusal::AppointmentForbidden(field, by)
    })?;
    if !decision.open_in(case.status) {
        return Err(Refusal::AppointmentStatus(field, case.status.to_string()));
    }
    Ok(role)
}

/// What an inclusion rests on under `[checks] before_inclusion`: the newest aanpak-check of the
/// case's person since the signal (the check names the open case), which must have been
/// answered by every approach; or the deciders' reason to go without one.
async fn inclusion_check(
    app: &App,
    case: &CaseRow,
    reason: Option<String>,
) -> Result<InclusionCheck, Refusal> {
    if let Some(reason) = reason {
        let reason = reason.trim().to_owned();
        if reason.is_empty() || reason.len() > 500 {
            return Err(Refusal::InvalidBody(
                "`check_override` is the reason, 1 to 500 characters".into(),
            ));
        }
        return Ok(InclusionCheck::Override { reason });
    }
    let filter = crate::store::LogFilter {
        case_id: Some(case.id.clone()),
        outcome: Some("answered".into()),
        kinds: vec!["check"],
        limit: 1000,
        ..crate::store::LogFilter::default()
    };
    let found = app.db.search(&filter).await?;
    let Some((seq, text, _)) = found.last() else {
        return Err(Refusal::CheckRequired(
            "no aanpak-check of the person since the signal".into(),
        ));
    };
    let entry = crate::log::entry::LogEntry::parse(*seq, text).map_err(|_| Refusal::Internal)?;
    let outcome = entry.check.ok_or(Refusal::Internal)?;
    let unavailable: Vec<&str> = outcome
        .approaches
        .iter()
        .filter(|(_, s)| **s == ApproachStatus::Unavailable)
        .map(|(a, _)| a.as_str())
        .collect();
    if !unavailable.is_empty() {
        return Err(Refusal::CheckRequired(format!(
            "the newest check (entry {seq}) was not answered by {}",
            unavailable.join(", ")
        )));
    }
    Ok(InclusionCheck::Checked {
        seq: *seq,
        known: outcome
            .approaches
            .values()
            .any(|s| *s == ApproachStatus::Known),
    })
}

/// Changes a case: status (by the work process and the covenant's transitions) and fields.
pub async fn update(
    app: &App,
    call: &mut Call,
    id: &str,
    patch: CasePatch,
) -> Result<CaseView, Refusal> {
    let active = call.policy.clone();
    let c = active.covenant.covenant();
    let reg = &c.case_register;
    call.record.case_id = Some(clip(id, 80));
    let may_change_something = call.requester.roles.iter().any(|r| {
        reg.may_update(*r)
            || reg.appoint_regisseur.by(*r)
            || reg.compose_uvo.by(*r)
            || reg
                .transitions
                .iter()
                .any(|(_, _, roles)| roles.get(r.index()).copied().unwrap_or(false))
    });
    if !may_change_something {
        return Err(Refusal::CasePermission("change cases"));
    }
    // The fields under `update`; regisseur and UVO grant relations and have their own
    // decision-makers (`appoint`).
    let fields_changed: Vec<&str> = [
        ("risk_group", patch.risk_group.is_some()),
        ("ideology", patch.ideology.is_some()),
        ("signal_date", patch.signal_date.is_some()),
        ("decision_date", patch.decision_date.is_some()),
        ("notification_date", patch.notification_date.is_some()),
        ("notification_to", patch.notification_to.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, p)| p.then_some(n))
    .collect();
    if patch.status.is_none()
        && fields_changed.is_empty()
        && patch.regisseur.is_none()
        && patch.uvo_partners.is_none()
    {
        return Err(Refusal::EmptyPatch);
    }
    check_risk_group(patch.risk_group)?;
    check_date("signal_date", &patch.signal_date)?;
    check_date("decision_date", &patch.decision_date)?;
    check_date("notification_date", &patch.notification_date)?;

    let old = app.db.case(id).await?.ok_or(Refusal::CaseNotFound)?;
    // The relation first: a requester with none learns nothing, not even the case's status (its
    // entry names the subject, for the privacy officers).
    call.record.data_subject = Some(old.subject_pseudonym.clone());
    if !binding::may_know_of(c, &call.requester, &old) {
        return Err(Refusal::CaseNotFound);
    }
    // The addressee goes with the letter's date (the Handreiking: to whom and when).
    if patch.notification_to.is_some()
        && patch.notification_date.is_none()
        && old.notification_date.is_none()
    {
        return Err(Refusal::InvalidBody(
            "`notification_to` goes with `notification_date`: give the letter's date too".into(),
        ));
    }
    let current = old.status;
    let mut acting_role = None;
    let mut decision = None;
    let mut review = None;
    let new_status = match patch.status {
        Some(to) if to != current => {
            if !reg.declares(current, to) {
                return Err(Refusal::TransitionNotAllowed(
                    current.to_string(),
                    to.to_string(),
                ));
            }
            // Only the covenant's static role (the PTO-R) makes a case static.
            let static_role = c.governance.static_role;
            if to == CaseStatus::Statisch
                && !call.requester.roles.iter().any(|r| Some(*r) == static_role)
            {
                let name = static_role
                    .and_then(|r| c.roles.get(r.index()))
                    .map_or_else(|| "(none named)".to_owned(), |r| r.id.clone());
                return Err(Refusal::StatischRequiresRole(name));
            }
            let role = acting(call, |r| reg.may_transition(current, to, r))
                .ok_or_else(|| Refusal::TransitionForbidden(current.to_string(), to.to_string()))?;
            acting_role = Some(role);
            // A body's decision is taken by its members, not by whoever records it.
            if let Some(body) = reg.review_for(current, to) {
                review = Some(body_decision(
                    c,
                    body,
                    patch.review.as_ref(),
                    Taken::Review,
                )?);
            }
            if let Some(body) = reg.body_for(current, to) {
                decision = Some(body_decision(
                    c,
                    body,
                    patch.decision.as_ref(),
                    Taken::Decision,
                )?);
            }
            Some(to)
        }
        _ => None,
    };
    if !fields_changed.is_empty() {
        let role = acting(call, |r| reg.may_update(r))
            .ok_or(Refusal::CasePermission("change case fields"))?;
        acting_role.get_or_insert(role);
    }
    if let Some(r) = &patch.regisseur {
        let role = appointing(c, call, &old, "regisseur", &reg.appoint_regisseur)?;
        acting_role.get_or_insert(role);
        if r.partner == call.requester.partner_id && r.staff_id == call.requester.staff_id {
            return Err(Refusal::SelfAppointment);
        }
        let partner = c
            .partner(&r.partner)
            .ok_or_else(|| Refusal::UnknownPartner(clip(&r.partner, 64)))?;
        let may = c
            .governance
            .regisseur_role
            .and_then(|role| c.roles.get(role.index()))
            .and_then(|role| role.held_by.get(partner.index()))
            .copied()
            .unwrap_or(false);
        if !may {
            return Err(Refusal::InvalidRegisseur(r.partner.clone()));
        }
        if r.staff_id.trim().is_empty() || r.staff_id.len() > 128 {
            return Err(Refusal::InvalidBody(
                "`regisseur.staff_id` must be 1 to 128 characters".into(),
            ));
        }
    }
    if patch.uvo_partners.is_some() {
        let role = appointing(c, call, &old, "uvo_partners", &reg.compose_uvo)?;
        acting_role.get_or_insert(role);
    }
    call.record.role = acting_role.and_then(|r| call.role_id(r));
    if let Some(unknown) = patch
        .uvo_partners
        .iter()
        .flatten()
        .find(|p| c.partner(p).is_none())
    {
        return Err(Refusal::UnknownPartner(clip(unknown, 64)));
    }
    if new_status == Some(CaseStatus::Opgenomen)
        && patch.regisseur.is_none()
        && old.regisseur.is_none()
    {
        return Err(Refusal::RegisseurRequired);
    }

    let now = app.clock.now();
    let mut new = old.clone();
    if let Some(s) = new_status {
        new.status = s;
    }
    if let Some(g) = patch.risk_group {
        new.risk_group = Some(g);
    }
    if let Some(i) = patch.ideology {
        new.ideology = Some(i);
    }
    if let Some(r) = &patch.regisseur {
        new.regisseur = Some(r.clone());
    }
    let uvo = patch.uvo_partners.map(|mut list| {
        list.sort();
        list.dedup();
        list
    });
    if let Some(list) = &uvo {
        new.uvo_partners = list.clone();
    }
    let mut dates = BTreeMap::new();
    for (name, v) in [
        ("signal", &patch.signal_date),
        ("decision", &patch.decision_date),
        ("notification_letter", &patch.notification_date),
    ] {
        if let Some(d) = v {
            dates.insert(name.to_owned(), d.clone());
        }
    }
    new.signal_date = patch.signal_date.or(new.signal_date);
    new.decision_date = patch.decision_date.or(new.decision_date);
    new.notification_date = patch.notification_date.or(new.notification_date);
    new.notification_to = patch.notification_to.or(new.notification_to);
    new.updated_at = now;
    new.version = old.version + 1;
    let mut fields: Vec<String> = fields_changed.iter().map(|f| (*f).to_owned()).collect();
    for (name, set) in [
        ("regisseur", patch.regisseur.is_some()),
        ("uvo_partners", uvo.is_some()),
    ] {
        if set {
            fields.push(name.to_owned());
        }
    }
    if new_status.is_some() {
        fields.insert(0, "status".to_owned());
    }
    let event = CaseEventRow {
        case_id: new.id.clone(),
        version: new.version,
        at: now,
        partner: call.requester.partner_id.clone(),
        staff_id: call.requester.staff_id.clone(),
        role: call.record.role.clone().ok_or(Refusal::Internal)?,
        action: CaseAction::Updated,
        fields: fields.clone(),
        status: new_status,
    };
    let inclusion_check = match new_status {
        Some(CaseStatus::Opgenomen) if c.checks.before_inclusion => {
            Some(inclusion_check(app, &old, patch.check_override).await?)
        }
        _ => None,
    };
    call.record.case_change = Some(CaseChange {
        action: CaseAction::Updated,
        version: new.version,
        fields,
        status: new_status,
        previous_status: new_status.map(|_| current),
        regisseur: patch.regisseur,
        uvo_partners: uvo,
        dates,
        decision,
        review,
        inclusion_check,
    });
    let appended = call
        .commit_change(
            app,
            Change::UpdateCase {
                case: new.clone(),
                expected_version: old.version,
                event,
            },
            Refusal::CaseConflict,
        )
        .await?;
    let events = app.db.case_events(id).await?;
    Ok(view(new, events, classification_for(c, call), appended.seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::entry::{Kind, Outcome};
    use crate::testkit;

    fn new_case(bsn: &str) -> NewCase {
        NewCase {
            subject: SubjectIn { bsn: bsn.into() },
            signal_date: Some("2026-11-20".into()),
            risk_group: Some(4),
            ideology: None,
        }
    }

    #[tokio::test]
    async fn a_case_registered_read_and_changed_is_three_entries_with_their_values() {
        let (app, _) = testkit::app().await;
        let mut c = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        let v = create(&app, &mut c, new_case("999993331")).await.unwrap();
        assert_eq!((v.status, v.version), (CaseStatus::Melding, 1));
        let mut r = testkit::call(&app, Kind::CaseRead, "politie", "vp.1", &["voorportaal"]);
        let read_back = read(&app, &mut r, &v.id).await.unwrap();
        assert!(
            read_back.classification.is_some(),
            "the voorportaal reads the classification"
        );
        let mut u = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        let patch = CasePatch {
            status: Some(CaseStatus::Duiding),
            ..CasePatch::default()
        };
        let changed = update(&app, &mut u, &v.id, patch).await.unwrap();
        assert_eq!(changed.version, 2);
        let log = testkit::entries(&app).await;
        let kinds: Vec<Kind> = log.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::Policy,
                Kind::WitnessOverride,
                Kind::CaseChange,
                Kind::CaseRead,
                Kind::CaseChange
            ]
        );
        let created = log[2].case_change.as_ref().unwrap();
        assert_eq!(
            created.fields,
            vec!["subject", "status", "signal_date", "risk_group"]
        );
        assert_eq!(
            log[3].case_read.as_ref().unwrap().classification,
            vec!["risk_group", "ideology"]
        );
        let changed = log[4].case_change.as_ref().unwrap();
        assert_eq!(
            (changed.previous_status, changed.status),
            (Some(CaseStatus::Melding), Some(CaseStatus::Duiding))
        );
        let subject = app.db.case(&v.id).await.unwrap().unwrap().subject_pseudonym;
        assert!(
            log[2..]
                .iter()
                .all(|e| e.data_subject.as_deref() == Some(subject.as_str()))
        );
        assert!(
            log.iter()
                .all(|e| !serde_json::to_string(e).unwrap().contains("999993331")),
            "never the BSN"
        );
    }

    /// Issue 31: the notification letter's addressee is recorded with its date, never alone.
    #[tokio::test]
    async fn the_notification_names_to_whom_it_went() {
        let (app, _) = testkit::app().await;
        let mut c = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        let v = create(&app, &mut c, new_case("999993331")).await.unwrap();
        let vp = || testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        let alone = CasePatch {
            notification_to: Some(policy::NotificationTo::OudersVoogd),
            ..CasePatch::default()
        };
        assert!(matches!(
            update(&app, &mut vp(), &v.id, alone).await,
            Err(Refusal::InvalidBody(_))
        ));
        let with_date = CasePatch {
            notification_date: Some("2026-12-01".into()),
            notification_to: Some(policy::NotificationTo::OudersVoogd),
            ..CasePatch::default()
        };
        let mut u = vp();
        let changed = update(&app, &mut u, &v.id, with_date).await.unwrap();
        assert_eq!(
            changed.dates.notification_to,
            Some(policy::NotificationTo::OudersVoogd)
        );
        let fields = u.record.case_change.as_ref().unwrap().fields.clone();
        assert!(fields.contains(&"notification_to".to_owned()), "{fields:?}");
        // Corrected later on its own, now that the date is there, by the MAP that sent it (its
        // staff sit in the voorportaal: Handreiking 2016, lines 93 and 110).
        let later = CasePatch {
            notification_to: Some(policy::NotificationTo::Inrichting),
            ..CasePatch::default()
        };
        let mut map = testkit::call(&app, Kind::CaseChange, "oov", "map.1", &["voorportaal"]);
        let changed = update(&app, &mut map, &v.id, later).await.unwrap();
        assert_eq!(
            changed.dates.notification_to,
            Some(policy::NotificationTo::Inrichting)
        );
        assert_eq!(
            app.db.case(&v.id).await.unwrap().unwrap().notification_to,
            Some(policy::NotificationTo::Inrichting)
        );
    }

    #[tokio::test]
    async fn refusals_by_the_covenant() {
        let (app, _) = testkit::app().await;
        let mut c = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        let v = create(&app, &mut c, new_case("999993331")).await.unwrap();
        // A regisseur who is not this case's sees nothing: to them it does not exist.
        let mut r = testkit::call(&app, Kind::CaseRead, "rn", "reg.x", &["regisseur"]);
        assert_eq!(
            read(&app, &mut r, &v.id).await.unwrap_err(),
            Refusal::CaseNotFound
        );
        // Only the static role makes a case static; a step the work process lacks is refused.
        let mut u = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        let skip = CasePatch {
            status: Some(CaseStatus::Uitvoering),
            ..CasePatch::default()
        };
        assert!(matches!(
            update(&app, &mut u, &v.id, skip).await,
            Err(Refusal::TransitionNotAllowed(..))
        ));
        // A BSN that fails the 11-proef.
        let mut c = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        assert!(matches!(
            create(&app, &mut c, new_case("123456789")).await,
            Err(Refusal::InvalidBsn(_))
        ));
        // Including a case needs a regisseur from a partner that may deliver one.
        let mut u = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        update(
            &app,
            &mut u,
            &v.id,
            CasePatch {
                status: Some(CaseStatus::Duiding),
                ..CasePatch::default()
            },
        )
        .await
        .unwrap();
        let mut u = testkit::call(&app, Kind::CaseChange, "oov", "sec.1", &["secretaris"]);
        let ggd = CasePatch {
            status: Some(CaseStatus::Opgenomen),
            decision: Some(testkit::pto_decision()),
            regisseur: Some(Regisseur {
                partner: "ggd".into(),
                staff_id: "g.1".into(),
            }),
            ..CasePatch::default()
        };
        assert_eq!(
            update(&app, &mut u, &v.id, ggd).await.unwrap_err(),
            Refusal::InvalidRegisseur("ggd".into())
        );
    }

    #[tokio::test]
    async fn a_change_read_at_an_old_version_is_refused_and_recorded_as_such() {
        let (app, _) = testkit::app().await;
        let mut c = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        let v = create(&app, &mut c, new_case("999993331")).await.unwrap();
        // Another change lands between this change's read and its write: simulated by writing
        // version 2 directly, then offering the same change from version 1.
        let mut u = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        update(
            &app,
            &mut u,
            &v.id,
            CasePatch {
                risk_group: Some(2),
                ..CasePatch::default()
            },
        )
        .await
        .unwrap();
        let old = app.db.case(&v.id).await.unwrap().unwrap();
        let mut stale = old.clone();
        stale.version = 2;
        let mut u = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        u.record.case_id = Some(v.id.clone());
        let event = CaseEventRow {
            case_id: v.id.clone(),
            version: 2,
            at: 0,
            partner: "politie".into(),
            staff_id: "vp.1".into(),
            role: "voorportaal".into(),
            action: CaseAction::Updated,
            fields: vec!["risk_group".into()],
            status: None,
        };
        let r = u
            .commit_change(
                &app,
                Change::UpdateCase {
                    case: stale,
                    expected_version: 1,
                    event,
                },
                Refusal::CaseConflict,
            )
            .await;
        assert_eq!(r.unwrap_err(), Refusal::CaseConflict);
        let last = testkit::entries(&app).await.pop().unwrap();
        assert_eq!(
            (last.outcome, last.problem.as_deref()),
            (Outcome::Refused, Some("case-conflict"))
        );
        assert_eq!(
            app.db.case(&v.id).await.unwrap().unwrap().version,
            2,
            "nothing changed"
        );
    }

    /// Issue 31: one Regieoverleg member or the secretaris alone included a case. A change the
    /// covenant gives to a body now carries the body's decision, with its quorum of members of
    /// enough partners, and the log records them.
    /// Issue 31: under `[checks] before_inclusion` a case is included only after a complete
    /// aanpak-check of its person since the signal, which the inclusion's entry names; or with
    /// the deciders' reason, recorded.
    #[tokio::test]
    async fn inclusion_rests_on_a_complete_check_or_a_recorded_reason() {
        let (app, _) = testkit::app().await;
        let include = |override_: Option<&str>| CasePatch {
            status: Some(CaseStatus::Opgenomen),
            regisseur: Some(Regisseur {
                partner: "rn".into(),
                staff_id: "reg.1".into(),
            }),
            decision: Some(testkit::pto_decision()),
            check_override: override_.map(str::to_owned),
            ..CasePatch::default()
        };
        let sec = || testkit::call(&app, Kind::CaseChange, "oov", "sec.1", &["secretaris"]);
        for (bsn, how) in [("999993331", "check"), ("999992223", "reason")] {
            let case = testkit::register(&app, bsn).await;
            let mut vp = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
            let duiding = CasePatch {
                status: Some(CaseStatus::Duiding),
                ..CasePatch::default()
            };
            update(&app, &mut vp, &case.id, duiding).await.unwrap();
            assert!(matches!(
                update(&app, &mut sec(), &case.id, include(None)).await,
                Err(Refusal::CheckRequired(_))
            ));
            assert!(matches!(
                update(&app, &mut sec(), &case.id, include(Some("  "))).await,
                Err(Refusal::InvalidBody(_))
            ));
            let mut done = sec();
            let expected = if how == "check" {
                let mut c = testkit::call(&app, Kind::Check, "politie", "vp.1", &["voorportaal"]);
                let body = crate::service::checks::CheckRequest {
                    subject: crate::service::checks::CheckSubject::Bsn(bsn.into()),
                    purpose: "aanpak-check".into(),
                };
                let a = crate::service::checks::check(&app, &mut c, body)
                    .await
                    .unwrap();
                update(&app, &mut done, &case.id, include(None))
                    .await
                    .unwrap();
                InclusionCheck::Checked {
                    seq: a.audit_seq,
                    known: true,
                }
            } else {
                update(&app, &mut done, &case.id, include(Some("register down")))
                    .await
                    .unwrap();
                InclusionCheck::Override {
                    reason: "register down".into(),
                }
            };
            assert_eq!(
                done.record.case_change.and_then(|c| c.inclusion_check),
                Some(expected)
            );
        }
    }

    #[tokio::test]
    async fn a_decision_of_a_body_needs_its_members_and_is_recorded_with_them() {
        let (app, _) = testkit::app().await;
        let v = testkit::register(&app, "999993331").await;
        let mut vp = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        update(
            &app,
            &mut vp,
            &v.id,
            CasePatch {
                status: Some(CaseStatus::Duiding),
                ..CasePatch::default()
            },
        )
        .await
        .unwrap();
        let include = |decision: Option<DecisionIn>| CasePatch {
            status: Some(CaseStatus::Opgenomen),
            regisseur: Some(Regisseur {
                partner: "rn".into(),
                staff_id: "reg.1".into(),
            }),
            decision,
            check_override: Some("test: the decision is what is tested".into()),
            ..CasePatch::default()
        };
        let sec = || testkit::call(&app, Kind::CaseChange, "oov", "sec.1", &["secretaris"]);
        let refused = |r: Result<CaseView, Refusal>| r.unwrap_err();
        assert!(matches!(
            refused(update(&app, &mut sec(), &v.id, include(None)).await),
            Refusal::DecisionRequired(b, 4, 4) if b == "PTO-R"
        ));
        let mut two = testkit::pto_decision();
        two.members.truncate(2);
        assert!(matches!(
            refused(update(&app, &mut sec(), &v.id, include(Some(two))).await),
            Refusal::DecisionRequired(..)
        ));
        // The same member twice counts once; a partner whose staff do not sit in it is refused.
        let mut twice = testkit::pto_decision();
        if let Some(m) = twice.members.first().cloned() {
            twice.members.truncate(2);
            twice.members.push(m);
        }
        assert!(matches!(
            refused(update(&app, &mut sec(), &v.id, include(Some(twice))).await),
            Refusal::DecisionRequired(..)
        ));
        let mut outsider = testkit::pto_decision();
        outsider.members.push(Regisseur {
            partner: "jbra".into(),
            staff_id: "x".into(),
        });
        assert!(matches!(
            refused(update(&app, &mut sec(), &v.id, include(Some(outsider))).await),
            Refusal::DecisionMembers(_)
        ));
        assert_eq!(
            read(
                &app,
                &mut testkit::call(&app, Kind::CaseRead, "oov", "sec.1", &["secretaris"]),
                &v.id
            )
            .await
            .unwrap()
            .status,
            CaseStatus::Duiding,
            "nothing changed"
        );
        update(
            &app,
            &mut sec(),
            &v.id,
            include(Some(testkit::pto_decision())),
        )
        .await
        .unwrap();
        let last = testkit::entries(&app).await.pop().unwrap();
        let d = last.case_change.unwrap().decision.unwrap();
        assert_eq!(
            (d.body.as_str(), d.reference.as_str(), d.members.len()),
            ("pto-r", "PTO-2026-11-08/2", 4)
        );
    }

    /// Issue 31, the 2019 process: the Regieoverleg adopts a plan, and decides afbouw or
    /// afsluiting (also straight from the uitvoering), only after the ITAT-R's review, which
    /// the change carries and the log records with the decision.
    #[tokio::test]
    async fn a_plan_is_adopted_and_a_case_closed_only_after_the_itat_rs_review() {
        let (app, _) = testkit::app().await;
        let v = testkit::included(&app, "999993331").await;
        let to = |status: CaseStatus, review: Option<DecisionIn>| CasePatch {
            status: Some(status),
            decision: Some(testkit::ro_decision()),
            review,
            ..CasePatch::default()
        };
        let sec = || testkit::call(&app, Kind::CaseChange, "oov", "sec.1", &["secretaris"]);
        update(
            &app,
            &mut sec(),
            &v.id,
            CasePatch {
                status: Some(CaseStatus::Plan),
                ..CasePatch::default()
            },
        )
        .await
        .unwrap();
        assert!(matches!(
            update(&app, &mut sec(), &v.id, to(CaseStatus::Uitvoering, None)).await,
            Err(Refusal::ReviewRequired(b, 3, 3)) if b == "ITAT-R"
        ));
        let mut short = testkit::itat_review();
        short.members.truncate(2);
        assert!(matches!(
            update(
                &app,
                &mut sec(),
                &v.id,
                to(CaseStatus::Uitvoering, Some(short))
            )
            .await,
            Err(Refusal::ReviewRequired(..))
        ));
        update(
            &app,
            &mut sec(),
            &v.id,
            to(CaseStatus::Uitvoering, Some(testkit::itat_review())),
        )
        .await
        .unwrap();
        let change = testkit::entries(&app)
            .await
            .pop()
            .unwrap()
            .case_change
            .unwrap();
        let (d, r) = (change.decision.unwrap(), change.review.unwrap());
        assert_eq!(
            (d.body.as_str(), r.body.as_str()),
            ("regieoverleg", "itat-r")
        );
        assert_eq!(r.reference, "ITAT-2026-11-05/3");
        // A direct afsluitvoorstel: from the uitvoering to afgesloten, reviewed first.
        assert!(matches!(
            update(&app, &mut sec(), &v.id, to(CaseStatus::Afgesloten, None)).await,
            Err(Refusal::ReviewRequired(..))
        ));
        let closed = update(
            &app,
            &mut sec(),
            &v.id,
            to(CaseStatus::Afgesloten, Some(testkit::itat_review())),
        )
        .await
        .unwrap();
        assert_eq!(closed.status, CaseStatus::Afgesloten);
        // And nothing the covenant's table does not have: back from afgesloten.
        assert!(matches!(
            update(
                &app,
                &mut sec(),
                &v.id,
                to(CaseStatus::Uitvoering, Some(testkit::itat_review()))
            )
            .await,
            Err(Refusal::TransitionNotAllowed(..))
        ));
    }

    /// Issue 41, finding 8: a new signal about a person with an open case made a second case
    /// that shared the first's subject reference, and with it the first's deposits. Now a person
    /// has one open case at a time, and every case a reference of its own.
    #[tokio::test]
    async fn one_open_case_per_person_and_a_later_case_never_opens_an_earlier_ones_deposits() {
        let (app, _) = testkit::app().await;
        let first = testkit::register(&app, "999993331").await;
        let new = || NewCase {
            subject: SubjectIn {
                bsn: "999993331".into(),
            },
            signal_date: None,
            risk_group: None,
            ideology: None,
        };
        let mut vp = testkit::call(&app, Kind::CaseChange, "politie", "vp.2", &["voorportaal"]);
        assert_eq!(
            create(&app, &mut vp, new()).await.unwrap_err(),
            Refusal::CaseOpen(Some(first.id.clone())),
            "the voorportaal is pointed to the open case"
        );
        let mut map = testkit::call(&app, Kind::CaseChange, "oov", "map.1", &["melder-intake"]);
        assert_eq!(
            create(&app, &mut map, new()).await.unwrap_err(),
            Refusal::CaseOpen(None),
            "the MAP, which reads no cases, is told only that there is one"
        );
        let mut close = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        update(
            &app,
            &mut close,
            &first.id,
            CasePatch {
                status: Some(CaseStatus::NietOpgenomen),
                ..CasePatch::default()
            },
        )
        .await
        .unwrap();
        let mut vp = testkit::call(&app, Kind::CaseChange, "politie", "vp.2", &["voorportaal"]);
        let second = create(&app, &mut vp, new()).await.unwrap();
        assert_ne!(second.subject_ref, first.subject_ref);
        // The store refuses a second open case too, under the log head's lock (two signals at once).
        let mut vp = testkit::call(&app, Kind::CaseChange, "politie", "vp.3", &["voorportaal"]);
        assert!(create(&app, &mut vp, new()).await.is_err());
    }

    /// Issue 41: a regisseur of another partner with no role in a case could move it (PATCH
    /// 200, and the whole case in the answer), and a refused change named the case's status.
    /// Now the case does not exist for it, on every route, exactly as an unknown id.
    #[tokio::test]
    async fn without_a_role_in_the_case_a_change_meets_a_case_that_does_not_exist() {
        let (app, _) = testkit::app().await;
        let v = testkit::included(&app, "999993331").await;
        for (id, to) in [
            (v.id.as_str(), CaseStatus::Plan),
            (v.id.as_str(), CaseStatus::Afgesloten),
            ("case-that-does-not-exist", CaseStatus::Plan),
        ] {
            let mut om = testkit::call(&app, Kind::CaseChange, "om", "reg.om", &["regisseur"]);
            let r = update(
                &app,
                &mut om,
                id,
                CasePatch {
                    status: Some(to),
                    ..CasePatch::default()
                },
            )
            .await;
            assert_eq!(r.unwrap_err(), Refusal::CaseNotFound, "{id} {to}");
            assert!(om.committed.is_none());
        }
        let mut own = testkit::call(&app, Kind::CaseRead, "rn", "reg.1", &["regisseur"]);
        assert_eq!(
            read(&app, &mut own, &v.id).await.unwrap().status,
            CaseStatus::Opgenomen,
            "unchanged"
        );
    }

    /// Seed 004: the Regieoverleg appoints the regisseur, the regisseur chooses the UVO, nobody
    /// grants itself a relation (the hole a voorportaal member found on 2026-12-05).
    #[tokio::test]
    async fn appointments_are_made_by_their_decision_makers_only() {
        let (app, _) = testkit::app().await;
        let mut c = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        let v = create(&app, &mut c, new_case("999993331")).await.unwrap();
        let change = |partner: &str, staff: &str, role: &str, patch: CasePatch| {
            let mut u = testkit::call(&app, Kind::CaseChange, partner, staff, &[role]);
            let id = v.id.clone();
            let app = app.clone();
            async move { update(&app, &mut u, &id, patch).await }
        };
        let regisseur = |partner: &str, staff: &str| CasePatch {
            regisseur: Some(Regisseur {
                partner: partner.into(),
                staff_id: staff.into(),
            }),
            ..CasePatch::default()
        };
        let uvo = || CasePatch {
            uvo_partners: Some(vec!["politie".into(), "wpi".into()]),
            ..CasePatch::default()
        };
        // In `melding` nobody appoints yet.
        assert_eq!(
            change("om", "ro.1", "regieoverleg-lid", regisseur("rn", "reg.1"))
                .await
                .unwrap_err(),
            Refusal::AppointmentStatus("regisseur", "melding".into())
        );
        change(
            "politie",
            "vp.1",
            "voorportaal",
            CasePatch {
                status: Some(CaseStatus::Duiding),
                ..CasePatch::default()
            },
        )
        .await
        .unwrap();
        // The voorportaal may change the case's fields, but appoints nobody, itself least.
        assert!(matches!(
            change(
                "politie",
                "vp.1",
                "voorportaal",
                regisseur("politie", "vp.1")
            )
            .await,
            Err(Refusal::AppointmentForbidden("regisseur", _))
        ));
        // A Regieoverleg member may appoint, but not itself.
        assert_eq!(
            change(
                "politie",
                "ro.2",
                "regieoverleg-lid",
                regisseur("politie", "ro.2")
            )
            .await
            .unwrap_err(),
            Refusal::SelfAppointment
        );
        // The secretaris includes and appoints; the UVO is not the secretaris's to compose.
        let mut include = regisseur("rn", "reg.1");
        include.status = Some(CaseStatus::Opgenomen);
        include.decision = Some(testkit::pto_decision());
        include.check_override = Some("test: the appointment is what is tested".into());
        change("oov", "sec.1", "secretaris", include).await.unwrap();
        assert!(matches!(
            change("oov", "sec.1", "secretaris", uvo()).await,
            Err(Refusal::AppointmentForbidden("uvo_partners", _))
        ));
        // Another case's regisseur chooses nobody's UVO here; this case's own regisseur does.
        assert!(matches!(
            change("rn", "reg.2", "regisseur", uvo()).await,
            Err(Refusal::CaseNotFound | Refusal::AppointmentForbidden(..))
        ));
        let done = change("rn", "reg.1", "regisseur", uvo()).await.unwrap();
        assert_eq!(done.uvo_partners, vec!["politie", "wpi"]);
        // The regisseur cannot reappoint itself or another regisseur.
        assert!(matches!(
            change("rn", "reg.1", "regisseur", regisseur("rn", "reg.3")).await,
            Err(Refusal::AppointmentForbidden("regisseur", _))
        ));
        let last = testkit::entries(&app).await.pop().unwrap();
        let changed = last.case_change.as_ref().unwrap();
        assert_eq!(changed.fields, vec!["uvo_partners"]);
        assert_eq!(last.role.as_deref(), Some("regisseur"));
    }
}
