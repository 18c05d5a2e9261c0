//! The administrators' API: drafts, simulation on the logged history, four-eyes approval,
//! activation, rollback. Every step (and every refusal of one) is an entry in the disclosure
//! log, written before the step takes effect.

use super::{ActivePolicy, PolicyBuilder};
use crate::auth::Requester;
use crate::disclose::{Draft, refuse};
use crate::problem::ApiError;
use crate::registry::ClientIdentity;
use crate::server::{Active, AppState, Authenticated, Shared, TransactionId};
use crate::store::{LogFilter, PolicyDraftRow, Store};
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use policy::replay::{PastRequest, SimulationReport};
use policy::{CompiledCovenant, OutcomeClass};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The role an administrator's token must carry.
pub const ADMIN_ROLE: &str = "beheerder";
/// The role of privacy officers, who may read drafts too.
const OFFICER_ROLE: &str = "privacy-officer";
/// Largest covenant draft accepted.
pub const MAX_DRAFT_BYTES: usize = 1 << 20;
/// Simulation window when none is asked, and the longest one.
const DEFAULT_DAYS: i64 = 30;
const MAX_DAYS: i64 = 366;
/// At most this many log entries are read in one simulation (the report says when it stopped).
const MAX_REPLAYED: usize = 2_000_000;

/// Routes under `/v1/policy`.
pub fn routes<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/v1/policy", get(status::<S>))
        .route("/v1/policy/versions", get(versions::<S>))
        .route("/v1/policy/versions/{id}/rollback", post(rollback::<S>))
        .route(
            "/v1/policy/drafts",
            post(create_draft::<S>).get(list_drafts::<S>),
        )
        .route("/v1/policy/drafts/{id}", get(show_draft::<S>))
        .route("/v1/policy/drafts/{id}/simulate", post(simulate::<S>))
        .route("/v1/policy/drafts/{id}/approve", post(approve::<S>))
        .route("/v1/policy/drafts/{id}/activate", post(activate::<S>))
}

/// A new draft id.
pub fn new_draft_id() -> String {
    format!("draft-{}", uuid::Uuid::new_v4().simple())
}

fn has_role(active: &ActivePolicy, req: &Requester, role: &str) -> bool {
    let c = active.covenant.covenant();
    req.roles
        .iter()
        .any(|r| c.roles.get(r.index()).is_some_and(|x| x.id == role))
}

/// Administrators: the `beheerder` role in the token and listed in the configuration.
fn administrator(shared: &Shared, active: &ActivePolicy, req: &Requester) -> Result<(), ApiError> {
    if has_role(active, req, ADMIN_ROLE)
        && shared
            .administration
            .is_administrator(&req.partner_id, &req.staff_id)
    {
        Ok(())
    } else {
        Err(ApiError::NotAdministrator)
    }
}

fn person(partner: &Option<String>, staff: &Option<String>) -> Value {
    match (partner, staff) {
        (Some(p), Some(s)) => json!({"partner": p, "staff_id": s}),
        _ => Value::Null,
    }
}

fn rfc3339(t: Option<i64>) -> Value {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}

/// A draft as the API shows it (without its text unless asked).
fn draft_json(d: &PolicyDraftRow, with_source: bool) -> Value {
    let mut v = json!({
        "id": d.id,
        "version": d.version,
        "kind": d.kind,
        "status": d.status,
        "base_version": d.base_version,
        "author": {"partner": d.author_partner, "staff_id": d.author_staff},
        "created_at": rfc3339(Some(d.created_at)),
        "approver": person(&d.approved_partner, &d.approved_staff),
        "approved_at": rfc3339(d.approved_at),
        "activated_by": person(&d.activated_partner, &d.activated_staff),
        "activated_at": rfc3339(d.activated_at),
    });
    if with_source && let Some(o) = v.as_object_mut() {
        o.insert("source".into(), Value::String(d.source.clone()));
    }
    v
}

