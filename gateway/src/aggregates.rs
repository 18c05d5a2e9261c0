//! `GET /v1/aggregates/{view}`: phenomenon-level figures for the monitor and peer municipalities.
//! Only the covenant's views can be asked; small cells are suppressed (with secondary
//! suppression), every number is rounded, and each view's answer is frozen per calendar quarter,
//! so that two answers never differ by one person's change. No case id, subject, date finer than
//! a quarter or district ever appears. Every answer is logged and encrypted to the requester.

use crate::disclose::{Draft, refuse};
use crate::problem::ApiError;
use crate::registry::ClientIdentity;
use crate::server::{Active, AppState, Authenticated, TransactionId};
use crate::store::{CaseFacts, Store};
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use policy::covenant::{Aggregates, Dimension, Measure, View};
use policy::domain::{CaseStatus, Ideology, parse_date};
use policy::sdc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Routes of the aggregate views.
pub fn routes<S: Store>() -> Router<AppState<S>> {
    Router::new().route("/v1/aggregates/{view}", get(aggregate::<S>))
}

/// The calendar quarter of a date, `2026-Q4`.
pub fn quarter(d: time::Date) -> String {
    format!("{}-Q{}", d.year(), (u8::from(d.month()) - 1) / 3 + 1)
}

fn quarter_of_epoch(t: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .map(|t| quarter(t.date()))
}

fn inclusion_date(f: &CaseFacts) -> Option<time::Date> {
    f.decision_date.as_deref().and_then(parse_date).or_else(|| {
        f.included_at
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .map(|t| t.date())
    })
}

/// The label of a case on a dimension; `None` leaves the case out of that view.
fn label(d: Dimension, f: &CaseFacts) -> Option<String> {
    match d {
        Dimension::Ideology => Some(f.ideology.clone().unwrap_or_else(|| "onbekend".into())),
        Dimension::RiskGroup => Some(
            f.risk_group
                .map_or_else(|| "onbekend".into(), |g| format!("groep {g}")),
        ),
        Dimension::Status => Some(f.status.clone()),
        Dimension::InflowQuarter => inclusion_date(f).map(quarter),
        Dimension::OutflowQuarter => f.closed_at.and_then(quarter_of_epoch),
    }
}

/// Every category of a dimension, shown even when empty, so that the table's shape says nothing.
fn categories(d: Dimension, facts: &[CaseFacts]) -> Vec<String> {
    match d {
        Dimension::Ideology => Ideology::ALL.iter().map(|i| i.to_string()).collect(),
        Dimension::RiskGroup => (1..=5)
            .map(|g| format!("groep {g}"))
            .chain(["onbekend".to_owned()])
            .collect(),
        Dimension::Status => CaseStatus::ALL.iter().map(|s| s.to_string()).collect(),
        _ => {
            let mut v: Vec<String> = facts.iter().filter_map(|f| label(d, f)).collect();
            v.sort();
            v.dedup();
            v
        }
    }
}

/// Computes a view's released figures.
pub fn compute(view: &View, agg: &Aggregates, facts: &[CaseFacts]) -> Value {
    let (t, base) = (agg.threshold, agg.rounding);
    match view.measure {
        Measure::Count => {
            let rows_dim = view.dimensions.first().copied();
            let cols_dim = view.dimensions.get(1).copied();
            let rows = rows_dim.map_or_else(
                || vec!["alle casussen".to_owned()],
                |d| categories(d, facts),
            );
            let cols = cols_dim.map_or_else(|| vec!["aantal".to_owned()], |d| categories(d, facts));
            let mut cells = vec![vec![0u64; cols.len()]; rows.len()];
            for f in facts {
                let r = match rows_dim {
                    Some(d) => label(d, f).and_then(|l| rows.iter().position(|x| *x == l)),
                    None => Some(0),
                };
                let c = match cols_dim {
                    Some(d) => label(d, f).and_then(|l| cols.iter().position(|x| *x == l)),
                    None => Some(0),
                };
                if let (Some(r), Some(c)) = (r, c) {
                    cells[r][c] += 1;
                }
            }
            json!({ "table": sdc::release(rows, cols, &cells, t, base) })
        }
        Measure::LeadTimeWeeks => {
            let dim = view.dimensions.first().copied();
            let mut groups: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            if let Some(d) = dim {
                for c in categories(d, facts) {
                    groups.entry(c).or_default();
                }
            }
            for f in facts {
                let (Some(signal), Some(decided)) = (
                    f.signal_date.as_deref().and_then(parse_date),
                    inclusion_date(f),
                ) else {
                    continue;
                };
                let weeks = u64::try_from((decided - signal).whole_weeks()).unwrap_or(0);
                let key = dim
                    .and_then(|d| label(d, f))
                    .unwrap_or_else(|| "alle casussen".into());
                groups.entry(key).or_default().push(weeks);
            }
            let rows: Vec<Value> = groups
                .into_iter()
                .map(|(group, mut weeks)| match sdc::quartiles(&mut weeks, t) {
                    Some((q1, median, q3)) => json!({"group": group, "cases": sdc::round(weeks.len() as u64, base), "q1": q1, "median": median, "q3": q3}),
                    None => json!({"group": group, "cases": null, "q1": null, "median": null, "q3": null}),
                })
                .collect();
            json!({ "groups": rows })
        }
    }
}

