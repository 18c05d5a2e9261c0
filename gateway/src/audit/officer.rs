//! The privacy officer's views of the disclosure log: search (JSON or CSV) and the GDPR art. 15
//! report about one person. Role `privacy-officer`; the programme's own officer (partner `oov`)
//! sees everything, a partner's officer its own partner's disclosures and those about its data.
//! Every query is itself an entry of the log: who searched, for whom.

use crate::disclose::{Draft, parse_bsn, refuse};
use crate::problem::ApiError;
use crate::registry::ClientIdentity;
use crate::server::{Active, AppState, Authenticated, TransactionId};
use crate::store::{DisclosureRow, LogFilter, Store};
use axum::extract::{Extension, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The role that may read the log.
pub const OFFICER_ROLE: &str = "privacy-officer";
/// The partner whose privacy officer sees the whole log (the programme's owner).
pub const PROGRAMME_PARTNER: &str = "oov";

/// Routes of the privacy officer.
pub fn routes<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/v1/audit/disclosures", get(search::<S>))
        .route("/v1/audit/subjects/{bsn}", get(subject::<S>))
}

/// Search parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Subject BSN (turned into the pseudonym here; never stored or logged).
    #[serde(default)]
    pub subject: Option<String>,
    /// Requesting partner.
    #[serde(default)]
    pub partner: Option<String>,
    /// Staff id.
    #[serde(default)]
    pub staff_id: Option<String>,
    /// Purpose.
    #[serde(default)]
    pub purpose: Option<String>,
    /// Case id.
    #[serde(default)]
    pub case: Option<String>,
    /// Product.
    #[serde(default)]
    pub product: Option<String>,
    /// `answered`, `partly-unavailable` or `refused`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// From (RFC 3339 or epoch seconds).
    #[serde(default)]
    pub from: Option<String>,
    /// To (RFC 3339 or epoch seconds).
    #[serde(default)]
    pub to: Option<String>,
    /// Paging cursor: the `next_after` of the previous page.
    #[serde(default)]
    pub after: Option<i64>,
    /// Page size (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<i64>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

fn time_param(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    if let Ok(n) = v.parse::<i64>() {
        return Ok(Some(n));
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| Some(t.unix_timestamp()))
        .map_err(|_| ApiError::InvalidBody(format!("`{name}` must be RFC 3339 or epoch seconds")))
}

struct Officer {
    partner: String,
    staff_id: String,
}

fn officer(c: &policy::Covenant, req: &crate::auth::Requester) -> Result<Officer, ApiError> {
    let is_officer = req
        .roles
        .iter()
        .any(|r| c.roles.get(r.index()).is_some_and(|r| r.id == OFFICER_ROLE));
    if !is_officer {
        return Err(ApiError::PurposeRole("audit".into(), OFFICER_ROLE.into()));
    }
    Ok(Officer {
        partner: req.partner_id.clone(),
        staff_id: req.staff_id.clone(),
    })
}

fn item(seq: i64, row: &DisclosureRow) -> Value {
    let entry: Value = serde_json::from_str(&row.entry).unwrap_or(Value::Null);
    json!({
        "seq": seq,
        "at": entry["at"],
        "trace_id": row.transaction_id,
        "kind": row.kind,
        "partner": row.partner,
        "staff_id": row.staff_id,
        "role": row.role,
        "processing_activity": row.purpose,
        "case_id": row.case_id,
        "data_subject": row.subject_pseudonym,
        "products": entry["products"],
        "policy_version": row.policy_version,
        "outcome": row.outcome,
        "problem": row.problem,
        "leaf_hash": row.leaf_hash,
    })
}

