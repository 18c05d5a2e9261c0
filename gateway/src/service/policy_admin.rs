//! The administrators' path for the covenant: drafts, simulation on the logged history,
//! four-eyes approval, activation, rollback. Every step is a log entry committed in the same
//! transaction as the step itself, so the log never describes a draft, an approval or an
//! activation that did not happen; a refused step is recorded as the refusal.

use super::{Call, clip};
use crate::app::App;
use crate::lifecycle::{ActivePolicy, PolicyBuilder, StoredVersionError};
use crate::log::entry::{Kind, LogEntry, Person, PolicyAction, PolicyChange};
use crate::refusal::Refusal;
use crate::store::{Change, DraftKind, DraftStatus, LogFilter, PolicyDraftRow};
use policy::CompiledCovenant;
use policy::replay::{PastRequest, SimulationReport};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Largest covenant draft accepted.
pub const MAX_DRAFT_BYTES: usize = 1 << 20;
/// Simulation window when none is asked, and the longest one.
const DEFAULT_DAYS: i64 = 30;
const MAX_DAYS: i64 = 366;
/// At most this many log entries are read in one simulation (the report says when it stopped).
const MAX_REPLAYED: usize = 2_000_000;

/// A new draft id.
pub fn new_draft_id() -> String {
    format!("draft-{}", uuid::Uuid::new_v4().simple())
}

/// Whether the requester holds `role` (one the covenant names in `[governance]`).
fn holds(call: &Call, role: Option<policy::RoleRef>) -> Option<policy::RoleRef> {
    role.filter(|r| call.requester.roles.contains(r))
}

/// Administrators: the covenant's administrator role in the token, and listed in the
/// gateway's configuration.
pub(super) fn administrator(app: &App, call: &mut Call) -> Result<(), Refusal> {
    let role = call.covenant().governance.administrator_role;
    let held = holds(call, role);
    if let Some(r) = held {
        call.record.role = call.role_id(r);
    }
    if held.is_some()
        && app
            .administration
            .is_administrator(&call.requester.partner_id, &call.requester.staff_id)
    {
        Ok(())
    } else {
        let name = role
            .and_then(|r| call.role_id(r))
            .unwrap_or_else(|| "(none named in the covenant)".to_owned());
        Err(Refusal::NotAdministrator(name))
    }
}

/// Issue 37: every core partner's administrators hold the administrator role, each for its own
/// part. An administrator of the programme partner (which keeps the shared parts) handles any
/// draft; one of another partner only a draft whose every change needs its own partner's
/// signature alone (its entry, its products, rules on its data only). Either way the partners
/// a change touches must sign it.
fn own_part(
    call: &Call,
    active: &PolicyDraftRow,
    source: &str,
    cc: &policy::CompiledCovenant,
) -> Result<(), Refusal> {
    let c = call.covenant();
    let me = call.requester.partner_id.clone();
    let programme = c
        .governance
        .programme_partner
        .and_then(|p| c.partner_at(p))
        .map(|p| p.id.clone());
    if programme.as_deref() == Some(me.as_str()) {
        return Ok(());
    }
    let review = policy::review::review(&active.source, &call.policy.covenant, source, cc)
        .map_err(|e| {
            tracing::error!(error = %e, "a stored covenant text does not parse");
            Refusal::Internal
        })?;
    let foreign: Vec<String> = review
        .lines
        .iter()
        .filter(|l| {
            !matches!(&l.needs, policy::review::Needs::Partners(ps)
                if ps.len() == 1 && ps.contains(&me))
        })
        .map(|l| match &l.item {
            Some(i) => format!("[{}] {i}", l.section),
            None => format!("[{}]", l.section),
        })
        .collect();
    if foreign.is_empty() {
        Ok(())
    } else {
        Err(Refusal::PolicyNotYourPart(me, foreign.join(", ")))
    }
}

/// [`own_part`] for a stored draft.
async fn stored_own_part(app: &App, call: &Call, d: &PolicyDraftRow) -> Result<(), Refusal> {
    let cc = crate::lifecycle::PolicyBuilder::compile_stored(d).map_err(|e| {
        tracing::error!(draft = %d.id, error = %e, "a stored draft does not compile");
        Refusal::Internal
    })?;
    own_part(call, &active_row(app).await?, &d.source, &cc)
}

/// The database's active version, for a review against it.
async fn active_row(app: &App) -> Result<PolicyDraftRow, Refusal> {
    app.db.active_policy_draft().await?.ok_or(Refusal::Internal)
}

/// Administrators, and privacy officers (who may read drafts too).
fn reader(app: &App, call: &mut Call) -> Result<(), Refusal> {
    if let Some(r) = holds(call, call.covenant().governance.privacy_officer_role) {
        call.record.role = call.role_id(r);
        return Ok(());
    }
    administrator(app, call)
}

/// Starts the policy change of a step.
pub(super) fn change<'a>(
    call: &'a mut Call,
    action: PolicyAction,
    draft: Option<&str>,
) -> &'a mut PolicyChange {
    call.record.policy_change.insert(PolicyChange {
        action: Some(action),
        draft: draft.map(|d| clip(d, 80)),
        ..PolicyChange::default()
    })
}