/// The static comparison of two versions: decisions and registry.
fn static_diff(old: &CompiledCovenant, new: &CompiledCovenant) -> Value {
    let changes = policy::report::diff(old, new);
    json!({
        "from_version": old.version().as_str(),
        "to_version": new.version().as_str(),
        "decision_changes": changes.len(),
        "changes": changes,
        "registry_changes": policy::report::registry_diff(old, new),
    })
}

/// Builds the log record of a policy step.
fn policy_draft_record<S>(
    state: &AppState<S>,
    active: &ActivePolicy,
    client: &ClientIdentity,
    txn: &TransactionId,
    action: &str,
) -> Draft {
    let mut d = Draft::new(state, active, "policy", client, txn);
    d.policy_change = Some(json!({"action": action}));
    d
}

fn note(draft: &mut Draft, key: &str, value: Value) {
    if let Some(Value::Object(o)) = draft.policy_change.as_mut() {
        o.insert(key.into(), value);
    }
}

/// Writes the record of a step that succeeds; nothing takes effect unless this succeeds.
async fn commit_record<S: Store>(state: &AppState<S>, draft: &mut Draft) -> Result<i64, ApiError> {
    draft.row.outcome = "answered".into();
    let row = draft.record();
    state
        .shared
        .log
        .append(row)
        .await
        .map(|a| a.seq)
        .map_err(|e| {
            tracing::error!(error = %e, "policy step could not be recorded; not done");
            ApiError::DisclosureLogUnavailable
        })
}

/// One administrator's step: the log record, authentication, the administrator check, the step
/// itself, and its answer or its recorded refusal.
#[allow(clippy::too_many_arguments)]
async fn step<S: Store>(
    state: &AppState<S>,
    active: &ActivePolicy,
    client: &ClientIdentity,
    txn: &TransactionId,
    action: &str,
    target: Option<&str>,
    auth: Result<Authenticated, ApiError>,
    status: StatusCode,
    run: impl AsyncFnOnce(Requester, &mut Draft) -> Result<Value, ApiError>,
) -> Response {
    let mut draft = policy_draft_record(state, active, client, txn, action);
    if let Some(t) = target {
        note(
            &mut draft,
            "draft",
            json!(t.chars().take(80).collect::<String>()),
        );
    }
    let result = async {
        let Authenticated(req, _) = auth?;
        draft.row.staff_id = Some(req.staff_id.clone());
        if has_role(active, &req, ADMIN_ROLE) {
            draft.row.role = Some(ADMIN_ROLE.into());
        }
        administrator(&state.shared, active, &req)?;
        run(req, &mut draft).await
    }
    .await;
    match result {
        Ok(v) => (status, Json(v)).into_response(),
        Err(e) => refuse(state, draft, e).await,
    }
}

async fn load_draft<S: Store>(state: &AppState<S>, id: &str) -> Result<PolicyDraftRow, ApiError> {
    state
        .store
        .policy_draft(id)
        .await?
        .ok_or(ApiError::DraftNotFound)
}

/// Compiles a stored draft as it was recorded.
fn compile_draft(d: &PolicyDraftRow) -> Result<CompiledCovenant, ApiError> {
    PolicyBuilder::compile_stored(d).map_err(|e| match e {
        super::StoredVersionError::KeyMaterial => ApiError::Internal,
        e => ApiError::ActivationFailed(format!("the stored draft: {e}")),
    })
}

// ----- Reading --------------------------------------------------------------------------------

async fn status<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(_, active): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let row = state.store.policy_draft(&active.draft).await?;
    let c = active.covenant.covenant();
    let mut v = json!({
        "version": active.version(),
        "covenant": {"id": c.id, "title": c.title, "version_label": c.version_label},
        "draft": active.draft,
        "revoked_certificates": active.revoked.len(),
    });
    if let (Some(row), Some(o)) = (row, v.as_object_mut()) {
        for k in [
            "kind",
            "author",
            "approver",
            "approved_at",
            "activated_by",
            "activated_at",
        ] {
            if let Some(x) = draft_json(&row, false).get(k) {
                o.insert(k.into(), x.clone());
            }
        }
    }
    Ok(Json(v))
}