fn csv_of(items: &[(i64, DisclosureRow)]) -> Result<String, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |_| ApiError::Internal;
    w.write_record([
        "seq",
        "at",
        "trace_id",
        "kind",
        "partner",
        "staff_id",
        "role",
        "processing_activity",
        "case_id",
        "data_subject",
        "outcome",
        "problem",
        "products_disclosed",
        "products_withheld",
    ])
    .map_err(err)?;
    for (seq, row) in items {
        let entry: Value = serde_json::from_str(&row.entry).unwrap_or(Value::Null);
        let fields = |kind: &str| -> String {
            entry["products"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .flat_map(|(p, s)| {
                            s[kind]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(move |f| f[0].as_str().map(|f| format!("{p}.{f}")))
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default()
        };
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        w.write_record([
            seq.to_string(),
            entry["at"].as_str().unwrap_or_default().to_owned(),
            row.transaction_id.clone(),
            row.kind.clone(),
            row.partner.clone(),
            o(&row.staff_id),
            o(&row.role),
            o(&row.purpose),
            o(&row.case_id),
            o(&row.subject_pseudonym),
            row.outcome.clone(),
            o(&row.problem),
            fields("disclosed"),
            fields("withheld"),
        ])
        .map_err(err)?;
    }
    String::from_utf8(w.into_inner().map_err(|_| ApiError::Internal)?)
        .map_err(|_| ApiError::Internal)
}

/// Records the query (without the BSN: the pseudonym stands for the person searched).
async fn record_query<S: Store>(
    state: &AppState<S>,
    draft: &mut Draft,
    officer: &Officer,
    query: String,
) -> Result<(), ApiError> {
    draft.row.staff_id = Some(officer.staff_id.clone());
    draft.row.role = Some(OFFICER_ROLE.into());
    draft.row.outcome = "answered".into();
    draft.query = Some(query);
    state
        .shared
        .log
        .append(draft.record())
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::error!(error = %e, "audit query could not be recorded; not answered");
            ApiError::DisclosureLogUnavailable
        })
}

async fn search<S: Store>(
    State(state): State<AppState<S>>,
    Extension(client): Extension<ClientIdentity>,
    Extension(Active(active)): Extension<Active>,
    Extension(txn): Extension<TransactionId>,
    auth: Result<Authenticated, ApiError>,
    Query(q): Query<SearchQuery>,
) -> Response {
    let mut draft = Draft::new(&state, &active, "audit-query", &client, &txn);
    match run_search(&state, auth, q, &mut draft).await {
        Ok(r) => r,
        Err(e) => refuse(&state, draft, e).await,
    }
}

async fn run_search<S: Store>(
    state: &AppState<S>,
    auth: Result<Authenticated, ApiError>,
    q: SearchQuery,
    draft: &mut Draft,
) -> Result<Response, ApiError> {
    let Authenticated(req, active) = auth?;
    let who = officer(active.covenant.covenant(), &req)?;
    let s = &state.shared;
    let c = active.covenant.covenant();
    if let Some(p) = &q.product {
        c.product(p)
            .ok_or_else(|| ApiError::ProductUnknown(p.chars().take(64).collect()))?;
    }
    let subject = match &q.subject {
        Some(b) => Some(s.secrets.subject_pseudonym(&parse_bsn(b)?)),
        None => None,
    };
    let filter = LogFilter {
        subject: subject.clone(),
        partner: q.partner.clone(),
        staff_id: q.staff_id.clone(),
        purpose: q.purpose.clone(),
        case_id: q.case.clone(),
        product: q.product.clone(),
        outcome: q.outcome.clone(),
        from: time_param("from", &q.from)?,
        to: time_param("to", &q.to)?,
        visible_to: (who.partner != PROGRAMME_PARTNER).then(|| who.partner.clone()),
        exclude_purposes: Vec::new(),
        after_seq: q.after.unwrap_or(0),
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    // The query as recorded: the filters' names and values, the subject only as its pseudonym.
    draft.row.subject_pseudonym = subject;
    draft.row.case_id = q.case.clone();
    let described = format!(
        "search partner={:?} staff_id={:?} purpose={:?} case={:?} product={:?} outcome={:?} from={:?} to={:?} subject={}",
        q.partner,
        q.staff_id,
        q.purpose,
        q.case,
        q.product,
        q.outcome,
        q.from,
        q.to,
        if q.subject.is_some() {
            "pseudonym"
        } else {
            "-"
        }
    );
    let rows = state.store.search(&filter).await.map_err(ApiError::from)?;
    record_query(state, draft, &who, described).await?;
    let next = rows.last().map(|(seq, _)| *seq);
    if q.format.as_deref() == Some("csv") {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv_of(&rows)?,
        )
            .into_response());
    }
    Ok(Json(json!({
        "items": rows.iter().map(|(seq, r)| item(*seq, r)).collect::<Vec<_>>(),
        "next_after": if rows.len() as i64 == filter.limit { next } else { None },
    }))
    .into_response())
}