fn person(partner: &Option<String>, staff: &Option<String>) -> Option<Person> {
    match (partner, staff) {
        (Some(p), Some(s)) => Some(Person {
            partner: p.clone(),
            staff_id: s.clone(),
        }),
        _ => None,
    }
}

fn rfc3339(t: Option<i64>) -> Value {
    t.and_then(crate::log::entry::rfc3339::format)
        .map_or(Value::Null, Value::String)
}

/// A draft as the API shows it (without its text unless asked).
pub fn draft_json(d: &PolicyDraftRow, with_source: bool) -> Value {
    let mut v = json!({
        "id": d.id,
        "version": d.version,
        "kind": d.kind.as_str(),
        "status": d.status.as_str(),
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
#[derive(Debug, Serialize)]
pub struct StaticDiff {
    /// From.
    pub from_version: String,
    /// To.
    pub to_version: String,
    /// How many decisions change.
    pub decision_changes: usize,
    /// Each decision that changes.
    pub changes: Vec<policy::report::DecisionChange>,
    /// Changes to the partner registry.
    pub registry_changes: Vec<String>,
    /// Every change of the text, section by section, and whose signature each needs.
    pub review: policy::review::Review,
}

impl StaticDiff {
    /// Whose signatures the change needs: partner ids, then `threshold` for a shared part.
    pub fn signers(&self) -> Vec<String> {
        let mut s: Vec<String> = self.review.partners.iter().cloned().collect();
        if self.review.threshold {
            s.push("threshold".to_owned());
        }
        s
    }
}

/// The static comparison of the active version (`old`, with its stored text) and a draft.
async fn static_diff(
    app: &App,
    old: &CompiledCovenant,
    new: &CompiledCovenant,
    new_src: &str,
) -> Result<StaticDiff, Refusal> {
    let changes = policy::report::diff(old, new);
    let active = app
        .db
        .active_policy_draft()
        .await?
        .ok_or(Refusal::Internal)?;
    let review = policy::review::review(&active.source, old, new_src, new).map_err(|e| {
        tracing::error!(error = %e, "a stored covenant text does not parse");
        Refusal::Internal
    })?;
    Ok(StaticDiff {
        from_version: old.version().as_str().to_owned(),
        to_version: new.version().as_str().to_owned(),
        decision_changes: changes.len(),
        changes,
        registry_changes: policy::report::registry_diff(old, new),
        review,
    })
}

pub(super) async fn load_draft(app: &App, id: &str) -> Result<PolicyDraftRow, Refusal> {
    app.db.policy_draft(id).await?.ok_or(Refusal::DraftNotFound)
}

/// Compiles a stored draft as it was recorded.
pub(super) fn compile_draft(d: &PolicyDraftRow) -> Result<CompiledCovenant, Refusal> {
    PolicyBuilder::compile_stored(d).map_err(|e| match e {
        StoredVersionError::KeyMaterial => Refusal::Internal,
        e => Refusal::ActivationFailed(format!("the stored draft: {e}")),
    })
}

// ----- Reading --------------------------------------------------------------------------------

/// `GET /v1/policy`: the active version and who made it active.
pub async fn status(app: &App, call: &mut Call) -> Result<Value, Refusal> {
    change(call, PolicyAction::Read, None);
    let active = &call.policy;
    let row = app.db.policy_draft(&active.draft).await?;
    let c = active.covenant.covenant();
    let mut v = json!({
        "version": active.version(),
        "covenant": {"id": c.id, "title": c.title, "version_label": c.version_label},
        "draft": active.draft,
        "revoked_certificates": active.revoked.len(),
    });
    if let (Some(row), Some(o)) = (row, v.as_object_mut()) {
        let d = draft_json(&row, false);
        for k in [
            "kind",
            "author",
            "approver",
            "approved_at",
            "activated_by",
            "activated_at",
        ] {
            if let Some(x) = d.get(k) {
                o.insert(k.into(), x.clone());
            }
        }
    }
    Ok(v)
}

/// `GET /v1/policy/versions`: every activated version, newest first.
pub async fn versions(app: &App, call: &mut Call) -> Result<Value, Refusal> {
    change(call, PolicyAction::Read, None);
    let rows = app.db.policy_drafts(true, 200).await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|d| {
            let mut v = draft_json(d, false);
            if let Some(o) = v.as_object_mut() {
                o.insert("active".into(), Value::Bool(d.id == call.policy.draft));
            }
            v
        })
        .collect();
    Ok(json!({"active": call.policy.version(), "versions": list}))
}

/// `GET /v1/policy/drafts`.
pub async fn list_drafts(app: &App, call: &mut Call) -> Result<Value, Refusal> {
    change(call, PolicyAction::Read, None);
    reader(app, call)?;
    let rows = app.db.policy_drafts(false, 200).await?;
    Ok(json!({"drafts": rows.iter().map(|d| draft_json(d, false)).collect::<Vec<_>>()}))
}

/// `GET /v1/policy/drafts/{id}` (with its text).
pub async fn show_draft(app: &App, call: &mut Call, id: &str) -> Result<Value, Refusal> {
    change(call, PolicyAction::Read, Some(id));
    reader(app, call)?;
    Ok(draft_json(&load_draft(app, id).await?, true))
}

// ----- Drafting -------------------------------------------------------------------------------

fn invalid(d: &policy::Diagnostics, source: &str) -> Refusal {
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
    Refusal::CovenantInvalid(
        format!(
            "The draft has {} problem{}",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" }
        ),
        lines,
    )
}

fn new_row(
    call: &Call,
    now: i64,
    kind: DraftKind,
    version: &str,
    source: String,
    key_material: String,
) -> PolicyDraftRow {
    PolicyDraftRow {
        id: new_draft_id(),
        version: version.to_owned(),
        source,
        key_material,
        kind,
        base_version: Some(call.policy.version().to_owned()),
        author_partner: call.requester.partner_id.clone(),
        author_staff: call.requester.staff_id.clone(),
        created_at: now,
        approved_partner: None,
        approved_staff: None,
        approved_at: None,
        activated_partner: None,
        activated_staff: None,
        activated_at: None,
        status: DraftStatus::Draft,
    }
}

/// `POST /v1/policy/drafts`: validates and stores a covenant text as a draft.
/// The text's own problems (media type, size, encoding) come after the administrator check.
pub async fn create_draft(
    app: &App,
    call: &mut Call,
    source: Result<String, Refusal>,
) -> Result<Value, Refusal> {
    change(call, PolicyAction::Draft, None);
    administrator(app, call)?;
    let source = source?;
    let (cc, keys) = app
        .builder
        .compile_from_key_dir(&source)
        .map_err(|d| invalid(&d, &source))?;
    if cc.version() == call.policy.covenant.version() {
        return Err(Refusal::DraftUnchanged);
    }
    own_part(call, &active_row(app).await?, &source, &cc)?;
    let keys = serde_json::to_string(&keys).map_err(|_| Refusal::Internal)?;
    let row = new_row(
        call,
        app.clock.now(),
        DraftKind::Change,
        cc.version().as_str(),
        source,
        keys,
    );
    save_draft(app, call, &cc, row).await
}

/// Records and stores a new draft (a change or a rollback) in one transaction; answers it with
/// its static diff.
async fn save_draft(
    app: &App,
    call: &mut Call,
    cc: &CompiledCovenant,
    row: PolicyDraftRow,
) -> Result<Value, Refusal> {
    let diff = static_diff(app, &call.policy.covenant, cc, &row.source).await?;
    if let Some(pc) = call.record.policy_change.as_mut() {
        pc.signers = Some(diff.signers());
        pc.draft = Some(row.id.clone());
        pc.version = Some(row.version.clone());
        pc.base_version = row.base_version.clone();
        pc.kind = Some(row.kind.as_str().to_owned());
        pc.decision_changes = Some(diff.decision_changes as u64);
        pc.registry_changes = Some(diff.registry_changes.clone());
    }
    let seq = call
        .commit_change(
            app,
            Change::InsertDraft(row.clone()),
            Refusal::DraftState(String::new(), "draft"),
        )
        .await?
        .seq;
    tracing::info!(draft = %row.id, version = %row.version, kind = row.kind.as_str(), "policy draft stored");
    let mut v = draft_json(&row, false);
    if let Some(o) = v.as_object_mut() {
        o.insert("audit_seq".into(), json!(seq));
        o.insert(
            "diff".into(),
            serde_json::to_value(&diff).map_err(|_| Refusal::Internal)?,
        );
    }
    Ok(v)
}

/// `POST /v1/policy/versions/{id}/rollback`: an earlier activated version as a new draft.
pub async fn rollback(app: &App, call: &mut Call, id: &str) -> Result<Value, Refusal> {
    change(call, PolicyAction::RollbackDraft, None).restores = Some(clip(id, 80));
    administrator(app, call)?;
    // An earlier activated version: by the draft it was activated from, or by its hash among
    // the recent activations (the most recent one with that hash).
    let target = match app.db.policy_draft(id).await? {
        Some(d) if d.activated_at.is_some() => d,
        _ => app
            .db
            .policy_drafts(true, 500)
            .await?
            .into_iter()
            .find(|d| d.version == id)
            .ok_or(Refusal::VersionNotFound)?,
    };
    if target.version == call.policy.version() {
        return Err(Refusal::DraftUnchanged);
    }
    let cc = compile_draft(&target)?;
    own_part(call, &active_row(app).await?, &target.source, &cc)?;
    let row = new_row(
        call,
        app.clock.now(),
        DraftKind::Rollback,
        &target.version,
        target.source.clone(),
        target.key_material.clone(),
    );
    if let Some(pc) = call.record.policy_change.as_mut() {
        pc.restores = Some(target.id.clone());
    }
    let mut v = save_draft(app, call, &cc, row).await?;
    if let Some(o) = v.as_object_mut() {
        o.insert("restores".into(), json!(target.id));
    }
    Ok(v)
}

// ----- Simulation -----------------------------------------------------------------------------

/// A logged disclosure as a request to replay.
fn past_request(seq: i64, e: &LogEntry) -> PastRequest {
    let mut fields: BTreeMap<String, BTreeMap<String, (policy::OutcomeClass, String)>> =
        BTreeMap::new();
    for (pid, summary) in &e.products {
        let per = fields.entry(pid.clone()).or_default();
        for (class, name, rule) in summary.fields() {
            per.insert(name.to_owned(), (class, rule.to_owned()));
        }
    }
    PastRequest {
        seq,
        subject: e.data_subject.clone(),
        partner: e.partner.clone(),
        role: e.role.clone(),
        purpose: e.processing_activity.clone(),
        answered: e.outcome.answered(),
        problem: e.problem.clone(),
        fields,
    }
}

/// `POST /v1/policy/drafts/{id}/simulate`: replays the logged disclosures of the last `days`
/// under the draft.
pub async fn simulate(
    app: &App,
    call: &mut Call,
    id: &str,
    days: Option<i64>,
) -> Result<Value, Refusal> {
    change(call, PolicyAction::Simulate, Some(id));
    administrator(app, call)?;
    let days = days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(Refusal::InvalidBody(format!(
            "`days` must be 1 to {MAX_DAYS}"
        )));
    }
    let d = load_draft(app, id).await?;
    let cc = compile_draft(&d)?;
    let now = app.clock.now();
    let from = now - days * 86_400;
    // Page by page: months of log are replayed without holding them in memory.
    let mut sim = policy::replay::Simulation::new(&cc);
    let (mut after, mut read, mut truncated) = (0, 0usize, false);
    loop {
        let page = app
            .db
            .search(&LogFilter {
                from: Some(from),
                kinds: vec![Kind::Disclosure.as_str()],
                after_seq: after,
                limit: 2_000,
                ..Default::default()
            })
            .await?;
        let Some((last, _, _)) = page.last() else {
            break;
        };
        after = *last;
        read += page.len();
        for (seq, text, _) in &page {
            let e = LogEntry::parse(*seq, text).map_err(|e| {
                tracing::error!(error = %e, "a stored entry is unreadable");
                Refusal::Internal
            })?;
            sim.add(&past_request(*seq, &e));
        }
        if read >= MAX_REPLAYED {
            truncated = true;
            break;
        }
    }
    let report: SimulationReport = sim.finish();
    if let Some(pc) = call.record.policy_change.as_mut() {
        pc.version = Some(d.version.clone());
        pc.days = Some(days);
        pc.replayed = Some(report.replayed as u64);
        pc.affected_requests = Some(report.affected_requests as u64);
        pc.affected_subjects = Some(report.affected_subjects as u64);
    }
    let seq = call.commit(app).await?.seq;
    tracing::info!(draft = %d.id, replayed = report.replayed, affected = report.affected_requests, "policy draft simulated");
    Ok(json!({
        "draft": d.id,
        "version": d.version,
        "against": call.policy.version(),
        "days": days,
        "from": rfc3339(Some(from)),
        "truncated": truncated,
        "audit_seq": seq,
        "report": report,
        "static": static_diff(app, &call.policy.covenant, &cc, &d.source).await?,
        "not_replayed": "case status and relation (they depend on the case as it was then); products a request did not receive",
    }))
}

// ----- Approval and activation ----------------------------------------------------------------

/// `POST /v1/policy/drafts/{id}/approve`: a second administrator approves.
pub async fn approve(app: &App, call: &mut Call, id: &str) -> Result<Value, Refusal> {
    change(call, PolicyAction::Approve, Some(id));
    administrator(app, call)?;
    let d = load_draft(app, id).await?;
    if let Some(pc) = call.record.policy_change.as_mut() {
        pc.version = Some(d.version.clone());
    }
    // An approved draft may be approved again: an approval that no longer counts (given under
    // another activation, or too old) is renewed so.
    if !matches!(d.status, DraftStatus::Draft | DraftStatus::Approved) {
        return Err(Refusal::DraftState(d.status.to_string(), "draft"));
    }
    let req = &call.requester;
    if d.author_partner == req.partner_id && d.author_staff == req.staff_id {
        return Err(Refusal::ApprovalByAuthor);
    }
    stored_own_part(app, call, &d).await?;
    let req = &call.requester;
    if app.administration.approver_from_other_partner && d.author_partner == req.partner_id {
        return Err(Refusal::ApprovalSamePartner);
    }
    if let Some(pc) = call.record.policy_change.as_mut() {
        pc.author = Some(Person {
            partner: d.author_partner.clone(),
            staff_id: d.author_staff.clone(),
        });
    }
    let change = Change::ApproveDraft {
        id: d.id.clone(),
        partner: req.partner_id.clone(),
        staff: req.staff_id.clone(),
        at: app.clock.now(),
    };
    let seq = call
        .commit_change(
            app,
            change,
            Refusal::DraftState("no longer a draft".into(), "draft"),
        )
        .await?
        .seq;
    tracing::info!(draft = %d.id, "policy draft approved");
    let d = load_draft(app, id).await?;
    let mut v = draft_json(&d, false);
    if let Some(o) = v.as_object_mut() {
        o.insert("audit_seq".into(), json!(seq));
    }
    Ok(v)
}

/// Whether the draft's approval still counts: given while the active version was in force
/// (an approval from before its activation was for another activation, perhaps of the same
/// text before a rollback: it does not come back to life), and not older than the
/// configuration's `approval_valid_days`.
fn approval_counts(app: &App, d: &PolicyDraftRow, current: &PolicyDraftRow) -> Result<(), Refusal> {
    let approved_at = d.approved_at.ok_or(Refusal::Internal)?;
    if let Some(activated) = current.activated_at
        && approved_at < activated
    {
        return Err(Refusal::ApprovalStale(format!(
            "it was given at {}, before the active version (draft {}) was activated at {}",
            rfc3339_text(approved_at),
            current.id,
            rfc3339_text(activated)
        )));
    }
    let days = app.administration.approval_valid_days;
    if app.clock.now() - approved_at > i64::from(days) * 86_400 {
        return Err(Refusal::ApprovalStale(format!(
            "it was given at {}, more than {days} days ago (`approval_valid_days`)",
            rfc3339_text(approved_at)
        )));
    }
    Ok(())
}

fn rfc3339_text(t: i64) -> String {
    crate::log::entry::rfc3339::format(t).unwrap_or_else(|| t.to_string())
}

/// `POST /v1/policy/drafts/{id}/activate`: makes an approved draft the active version. The new
/// version is built completely first (nothing changes if that fails), then the activation and
/// its entry commit together, then the gateway switches.
pub async fn activate(app: &App, call: &mut Call, id: &str) -> Result<Value, Refusal> {
    change(call, PolicyAction::Activate, Some(id));
    administrator(app, call)?;
    // One activation at a time on this instance; the database's compare-and-set covers others.
    let _one = app.activation.lock().await;
    let d = load_draft(app, id).await?;
    if let Some(pc) = call.record.policy_change.as_mut() {
        pc.version = Some(d.version.clone());
        pc.kind = Some(d.kind.as_str().to_owned());
    }
    if d.status != DraftStatus::Approved {
        return Err(Refusal::DraftState(d.status.to_string(), "approved"));
    }
    let current = app
        .db
        .active_policy_draft()
        .await?
        .ok_or(Refusal::Internal)?;
    if d.version == current.version {
        return Err(Refusal::DraftUnchanged);
    }
    if d.base_version.as_deref() != Some(current.version.as_str()) {
        return Err(Refusal::DraftStale(
            d.base_version.clone().unwrap_or_default(),
            current.version.clone(),
        ));
    }
    approval_counts(app, &d, &current)?;
    let cc = Arc::new(compile_draft(&d)?);
    own_part(call, &current, &d.source, &cc)?;
    // The partners' signatures the change needs under the active version (issue 37).
    let signatures = super::signatures::check_for_activation(app, call, &d, &cc, &current).await?;
    let next = app
        .builder
        .build(cc, &d.id, &app.secrets)
        .map_err(|es| Refusal::ActivationFailed(es.join("; ")))?;
    if let Some(pc) = call.record.policy_change.as_mut() {
        pc.previous_version = Some(current.version.clone());
        pc.previous_draft = Some(current.id.clone());
        pc.author = Some(Person {
            partner: d.author_partner.clone(),
            staff_id: d.author_staff.clone(),
        });
        pc.approver = person(&d.approved_partner, &d.approved_staff);
        pc.signatures = signatures;
    }
    let change = Change::ActivateDraft {
        id: d.id.clone(),
        expected_active: current.id.clone(),
        partner: call.requester.partner_id.clone(),
        staff: call.requester.staff_id.clone(),
        at: app.clock.now(),
    };
    let seq = call
        .commit_change(app, change, Refusal::ActivationConflict)
        .await?
        .seq;
    app.policy.store(Arc::new(next));
    tracing::info!(draft = %d.id, version = %d.version, previous = %current.version, "policy version activated");
    let d = load_draft(app, id).await?;
    let mut v = draft_json(&d, false);
    if let Some(o) = v.as_object_mut() {
        o.insert("previous_version".into(), json!(current.version));
        o.insert("audit_seq".into(), json!(seq));
    }
    Ok(v)
}

// ----- Start-up and background ------------------------------------------------------------------

/// A log entry of the gateway's own (no request caused it).
pub fn gateway_entry(app: &App, active: &ActivePolicy, kind: Kind) -> LogEntry {
    LogEntry::new(crate::log::entry::Start {
        id: crate::log::entry::new_id(),
        at: app.clock.now(),
        trace_id: &uuid::Uuid::new_v4().to_string(),
        kind,
        partner: "(gateway)".into(),
        policy_version: active.version(),
    })
}

/// A version the log made active: its draft and its version hash, the draft active before it
/// and the partners' signed approvals the activation carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedActivation {
    /// The draft.
    pub draft: Option<String>,
    /// Its version hash.
    pub version: Option<String>,
    /// The draft active before (none for the first version).
    pub previous_draft: Option<String>,
    /// Its version hash.
    pub previous_version: Option<String>,
    /// The signed approvals.
    pub signatures: Vec<String>,
    /// When (Unix seconds).
    pub at: i64,
}