async fn versions<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(_, active): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let rows = state.store.policy_drafts(true, 200).await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|d| {
            let mut v = draft_json(d, false);
            if let Some(o) = v.as_object_mut() {
                o.insert("active".into(), Value::Bool(d.id == active.draft));
            }
            v
        })
        .collect();
    Ok(Json(json!({"active": active.version(), "versions": list})))
}

fn reader(shared: &Shared, active: &ActivePolicy, req: &Requester) -> Result<(), ApiError> {
    if has_role(active, req, OFFICER_ROLE) {
        return Ok(());
    }
    administrator(shared, active, req)
}

async fn list_drafts<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(req, active): Authenticated,
) -> Result<Json<Value>, ApiError> {
    reader(&state.shared, &active, &req)?;
    let rows = state.store.policy_drafts(false, 200).await?;
    Ok(Json(json!({
        "drafts": rows.iter().map(|d| draft_json(d, false)).collect::<Vec<_>>()
    })))
}

async fn show_draft<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(req, active): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    reader(&state.shared, &active, &req)?;
    Ok(Json(draft_json(&load_draft(&state, &id).await?, true)))
}

// ----- Drafting -------------------------------------------------------------------------------

fn covenant_text(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/toml") || m.eq_ignore_ascii_case("text/plain")
        });
    if !ok {
        return Err(ApiError::NotToml);
    }
    if body.len() > MAX_DRAFT_BYTES {
        return Err(ApiError::BodyTooLarge(MAX_DRAFT_BYTES));
    }
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::NotToml)
}

fn invalid(d: &policy::Diagnostics, source: &str) -> ApiError {
    let lines: Vec<String> =
        d.0.iter()
            .map(|x| {
                let at = x.span.as_ref().map_or_else(String::new, |s| {
                    let (l, c) = policy::diag::line_col(source, s.start);
                    format!("{l}:{c}: ")
                });
                match &x.help {
                    Some(h) => format!("{at}{} (help: {h})", x.message),
                    None => format!("{at}{}", x.message),
                }
            })
            .collect();
    ApiError::CovenantInvalid(
        format!(
            "The draft has {} problem{}",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" }
        ),
        lines,
    )
}

#[allow(clippy::too_many_arguments)]
async fn create_draft<S: Store>(
    State(state): State<AppState<S>>,
    Extension(client): Extension<ClientIdentity>,
    Extension(Active(active)): Extension<Active>,
    Extension(txn): Extension<TransactionId>,
    auth: Result<Authenticated, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    step(
        &state,
        &active,
        &client,
        &txn,
        "draft",
        None,
        auth,
        StatusCode::CREATED,
        async |req, draft| run_create(&state, &active, req, &headers, &body, draft).await,
    )
    .await
}

async fn run_create<S: Store>(
    state: &AppState<S>,
    active: &ActivePolicy,
    req: Requester,
    headers: &HeaderMap,
    body: &Bytes,
    draft: &mut Draft,
) -> Result<Value, ApiError> {
    let source = covenant_text(headers, body)?;
    let (cc, keys) = state
        .shared
        .builder
        .compile_from_key_dir(&source)
        .map_err(|d| invalid(&d, &source))?;
    if cc.version() == active.covenant.version() {
        return Err(ApiError::DraftUnchanged);
    }
    let row = PolicyDraftRow {
        id: new_draft_id(),
        version: cc.version().as_str().to_owned(),
        source,
        key_material: serde_json::to_string(&keys).map_err(|_| ApiError::Internal)?,
        kind: "change".into(),
        base_version: Some(active.version().to_owned()),
        author_partner: req.partner_id.clone(),
        author_staff: req.staff_id.clone(),
        created_at: state.shared.clock.now(),
        approved_partner: None,
        approved_staff: None,
        approved_at: None,
        activated_partner: None,
        activated_staff: None,
        activated_at: None,
        status: "draft".into(),
    };
    save_draft(state, active, &cc, row, draft).await
}

