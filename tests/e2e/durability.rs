//! Group commit under load: one gap-free log from two instances on one PostgreSQL, and no
//! received answer without its entry after `kill -9`.

use crate::helpers::*;
use futures::StreamExt;
use serde_json::{Value, json};

async fn check(gw_url: String, c: reqwest::Client, t: String) -> Option<Value> {
    let r = c
        .post(format!("{gw_url}/v1/checks"))
        .bearer_auth(t)
        .json(&json!({"subject": {"bsn": "111222333"}, "purpose": "aanpak-check"}))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json().await.ok()
}

pub(crate) fn verify_ok(database_url: &str) {
    let out = std::process::Command::new(BIN)
        .args([
            "audit",
            "verify",
            "--config",
            pki().join("gateway.toml").to_str().unwrap(),
            "--database-url",
            database_url,
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
}

#[tokio::test]
async fn two_instances_on_one_postgres_write_one_gap_free_log() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let a = Gateway::start_with(&url, &[]);
    let b = Gateway::start_with(&url, &[]);
    let (ca, cb) = (client("oov"), client("oov"));
    // Many staff ids, as real load has them (one staff id would hit its rate limit).
    let mut calls = futures::stream::FuturesUnordered::new();
    for i in 0..120 {
        let (gw, c) = if i % 2 == 0 { (&a, &ca) } else { (&b, &cb) };
        calls.push(check(
            format!("https://{}", gw.api),
            c.clone(),
            token("oov", &format!("map.{}", i % 20), &["melder-intake"]),
        ));
    }
    let mut seqs = Vec::new();
    while let Some(answer) = calls.next().await {
        seqs.push(
            answer.expect("every check is answered")["audit_seq"]
                .as_i64()
                .unwrap(),
        );
    }
    seqs.sort();
    // Entry 1 is the first policy version's activation; each instance records its start that
    // no witness checked (the e2e covenant names none), and an instance that lost the race to
    // bootstrap records its refused bootstrap.
    let first = seqs[0];
    assert!((3..=5).contains(&first), "{first}");
    assert_eq!(
        seqs,
        (first..first + 120).collect::<Vec<_>>(),
        "one log, no gaps, no duplicates"
    );
    verify_ok(&url);
}

#[tokio::test]
async fn after_kill_9_every_received_answer_has_its_entry() {
    let url = sqlite_url("crash");
    let mut received: Vec<(i64, String)> = Vec::new();
    for _round in 0..3 {
        let mut gw = Gateway::start_with(&url, &[]);
        let c = client("oov");
        let mut calls = futures::stream::FuturesUnordered::new();
        for i in 0..80 {
            calls.push(check(
                format!("https://{}", gw.api),
                c.clone(),
                token("oov", &format!("map.{}", i % 20), &["melder-intake"]),
            ));
        }
        let mut answered = 0;
        while let Some(answer) = calls.next().await {
            if let Some(a) = answer {
                received.push((a["audit_seq"].as_i64().unwrap(), a["audit_seq"].to_string()));
                answered += 1;
                if answered == 25 {
                    // Mid-load: requests still in flight, batches possibly half-written.
                    gw.kill9();
                }
            }
        }
        drop(calls);
        gw.kill9();
    }
    assert!(received.len() >= 75, "{} answers", received.len());
    // Every answer the clients received is in the log, and the log verifies.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let present: Vec<(i64,)> = sqlx::query_as("SELECT seq FROM log_records")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let present: std::collections::HashSet<i64> = present.into_iter().map(|(s,)| s).collect();
    for (seq, _) in &received {
        assert!(
            present.contains(seq),
            "answer with audit_seq {seq} has no entry"
        );
    }
    verify_ok(&url);
}

#[tokio::test]
async fn on_sigterm_under_load_every_answer_sent_has_its_entry_and_the_gateway_ends_cleanly() {
    let url = sqlite_url("sigterm");
    let mut gw = Gateway::start_with_config(
        |c| c + "\n[limits]\nstaff_per_second = 1000000\npartner_per_second = 1000000\n",
        &[("GATEWAY_DATABASE_URL", url.as_str())],
    );
    let url = gw.database_url.clone();
    let api = format!("https://{}", gw.api);
    // Clients that keep asking until the gateway stops answering.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (api, stop) = (api.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let c = client("oov");
            let t = token("oov", &format!("map.{w}"), &["melder-intake"]);
            let mut got = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match check(api.clone(), c.clone(), t.clone()).await {
                    Some(a) => got.push(a["audit_seq"].as_i64().unwrap()),
                    None => break,
                }
            }
            got
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let status = tokio::task::spawn_blocking(move || {
        let s = gw.terminate(std::time::Duration::from_secs(20));
        (gw, s)
    })
    .await
    .unwrap();
    let (_gw, status) = status;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut received = Vec::new();
    for t in tasks {
        received.extend(t.await.unwrap());
    }
    let status = status.expect("the gateway ends within the grace period");
    assert!(status.success(), "a clean stop exits 0: {status:?}");
    assert!(received.len() > 20, "{} answers", received.len());
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let present: std::collections::HashSet<i64> = sqlx::query_scalar("SELECT seq FROM log_records")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for seq in &received {
        assert!(
            present.contains(seq),
            "answer with audit_seq {seq} has no entry"
        );
    }
    verify_ok(&url);
}

#[tokio::test]
async fn a_relation_ended_on_one_instance_binds_the_other_at_once() {
    use crate::disclose::{ask, case_with_records, include, patch};
    let Some(url) = postgres_database().await else {
        return;
    };
    let a = Gateway::start_with(&url, &[]);
    let b = Gateway::start_with(&url, &[]);
    let case = case_with_records(&a, "999993331").await;
    include(&a, &case).await;
    patch(&a, &case, "oov", "secretaris", json!({"status": "plan"})).await;
    // wpi is on the UVO (set through A). B's register in memory learns of A's changes when its
    // writer next finds A's entries: a first request may be refused on the older view (a
    // refusal is always safe), the next is answered.
    let (s, _) = ask(&b, "wpi", "ip.1", "interventiepleger", "uitvoering", &case).await;
    if s != 200 {
        let (s, v) = ask(&b, "wpi", "ip.1", "interventiepleger", "uitvoering", &case).await;
        assert_eq!(s, 200, "{v}");
    }
    // The regisseur takes wpi off the UVO through A; from the moment A acknowledged it, B
    // answers wpi nothing, not even once.
    patch(
        &a,
        &case,
        "rn",
        "regisseur",
        json!({"uvo_partners": ["politie"]}),
    )
    .await;
    for _ in 0..3 {
        let (s, v) = ask(&b, "wpi", "ip.1", "interventiepleger", "uitvoering", &case).await;
        assert!(v.get("payload").is_none(), "{v}");
        assert!(
            [(404, "case-not-found"), (409, "case-conflict")].contains(&(
                s,
                v["type"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("https://gateway.ipga-r.example/problems/")
            )),
            "{s} {v}"
        );
    }
    // And the other way round: om joins the UVO through B; A answers it by the second request.
    patch(
        &b,
        &case,
        "rn",
        "regisseur",
        json!({"uvo_partners": ["politie", "om"]}),
    )
    .await;
    let (s, _) = ask(&a, "om", "ip.2", "interventiepleger", "uitvoering", &case).await;
    if s != 200 {
        let (s, v) = ask(&a, "om", "ip.2", "interventiepleger", "uitvoering", &case).await;
        assert_eq!(s, 200, "{v}");
    }
    verify_ok(&url);
}
