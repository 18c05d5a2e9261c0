//! Aggregate views: phenomenon-level figures for the monitor and peer municipalities.
//! Only the covenant's views can be asked; small cells are suppressed (with secondary
//! suppression), every number is rounded, and each view's answer is frozen per calendar quarter,
//! so that two answers never differ by one person's change. No case id, subject, date finer than
//! a quarter or district ever appears. Every answer is logged and encrypted to the requester.

use super::{Call, clip};
use crate::app::App;
use crate::refusal::Refusal;
use crate::store::CaseFacts;
use policy::covenant::{Aggregates, Dimension, Measure, View};
use policy::domain::{CaseStatus, Ideology, parse_date};
use policy::sdc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The calendar quarter of a date, `2026-Q4`.
pub fn quarter(d: time::Date) -> String {
    format!("{}-Q{}", d.year(), (u8::from(d.month()) - 1) / 3 + 1)
}

/// How many quarters a quarter dimension lists, ending with the current one; older cases are
/// counted under [`EARLIER`].
pub const QUARTERS: usize = 8;

/// The category of cases older than the listed quarters.
pub const EARLIER: &str = "eerder";

/// The [`QUARTERS`] quarters ending with the one of `today`, oldest first, then [`EARLIER`]:
/// the same rows in every answer, whatever the cases.
fn quarter_range(today: time::Date) -> Vec<String> {
    let (mut y, mut q) = (today.year(), (u8::from(today.month()) - 1) / 3 + 1);
    let mut v = Vec::with_capacity(QUARTERS + 1);
    for _ in 0..QUARTERS {
        v.push(format!("{y}-Q{q}"));
        if q == 1 {
            (y, q) = (y - 1, 4);
        } else {
            q -= 1;
        }
    }
    v.reverse();
    v.push(EARLIER.to_owned());
    v
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

/// Every category of a dimension, shown even when empty, so that the table's shape says nothing:
/// the quarter dimensions list a fixed range ending with `today`'s quarter.
fn categories(d: Dimension, today: time::Date) -> Vec<String> {
    match d {
        Dimension::Ideology => Ideology::ALL.iter().map(|i| i.to_string()).collect(),
        Dimension::RiskGroup => (1..=5)
            .map(|g| format!("groep {g}"))
            .chain(["onbekend".to_owned()])
            .collect(),
        Dimension::Status => CaseStatus::ALL.iter().map(|s| s.to_string()).collect(),
        Dimension::InflowQuarter | Dimension::OutflowQuarter => quarter_range(today),
    }
}

/// Where a case goes among `cats`: its label, or [`EARLIER`] for a quarter before the range.
fn position(d: Dimension, f: &CaseFacts, cats: &[String]) -> Option<usize> {
    let l = label(d, f)?;
    cats.iter().position(|x| *x == l).or_else(|| {
        let first = cats.first()?;
        // `YYYY-Qn` labels order as text; a later quarter (a date in the future) is left out.
        (matches!(d, Dimension::InflowQuarter | Dimension::OutflowQuarter) && l < *first)
            .then(|| cats.iter().position(|x| x == EARLIER))
            .flatten()
    })
}

/// Computes a view's released figures.
pub fn compute(view: &View, agg: &Aggregates, facts: &[CaseFacts], today: time::Date) -> Value {
    let (t, base) = (agg.threshold, agg.rounding);
    match view.measure {
        Measure::Count => {
            let rows_dim = view.dimensions.first().copied();
            let cols_dim = view.dimensions.get(1).copied();
            let rows = rows_dim.map_or_else(
                || vec!["alle casussen".to_owned()],
                |d| categories(d, today),
            );
            let cols = cols_dim.map_or_else(|| vec!["aantal".to_owned()], |d| categories(d, today));
            let mut cells = vec![vec![0u64; cols.len()]; rows.len()];
            for f in facts {
                let r = match rows_dim {
                    Some(d) => position(d, f, &rows),
                    None => Some(0),
                };
                let c = match cols_dim {
                    Some(d) => position(d, f, &cols),
                    None => Some(0),
                };
                if let (Some(r), Some(c)) = (r, c)
                    && let Some(x) = cells.get_mut(r).and_then(|row| row.get_mut(c))
                {
                    *x += 1;
                }
            }
            json!({ "table": sdc::release(rows, cols, &cells, t, base) })
        }
        Measure::LeadTimeWeeks => {
            let dim = view.dimensions.first().copied();
            let mut groups: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            let cats = dim.map(|d| categories(d, today)).unwrap_or_default();
            for c in &cats {
                groups.entry(c.clone()).or_default();
            }
            for f in facts {
                let (Some(signal), Some(decided)) = (
                    f.signal_date.as_deref().and_then(parse_date),
                    inclusion_date(f),
                ) else {
                    continue;
                };
                let weeks = u64::try_from((decided - signal).whole_weeks()).unwrap_or(0);
                let key = match dim {
                    Some(d) => match position(d, f, &cats).and_then(|i| cats.get(i)) {
                        Some(c) => c.clone(),
                        None => continue,
                    },
                    None => "alle casussen".into(),
                };
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

/// Answers an aggregate view: the frozen figures of this quarter, encrypted to the requester.
pub async fn aggregate(app: &App, call: &mut Call, view_id: &str) -> Result<Value, Refusal> {
    let active = call.policy.clone();
    let cc = &active.covenant;
    let c = cc.covenant();
    let req = call.requester.clone();
    call.record.query = Some(format!("view {}", clip(view_id, 64)));
    let view = c
        .aggregates
        .view(view_id)
        .ok_or_else(|| Refusal::ViewUnknown(clip(view_id, 64)))?;
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
            Refusal::PurposeRole(
                view.id.clone(),
                format!("the roles of purpose(s) {}", open.join(", ")),
            )
        })?;
    call.record.processing_activity = Some(purpose.id.clone());
    call.record.role = call.role_id(role);
    let period = quarter(app.clock.today());
    let body = match app.db.release(&view.id, &period).await? {
        Some(b) => b,
        None => {
            let facts = app.db.case_facts().await?;
            let mut figures = compute(view, &c.aggregates, &facts, app.clock.today());
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
            let body = serde_json::to_string(&figures).map_err(|_| Refusal::Internal)?;
            app.db
                .put_release(&view.id, &period, &body, app.clock.now())
                .await?
        }
    };
    let keys = active
        .registry
        .partner(req.partner)
        .ok_or(Refusal::Internal)?;
    let armored =
        age::encrypt_and_armor(&keys.recipient, body.as_bytes()).map_err(|_| Refusal::Internal)?;
    call.record.ciphertext_sha256 = Some(hex::encode(Sha256::digest(armored.as_bytes())));
    let appended = call.commit(app).await?;
    Ok(json!({
        "disclosure_id": call.record.id,
        "audit_seq": appended.seq,
        "audit_leaf_hash": hex::encode(appended.leaf_hash),
        "audit_receipt": app.receipt(&appended),
        "view": view.id,
        "period": period,
        "policy_version": cc.version().as_str(),
        "recipient": keys.recipient.to_string(),
        "payload": armored,
    }))
}

/// Included cases whose person has not been notified `days` after the inclusion decision (the
/// decision date, else the day the case became `opgenomen`): the covenant's notification duty
/// (issue 31). Counts only; which cases, the case register says to those who may read it.
pub fn notifications_overdue(facts: &[CaseFacts], days: u32, today: time::Date) -> usize {
    let included = ["opgenomen", "plan", "uitvoering", "statisch", "afbouw"];
    facts
        .iter()
        .filter(|f| included.contains(&f.status.as_str()) && f.notification_date.is_none())
        .filter_map(|f| {
            f.decision_date.as_deref().and_then(parse_date).or_else(|| {
                f.included_at
                    .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                    .map(|t| t.date())
            })
        })
        .filter(|decided| (today - *decided).whole_days() > i64::from(days))
        .count()
}

/// Sets `gateway_case_notifications_overdue` from the case register under the active covenant.
pub async fn measure_notifications(app: &App) -> Result<(), crate::store::StoreError> {
    let days = app
        .policy
        .load()
        .covenant
        .covenant()
        .case_register
        .notification_days;
    let overdue = match days {
        Some(d) => notifications_overdue(&app.db.case_facts().await?, d, app.clock.today()),
        None => 0,
    };
    crate::metrics::metrics()
        .case_notifications_overdue
        .set(i64::try_from(overdue).unwrap_or(i64::MAX));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overdue_counts_included_cases_without_a_letter_past_the_period() {
        let d = |s: &str| parse_date(s).unwrap();
        let fact = |status: &str, decided: Option<&str>, sent: Option<&str>| CaseFacts {
            status: status.into(),
            risk_group: None,
            ideology: None,
            signal_date: None,
            decision_date: decided.map(str::to_owned),
            notification_date: sent.map(str::to_owned),
            included_at: None,
            closed_at: None,
        };
        let facts = [
            fact("plan", Some("2026-11-01"), None), // overdue
            fact("uitvoering", Some("2026-11-01"), Some("2026-11-10")), // sent
            fact("opgenomen", Some("2026-11-25"), None), // within 21 days
            fact("afgesloten", Some("2026-10-01"), None), // over
            fact("duiding", None, None),            // not included
        ];
        assert_eq!(notifications_overdue(&facts, 21, d("2026-12-01")), 1);
        assert_eq!(notifications_overdue(&facts, 21, d("2026-12-17")), 2);
    }

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

    /// Issue 41, finding 6: a quarter's row appeared once one case had a decision date in it.
    /// Now the rows are the same whatever the cases; an old case counts under `eerder`.
    #[test]
    fn a_quarter_table_has_the_same_rows_whatever_the_cases() {
        let view = View {
            id: "instroom".into(),
            name: "Instroom".into(),
            purposes: vec![],
            dimensions: vec![Dimension::InflowQuarter],
            measure: Measure::Count,
        };
        let agg = Aggregates {
            threshold: 1,
            rounding: 1,
            views: vec![],
        };
        let today = time::Date::from_calendar_date(2026, time::Month::December, 7).unwrap();
        let case = |decided: &str| CaseFacts {
            status: "opgenomen".into(),
            risk_group: None,
            ideology: None,
            signal_date: None,
            decision_date: Some(decided.into()),
            notification_date: None,
            included_at: None,
            closed_at: None,
        };
        let rows =
            |facts: &[CaseFacts]| compute(&view, &agg, facts, today)["table"]["rows"].clone();
        let none = rows(&[]);
        assert_eq!(none, rows(&[case("2026-11-02")]));
        assert_eq!(none, rows(&[case("2019-01-10"), case("2025-03-01")]));
        let labels: Vec<&str> = none
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(labels.first(), Some(&"2025-Q1"));
        assert_eq!(labels.get(7), Some(&"2026-Q4"));
        assert_eq!(labels.last(), Some(&EARLIER));
    }
}

#[cfg(test)]
mod frozen_tests {
    use super::*;
    use crate::log::entry::Kind;
    use crate::testkit;

    fn figures(v: &Value) -> Value {
        testkit::decrypt("oov", v["payload"].as_str().unwrap())
    }

    #[tokio::test]
    async fn answers_are_frozen_within_a_quarter_and_move_at_its_boundary() {
        let (app, clock) = testkit::app().await;
        clock.set(1_798_761_540); // 2026-12-31 23:59 UTC
        let ask = |app: &App| testkit::call(app, Kind::Aggregate, "oov", "an.1", &["analist"]);
        let mut c = ask(&app);
        let before = aggregate(&app, &mut c, "casussen-per-status")
            .await
            .unwrap();
        assert_eq!(before["period"], "2026-Q4");
        // A case registered now does not change this quarter's figures...
        for bsn in ["999993331", "999992223"] {
            testkit::register(&app, bsn).await;
        }
        let mut c = ask(&app);
        let again = aggregate(&app, &mut c, "casussen-per-status")
            .await
            .unwrap();
        assert_eq!(figures(&before)["table"], figures(&again)["table"]);
        // ...the next quarter's do (the clock, not a wait).
        clock.set(1_798_761_600); // 2027-01-01 00:00 UTC
        let mut c = ask(&app);
        let next = aggregate(&app, &mut c, "casussen-per-status")
            .await
            .unwrap();
        assert_eq!(next["period"], "2027-Q1");
        assert_ne!(
            figures(&before)["table"]["total"],
            figures(&next)["table"]["total"]
        );
    }
}