/// The draft and version the log last made active (its newest answered `bootstrap` or
/// `activate` step), if it made any.
pub async fn logged_active(db: &crate::store::Db) -> Result<Option<LoggedActivation>, String> {
    let mut before = i64::MAX;
    loop {
        let page = db
            .policy_entries_before(before, 200)
            .await
            .map_err(|e| e.to_string())?;
        let Some((last, _)) = page.last() else {
            return Ok(None);
        };
        before = *last;
        for (seq, text) in &page {
            let e = LogEntry::parse(*seq, text).map_err(|e| e.to_string())?;
            if let Some(pc) = e.policy_change
                && matches!(
                    pc.action,
                    Some(PolicyAction::Activate | PolicyAction::Bootstrap)
                )
            {
                return Ok(Some(LoggedActivation {
                    draft: pc.draft,
                    version: pc.version,
                    previous_draft: pc.previous_draft,
                    previous_version: pc.previous_version,
                    signatures: pc.signatures.unwrap_or_default(),
                    at: e.at,
                }));
            }
        }
    }
}

/// Whether `row`, the database's active draft, is the one the log last activated, with the
/// version the log recorded: a version switched in the database by hand (an operator pointing
/// `policy_state` elsewhere, or editing the active row's text and its hash in place) is not
/// served, since the log would not show who made it active (issue 37). The row's text is
/// checked against its hash when it is compiled.
pub async fn check_logged(db: &crate::store::Db, row: &PolicyDraftRow) -> Result<(), String> {
    let logged = logged_active(db).await?;
    let agrees = logged.as_ref().is_some_and(|l| {
        l.draft.as_deref() == Some(row.id.as_str())
            && l.version.as_deref() == Some(row.version.as_str())
    });
    if agrees {
        // And the partners' signatures the change needed, as the log carries them.
        return match logged
            .as_ref()
            .and_then(|l| l.previous_draft.as_ref().map(|p| (p, l)))
        {
            // The first version: the installation's signatures, as its bootstrap carries them.
            None => logged.as_ref().map_or(Ok(()), |l| {
                super::signatures::check_logged_installation(row, &l.signatures, l.at)
            }),
            Some((prev, l)) => {
                let previous = db
                    .policy_draft(prev)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("the version before the active one (draft {prev}) is not stored: the database was changed outside the gateway"))?;
                if l.previous_version.as_deref() != Some(previous.version.as_str()) {
                    return Err(format!(
                        "the version before the active one (draft {prev}) is stored as {}, but the log activated it as {}: the database was changed outside the gateway",
                        previous.version,
                        l.previous_version.as_deref().unwrap_or("?")
                    ));
                }
                super::signatures::check_logged_activation(&previous, row, &l.signatures, l.at)
            }
        };
    }
    Err(format!(
        "the database's active covenant version is draft {} (version {}), but the log last activated {}: the database was changed outside the gateway, and the log does not show who made this version active. Nothing is served under it; restore `policy_state` and the version's row to what the log shows (or the database from a backup) and check the log with `gateway audit verify`",
        row.id,
        row.version,
        logged.map_or_else(
            || "none".to_owned(),
            |l| format!(
                "draft {} (version {})",
                l.draft.as_deref().unwrap_or("?"),
                l.version.as_deref().unwrap_or("?")
            )
        )
    ))
}