/// Records and stores a new draft (a change or a rollback); answers it with its static diff.
async fn save_draft<S: Store>(
    state: &AppState<S>,
    active: &ActivePolicy,
    cc: &CompiledCovenant,
    row: PolicyDraftRow,
    draft: &mut Draft,
) -> Result<Value, ApiError> {
    let diff = static_diff(&active.covenant, cc);
    note(draft, "draft", json!(row.id));
    note(draft, "version", json!(row.version));
    note(draft, "base_version", json!(row.base_version));
    note(draft, "decision_changes", diff["decision_changes"].clone());
    note(draft, "registry_changes", diff["registry_changes"].clone());
    let seq = commit_record(state, draft).await?;
    state.store.insert_policy_draft(&row).await?;
    tracing::info!(draft = %row.id, version = %row.version, kind = %row.kind, "policy draft stored");
    let mut v = draft_json(&row, false);
    if let Some(o) = v.as_object_mut() {
        o.insert("audit_seq".into(), json!(seq));
        o.insert("diff".into(), diff);
    }
    Ok(v)
}

async fn rollback<S: Store>(
    State(state): State<AppState<S>>,
    Extension(client): Extension<ClientIdentity>,
    Extension(Active(active)): Extension<Active>,
    Extension(txn): Extension<TransactionId>,
    auth: Result<Authenticated, ApiError>,
    Path(id): Path<String>,
) -> Response {
    step(
        &state,
        &active,
        &client,
        &txn,
        "rollback-draft",
        None,
        auth,
        StatusCode::CREATED,
        async |req, draft| {
            note(
                draft,
                "restores",
                json!(id.chars().take(80).collect::<String>()),
            );
            run_rollback(&state, &active, req, &id, draft).await
        },
    )
    .await
}

async fn run_rollback<S: Store>(
    state: &AppState<S>,
    active: &ActivePolicy,
    req: Requester,
    id: &str,
    draft: &mut Draft,
) -> Result<Value, ApiError> {
    // An earlier activated version: by the draft it was activated from, or by its hash among
    // the recent activations (the most recent one with that hash).
    let target = match state.store.policy_draft(id).await? {
        Some(d) if d.activated_at.is_some() => d,
        _ => state
            .store
            .policy_drafts(true, 500)
            .await?
            .into_iter()
            .find(|d| d.version == id)
            .ok_or(ApiError::VersionNotFound)?,
    };
    if target.version == active.version() {
        return Err(ApiError::DraftUnchanged);
    }
    let cc = compile_draft(&target)?;
    let row = PolicyDraftRow {
        id: new_draft_id(),
        version: target.version.clone(),
        source: target.source.clone(),
        key_material: target.key_material.clone(),
        kind: "rollback".into(),
        base_version: Some(active.version().to_owned()),
        author_partner: req.partner_id.clone(),
        author_staff: req.staff_id.clone(),
        created_at: state.shared.clock.now(),
        approved_partner: None,
        approved_staff: None,
        approved_at: None,
        activated_partner: None,
        activated_staff: None,
        activated_at: None,
        status: "draft".into(),
    };
    note(draft, "restores", json!(target.id));
    let mut v = save_draft(state, active, &cc, row, draft).await?;
    if let Some(o) = v.as_object_mut() {
        o.insert("restores".into(), json!(target.id));
    }
    Ok(v)
}

// ----- Simulation -----------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulateBody {
    #[serde(default)]
    days: Option<i64>,
}