async fn aggregate<S: Store>(
    State(state): State<AppState<S>>,
    Extension(client): Extension<ClientIdentity>,
    Extension(Active(active)): Extension<Active>,
    Extension(txn): Extension<TransactionId>,
    auth: Result<Authenticated, ApiError>,
    Path(view_id): Path<String>,
) -> Response {
    let mut draft = Draft::new(&state, &active, "aggregate", &client, &txn);
    draft.query = Some(format!(
        "view {}",
        view_id.chars().take(64).collect::<String>()
    ));
    match run(&state, auth, &view_id, &mut draft).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => refuse(&state, draft, e).await,
    }
}

async fn run<S: Store>(
    state: &AppState<S>,
    auth: Result<Authenticated, ApiError>,
    view_id: &str,
    draft: &mut Draft,
) -> Result<Value, ApiError> {
    let Authenticated(req, active) = auth?;
    draft.row.staff_id = Some(req.staff_id.clone());
    let s = &state.shared;
    let cc = &active.covenant;
    let c = cc.covenant();
    s.limiter.check(&req)?;
    let view = c
        .aggregates
        .view(view_id)
        .ok_or_else(|| ApiError::ViewUnknown(view_id.chars().take(64).collect()))?;
    // The purpose: an aggregate purpose of the view that one of the requester's roles may use.
    let (purpose, role) = c
        .purposes
        .iter()
        .enumerate()
        .filter(|(i, _)| view.purposes.get(*i).copied().unwrap_or(false))
        .find_map(|(_, u)| {
            req.roles
                .iter()
                .find(|r| u.roles.get(r.index()).copied().unwrap_or(false))
                .map(|r| (u, *r))
        })
        .ok_or_else(|| {
            let open: Vec<&str> = c
                .purposes
                .iter()
                .zip(&view.purposes)
                .filter(|(_, on)| **on)
                .map(|(u, _)| u.id.as_str())
                .collect();
            ApiError::PurposeRole(
                view.id.clone(),
                format!("the roles of purpose(s) {}", open.join(", ")),
            )
        })?;
    draft.row.purpose = Some(purpose.id.clone());
    draft.row.role = c.roles.get(role.index()).map(|r| r.id.clone());
    let period = quarter(s.clock.today());
    let body = match state
        .store
        .release(&view.id, &period)
        .await
        .map_err(ApiError::from)?
    {
        Some(b) => b,
        None => {
            let facts = state.store.case_facts().await.map_err(ApiError::from)?;
            let mut figures = compute(view, &c.aggregates, &facts);
            if let Value::Object(m) = &mut figures {
                m.insert("view".into(), json!(view.id));
                m.insert("name".into(), json!(view.name));
                m.insert("period".into(), json!(period));
                m.insert("threshold".into(), json!(c.aggregates.threshold));
                m.insert("rounding".into(), json!(c.aggregates.rounding));
                m.insert("policy_version".into(), json!(cc.version().as_str()));
                m.insert(
                    "note".into(),
                    json!("Groups smaller than the threshold are suppressed (null), with secondary suppression so that none can be recomputed from totals; every number is rounded; the figures are frozen for the quarter."),
                );
            }
            let body = serde_json::to_string(&figures).map_err(|_| ApiError::Internal)?;
            state
                .store
                .put_release(&view.id, &period, &body, s.clock.now())
                .await
                .map_err(ApiError::from)?
        }
    };
    let keys = active
        .registry
        .partner(req.partner)
        .ok_or(ApiError::Internal)?;
    let armored =
        age::encrypt_and_armor(&keys.recipient, body.as_bytes()).map_err(|_| ApiError::Internal)?;
    draft.row.ciphertext_sha256 = Some(hex::encode(Sha256::digest(armored.as_bytes())));
    draft.row.outcome = "answered".into();
    let appended = s.log.append(draft.record()).await.map_err(|e| {
        tracing::error!(error = %e, "aggregate record could not be written; nothing released");
        ApiError::DisclosureLogUnavailable
    })?;
    Ok(json!({
        "disclosure_id": draft.row.id,
        "audit_seq": appended.seq,
        "audit_leaf_hash": appended.leaf_hash,
        "view": view.id,
        "period": period,
        "policy_version": cc.version().as_str(),
        "recipient": keys.recipient.to_string(),
        "payload": armored,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarters() {
        let d = |y, m, day| {
            time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), day).unwrap()
        };
        assert_eq!(quarter(d(2026, 1, 1)), "2026-Q1");
        assert_eq!(quarter(d(2026, 3, 31)), "2026-Q1");
        assert_eq!(quarter(d(2026, 4, 1)), "2026-Q2");
        assert_eq!(quarter(d(2026, 12, 31)), "2026-Q4");
    }
}