/// The retention periods and witnesses of every stored version that was ever active, for
/// `audit verify` to hold each retention step and start to the version it was taken under. A
/// stored text that no longer compiles to its hash is left out (a step under it is then named
/// as not checkable).
pub async fn stored_versions(
    db: &crate::store::Db,
) -> Result<crate::log::verify::StoredVersions, crate::store::StoreError> {
    let mut out = crate::log::verify::StoredVersions::new();
    for row in db.policy_drafts(true, i64::MAX).await? {
        if let Ok(cc) = crate::lifecycle::PolicyBuilder::compile_stored(&row) {
            out.insert(
                row.version.clone(),
                crate::log::verify::facts_of(cc.covenant()),
            );
        }
    }
    Ok(out)
}

/// Replays every activation the log shows (its answered `bootstrap` and `activate` steps, in
/// order) against the partners' signatures it needed under the version before it, as the
/// gateway checks them when it serves a version (issue 37): the first activation that lacks
/// them, or whose versions are not stored as the log recorded them, by sequence number.
pub async fn unsigned_activation(
    db: &crate::store::Db,
) -> Result<Option<(i64, String)>, crate::store::StoreError> {
    let mut steps = Vec::new();
    let mut before = i64::MAX;
    loop {
        let page = db.policy_entries_before(before, 200).await?;
        let Some((last, _)) = page.last() else { break };
        before = *last;
        for (seq, text) in page {
            let Ok(e) = LogEntry::parse(seq, &text) else {
                continue;
            };
            if e.outcome != crate::log::entry::Outcome::Answered {
                continue;
            }
            if let Some(pc) = e.policy_change
                && matches!(
                    pc.action,
                    Some(PolicyAction::Activate | PolicyAction::Bootstrap)
                )
            {
                steps.push((seq, e.at, pc));
            }
        }
    }
    steps.reverse();
    for (seq, at, pc) in steps {
        if let Err(why) = activation_signed(db, at, &pc).await? {
            return Ok(Some((
                seq,
                format!("policy entry {seq} activated a version without what it needed: {why}"),
            )));
        }
    }
    Ok(None)
}