async fn simulate<S: Store>(
    State(state): State<AppState<S>>,
    Extension(client): Extension<ClientIdentity>,
    Extension(Active(active)): Extension<Active>,
    Extension(txn): Extension<TransactionId>,
    auth: Result<Authenticated, ApiError>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    step(
        &state,
        &active,
        &client,
        &txn,
        "simulate",
        Some(&id),
        auth,
        StatusCode::OK,
        async |_, draft| run_simulate(&state, &active, &id, &body, draft).await,
    )
    .await
}

/// A logged disclosure as a request to replay.
fn past_request(seq: i64, row: &crate::store::DisclosureRow) -> Option<PastRequest> {
    let entry: Value = serde_json::from_str(&row.entry).ok()?;
    let mut fields: BTreeMap<String, BTreeMap<String, (OutcomeClass, String)>> = BTreeMap::new();
    if let Some(products) = entry.get("products").and_then(Value::as_object) {
        for (pid, summary) in products {
            let per = fields.entry(pid.clone()).or_default();
            for (key, class) in [
                ("disclosed", OutcomeClass::Disclosed),
                ("transformed", OutcomeClass::Transformed),
                ("withheld", OutcomeClass::Withheld),
                ("omitted", OutcomeClass::Omitted),
            ] {
                for item in summary
                    .get(key)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let (Some(name), Some(rule)) = (
                        item.get(0).and_then(Value::as_str),
                        item.get(1).and_then(Value::as_str),
                    ) {
                        per.insert(name.to_owned(), (class, rule.to_owned()));
                    }
                }
            }
        }
    }
    Some(PastRequest {
        seq,
        subject: row.subject_pseudonym.clone(),
        partner: row.partner.clone(),
        role: row.role.clone(),
        purpose: row.purpose.clone(),
        answered: row.outcome == "answered" || row.outcome == "partly-unavailable",
        problem: row.problem.clone(),
        fields,
    })
}

async fn run_simulate<S: Store>(
    state: &AppState<S>,
    active: &ActivePolicy,
    id: &str,
    body: &Bytes,
    draft: &mut Draft,
) -> Result<Value, ApiError> {
    let days = if body.iter().all(u8::is_ascii_whitespace) {
        DEFAULT_DAYS
    } else {
        serde_json::from_slice::<SimulateBody>(body)
            .map_err(|e| ApiError::InvalidBody(e.to_string()))?
            .days
            .unwrap_or(DEFAULT_DAYS)
    };
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::InvalidBody(format!(
            "`days` must be 1 to {MAX_DAYS}"
        )));
    }
    let d = load_draft(state, id).await?;
    let cc = compile_draft(&d)?;
    let now = state.shared.clock.now();
    let from = now - days * 86_400;
    // Page by page: months of log are replayed without holding them in memory.
    let mut sim = policy::replay::Simulation::new(&cc);
    let (mut after, mut read, mut truncated) = (0, 0usize, false);
    loop {
        let page = state
            .store
            .search(&LogFilter {
                from: Some(from),
                after_seq: after,
                limit: 2_000,
                ..Default::default()
            })
            .await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = *last;
        read += page.len();
        for (seq, row) in page.iter().filter(|(_, r)| r.kind == "disclosure") {
            if let Some(r) = past_request(*seq, row) {
                sim.add(&r);
            }
        }
        if read >= MAX_REPLAYED {
            truncated = true;
            break;
        }
    }
    let report: SimulationReport = sim.finish();
    note(draft, "version", json!(d.version));
    note(draft, "days", json!(days));
    note(draft, "replayed", json!(report.replayed));
    note(draft, "affected_requests", json!(report.affected_requests));
    note(draft, "affected_subjects", json!(report.affected_subjects));
    let seq = commit_record(state, draft).await?;
    tracing::info!(draft = %d.id, replayed = report.replayed, affected = report.affected_requests, "policy draft simulated");
    Ok(json!({
        "draft": d.id,
        "version": d.version,
        "against": active.version(),
        "days": days,
        "from": rfc3339(Some(from)),
        "truncated": truncated,
        "audit_seq": seq,
        "report": report,
        "static": static_diff(&active.covenant, &cc),
        "not_replayed": "case status and relation (they depend on the case as it was then); products a request did not receive",
    }))
}

