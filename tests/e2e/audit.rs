//! The tamper-evident log through the real binary: proofs a partner can check offline, and
//! `gateway audit verify` finding every kind of tampering, on SQLite and PostgreSQL.

use crate::helpers::*;
use gateway::audit::checkpoint::{Checkpoint, LogKey, NoteVerifier};
use gateway::audit::merkle::{Hash, verify_consistency, verify_inclusion};
use serde_json::{Value, json};

fn log_key() -> LogKey {
    let seed = hex::decode(
        std::fs::read_to_string(pki().join("gateway/log-ed25519.key"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    LogKey::from_seed("gateway.ipga-r.example/disclosures", &seed).unwrap()
}

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Adds `n` entries to the log (aanpak-checks: each is recorded). A fresh gateway's log starts
/// with one entry of its own: the activation of its first policy version.
async fn entries(gw: &Gateway, n: usize) -> Vec<Value> {
    let c = client("oov");
    let t = token("oov", "map.1", &["melder-intake"]);
    let mut out = Vec::new();
    for _ in 0..n {
        let r = c
            .post(gw.url("/v1/checks"))
            .bearer_auth(&t)
            .json(&json!({"subject": {"bsn": "111222333"}, "purpose": "aanpak-check"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        out.push(r.json().await.unwrap());
    }
    out
}

async fn checkpoint(gw: &Gateway) -> String {
    let r = client("politie")
        .get(gw.url("/v1/audit/checkpoint"))
        .bearer_auth(token("politie", "p1", &["voorportaal"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

async fn get(gw: &Gateway, path: &str) -> Value {
    let r = client("politie")
        .get(gw.url(path))
        .bearer_auth(token("politie", "p1", &["voorportaal"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_partner_checks_inclusion_and_consistency_offline() {
    let gw = Gateway::start();
    let first = entries(&gw, 4).await;
    let verifier = NoteVerifier::from_vkey(&log_key().vkey()).unwrap();
    let note5 = checkpoint(&gw).await;
    let cp5 = verifier.verify(&note5).unwrap();
    assert_eq!(
        (cp5.origin.as_str(), cp5.size),
        ("gateway.ipga-r.example/disclosures", 5)
    );
    // Asking again gives the very same checkpoint: never two for one size.
    assert_eq!(checkpoint(&gw).await, note5);
    // The inclusion proof of the third entry, against the signed tree head.
    let p = get(&gw, "/v1/audit/proof/3?size=5").await;
    let proof: Vec<Hash> = p["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| h(x.as_str().unwrap()))
        .collect();
    assert!(verify_inclusion(
        &h(p["leaf_hash"].as_str().unwrap()),
        2,
        5,
        &proof,
        &cp5.root
    ));
    assert!(!verify_inclusion(&[9; 32], 2, 5, &proof, &cp5.root));

    // The log grows; the partner proves the new head extends the one it kept.
    let more = entries(&gw, 4).await;
    let cp9 = verifier.verify(&checkpoint(&gw).await).unwrap();
    assert_eq!(cp9.size, 9);
    let c = get(&gw, "/v1/audit/consistency?from=5&to=9").await;
    let proof: Vec<Hash> = c["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| h(x.as_str().unwrap()))
        .collect();
    assert!(verify_consistency(5, 9, &cp5.root, &cp9.root, &proof));
    assert!(!verify_consistency(5, 9, &[0; 32], &cp9.root, &proof));
    // Every answer's sequence number gets a proof that verifies against the latest checkpoint.
    for a in first.iter().chain(&more) {
        let seq = a["audit_seq"].as_i64().unwrap();
        let p = get(&gw, &format!("/v1/audit/proof/{seq}")).await;
        let cp = verifier.verify(p["checkpoint"].as_str().unwrap()).unwrap();
        let proof: Vec<Hash> = p["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| h(x.as_str().unwrap()))
            .collect();
        assert!(verify_inclusion(
            &h(p["leaf_hash"].as_str().unwrap()),
            (seq - 1) as u64,
            cp.size,
            &proof,
            &cp.root
        ));
    }
}

#[tokio::test]
async fn disclosure_answers_carry_their_sequence_number_and_leaf_hash() {
    let gw = Gateway::start();
    entries(&gw, 1).await;
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
    c.patch(gw.url(&format!("/v1/cases/{}", case["id"].as_str().unwrap())))
        .bearer_auth(&t)
        .json(&json!({"status": "duiding"}))
        .send()
        .await
        .unwrap();
    let a: Value = c
        .post(gw.url("/v1/disclosures"))
        .bearer_auth(&t)
        .json(&json!({"subject": {"ref": case["subject_ref"]}, "purpose": "duiding", "case": case["id"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["audit_seq"], 3);
    let p = get(&gw, "/v1/audit/proof/3").await;
    assert_eq!(p["leaf_hash"], a["audit_leaf_hash"]);
}

/// Runs `gateway audit verify` on a database; returns (exit code, stderr + stdout).
fn verify_cli(database_url: &str, vkey: Option<&std::path::Path>) -> (i32, String) {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args([
        "audit",
        "verify",
        "--config",
        pki().join("gateway.toml").to_str().unwrap(),
        "--database-url",
        database_url,
    ]);
    if let Some(v) = vkey {
        cmd.args(["--vkey", v.to_str().unwrap()]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ),
    )
}

enum Db {
    Sqlite,
    Postgres(String),
}

async fn exec(url: &str, sql: &str) {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

/// A log of six entries with a checkpoint at 6, on a fresh database.
async fn six(db: &Db) -> Gateway {
    let gw = match db {
        Db::Sqlite => Gateway::start(),
        Db::Postgres(admin) => {
            let _ = admin;
            Gateway::start_with(&postgres_database().await.unwrap(), &[])
        }
    };
    entries(&gw, 5).await;
    checkpoint(&gw).await;
    let (code, out) = verify_cli(&gw.database_url, None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("OK: 6 entries and 1 checkpoints verified"),
        "{out}"
    );
    gw
}

async fn tamper_suite(db: Db) {
    // Changed: one byte of entry 3.
    let gw = six(&db).await;
    exec(&gw.database_url, "UPDATE disclosures SET entry = replace(entry, '\"answered\"', '\"answereD\"') WHERE seq = 3").await;
    let (code, out) = verify_cli(&gw.database_url, None);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAILED at sequence number 3: entry 3 was changed"),
        "{out}"
    );

    // Removed: entry 4.
    let gw = six(&db).await;
    exec(&gw.database_url, "DELETE FROM disclosures WHERE seq = 4").await;
    let (code, out) = verify_cli(&gw.database_url, None);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAILED at sequence number 4: entry 4 is missing"),
        "{out}"
    );

    // Reordered: entries 2 and 5 swap places, each with its own hashes.
    let gw = six(&db).await;
    exec(&gw.database_url, "UPDATE disclosures SET seq = -2 WHERE seq = 2; UPDATE disclosures SET seq = 2 WHERE seq = 5; UPDATE disclosures SET seq = 5 WHERE seq = -2").await;
    let (code, out) = verify_cli(&gw.database_url, None);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAILED at sequence number 2: entry 2 does not follow entry 1"),
        "{out}"
    );

    // Inserted: a forged entry at 4, the rest shifted up, the head adjusted.
    let gw = six(&db).await;
    exec(
        &gw.database_url,
        "UPDATE disclosures SET seq = seq + 100 WHERE seq >= 4; UPDATE disclosures SET seq = seq - 99 WHERE seq >= 100; \
         INSERT INTO disclosures (seq, id, at, transaction_id, kind, partner, policy_version, outcome, entry, leaf_hash, chain_hash) \
           SELECT 4, 'disc-forged', at, transaction_id, kind, partner, policy_version, outcome, replace(entry, id, 'disc-forged'), leaf_hash, chain_hash FROM disclosures WHERE seq = 3; \
         UPDATE log_head SET size = 7",
    )
    .await;
    let (code, out) = verify_cli(&gw.database_url, None);
    assert_eq!(code, 1);
    assert!(out.contains("FAILED at sequence number 4"), "{out}");

    // A checkpoint signed with another key is rejected.
    let gw = six(&db).await;
    let other = LogKey::from_seed("gateway.ipga-r.example/disclosures", &[42; 32]).unwrap();
    let forged = other.sign(&Checkpoint {
        origin: "gateway.ipga-r.example/disclosures".into(),
        size: 6,
        root: [1; 32],
    });
    exec(
        &gw.database_url,
        &format!(
            "UPDATE checkpoints SET note = '{}' WHERE size = 6",
            forged.replace('\'', "''")
        ),
    )
    .await;
    let (code, out) = verify_cli(&gw.database_url, None);
    assert_eq!(code, 1);
    assert!(out.contains("FAILED at sequence number 6: checkpoint at size 6: checkpoint not signed by the log key"), "{out}");
    // And an intact log checked against another key's vkey fails too.
    let gw = six(&db).await;
    let vkey = std::env::temp_dir().join(format!("gateway-e2e-other-vkey-{}", std::process::id()));
    std::fs::write(&vkey, other.vkey()).unwrap();
    let (code, out) = verify_cli(&gw.database_url, Some(&vkey));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not signed by the log key"), "{out}");
}

#[tokio::test]
async fn audit_verify_finds_every_tampering_on_sqlite() {
    tamper_suite(Db::Sqlite).await;
}

#[tokio::test]
async fn audit_verify_finds_every_tampering_on_postgres() {
    let Some(_) = postgres_database().await else {
        return;
    };
    tamper_suite(Db::Postgres(String::new())).await;
}

async fn officer_get(gw: &Gateway, partner: &str, path: &str) -> (u16, String) {
    let r = client(partner)
        .get(gw.url(path))
        .bearer_auth(token(partner, "fg.1", &["privacy-officer"]))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn privacy_officers_search_the_log_and_report_to_the_subject() {
    let gw = Gateway::start();
    let bsn = "999993331";
    let c = client("politie");
    let vp = token("politie", "vp.1", &["voorportaal"]);
    let case: Value = c
        .post(gw.url("/v1/cases"))
        .bearer_auth(&vp)
        .json(&json!({"subject": {"bsn": bsn}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = case["id"].as_str().unwrap().to_owned();
    c.patch(gw.url(&format!("/v1/cases/{id}")))
        .bearer_auth(&vp)
        .json(&json!({"status": "duiding"}))
        .send()
        .await
        .unwrap();
    let rn = gateway::demo::records()
        .into_iter()
        .find(|(p, _)| *p == "rn.toezicht")
        .unwrap()
        .1;
    let r = client("rn")
        .put(gw.url(&format!(
            "/v1/records/rn.toezicht/{}",
            case["subject_ref"].as_str().unwrap()
        )))
        .bearer_auth(token("rn", "bron", &["interventiepleger"]))
        .json(&json!({"records": rn}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ask =
        |partner: &'static str, sub: &'static str, role: &'static str, purpose: &'static str| {
            let (gw, id, sref) = (&gw, id.clone(), case["subject_ref"].clone());
            async move {
                client(partner)
                    .post(gw.url("/v1/disclosures"))
                    .bearer_auth(token(partner, sub, &[role]))
                    .json(&json!({"subject": {"ref": sref}, "purpose": purpose, "case": id}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
    assert_eq!(ask("politie", "vp.1", "voorportaal", "duiding").await, 200);
    let r = client("oov").patch(gw.url(&format!("/v1/cases/{id}"))).bearer_auth(token("oov", "sec.1", &["secretaris"])).json(&json!({"status": "opgenomen", "regisseur": {"partner": "rn", "staff_id": "reg.mulder"}})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(ask("rn", "reg.mulder", "regisseur", "regie").await, 200);
    assert_eq!(ask("oov", "reg.smit", "regisseur", "regie").await, 403);

    // The programme's officer sees everything about the person, refusals included.
    let (s, body) = officer_get(&gw, "oov", &format!("/v1/audit/disclosures?subject={bsn}")).await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let items = v["items"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["partner"].as_str().unwrap(),
                i["processing_activity"].as_str().unwrap(),
                i["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("politie", "duiding", "answered"),
            ("rn", "regie", "answered"),
            ("oov", "regie", "refused")
        ]
    );
    assert!(
        !body.contains(bsn),
        "the BSN is searched for, never returned"
    );
    // Filters and CSV.
    let (_, csv) = officer_get(
        &gw,
        "oov",
        &format!("/v1/audit/disclosures?subject={bsn}&outcome=refused&format=csv"),
    )
    .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("seq,at,trace_id,kind,partner,staff_id,role,processing_activity"),
        "{csv}"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].contains(",oov,reg.smit,regisseur,regie,"), "{csv}");
    let (_, body) = officer_get(
        &gw,
        "oov",
        "/v1/audit/disclosures?product=rn.toezicht&purpose=regie&outcome=answered",
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A partner's officer: its own partner's requests and those about its data; a peer: nothing.
    let (_, body) = officer_get(&gw, "rn", &format!("/v1/audit/disclosures?subject={bsn}")).await;
    let rn_items = serde_json::from_str::<Value>(&body).unwrap()["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        rn_items, 2,
        "rn's own regie request and the duiding that included rn.toezicht: {body}"
    );
    let (_, body) = officer_get(
        &gw,
        "gemeente-utrecht",
        &format!("/v1/audit/disclosures?subject={bsn}"),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["items"],
        json!([])
    );
    // Not an officer.
    let r = client("rn")
        .get(gw.url("/v1/audit/disclosures"))
        .bearer_auth(token("rn", "reg.mulder", &["regisseur"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The art. 15 report: confidential purposes (duiding) left out unless asked for.
    let (s, body) = officer_get(&gw, "oov", &format!("/v1/audit/subjects/{bsn}")).await;
    assert_eq!(s, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    let d = report["disclosures"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{report}");
    assert_eq!(
        (d[0]["to"].as_str(), d[0]["purpose"].as_str()),
        (Some("rn"), Some("regie"))
    );
    assert!(
        d[0]["data_received"]["rn.toezicht"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["field"] == "naleving")
    );
    assert!(
        d[0]["legal_grounds"]["regie-basis"]
            .as_str()
            .unwrap()
            .starts_with("Wet PGA art. 3 lid 2")
    );
    assert_eq!(report["confidential_purposes_left_out"], json!(["duiding"]));
    let (_, body) = officer_get(
        &gw,
        "oov",
        &format!("/v1/audit/subjects/{bsn}?confidential=include"),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["disclosures"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Every audit query is itself in the log: who searched, for whom (as a pseudonym).
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    let queries: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT partner, subject_pseudonym, entry FROM disclosures WHERE kind = 'audit-query'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(queries.len() >= 7, "{}", queries.len());
    assert!(
        queries
            .iter()
            .any(|(p, s, e)| p == "oov" && s.is_some() && e.contains("subject report"))
    );
    assert!(queries.iter().all(|(_, _, e)| !e.contains(bsn)));
    let out = std::process::Command::new(BIN)
        .args([
            "audit",
            "verify",
            "--config",
            pki().join("gateway.toml").to_str().unwrap(),
            "--database-url",
            &gw.database_url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn an_export_verifies_offline_with_its_proofs_and_tampering_shows() {
    let gw = six(&Db::Sqlite).await;
    let dir = std::env::temp_dir().join(format!("gateway-e2e-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.jsonl", uuid::Uuid::new_v4().simple()));
    let cfg = pki().join("gateway.toml");
    let out = std::process::Command::new(BIN)
        .args([
            "audit",
            "export",
            "--config",
            cfg.to_str().unwrap(),
            "--database-url",
            &gw.database_url,
            "--output",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verify = |f: &std::path::Path| {
        let out = std::process::Command::new(BIN)
            .args([
                "audit",
                "verify",
                "--config",
                cfg.to_str().unwrap(),
                "--export",
                f.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = verify(&file);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("OK: 6 entries and 1 checkpoints verified, 6 inclusion proofs"),
        "{text}"
    );
    // One byte of entry 5 changed in the export.
    let tampered = dir.join("tampered.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| {
            if l.contains("\"seq\":5,") {
                l.replacen("answered", "answereD", 1)
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let (code, text) = verify(&tampered);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAILED at sequence number 5: entry 5 was changed"),
        "{text}"
    );
}