/// One logged activation against its stored versions and the signatures it carries.
async fn activation_signed(
    db: &crate::store::Db,
    at: i64,
    pc: &PolicyChange,
) -> Result<Result<(), String>, crate::store::StoreError> {
    let stored = |id: &str, version: Option<&str>, row: Option<PolicyDraftRow>| match row {
        None => Err(format!("draft {id} is not stored")),
        Some(r) if version != Some(r.version.as_str()) => Err(format!(
            "draft {id} is stored as version {}, but the log recorded {}",
            r.version,
            version.unwrap_or("none")
        )),
        Some(r) => Ok(r),
    };
    let Some(id) = pc.draft.as_deref() else {
        return Ok(Err("the step names no draft".to_owned()));
    };
    let row = match stored(id, pc.version.as_deref(), db.policy_draft(id).await?) {
        Ok(r) => r,
        Err(why) => return Ok(Err(why)),
    };
    let signatures = pc.signatures.as_deref().unwrap_or_default();
    Ok(match pc.previous_draft.as_deref() {
        None => super::signatures::check_logged_installation(&row, signatures, at),
        Some(prev) => {
            match stored(
                prev,
                pc.previous_version.as_deref(),
                db.policy_draft(prev).await?,
            ) {
                Ok(previous) => {
                    super::signatures::check_logged_activation(&previous, &row, signatures, at)
                }
                Err(why) => Err(why),
            }
        }
    })
}