// ----- Approval and activation ----------------------------------------------------------------

async fn approve<S: Store>(
    State(state): State<AppState<S>>,
    Extension(client): Extension<ClientIdentity>,
    Extension(Active(active)): Extension<Active>,
    Extension(txn): Extension<TransactionId>,
    auth: Result<Authenticated, ApiError>,
    Path(id): Path<String>,
) -> Response {
    step(
        &state,
        &active,
        &client,
        &txn,
        "approve",
        Some(&id),
        auth,
        StatusCode::OK,
        async |req, draft| run_approve(&state, req, &id, draft).await,
    )
    .await
}

async fn run_approve<S: Store>(
    state: &AppState<S>,
    req: Requester,
    id: &str,
    draft: &mut Draft,
) -> Result<Value, ApiError> {
    let d = load_draft(state, id).await?;
    note(draft, "version", json!(d.version));
    if d.status != "draft" {
        return Err(ApiError::DraftState(d.status, "draft"));
    }
    if d.author_partner == req.partner_id && d.author_staff == req.staff_id {
        return Err(ApiError::ApprovalByAuthor);
    }
    if state.shared.administration.approver_from_other_partner && d.author_partner == req.partner_id
    {
        return Err(ApiError::ApprovalSamePartner);
    }
    note(
        draft,
        "author",
        json!({"partner": d.author_partner, "staff_id": d.author_staff}),
    );
    let seq = commit_record(state, draft).await?;
    let now = state.shared.clock.now();
    if !state
        .store
        .approve_policy_draft(&d.id, &req.partner_id, &req.staff_id, now)
        .await?
    {
        return Err(ApiError::DraftState("no longer a draft".into(), "draft"));
    }
    tracing::info!(draft = %d.id, "policy draft approved");
    let d = load_draft(state, id).await?;
    let mut v = draft_json(&d, false);
    if let Some(o) = v.as_object_mut() {
        o.insert("audit_seq".into(), json!(seq));
    }
    Ok(v)
}

async fn activate<S: Store>(
    State(state): State<AppState<S>>,
    Extension(client): Extension<ClientIdentity>,
    Extension(Active(active)): Extension<Active>,
    Extension(txn): Extension<TransactionId>,
    auth: Result<Authenticated, ApiError>,
    Path(id): Path<String>,
) -> Response {
    step(
        &state,
        &active,
        &client,
        &txn,
        "activate",
        Some(&id),
        auth,
        StatusCode::OK,
        async |req, draft| run_activate(&state, req, &id, draft).await,
    )
    .await
}

