//! The case register: `POST /v1/cases`, `GET /v1/cases/{id}`, `PATCH /v1/cases/{id}`.
//! Purpose binding reads it; who may create, read and change it, and who may make which status
//! change, comes from the covenant. The BSN is stored only as a keyed pseudonym and sealed with
//! age; no response ever contains it.

use crate::auth::Requester;
use crate::lifecycle::ActivePolicy;
use crate::problem::ApiError;
use crate::server::{AppState, Authenticated, StrictJson};
use crate::store::{CaseEventRow, CaseRow, Store};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use policy::domain::{Ideology, parse_date};
use policy::{Bsn, BsnError, CaseStatus, RoleRef};
use serde::{Deserialize, Serialize};

/// Routes of the case register.
pub fn routes<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/v1/cases", post(create::<S>))
        .route("/v1/cases/{id}", get(read::<S>).patch(update::<S>))
}

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
}

/// A regisseur: partner and staff id.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Regisseur {
    /// Partner id.
    pub partner: String,
    /// Staff id at that partner.
    pub staff_id: String,
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
}

/// Risk group and ideology: only for roles the covenant lets read them, and each only where no
/// prohibition of the covenant bars its category from the requester's partner.
#[derive(Debug, Serialize)]
pub struct Classification {
    /// Risk group 1–5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_group: Option<Option<i64>>,
    /// Ideology.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ideology: Option<Option<String>>,
}