/// Records whether the database's active version disagrees with the log (and why).
fn set_mismatch(app: &App, why: Option<String>) {
    if why.is_some() != app.policy_mismatch.load().is_some() {
        crate::metrics::metrics()
            .policy_mismatch
            .set(i64::from(why.is_some()));
    }
    app.policy_mismatch.store(why.map(Arc::new));
}

/// Picks up a version activated by another instance sharing the database.
pub async fn follow_database(app: &App) -> Result<bool, String> {
    let Some(row) = app
        .db
        .active_policy_draft()
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    if row.id == app.policy.load().draft {
        // The database agrees with what is served (which the log activated).
        set_mismatch(app, None);
        return Ok(false);
    }
    let _one = app.activation.lock().await;
    // This instance may have activated it while we waited for the lock.
    if row.id == app.policy.load().draft {
        return Ok(false);
    }
    // Only a version whose activation the log shows (another instance's commits with its
    // entry); otherwise nothing is served until the database agrees with the log again.
    if let Err(e) = check_logged(&app.db, &row).await {
        set_mismatch(app, Some(e.clone()));
        return Err(e);
    }
    let cc = compile_draft(&row).map_err(|e| e.describe().1)?;
    let next = app
        .builder
        .build(Arc::new(cc), &row.id, &app.secrets)
        .map_err(|es| es.join("; "))?;
    app.policy.store(Arc::new(next));
    tracing::info!(draft = %row.id, version = %row.version, "policy version activated by another instance");
    Ok(true)
}

