//! One story against both storage backends: the same calls, the same results.

use crate::helpers::*;
use gateway::store::{CaseEventRow, CaseRow, Store, postgres::PgStore, sqlite::SqliteStore};

fn case(id: &str, pseudonym: &str) -> CaseRow {
    CaseRow {
        id: id.into(),
        subject_ref: format!("subj-{id}"),
        subject_pseudonym: pseudonym.into(),
        subject_sealed: vec![1, 2, 3, 0, 255],
        status: "melding".into(),
        risk_group: Some(3),
        ideology: Some("jihadistisch".into()),
        regisseur_partner: None,
        regisseur_staff: None,
        uvo_partners: "[]".into(),
        signal_date: Some("2026-01-02".into()),
        decision_date: None,
        notification_date: None,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
        version: 1,
    }
}

fn event(c: &CaseRow, action: &str) -> CaseEventRow {
    CaseEventRow {
        case_id: c.id.clone(),
        version: c.version,
        at: c.updated_at,
        partner: "politie".into(),
        staff_id: "p1".into(),
        role: "voorportaal".into(),
        action: action.into(),
        fields: "[\"status\"]".into(),
        status: Some(c.status.clone()),
    }
}

async fn story<S: Store>(store: S) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap(); // idempotent
    store.ping().await.unwrap();
    let a = case("case-a", "pseudo-a");
    store.create_case(&a, &event(&a, "created")).await.unwrap();
    assert_eq!(store.get_case("case-a").await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_case("case-b").await.unwrap(), None);
    assert_eq!(
        store.subject_ref("pseudo-a").await.unwrap(),
        Some("subj-case-a".into())
    );
    assert_eq!(store.subject_ref("pseudo-x").await.unwrap(), None);

    let mut b = a.clone();
    b.status = "duiding".into();
    b.regisseur_partner = Some("rn".into());
    b.regisseur_staff = Some("r1".into());
    b.version = 2;
    b.updated_at += 60;
    assert!(
        store
            .update_case(&b, 1, &event(&b, "updated"))
            .await
            .unwrap()
    );
    // A writer that read version 1 loses, and changes nothing.
    let mut stale = a.clone();
    stale.status = "niet-opgenomen".into();
    stale.version = 2;
    assert!(
        !store
            .update_case(&stale, 1, &event(&stale, "updated"))
            .await
            .unwrap()
    );
    assert_eq!(store.get_case("case-a").await.unwrap(), Some(b.clone()));
    let events = store.case_events("case-a").await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.version, e.action.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "created"), (2, "updated")]
    );
    // The event's primary key refuses a second event for the same version.
    assert!(store.create_case(&a, &event(&a, "created")).await.is_err());
}

#[tokio::test]
async fn story_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("gateway-e2e-story-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!(
        "sqlite://{}",
        dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()))
            .display()
    );
    story(SqliteStore::connect(&url).await.unwrap()).await;
}

#[tokio::test]
async fn story_on_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    story(PgStore::connect(&url).await.unwrap()).await;
}

#[tokio::test]
async fn the_gateway_serves_cases_from_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let gw = Gateway::start_with(&url, &[]);
    let c = client("oov");
    let t = token("oov", "vp.1", &["voorportaal"]);
    let r = c
        .post(gw.url("/v1/cases"))
        .bearer_auth(&t)
        .json(&serde_json::json!({"subject": {"bsn": "111222333"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    let r = c
        .get(gw.url(&format!("/v1/cases/{}", v["id"].as_str().unwrap())))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h: serde_json::Value = reqwest::get(format!("http://{}/readyz", gw.health))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ready");
}