/// What of the classification a requester may see: (risk group, ideology); `None`: nothing.
fn classification_for(c: &policy::Covenant, req: &Requester) -> Option<(bool, bool)> {
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
    pub action: String,
    /// Which fields changed.
    pub fields: Vec<String>,
    /// New status, if it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A case as the API shows it. Never the BSN.
#[derive(Debug, Serialize)]
pub struct CaseView {
    /// Case id.
    pub id: String,
    /// Subject reference shared with partners.
    pub subject_ref: String,
    /// Status.
    pub status: String,
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
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn acting(req: &Requester, allowed: impl Fn(RoleRef) -> bool) -> Option<RoleRef> {
    req.roles.iter().copied().find(|r| allowed(*r))
}

/// Whether the requester is the case's regisseur or its partner is on the case's UVO.
fn related(req: &Requester, case: &CaseRow) -> bool {
    let is_regisseur = case.regisseur_partner.as_deref() == Some(&req.partner_id)
        && case.regisseur_staff.as_deref() == Some(&req.staff_id);
    let uvo: Vec<String> = serde_json::from_str(&case.uvo_partners).unwrap_or_default();
    is_regisseur || uvo.contains(&req.partner_id)
}

fn role_name(active: &ActivePolicy, role: RoleRef) -> String {
    active
        .covenant
        .covenant()
        .roles
        .get(role.index())
        .map(|r| r.id.clone())
        .unwrap_or_default()
}

fn check_date(field: &str, v: &Option<String>) -> Result<(), ApiError> {
    match v {
        Some(d) if parse_date(d).is_none() => Err(ApiError::InvalidBody(format!(
            "`{field}` must be a date as YYYY-MM-DD"
        ))),
        _ => Ok(()),
    }
}

fn check_risk_group(v: Option<u8>) -> Result<(), ApiError> {
    match v {
        Some(g) if !(1..=5).contains(&g) => {
            Err(ApiError::InvalidBody("`risk_group` must be 1 to 5".into()))
        }
        _ => Ok(()),
    }
}

fn view<S>(
    state: &AppState<S>,
    c: CaseRow,
    events: Vec<CaseEventRow>,
    classified: Option<(bool, bool)>,
) -> CaseView {
    let _ = state;
    CaseView {
        id: c.id,
        subject_ref: c.subject_ref,
        status: c.status,
        regisseur: match (c.regisseur_partner, c.regisseur_staff) {
            (Some(partner), Some(staff_id)) => Some(Regisseur { partner, staff_id }),
            _ => None,
        },
        uvo_partners: serde_json::from_str(&c.uvo_partners).unwrap_or_default(),
        dates: Dates {
            signal: c.signal_date,
            decision: c.decision_date,
            notification_letter: c.notification_date,
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
                fields: serde_json::from_str(&e.fields).unwrap_or_default(),
                status: e.status,
            })
            .collect(),
    }
}

async fn create<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(req, active): Authenticated,
    StrictJson(body): StrictJson<NewCase>,
) -> Result<Response, ApiError> {
    let reg = &active.covenant.covenant().case_register;
    let role =
        acting(&req, |r| reg.may_create(r)).ok_or(ApiError::CasePermission("register cases"))?;
    let bsn = Bsn::parse(body.subject.bsn.trim()).map_err(|e| {
        ApiError::InvalidBsn(match e {
            BsnError::Format => "A BSN has exactly nine digits; check the number",
            BsnError::Checksum => "The BSN fails the 11-proef; check for a typing error",
        })
    })?;
    check_date("signal_date", &body.signal_date)?;
    check_risk_group(body.risk_group)?;
    let secrets = &state.shared.secrets;
    let pseudonym = secrets.subject_pseudonym(&bsn);
    let sealed = secrets
        .seal(bsn.expose().as_bytes())
        .map_err(|_| ApiError::Internal)?;
    let subject_ref = match state
        .store
        .subject_ref(&pseudonym)
        .await
        .map_err(ApiError::from)?
    {
        Some(r) => r,
        None => format!("subj-{}", uuid::Uuid::new_v4().simple()),
    };
    let now = state.shared.clock.now();
    let row = CaseRow {
        id: format!("case-{}", uuid::Uuid::new_v4().simple()),
        subject_ref,
        subject_pseudonym: pseudonym,
        subject_sealed: sealed,
        status: CaseStatus::INITIAL.to_string(),
        risk_group: body.risk_group.map(i64::from),
        ideology: body.ideology.map(|i| i.to_string()),
        regisseur_partner: None,
        regisseur_staff: None,
        uvo_partners: "[]".into(),
        signal_date: body.signal_date,
        decision_date: None,
        notification_date: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let mut fields = vec!["subject", "status"];
    for (name, present) in [
        ("signal_date", row.signal_date.is_some()),
        ("risk_group", row.risk_group.is_some()),
        ("ideology", row.ideology.is_some()),
    ] {
        if present {
            fields.push(name);
        }
    }
    let event = CaseEventRow {
        case_id: row.id.clone(),
        version: 1,
        at: now,
        partner: req.partner_id.clone(),
        staff_id: req.staff_id.clone(),
        role: role_name(&active, role),
        action: "created".into(),
        fields: serde_json::to_string(&fields).unwrap_or_default(),
        status: Some(row.status.clone()),
    };
    state
        .store
        .create_case(&row, &event)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(case = %row.id, "case registered");
    let classified = classification_for(active.covenant.covenant(), &req);
    let location = format!("/v1/cases/{}", row.id);
    let mut resp = (
        StatusCode::CREATED,
        Json(view(&state, row, vec![event], classified)),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn read<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(req, active): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<CaseView>, ApiError> {
    let reg = &active.covenant.covenant().case_register;
    // Permission before lookup: a role that may not read learns nothing, not even existence.
    acting(&req, |r| reg.may_read(r)).ok_or(ApiError::CasePermission("read cases"))?;
    let case = state
        .store
        .get_case(&id)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::CaseNotFound)?;
    // Roles that read the register as such (voorportaal, secretaris, the overleggen) read every
    // case; the others only cases they have a role in: to them any other case does not exist.
    let reads_all = req.roles.iter().any(|r| reg.may_read_classification(*r));
    if !reads_all && !related(&req, &case) {
        return Err(ApiError::CaseNotFound);
    }
    let events = state.store.case_events(&id).await.map_err(ApiError::from)?;
    let classified = classification_for(active.covenant.covenant(), &req);
    Ok(Json(view(&state, case, events, classified)))
}

async fn update<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(req, active): Authenticated,
    Path(id): Path<String>,
    StrictJson(patch): StrictJson<CasePatch>,
) -> Result<Json<CaseView>, ApiError> {
    let c = active.covenant.covenant();
    let reg = &c.case_register;
    let may_change_something = req.roles.iter().any(|r| {
        reg.may_update(*r)
            || reg
                .transitions
                .iter()
                .any(|(_, _, roles)| roles.get(r.index()).copied().unwrap_or(false))
    });
    if !may_change_something {
        return Err(ApiError::CasePermission("change cases"));
    }
    let fields_changed: Vec<&str> = [
        ("risk_group", patch.risk_group.is_some()),
        ("ideology", patch.ideology.is_some()),
        ("regisseur", patch.regisseur.is_some()),
        ("uvo_partners", patch.uvo_partners.is_some()),
        ("signal_date", patch.signal_date.is_some()),
        ("decision_date", patch.decision_date.is_some()),
        ("notification_date", patch.notification_date.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, p)| p.then_some(n))
    .collect();
    if patch.status.is_none() && fields_changed.is_empty() {
        return Err(ApiError::EmptyPatch);
    }
    check_risk_group(patch.risk_group)?;
    check_date("signal_date", &patch.signal_date)?;
    check_date("decision_date", &patch.decision_date)?;
    check_date("notification_date", &patch.notification_date)?;

    let old = state
        .store
        .get_case(&id)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::CaseNotFound)?;
    let current: CaseStatus = old.status.parse().map_err(|()| ApiError::Internal)?;
    let mut acting_role = None;
    let new_status = match patch.status {
        Some(to) if to != current => {
            if !current.may_become(to) {
                return Err(ApiError::TransitionNotAllowed(
                    current.to_string(),
                    to.to_string(),
                ));
            }
            if to == CaseStatus::Statisch
                && !req
                    .roles
                    .iter()
                    .any(|r| c.roles.get(r.index()).is_some_and(|r| r.id == "pto-lid"))
            {
                return Err(ApiError::StatischRequiresPto);
            }
            let role = acting(&req, |r| reg.may_transition(current, to, r)).ok_or_else(|| {
                ApiError::TransitionForbidden(current.to_string(), to.to_string())
            })?;
            acting_role = Some(role);
            Some(to)
        }
        _ => None,
    };
    if !fields_changed.is_empty() {
        let role = acting(&req, |r| reg.may_update(r))
            .ok_or(ApiError::CasePermission("change case fields"))?;
        acting_role.get_or_insert(role);
    }
    if let Some(r) = &patch.regisseur {
        let partner = c
            .partner(&r.partner)
            .ok_or_else(|| ApiError::UnknownPartner(r.partner.chars().take(64).collect()))?;
        let may = c
            .role("regisseur")
            .and_then(|role| c.roles.get(role.index()))
            .and_then(|role| role.held_by.get(partner.index()))
            .copied()
            .unwrap_or(false);
        if !may {
            return Err(ApiError::InvalidRegisseur(r.partner.clone()));
        }
        if r.staff_id.trim().is_empty() || r.staff_id.len() > 128 {
            return Err(ApiError::InvalidBody(
                "`regisseur.staff_id` must be 1 to 128 characters".into(),
            ));
        }
    }
    if let Some(unknown) = patch
        .uvo_partners
        .iter()
        .flatten()
        .find(|p| c.partner(p).is_none())
    {
        return Err(ApiError::UnknownPartner(unknown.chars().take(64).collect()));
    }
    if new_status == Some(CaseStatus::Opgenomen)
        && patch.regisseur.is_none()
        && old.regisseur_partner.is_none()
    {
        return Err(ApiError::RegisseurRequired);
    }

    let now = state.shared.clock.now();
    let mut new = old.clone();
    if let Some(s) = new_status {
        new.status = s.to_string();
    }
    if let Some(g) = patch.risk_group {
        new.risk_group = Some(i64::from(g));
    }
    if let Some(i) = patch.ideology {
        new.ideology = Some(i.to_string());
    }
    if let Some(r) = patch.regisseur {
        new.regisseur_partner = Some(r.partner);
        new.regisseur_staff = Some(r.staff_id);
    }
    if let Some(list) = patch.uvo_partners {
        let mut list = list;
        list.sort();
        list.dedup();
        new.uvo_partners = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
    }
    new.signal_date = patch.signal_date.or(new.signal_date);
    new.decision_date = patch.decision_date.or(new.decision_date);
    new.notification_date = patch.notification_date.or(new.notification_date);
    new.updated_at = now;
    new.version = old.version + 1;
    let mut fields: Vec<&str> = fields_changed;
    if new_status.is_some() {
        fields.insert(0, "status");
    }
    let event = CaseEventRow {
        case_id: new.id.clone(),
        version: new.version,
        at: now,
        partner: req.partner_id.clone(),
        staff_id: req.staff_id.clone(),
        role: acting_role
            .map(|r| role_name(&active, r))
            .unwrap_or_default(),
        action: "updated".into(),
        fields: serde_json::to_string(&fields).unwrap_or_default(),
        status: new_status.map(|s| s.to_string()),
    };
    if !state
        .store
        .update_case(&new, old.version, &event)
        .await
        .map_err(ApiError::from)?
    {
        return Err(ApiError::CaseConflict);
    }
    let events = state.store.case_events(&id).await.map_err(ApiError::from)?;
    let classified = classification_for(active.covenant.covenant(), &req);
    Ok(Json(view(&state, new, events, classified)))
}