/// Reloads the CRL files if they changed: new connections are checked against the new lists,
/// and open connections of revoked certificates are refused from their next request. The
/// reload is on the record before it takes effect.
pub async fn reload_crls(app: &App) -> Result<bool, String> {
    if !app.policy.load().crls_changed(&app.builder.tls) {
        return Ok(false);
    }
    // Under the activation lock, so that a version activated meanwhile is not replaced by a
    // rebuild of the one before it.
    let _one = app.activation.lock().await;
    let current = app.policy.load_full();
    if !current.crls_changed(&app.builder.tls) {
        return Ok(false);
    }
    let next = app
        .builder
        .build(current.covenant.clone(), &current.draft, &app.secrets)
        .map_err(|es| es.join("; "))?;
    let mut e = gateway_entry(app, &next, Kind::Policy);
    e.policy_change = Some(PolicyChange {
        action: Some(PolicyAction::CrlReload),
        revoked_certificates: Some(next.revoked.len() as u64),
        previously: Some(current.revoked.len() as u64),
        ..PolicyChange::default()
    });
    e.outcome = crate::log::entry::Outcome::Answered;
    app.log.append(e).await.map_err(|e| e.to_string())?;
    tracing::info!(
        revoked = next.revoked.len(),
        "certificate revocation lists reloaded"
    );
    app.policy.store(Arc::new(next));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    fn text(title: &str) -> Result<String, Refusal> {
        Ok(crate::demo::EXAMPLE_COVENANT.replace("title = \"", &format!("title = \"{title} ")))
    }

    /// Issue 37: an approval given under one activation of a version does not come back to life
    /// when a rollback makes that version active again, and an old approval does not count.
    #[tokio::test]
    async fn an_approval_counts_only_under_the_activation_it_was_given_in_and_not_for_ever() {
        let (app, clock) = testkit::app().await;
        let admin = |staff: &str| testkit::call(&app, Kind::Policy, "oov", staff, &["beheerder"]);
        let original = app.policy.load().version().to_owned();
        let draft = |title: &'static str| {
            let app = app.clone();
            async move {
                let mut c = testkit::call(&app, Kind::Policy, "oov", "beheerder-1", &["beheerder"]);
                let d = create_draft(&app, &mut c, text(title)).await.unwrap();
                let id = d["id"].as_str().unwrap().to_owned();
                let mut c = testkit::call(&app, Kind::Policy, "oov", "beheerder-2", &["beheerder"]);
                approve(&app, &mut c, &id).await.unwrap();
                testkit::sign_all(&app, &id).await;
                id
            }
        };
        // Approved against the original version, kept for later.
        let kept = draft("Bewaard").await;
        clock.advance(60);
        // Another change goes in, then the original version comes back by a rollback.
        let other = draft("Ander").await;
        activate(&app, &mut admin("beheerder-1"), &other)
            .await
            .unwrap();
        clock.advance(60);
        let r = rollback(&app, &mut admin("beheerder-1"), &original)
            .await
            .unwrap();
        let r = r["id"].as_str().unwrap().to_owned();
        approve(&app, &mut admin("beheerder-2"), &r).await.unwrap();
        testkit::sign_all(&app, &r).await;
        activate(&app, &mut admin("beheerder-1"), &r).await.unwrap();
        assert_eq!(app.policy.load().version(), original);
        // The kept draft's base is active again, but its approval was for another activation.
        assert!(matches!(
            activate(&app, &mut admin("beheerder-1"), &kept).await,
            Err(Refusal::ApprovalStale(why)) if why.contains("before the active version")
        ));
        // Approved again, it would go in; after `approval_valid_days` it no longer counts.
        approve(&app, &mut admin("beheerder-2"), &kept)
            .await
            .unwrap();
        clock.advance(i64::from(app.administration.approval_valid_days) * 86_400 + 1);
        assert!(matches!(
            activate(&app, &mut admin("beheerder-1"), &kept).await,
            Err(Refusal::ApprovalStale(why)) if why.contains("days ago")
        ));
        approve(&app, &mut admin("beheerder-2"), &kept)
            .await
            .unwrap();
        // The partners signed it against the earlier activation: they sign again.
        assert!(matches!(
            activate(&app, &mut admin("beheerder-1"), &kept).await,
            Err(Refusal::SignaturesMissing(_))
        ));
        testkit::sign_all(&app, &kept).await;
        activate(&app, &mut admin("beheerder-1"), &kept)
            .await
            .unwrap();
        assert_ne!(app.policy.load().version(), original);
    }

    #[tokio::test]
    async fn four_eyes_then_activation_and_every_step_on_the_record() {
        let (app, _) = testkit::app().await;
        let admin = |staff: &str| testkit::call(&app, Kind::Policy, "oov", staff, &["beheerder"]);
        // Not an administrator: a regisseur, and a beheerder the configuration does not list.
        let mut c = testkit::call(&app, Kind::Policy, "rn", "reg.1", &["regisseur"]);
        assert_eq!(
            create_draft(&app, &mut c, text("x")).await.unwrap_err(),
            Refusal::NotAdministrator("beheerder".into())
        );
        let mut c = admin("beheerder-9");
        assert!(matches!(
            create_draft(&app, &mut c, text("x")).await,
            Err(Refusal::NotAdministrator(_))
        ));
        // The same text as the active version is nothing to draft.
        let mut c = admin("beheerder-1");
        assert_eq!(
            create_draft(&app, &mut c, Ok(crate::demo::EXAMPLE_COVENANT.into()))
                .await
                .unwrap_err(),
            Refusal::DraftUnchanged
        );
        let mut c = admin("beheerder-1");
        let d = create_draft(&app, &mut c, text("Gewijzigd")).await.unwrap();
        let id = d["id"].as_str().unwrap().to_owned();
        let mut c = admin("beheerder-1");
        assert_eq!(
            activate(&app, &mut c, &id).await.unwrap_err(),
            Refusal::DraftState("draft".into(), "approved")
        );
        let mut c = admin("beheerder-1");
        assert_eq!(
            approve(&app, &mut c, &id).await.unwrap_err(),
            Refusal::ApprovalByAuthor
        );
        let mut c = admin("beheerder-2");
        approve(&app, &mut c, &id).await.unwrap();
        testkit::sign_all(&app, &id).await;
        let before = app.policy.load().version().to_owned();
        let mut c = admin("beheerder-1");
        let v = activate(&app, &mut c, &id).await.unwrap();
        assert_ne!(app.policy.load().version(), before, "in force");
        assert_eq!(v["previous_version"], before.as_str());
        let done: Vec<PolicyAction> = testkit::entries(&app)
            .await
            .into_iter()
            .filter(|e| e.outcome.answered())
            .filter_map(|e| e.policy_change.and_then(|p| p.action))
            .filter(|a| *a != PolicyAction::Sign)
            .collect();
        assert_eq!(
            done,
            vec![
                PolicyAction::Bootstrap,
                PolicyAction::Draft,
                PolicyAction::Approve,
                PolicyAction::Activate
            ]
        );
        // A second activation of the same draft finds it active already.
        let mut c = admin("beheerder-2");
        assert!(matches!(
            activate(&app, &mut c, &id).await,
            Err(Refusal::DraftState(..))
        ));
    }
}
