//! Phenomenon-level figures: small cells suppressed (secondary too), rounding, frozen per
//! quarter, only the covenant's views, peers never case level; and the attacks that try.

use crate::helpers::*;
use serde_json::{Value, json};

/// (ideology, risk group, how many cases).
const MIX: [(&str, u8, usize); 6] = [
    ("jihadistisch", 1, 14),
    ("jihadistisch", 3, 12),
    ("rechts-extremistisch", 4, 16),
    ("rechts-extremistisch", 2, 3),
    ("links-extremistisch", 4, 4),
    ("single-issue", 4, 11),
];

/// Valid BSNs that are not used elsewhere: 11-proef search from a start.
fn bsns(n: usize, start: u32) -> Vec<String> {
    (start..)
        .map(|x| format!("{x:09}"))
        .filter(|b| policy::Bsn::parse(b).is_ok())
        .take(n)
        .collect()
}

async fn fill(gw: &Gateway, mix: &[(&str, u8, usize)], start: u32) {
    let total: usize = mix.iter().map(|m| m.2).sum();
    let mut ids = bsns(total, start).into_iter();
    let c = client("politie");
    let mut k = 0;
    for (ideology, group, n) in mix {
        for _ in 0..*n {
            k += 1;
            let t = token("politie", &format!("vp.{}", k % 25), &["voorportaal"]);
            let r = c
                .post(gw.url("/v1/cases"))
                .bearer_auth(t)
                .json(&json!({"subject": {"bsn": ids.next().unwrap()}, "signal_date": "2026-07-01", "risk_group": group, "ideology": ideology}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    }
}

async fn ask(gw: &Gateway, partner: &str, role: &str, view: &str) -> (u16, Value) {
    let r = client(partner)
        .get(gw.url(&format!("/v1/aggregates/{view}")))
        .bearer_auth(token(partner, "an.1", &[role]))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    if s == 200 {
        return (s, decrypt(partner, v["payload"].as_str().unwrap()));
    }
    (s, v)
}

fn row(t: &Value, label: &str) -> usize {
    t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r == label)
        .unwrap()
}
fn col(t: &Value, label: &str) -> usize {
    t["cols"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r == label)
        .unwrap()
}

/// The released table may not let anyone single out a suppressed cell.
fn assert_protected(t: &Value, threshold: u64) {
    let cells: Vec<Vec<Value>> = serde_json::from_value(t["cells"].clone()).unwrap();
    let rt: Vec<Value> = serde_json::from_value(t["row_totals"].clone()).unwrap();
    let ct: Vec<Value> = serde_json::from_value(t["col_totals"].clone()).unwrap();
    for v in cells.iter().flatten().chain(&rt).chain(&ct) {
        if let Some(n) = v.as_u64() {
            assert!(n == 0 || n >= threshold, "a small group is shown: {n}");
            assert_eq!(n % 5, 0, "rounded");
        }
    }
    // Totals minus the visible cells: in every row and column, never exactly one unknown.
    for (i, r) in cells.iter().enumerate() {
        let unknown = r
            .iter()
            .chain(std::iter::once(&rt[i]))
            .filter(|v| v.is_null())
            .count();
        assert_ne!(
            unknown, 1,
            "row {i} has one suppressed entry, recomputable from its total"
        );
    }
    for j in 0..ct.len() {
        let unknown = cells
            .iter()
            .map(|r| &r[j])
            .chain(std::iter::once(&ct[j]))
            .filter(|v| v.is_null())
            .count();
        assert_ne!(
            unknown, 1,
            "column {j} has one suppressed entry, recomputable from its total"
        );
    }
}

#[tokio::test]
async fn the_monitor_gets_protected_frozen_figures_and_peers_only_theirs() {
    let gw = Gateway::start();
    fill(&gw, &MIX, 100_000_000).await;
    let (s, p) = ask(&gw, "oov", "analist", "casussen-ideologie-risicogroep").await;
    assert_eq!(s, 200, "{p}");
    let t = &p["table"];
    assert_eq!(p["threshold"], 10);
    // The small groups are suppressed, the large ones shown (rounded).
    assert!(t["cells"][row(t, "rechts-extremistisch")][col(t, "groep 2")].is_null());
    assert!(t["cells"][row(t, "links-extremistisch")][col(t, "groep 4")].is_null());
    // Secondary suppression hides partners too; with small caseloads, totals carry the message.
    assert_eq!(
        t["row_totals"][row(t, "jihadistisch")],
        25,
        "26 rounded to base 5"
    );
    assert_eq!(t["total"], 60);
    assert_protected(t, 10);

    // Differencing: one more case, asked again in the same quarter: the very same figures.
    fill(&gw, &[("links-extremistisch", 4, 1)], 200_000_000).await;
    let (_, again) = ask(&gw, "oov", "analist", "casussen-ideologie-risicogroep").await;
    assert_eq!(
        again, p,
        "an answer never moves by one person within a period"
    );

    // A peer municipality gets the phenomenon-level view, not the monitor-only ones, never a case.
    let (s, peer) = ask(
        &gw,
        "gemeente-utrecht",
        "peer",
        "casussen-ideologie-risicogroep",
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(peer["table"], p["table"]);
    let (s, v) = ask(
        &gw,
        "gemeente-utrecht",
        "peer",
        "doorlooptijd-melding-besluit",
    )
    .await;
    assert_eq!(
        (s, v["type"].as_str().unwrap()),
        (403, "https://gateway.ipga-r.example/problems/purpose-role")
    );
    let (s, v) = ask(&gw, "oov", "analist", "personen-met-naam").await;
    assert_eq!(
        (s, v["type"].as_str().unwrap()),
        (404, "https://gateway.ipga-r.example/problems/view-unknown")
    );
    // A regisseur has no aggregate purpose at all.
    let (s, _) = ask(&gw, "rn", "regisseur", "casussen-per-status").await;
    assert_eq!(s, 403);
    // Lead times only from groups at or above the threshold (no decisions yet: all suppressed).
    let (s, lt) = ask(&gw, "oov", "analist", "doorlooptijd-melding-besluit").await;
    assert_eq!(s, 200);
    assert!(
        lt["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["median"].is_null())
    );
    // No case id, subject reference or date finer than a quarter in any answer.
    let text = format!("{p}{peer}{lt}");
    assert!(
        !text.contains("case-") && !text.contains("subj-") && !text.contains("2026-07"),
        "{text}"
    );

    // Every aggregate answer is a log entry without subjects.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    let rows: Vec<(String, Option<String>, Option<String>, String)> =
        sqlx::query_as("SELECT partner, purpose, subject_pseudonym, outcome FROM log_records WHERE kind = 'aggregate'").fetch_all(&mut conn).await.unwrap();
    assert!(rows.contains(&(
        "oov".into(),
        Some("monitor".into()),
        None,
        "answered".into()
    )));
    assert!(rows.contains(&(
        "gemeente-utrecht".into(),
        Some("fenomeen".into()),
        None,
        "answered".into()
    )));
    assert!(rows.iter().any(|r| r.3 == "refused"));
    assert!(rows.iter().all(|r| r.2.is_none()));
}

#[tokio::test]
async fn sqlite_and_postgres_release_the_same_table() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let a = Gateway::start();
    let b = Gateway::start_with(&url, &[]);
    let mix = [
        ("jihadistisch", 1, 11),
        ("rechts-extremistisch", 4, 5),
        ("single-issue", 3, 12),
    ];
    fill(&a, &mix, 300_000_000).await;
    fill(&b, &mix, 300_000_000).await;
    for view in ["casussen-ideologie-risicogroep", "casussen-per-status"] {
        let (_, x) = ask(&a, "oov", "analist", view).await;
        let (_, y) = ask(&b, "oov", "analist", view).await;
        assert_eq!(x["table"], y["table"], "{view}");
        assert_protected(&x["table"], 10);
    }
}

#[tokio::test]
async fn every_view_answers_on_an_empty_register_and_on_one_without_closed_cases() {
    let views: Vec<String> =
        policy::compile_toml(&std::fs::read_to_string(covenant_path()).unwrap())
            .unwrap()
            .covenant()
            .aggregates
            .views
            .iter()
            .map(|v| v.id.clone())
            .collect();
    assert!(views.iter().any(|v| v == "uitstroom-per-kwartaal"));
    // Empty: no case at all.
    let empty = Gateway::start();
    for view in &views {
        let (s, v) = ask(&empty, "oov", "analist", view).await;
        assert_eq!(s, 200, "{view} on an empty register: {v}");
    }
    // One case, never included nor closed: the inflow and outflow views have no quarter.
    let one = Gateway::start();
    let r = client("politie")
        .post(one.url("/v1/cases"))
        .bearer_auth(token("politie", "vp.1", &["voorportaal"]))
        .json(&json!({"subject": {"bsn": "999993331"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for view in &views {
        let (s, v) = ask(&one, "oov", "analist", view).await;
        assert_eq!(s, 200, "{view}: {v}");
    }
}
