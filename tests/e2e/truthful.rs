//! The log never describes a step that did not happen, and no step happens without its entry:
//! a state change and its log entry commit in one transaction. Failures are injected between
//! the two (a trigger that makes one of the writes fail) on a real gateway.

use crate::helpers::*;
use serde_json::{Value, json};

async fn exec(url: &str, sql: &str) {
    gateway::store::Db::connect(url)
        .await
        .unwrap()
        .execute_unchecked(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn rows(url: &str, sql: &str) -> Vec<(String, Option<String>, String)> {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut c)
        .await
        .unwrap()
}

async fn count(url: &str, sql: &str) -> i64 {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut c)
        .await
        .unwrap()
}

fn verified(url: &str) {
    let out = std::process::Command::new(BIN)
        .args([
            "audit",
            "verify",
            "--config",
            pki().join("gateway.toml").to_str().unwrap(),
            "--database-url",
            url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the log writer is up again after a fault.
async fn resumed(gw: &Gateway) {
    let t0 = std::time::Instant::now();
    while crate::disclose::writer_check(gw).await != Some(true) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "the writer did not resume"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_case_change_and_its_entry_commit_together_or_not_at_all() {
    let gw = Gateway::start();
    let url = gw.database_url.clone();
    let c = client("politie");
    let t = token("politie", "vp.1", &["voorportaal"]);
    let case: Value = c
        .post(gw.url("/v1/cases"))
        .bearer_auth(&t)
        .json(&json!({"subject": {"bsn": "999993331"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = case["id"].as_str().unwrap().to_owned();
    let patch = || {
        c.patch(gw.url(&format!("/v1/cases/{id}")))
            .bearer_auth(&t)
            .json(&json!({"status": "duiding"}))
            .send()
    };

    // 1. The entry cannot be written: the change is not made either.
    exec(&url, "CREATE TRIGGER fail_entry BEFORE INSERT ON log_records WHEN NEW.kind = 'case-change' AND NEW.outcome = 'answered' BEGIN SELECT RAISE(ABORT, 'injected'); END").await;
    problem(patch().await.unwrap(), 503, "disclosure-log-unavailable").await;
    assert_eq!(
        count(
            &url,
            &format!("SELECT version FROM cases WHERE id = '{id}'")
        )
        .await,
        1,
        "the case did not change"
    );
    assert_eq!(
        count(
            &url,
            &format!("SELECT COUNT(*) FROM case_events WHERE case_id = '{id}'")
        )
        .await,
        1
    );
    exec(&url, "DROP TRIGGER fail_entry").await;
    // The writer resumes by itself (it writes the log-outage entry first).
    resumed(&gw).await;

    // 2. The change cannot be made: the log has no entry describing it, only the refusal.
    exec(&url, "CREATE TRIGGER fail_change BEFORE INSERT ON case_events BEGIN SELECT RAISE(ABORT, 'injected'); END").await;
    problem(patch().await.unwrap(), 503, "disclosure-log-unavailable").await;
    assert_eq!(
        count(
            &url,
            &format!("SELECT version FROM cases WHERE id = '{id}'")
        )
        .await,
        1,
        "the case did not change"
    );
    let changes = rows(&url, &format!("SELECT outcome, problem, entry FROM log_records WHERE kind = 'case-change' AND case_id = '{id}' ORDER BY seq")).await;
    let outcomes: Vec<(&str, Option<&str>)> = changes
        .iter()
        .map(|(o, p, _)| (o.as_str(), p.as_deref()))
        .collect();
    exec(&url, "DROP TRIGGER fail_change").await;
    resumed(&gw).await;
    assert_eq!(
        outcomes,
        vec![("answered", None)],
        "the registration; never an answered change that did not happen"
    );
    // The two refusals could not be written while the batch failed: each is counted in a
    // log-outage entry the writer wrote when it resumed (a count made as the first outage
    // ended goes into the next entry, written right after).
    let t0 = std::time::Instant::now();
    loop {
        let outages = rows(
            &url,
            "SELECT outcome, problem, entry FROM log_records WHERE kind = 'log-outage' ORDER BY seq",
        )
        .await;
        let counted: u64 = outages
            .iter()
            .flat_map(|(_, _, e)| {
                let v: Value = serde_json::from_str(e).unwrap();
                v["log_outage"]["unrecorded_refusals"]
                    .as_array()
                    .unwrap()
                    .clone()
            })
            .filter(|u| u["kind"] == "case-change" && u["problem"] == "disclosure-log-unavailable")
            .map(|u| u["count"].as_u64().unwrap())
            .sum();
        if counted == 2 || t0.elapsed() > std::time::Duration::from_secs(5) {
            assert!(outages.len() >= 2, "{outages:?}");
            assert_eq!(counted, 2, "{outages:?}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // 3. Working again: the change and its entry, once, with the version it produced.
    let r = patch().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["version"], 2);
    let last = rows(&url, &format!("SELECT outcome, problem, entry FROM log_records WHERE kind = 'case-change' AND case_id = '{id}' ORDER BY seq DESC LIMIT 1")).await;
    let e: Value = serde_json::from_str(&last[0].2).unwrap();
    assert_eq!(e["outcome"], "answered");
    assert_eq!(e["case_change"]["version"], 2);
    assert_eq!(e["case_change"]["status"], "duiding");
    assert_eq!(e["case_change"]["previous_status"], "melding");
    assert_eq!(
        v["audit_seq"].as_i64(),
        Some(
            count(
                &url,
                "SELECT MAX(seq) FROM log_records WHERE kind = 'case-change'"
            )
            .await
        )
    );
    verified(&url);
}

#[tokio::test]
async fn a_policy_step_that_fails_is_never_logged_as_done() {
    let gw = Gateway::start();
    let url = gw.database_url.clone();
    let admin = |staff: &'static str, path: String, body: Option<String>| {
        let gw = &gw;
        async move {
            let mut r =
                client("oov")
                    .post(gw.url(&path))
                    .bearer_auth(token("oov", staff, &["beheerder"]));
            if let Some(b) = body {
                r = r.header("content-type", "application/toml").body(b);
            }
            let r = r.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let text = std::fs::read_to_string(covenant_path())
        .unwrap()
        .replace("title = \"", "title = \"Gewijzigd: ");
    // The draft cannot be stored: no draft, and no entry saying it was.
    exec(&url, "CREATE TRIGGER fail_draft BEFORE INSERT ON policy_drafts BEGIN SELECT RAISE(ABORT, 'injected'); END").await;
    let (s, _) = admin(
        "beheerder-1",
        "/v1/policy/drafts".into(),
        Some(text.clone()),
    )
    .await;
    assert_eq!(s, 503);
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM policy_drafts").await,
        1,
        "only the bootstrap"
    );
    exec(&url, "DROP TRIGGER fail_draft").await;
    // The writer resumes by itself (it writes the log-outage entry first).
    resumed(&gw).await;
    let (s, d) = admin("beheerder-1", "/v1/policy/drafts".into(), Some(text)).await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_owned();
    let (s, _) = admin(
        "beheerder-2",
        format!("/v1/policy/drafts/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    sign_all(&gw, &id).await;
    // The activation cannot be stored: the version stays, and the log has no activation.
    exec(&url, "CREATE TRIGGER fail_activation BEFORE UPDATE ON policy_state BEGIN SELECT RAISE(ABORT, 'injected'); END").await;
    let (s, _) = admin(
        "beheerder-1",
        format!("/v1/policy/drafts/{id}/activate"),
        None,
    )
    .await;
    assert_eq!(s, 503);
    resumed(&gw).await;
    let status: Value = client("oov")
        .get(gw.url("/v1/policy"))
        .bearer_auth(token("oov", "beheerder-1", &["beheerder"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["kind"], "bootstrap",
        "still the first version: {status}"
    );
    let steps = rows(
        &url,
        "SELECT outcome, problem, entry FROM log_records WHERE kind = 'policy' ORDER BY seq",
    )
    .await;
    let done: Vec<String> = steps
        .iter()
        .filter(|(o, _, _)| o == "answered")
        .map(|(_, _, e)| {
            serde_json::from_str::<Value>(e).unwrap()["policy_change"]["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let signed = ["sign"; CORE.len()];
    let expected: Vec<&str> = ["bootstrap", "draft", "approve"]
        .into_iter()
        .chain(signed)
        .collect();
    assert_eq!(done, expected, "no activation on the record");
    exec(&url, "DROP TRIGGER fail_activation").await;
    resumed(&gw).await;
    let (s, v) = admin(
        "beheerder-1",
        format!("/v1/policy/drafts/{id}/activate"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    verified(&url);
}