async fn run_activate<S: Store>(
    state: &AppState<S>,
    req: Requester,
    id: &str,
    draft: &mut Draft,
) -> Result<Value, ApiError> {
    let shared = &state.shared;
    // One activation at a time on this instance; the database's compare-and-set covers others.
    let _one = shared.activation.lock().await;
    let d = load_draft(state, id).await?;
    note(draft, "version", json!(d.version));
    note(draft, "kind", json!(d.kind));
    if d.status != "approved" {
        return Err(ApiError::DraftState(d.status, "approved"));
    }
    let current = state
        .store
        .active_policy_draft()
        .await?
        .ok_or(ApiError::Internal)?;
    if d.version == current.version {
        return Err(ApiError::DraftUnchanged);
    }
    if d.base_version.as_deref() != Some(current.version.as_str()) {
        return Err(ApiError::DraftStale(
            d.base_version.clone().unwrap_or_default(),
            current.version.clone(),
        ));
    }
    let cc = Arc::new(compile_draft(&d)?);
    let next = shared
        .builder
        .build(cc, &d.id, &shared.secrets)
        .map_err(|es| ApiError::ActivationFailed(es.join("; ")))?;
    note(draft, "previous_version", json!(current.version));
    note(draft, "previous_draft", json!(current.id));
    note(
        draft,
        "author",
        json!({"partner": d.author_partner, "staff_id": d.author_staff}),
    );
    note(
        draft,
        "approver",
        person(&d.approved_partner, &d.approved_staff),
    );
    // The activation is on the record before it takes effect.
    let seq = commit_record(state, draft).await?;
    let now = shared.clock.now();
    if !state
        .store
        .activate_policy_draft(&d.id, &current.id, &req.partner_id, &req.staff_id, now)
        .await?
    {
        return Err(ApiError::ActivationConflict);
    }
    shared.policy.store(Arc::new(next));
    tracing::info!(draft = %d.id, version = %d.version, previous = %current.version, "policy version activated");
    let d = load_draft(state, id).await?;
    let mut v = draft_json(&d, false);
    if let Some(o) = v.as_object_mut() {
        o.insert("previous_version".into(), json!(current.version));
        o.insert("audit_seq".into(), json!(seq));
    }
    Ok(v)
}

// ----- Start-up and background ------------------------------------------------------------------

/// Records a policy event that no request caused (bootstrap, CRL reload); fails if the log
/// cannot be written.
pub async fn record_event(
    shared: &Shared,
    active: &ActivePolicy,
    action: &str,
    details: Value,
) -> Result<i64, crate::store::StoreError> {
    let mut d = Draft::blank(
        shared,
        active,
        "policy",
        "(gateway)".into(),
        &TransactionId(uuid::Uuid::new_v4().to_string()),
    );
    let mut change = json!({"action": action});
    if let (Some(o), Value::Object(extra)) = (change.as_object_mut(), details) {
        o.extend(extra);
    }
    d.policy_change = Some(change);
    d.row.outcome = "answered".into();
    shared.log.append(d.record()).await.map(|a| a.seq)
}

/// Picks up a version activated by another instance sharing the database.
pub async fn follow_database<S: Store>(store: &S, shared: &Shared) -> Result<bool, String> {
    let Some(row) = store
        .active_policy_draft()
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    if row.id == shared.policy.load().draft {
        return Ok(false);
    }
    let _one = shared.activation.lock().await;
    // This instance may have activated it while we waited for the lock.
    if row.id == shared.policy.load().draft {
        return Ok(false);
    }
    let cc = compile_draft(&row).map_err(|e| e.describe().1)?;
    let next = shared
        .builder
        .build(Arc::new(cc), &row.id, &shared.secrets)
        .map_err(|es| es.join("; "))?;
    shared.policy.store(Arc::new(next));
    tracing::info!(draft = %row.id, version = %row.version, "policy version activated by another instance");
    Ok(true)
}

/// Reloads the CRL files if they changed: new connections are checked against the new lists,
/// and open connections of revoked certificates are refused from their next request.
pub async fn reload_crls(shared: &Shared) -> Result<bool, String> {
    if !shared.policy.load().crls_changed(&shared.builder.tls) {
        return Ok(false);
    }
    // Under the activation lock, so that a version activated meanwhile is not replaced by a
    // rebuild of the one before it.
    let _one = shared.activation.lock().await;
    let current = shared.policy.load_full();
    if !current.crls_changed(&shared.builder.tls) {
        return Ok(false);
    }
    let next = shared
        .builder
        .build(current.covenant.clone(), &current.draft, &shared.secrets)
        .map_err(|es| es.join("; "))?;
    let details =
        json!({"revoked_certificates": next.revoked.len(), "previously": current.revoked.len()});
    record_event(shared, &next, "crl-reload", details)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        revoked = next.revoked.len(),
        "certificate revocation lists reloaded"
    );
    shared.policy.store(Arc::new(next));
    Ok(true)
}