/// The GDPR art. 15 report for one subject pseudonym: every disclosure about the person, to whom,
/// when, for which purpose, which fields, on which grounds. Purposes the covenant marks
/// confidential are left out unless `include_confidential`.
pub async fn subject_report<S: Store>(
    store: &S,
    c: &policy::Covenant,
    pseudonym: &str,
    include_confidential: bool,
    visible_to: Option<String>,
) -> Result<Value, ApiError> {
    let hidden: Vec<String> = if include_confidential {
        Vec::new()
    } else {
        c.purposes
            .iter()
            .filter(|u| u.confidential)
            .map(|u| u.id.clone())
            .collect()
    };
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let filter = LogFilter {
            subject: Some(pseudonym.to_owned()),
            visible_to: visible_to.clone(),
            exclude_purposes: hidden.clone(),
            after_seq: after,
            limit: 1000,
            ..LogFilter::default()
        };
        let page = store.search(&filter).await.map_err(ApiError::from)?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        let done = page.len() < 1000;
        rows.extend(
            page.into_iter()
                .filter(|(_, r)| r.kind == "disclosure" || r.kind == "check"),
        );
        if done {
            break;
        }
    }
    // Grounds as the covenant in force names them, by rule id.
    let grounds: BTreeMap<&str, &str> = c
        .rules
        .iter()
        .map(|r| (r.id.as_str(), r.ground.as_str()))
        .collect();
    let entries: Vec<Value> = rows
        .iter()
        .filter(|(_, r)| r.outcome != "refused")
        .map(|(seq, r)| {
            let entry: Value = serde_json::from_str(&r.entry).unwrap_or(Value::Null);
            let mut received = serde_json::Map::new();
            let mut rule_grounds = BTreeMap::new();
            if let Some(m) = entry["products"].as_object() {
                for (p, summary) in m {
                    let mut fields = Vec::new();
                    for kind in ["disclosed", "transformed"] {
                        for f in summary[kind].as_array().into_iter().flatten() {
                            let (name, rule) = (
                                f[0].as_str().unwrap_or_default(),
                                f[1].as_str().unwrap_or_default(),
                            );
                            fields.push(json!({"field": name, "how": kind, "rule": rule}));
                            if let Some(g) = grounds.get(rule) {
                                rule_grounds.insert(rule.to_owned(), (*g).to_owned());
                            }
                        }
                    }
                    if !fields.is_empty() {
                        received.insert(p.clone(), Value::Array(fields));
                    }
                }
            }
            let purpose_name = r
                .purpose
                .as_deref()
                .and_then(|u| c.purpose(u))
                .and_then(|u| c.purposes.get(u.index()))
                .map(|u| u.name.clone());
            json!({
                "seq": seq,
                "at": entry["at"],
                "to": r.partner,
                "role": r.role,
                "purpose": r.purpose,
                "purpose_name": purpose_name,
                "kind": r.kind,
                "data_received": received,
                "legal_grounds": rule_grounds,
            })
        })
        .collect();
    Ok(json!({
        "data_subject": pseudonym,
        "confidential_purposes_left_out": hidden,
        "disclosures": entries,
    }))
}

/// `?confidential=include` also lists purposes the covenant hides from the subject.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectQuery {
    /// `exclude` (default) or `include`.
    #[serde(default)]
    pub confidential: Option<String>,
}

async fn subject<S: Store>(
    State(state): State<AppState<S>>,
    Extension(client): Extension<ClientIdentity>,
    Extension(Active(active)): Extension<Active>,
    Extension(txn): Extension<TransactionId>,
    auth: Result<Authenticated, ApiError>,
    Path(bsn): Path<String>,
    Query(q): Query<SubjectQuery>,
) -> Response {
    let mut draft = Draft::new(&state, &active, "audit-query", &client, &txn);
    match run_subject(&state, auth, &bsn, q, &mut draft).await {
        Ok(r) => r,
        Err(e) => refuse(&state, draft, e).await,
    }
}

async fn run_subject<S: Store>(
    state: &AppState<S>,
    auth: Result<Authenticated, ApiError>,
    bsn: &str,
    q: SubjectQuery,
    draft: &mut Draft,
) -> Result<Response, ApiError> {
    let Authenticated(req, active) = auth?;
    let who = officer(active.covenant.covenant(), &req)?;
    let s = &state.shared;
    let c = active.covenant.covenant();
    let pseudonym = s.secrets.subject_pseudonym(&parse_bsn(bsn)?);
    let include_confidential = match q.confidential.as_deref() {
        None | Some("exclude") => false,
        Some("include") => true,
        Some(_) => {
            return Err(ApiError::InvalidBody(
                "`confidential` is `include` or `exclude`".into(),
            ));
        }
    };
    draft.row.subject_pseudonym = Some(pseudonym.clone());
    let visible_to = (who.partner != PROGRAMME_PARTNER).then(|| who.partner.clone());
    let report = subject_report(
        &state.store,
        c,
        &pseudonym,
        include_confidential,
        visible_to,
    )
    .await?;
    record_query(
        state,
        draft,
        &who,
        format!("subject report confidential={include_confidential}"),
    )
    .await?;
    Ok(Json(report).into_response())
}
