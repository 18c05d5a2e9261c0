//! The tamper-evident log through the real binary: proofs a partner can check offline, and
//! `gateway audit verify` finding every kind of tampering, on SQLite and PostgreSQL.

use crate::helpers::*;
use gateway::log::checkpoint::{Checkpoint, LogKey, NoteVerifier};
use gateway::log::merkle::{Hash, verify_consistency, verify_inclusion};
use serde_json::{Value, json};

pub(crate) fn log_key() -> LogKey {
    let seed = hex::decode(
        std::fs::read_to_string(pki().join("gateway/log-ed25519.key"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    LogKey::from_seed("gateway.ipga-r.example/disclosures", &seed).unwrap()
}

pub(crate) fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Adds `n` entries to the log (aanpak-checks: each is recorded). A fresh gateway's log starts
/// with one entry of its own: the activation of its first policy version.
pub(crate) async fn entries(gw: &Gateway, n: usize) -> Vec<Value> {
    let c = client("oov");
    // Several staff ids, so that a long run stays under the per-staff rate limit.
    let tokens: Vec<String> = (0..10)
        .map(|i| token("oov", &format!("map.{i}"), &["melder-intake"]))
        .collect();
    let mut out = Vec::new();
    for i in 0..n {
        let r = c
            .post(gw.url("/v1/checks"))
            .bearer_auth(&tokens[i % tokens.len()])
            .json(&json!({"subject": {"bsn": "111222333"}, "purpose": "aanpak-check"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        out.push(r.json().await.unwrap());
    }
    out
}

pub(crate) async fn checkpoint(gw: &Gateway) -> String {
    let r = client("politie")
        .get(gw.url("/v1/audit/checkpoint"))
        .bearer_auth(token("politie", "p1", &["voorportaal"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

pub(crate) async fn get(gw: &Gateway, path: &str) -> Value {
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
    // The bootstrap, the start no witness checked (the e2e covenant names none), three checks.
    let first = entries(&gw, 3).await;
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
    // 1 bootstrap, 2 the start no witness checked, 3 the case registered, 4 its status changed, 5 the disclosure.
    assert_eq!(a["audit_seq"], 5);
    let p = get(&gw, "/v1/audit/proof/5").await;
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
    Postgres,
}

async fn exec(url: &str, sql: &str) {
    let db = gateway::store::Db::connect(url).await.unwrap();
    db.execute_unchecked(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Lifts the append-only guards, as someone with the database's owner rights could.
async fn unguard(url: &str) {
    if url.starts_with("sqlite:") {
        let db = gateway::store::Db::connect(url).await.unwrap();
        for t in [
            "log_leaves_append_only_u",
            "log_leaves_append_only_d",
            "log_records_append_only_u",
            "log_records_append_only_d",
            "log_products_append_only_u",
            "log_products_append_only_d",
            "log_nodes_append_only_u",
            "log_nodes_append_only_d",
            "log_checkpoints_append_only_u",
            "log_checkpoints_append_only_d",
            "log_tree_head_only_grows",
            "log_tree_head_append_only_d",
        ] {
            db.execute_unchecked(&format!("DROP TRIGGER IF EXISTS {t}"))
                .await
                .unwrap();
        }
    } else {
        for t in [
            "log_leaves",
            "log_records",
            "log_products",
            "log_nodes",
            "log_checkpoints",
            "log_tree_head",
        ] {
            exec(url, &format!("ALTER TABLE {t} DISABLE TRIGGER ALL")).await;
        }
    }
}

/// Runs tampering SQL with the guards lifted (and SQLite's foreign keys off for it).
async fn tamper(url: &str, sql: &str) {
    unguard(url).await;
    if url.starts_with("sqlite:") {
        exec(url, &format!("PRAGMA foreign_keys = OFF; {sql}")).await;
    } else {
        exec(url, sql).await;
    }
}

pub(crate) async fn scalar(url: &str, sql: &str) -> String {
    let db = gateway::store::Db::connect(url).await.unwrap();
    let _ = &db;
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let v: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut c)
            .await
            .unwrap();
        v.unwrap_or_default()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let v: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut c)
            .await
            .unwrap();
        v.unwrap_or_default()
    }
}

/// A log of six entries with a checkpoint at 6, on a fresh database.
async fn six(db: &Db) -> Gateway {
    let gw = match db {
        Db::Sqlite => Gateway::start(),
        Db::Postgres => Gateway::start_with(&postgres_database().await.unwrap(), &[]),
    };
    // With the bootstrap and the start no witness checked (the e2e covenant names none).
    entries(&gw, 4).await;
    checkpoint(&gw).await;
    let (code, out) = verify_cli(&gw.database_url, None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("OK: 6 entries, 0 tree nodes and 1 checkpoints verified"),
        "{out}"
    );
    gw
}

fn fails(out: &(i32, String), want: &str) {
    assert_eq!(out.0, 1, "{}", out.1);
    assert!(out.1.contains(want), "wanted `{want}` in:\n{}", out.1);
}

async fn tamper_suite(db: Db) {
    // Changed: one byte of entry 3.
    let gw = six(&db).await;
    let url = &gw.database_url;
    tamper(url, "UPDATE log_records SET entry = replace(entry, '\"answered\"', '\"answereD\"') WHERE seq = 3").await;
    fails(
        &verify_cli(url, None),
        "FAILED at sequence number 3: entry 3 was changed",
    );

    // Every searchable column is checked against its entry, and named.
    let gw = six(&db).await;
    let url = &gw.database_url;
    for (col, value) in [
        ("id", "'disc-x'"),
        ("at", "at + 1"),
        ("trace_id", "'t-x'"),
        ("kind", "'disclosure'"),
        ("partner", "'rn'"),
        ("staff_id", "'someone'"),
        ("role", "'regisseur'"),
        ("purpose", "'regie'"),
        ("case_id", "'case-x'"),
        ("subject_pseudonym", "'p-other'"),
        ("policy_version", "'v-x'"),
        ("outcome", "'refused'"),
        ("problem", "'x'"),
    ] {
        let before = scalar(
            url,
            &format!("SELECT CAST({col} AS TEXT) FROM log_records WHERE seq = 4"),
        )
        .await;
        tamper(
            url,
            &format!("UPDATE log_records SET {col} = {value} WHERE seq = 4"),
        )
        .await;
        fails(
            &verify_cli(url, None),
            &format!(
                "FAILED at sequence number 4: entry 4's stored column `{col}` does not match the entry"
            ),
        );
        let restore = if before.is_empty() {
            "NULL".to_owned()
        } else if col == "at" {
            before.clone()
        } else {
            format!("'{}'", before.replace('\'', "''"))
        };
        tamper(
            url,
            &format!("UPDATE log_records SET {col} = {restore} WHERE seq = 4"),
        )
        .await;
    }
    let (code, out) = verify_cli(url, None);
    assert_eq!(code, 0, "restored: {out}");

    // Removed: entry 4.
    let gw = six(&db).await;
    let url = &gw.database_url;
    tamper(url, "DELETE FROM log_products WHERE seq = 4; DELETE FROM log_records WHERE seq = 4; DELETE FROM log_leaves WHERE seq = 4").await;
    fails(
        &verify_cli(url, None),
        "FAILED at sequence number 4: entry 4 is missing",
    );
    // Its content removed, its hashes kept.
    let gw = six(&db).await;
    let url = &gw.database_url;
    tamper(url, "DELETE FROM log_records WHERE seq = 2").await;
    fails(
        &verify_cli(url, None),
        "FAILED at sequence number 2: entry 2's content was removed",
    );

    // Reordered: entries 2 and 5 swap places, each with its own hashes.
    let gw = six(&db).await;
    let url = &gw.database_url;
    tamper(url, "UPDATE log_records SET seq = -2 WHERE seq = 2; UPDATE log_leaves SET seq = -2 WHERE seq = 2; \
                 UPDATE log_records SET seq = 2 WHERE seq = 5; UPDATE log_leaves SET seq = 2 WHERE seq = 5; \
                 UPDATE log_records SET seq = 5 WHERE seq = -2; UPDATE log_leaves SET seq = 5 WHERE seq = -2").await;
    fails(
        &verify_cli(url, None),
        "FAILED at sequence number 2: entry 2 does not follow entry 1",
    );

    // Inserted: a forged entry at 4, the rest shifted up, the head adjusted.
    let gw = six(&db).await;
    let url = &gw.database_url;
    tamper(
        url,
        "UPDATE log_records SET seq = seq + 100 WHERE seq >= 4; UPDATE log_leaves SET seq = seq + 100 WHERE seq >= 4; \
         UPDATE log_records SET seq = seq - 99 WHERE seq >= 100; UPDATE log_leaves SET seq = seq - 99 WHERE seq >= 100; \
         INSERT INTO log_leaves (seq, leaf_hash, chain_hash) SELECT 4, leaf_hash, chain_hash FROM log_leaves WHERE seq = 3; \
         INSERT INTO log_records (seq, entry, id, at, trace_id, kind, partner, staff_id, role, purpose, case_id, subject_pseudonym, policy_version, outcome, problem) \
           SELECT 4, replace(entry, id, 'disc-forged'), 'disc-forged', at, trace_id, kind, partner, staff_id, role, purpose, case_id, subject_pseudonym, policy_version, outcome, problem FROM log_records WHERE seq = 3; \
         UPDATE log_tree_head SET size = 7",
    )
    .await;
    fails(&verify_cli(url, None), "FAILED at sequence number 4");

    // The side table: a product row removed, one added, an owner changed.
    let gw = six(&db).await;
    let url = &gw.database_url;
    tamper(
        url,
        "INSERT INTO log_products (seq, product, owner) VALUES (3, 'ggd.screening', 'ggd')",
    )
    .await;
    fails(
        &verify_cli(url, None),
        "FAILED at sequence number 3: entry 3's products in log_products do not match",
    );

    // The head: its size, chain hash and root.
    let gw = six(&db).await;
    let url = &gw.database_url;
    tamper(url, "UPDATE log_tree_head SET root = chain_hash").await;
    fails(
        &verify_cli(url, None),
        "the log head's tree root does not match the entries",
    );
    let gw = six(&db).await;
    let url = &gw.database_url;
    tamper(url, "UPDATE log_tree_head SET chain_hash = root").await;
    fails(
        &verify_cli(url, None),
        "the log head's chain hash does not match the last entry",
    );
    let gw = six(&db).await;
    let url = &gw.database_url;
    tamper(url, "UPDATE log_tree_head SET size = 5").await;
    fails(
        &verify_cli(url, None),
        "the log head counts 5 entries but 6 were found",
    );

    // A checkpoint signed with another key is rejected.
    let gw = six(&db).await;
    let other = LogKey::from_seed("gateway.ipga-r.example/disclosures", &[42; 32]).unwrap();
    let forged = other.sign(&Checkpoint {
        origin: "gateway.ipga-r.example/disclosures".into(),
        size: 6,
        root: [1; 32],
        extensions: Vec::new(),
    });
    tamper(
        &gw.database_url,
        &format!(
            "UPDATE log_checkpoints SET note = '{}' WHERE size = 6",
            forged.replace('\'', "''")
        ),
    )
    .await;
    fails(
        &verify_cli(&gw.database_url, None),
        "FAILED at sequence number 6: checkpoint at size 6: checkpoint not signed by the log key",
    );
    // And an intact log checked against another key's vkey fails too.
    let gw = six(&db).await;
    let vkey = std::env::temp_dir().join(format!("gateway-e2e-other-vkey-{}", std::process::id()));
    std::fs::write(&vkey, other.vkey()).unwrap();
    fails(
        &verify_cli(&gw.database_url, Some(&vkey)),
        "not signed by the log key",
    );

    // The stored tree: past 256 entries its first node exists; changed, removed or added, it shows.
    let gw = six(&db).await;
    entries(&gw, 252).await;
    let url = &gw.database_url;
    let (code, out) = verify_cli(url, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("258 entries, 1 tree nodes"), "{out}");
    tamper(url, "INSERT INTO log_nodes (height, idx, hash) SELECT 8, 5, leaf_hash FROM log_leaves WHERE seq = 1").await;
    fails(
        &verify_cli(url, None),
        "the stored tree has a node at height 8, index 5 that covers entries not in the log",
    );
    tamper(url, "DELETE FROM log_nodes WHERE idx = 5").await;
    assert_eq!(verify_cli(url, None).0, 0);
    tamper(url, "UPDATE log_nodes SET hash = (SELECT leaf_hash FROM log_leaves WHERE seq = 1) WHERE height = 8 AND idx = 0").await;
    fails(
        &verify_cli(url, None),
        "the stored tree node at height 8, index 0 was changed",
    );
    tamper(url, "DELETE FROM log_nodes").await;
    fails(
        &verify_cli(url, None),
        "the stored tree node at height 8, index 0 is missing",
    );
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
    tamper_suite(Db::Postgres).await;
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
        .bearer_auth(token("rn", "bron", &["bronsysteem"]))
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
    let r = client("oov").patch(gw.url(&format!("/v1/cases/{id}"))).bearer_auth(token("oov", "sec.1", &["secretaris"])).json(&json!({"status": "opgenomen", "regisseur": {"partner": "rn", "staff_id": "reg.mulder"}, "decision": pto_decision(), "check_override": INCLUDED_WITHOUT_CHECK})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(ask("rn", "reg.mulder", "regisseur", "regie").await, 200);
    // No role in the case: told it does not exist, and recorded about the person all the same.
    assert_eq!(ask("oov", "reg.smit", "regisseur", "regie").await, 404);

    // The programme's officer sees everything about the person, refusals included.
    let (s, body) = officer_post(
        &gw,
        "oov",
        "/v1/audit/disclosures/search",
        json!({"subject": bsn, "kind": "disclosure"}),
    )
    .await;
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
    // Every entry about the person: the case registered and changed, the deposit, the
    // disclosures and the refusal.
    let (_, body) = officer_post(
        &gw,
        "oov",
        "/v1/audit/disclosures/search",
        json!({"subject": bsn}),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    // ... and the officer's own search for the person, a moment ago.
    assert_eq!(
        kinds,
        vec![
            "case-change",
            "case-change",
            "deposit",
            "disclosure",
            "case-change",
            "disclosure",
            "disclosure",
            "audit-query"
        ]
    );
    assert!(
        !body.contains(bsn),
        "the BSN is searched for, never returned"
    );
    // Filters and CSV.
    let (_, csv) = officer_post(
        &gw,
        "oov",
        "/v1/audit/disclosures/search",
        json!({"subject": bsn, "outcome": "refused", "format": "csv"}),
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
    let (_, body) = officer_post(
        &gw,
        "rn",
        "/v1/audit/disclosures/search",
        json!({"subject": bsn}),
    )
    .await;
    let rn_items = serde_json::from_str::<Value>(&body).unwrap()["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        rn_items, 3,
        "rn's own deposit and regie request, and the duiding that included rn.toezicht: {body}"
    );
    let (_, body) = officer_post(
        &gw,
        "gemeente-utrecht",
        "/v1/audit/disclosures/search",
        json!({"subject": bsn}),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["items"],
        json!([])
    );
    // Issue 28: no BSN in any URL. A search by person in the query is refused (nothing
    // searched), and the report's old address says where it went.
    let (s, body) = officer_get(&gw, "oov", &format!("/v1/audit/disclosures?subject={bsn}")).await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body.contains("bsn-in-url") && body.contains("POST /v1/audit/disclosures/search"),
        "{body}"
    );
    let (s, body) = officer_get(&gw, "oov", &format!("/v1/audit/subjects/{bsn}")).await;
    assert_eq!(s, 410, "{body}");
    assert!(
        body.contains("subject-report-moved") && body.contains("POST /v1/audit/subjects/report"),
        "{body}"
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
    let (s, body) = officer_post(
        &gw,
        "oov",
        "/v1/audit/subjects/report",
        json!({"subject": {"bsn": bsn}}),
    )
    .await;
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
            .starts_with("voorbeeldgrond: Wet PGA art. 3 lid 2"),
        "the example covenant's grounds are labelled as examples (issue 31): {}",
        d[0]["legal_grounds"]
    );
    assert_eq!(report["confidential_purposes_left_out"], json!(["duiding"]));
    // With the legal basis the covenant states for leaving it out (issue 31).
    assert!(
        report["confidential_grounds"]["duiding"]
            .as_str()
            .unwrap()
            .contains("UAVG art. 41"),
        "{report}"
    );
    let (_, body) = officer_post(
        &gw,
        "oov",
        "/v1/audit/subjects/report",
        json!({"subject": {"bsn": bsn}, "confidential": "include"}),
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
        "SELECT partner, subject_pseudonym, entry FROM log_records WHERE kind = 'audit-query'",
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
    // One entry after the latest stored checkpoint: the export signs one over it too.
    entries(&gw, 1).await;
    let stored_checkpoints = || async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&gw.database_url)
            .await
            .unwrap();
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM log_checkpoints")
            .fetch_one(&mut c)
            .await
            .unwrap()
    };
    let stored_before = stored_checkpoints().await;
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
        text.contains("OK: 7 entries, 0 tree nodes and 2 checkpoints verified, 7 inclusion proofs"),
        "{text}"
    );
    let stored_after = stored_checkpoints().await;
    assert_eq!(
        stored_before, stored_after,
        "an export writes nothing to the database"
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

    // Offline, the log's verifier key is enough: no configuration (issue 41, finding 7).
    let (code, vkey) = audit_cli(&["vkey", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{vkey}");
    let vkey_file = dir.join("log.vkey");
    std::fs::write(&vkey_file, vkey).unwrap();
    let offline = |f: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--config",
            "/nonexistent/gateway.toml",
            "--vkey",
            vkey_file.to_str().unwrap(),
            "--export",
            f.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        audit_cli(&args)
    };
    let (code, text) = offline(&file, &[]);
    assert_eq!(code, 0, "{text}");
    // Entries after the export's last checkpoint prove nothing: an export without its signed
    // checkpoint (as older gateways wrote them, or one cut down) fails unless told otherwise.
    let unproven = dir.join("unproven.jsonl");
    let kept: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"type\":\"checkpoint\""))
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            if v["type"] == "entry" {
                v["proof_size"] = Value::Null;
                v["proof"] = json!([]);
            }
            v.to_string()
        })
        .collect();
    std::fs::write(&unproven, kept.join("\n") + "\n").unwrap();
    let (code, text) = offline(&unproven, &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("are in no signed checkpoint"), "{text}");
    let (code, text) = offline(&unproven, &["--accept-unproven"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("accepted unproven"), "{text}");
}

pub(crate) fn audit_cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(BIN)
        .arg("audit")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_log_key_rotates_and_old_checkpoints_still_verify() {
    let dir = own_pki("rotate");
    let config = dir.join("gateway.toml");
    let cfg = config.to_str().unwrap();
    let url = sqlite_url("rotate");
    let checkpoint_in = |gw: &Gateway| {
        let (c, t) = client_in(&dir, "politie", "p1", &["voorportaal"]);
        let u = gw.url("/v1/audit/checkpoint");
        async move {
            c.get(u)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let check_in = |gw: &Gateway| {
        let (c, t) = client_in(&dir, "oov", "map.1", &["melder-intake"]);
        let u = gw.url("/v1/checks");
        async move {
            let r = c
                .post(u)
                .bearer_auth(t)
                .json(&json!({"subject": {"bsn": "111222333"}, "purpose": "aanpak-check"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    let gw = Gateway::start_on(&config, &url);
    check_in(&gw).await;
    let old_note = checkpoint_in(&gw).await;
    let (_, old_vkey) = audit_cli(&["vkey", "--config", cfg]);
    let old_vkey = old_vkey.trim().to_owned();
    // Off the test's runtime thread, so that its client can close when the gateway says goodbye.
    let mut gw = gw;
    let status =
        tokio::task::spawn_blocking(move || gw.terminate(std::time::Duration::from_secs(20)))
            .await
            .unwrap();
    assert_eq!(status.map(|s| s.success()), Some(true));

    let (code, out) = audit_cli(&["rotate-key", "--config", cfg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("retired  {old_vkey}")), "{out}");
    let (_, keys) = audit_cli(&["vkey", "--config", cfg]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[1], old_vkey, "current first, then retired");
    let new_vkey = keys[0].to_owned();

    // The restart records the rotation and signs a checkpoint covering it with the new key.
    let gw = Gateway::start_on(&config, &url);
    check_in(&gw).await;
    let new_note = checkpoint_in(&gw).await;
    let new_only = NoteVerifier::from_vkey(&new_vkey).unwrap();
    assert!(new_only.verify(&new_note).is_ok());
    assert!(new_only.verify(&old_note).is_err());
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rotations: Vec<String> =
        sqlx::query_scalar("SELECT entry FROM log_records WHERE kind = 'log-key'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(rotations.len(), 1);
    let e: Value = serde_json::from_str(&rotations[0]).unwrap();
    assert_eq!(
        (
            e["key_change"]["from"].as_str(),
            e["key_change"]["to"].as_str()
        ),
        (Some(old_vkey.as_str()), Some(new_vkey.as_str()))
    );

    // Verified with both keys (the configuration's set); with the new one alone the old
    // checkpoints fail; with both as a pinned file they verify.
    let (code, out) = audit_cli(&["verify", "--config", cfg, "--database-url", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 checkpoints verified"), "{out}");
    let only_new = dir.join("only-new.vkeys");
    std::fs::write(&only_new, format!("{new_vkey}\n")).unwrap();
    let (code, out) = audit_cli(&[
        "verify",
        "--config",
        cfg,
        "--database-url",
        &url,
        "--vkey",
        only_new.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("checkpoint not signed by the log key"),
        "{out}"
    );
    let both = dir.join("both.vkeys");
    std::fs::write(&both, format!("{new_vkey}\n{old_vkey}\n")).unwrap();
    let (code, out) = audit_cli(&[
        "verify",
        "--config",
        cfg,
        "--database-url",
        &url,
        "--vkey",
        both.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn an_archive_is_a_closed_range_that_verifies_offline_and_can_be_encrypted() {
    let gw = Gateway::start();
    entries(&gw, 3).await;
    let first: usize = checkpoint(&gw)
        .await
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    entries(&gw, 3).await;
    let second: usize = checkpoint(&gw)
        .await
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(second > first);
    let dir = std::env::temp_dir().join(format!("gateway-e2e-archive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = pki().join("gateway.toml");
    let archive = |until: usize, out: &std::path::Path, extra: &[&str]| {
        std::process::Command::new(BIN)
            .args([
                "audit",
                "archive",
                "--config",
                cfg.to_str().unwrap(),
                "--database-url",
                &gw.database_url,
            ])
            .args([
                "--until",
                &until.to_string(),
                "--output",
                out.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap()
    };
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
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // Up to just before the second checkpoint: it ends at the first, which covers it all.
    let plain = dir.join("archive.jsonl");
    let out = archive(second - 1, &plain, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, text) = verify(&plain);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("OK: {first} entries")), "{text}");
    // A changed entry in the archive shows.
    let body = std::fs::read_to_string(&plain).unwrap();
    let tampered = dir.join("tampered.jsonl");
    let changed = body.replacen("aanpak-check", "aanpak-chek", 1);
    assert_ne!(changed, body);
    std::fs::write(&tampered, changed).unwrap();
    assert!(!verify(&tampered).0);
    // Encrypted to an archivist: the age crate (as the age tool) opens it; it verifies.
    let archivist = age::x25519::Identity::generate();
    let enc = dir.join("archive.age");
    let out = archive(
        second,
        &enc,
        &["--recipient", &archivist.to_public().to_string()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&enc).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains("\"kind\""),
        "not encrypted"
    );
    let plain2 = age::decrypt(&archivist, &bytes).unwrap();
    let dec = dir.join("archive-decrypted.jsonl");
    std::fs::write(&dec, plain2).unwrap();
    let (ok, text) = verify(&dec);
    assert!(
        ok && text.contains(&format!("OK: {second} entries")),
        "{text}"
    );
    // Nothing signed at or below the asked end: refused, with why.
    let out = archive(0, &dir.join("none.jsonl"), &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no signed checkpoint"));
}

/// `audit report --prove FILE` for `subject` from the database at `url`.
pub(crate) fn prove_report(
    cfg: &str,
    url: &str,
    subject: &str,
    file: &std::path::Path,
) -> (i32, String) {
    audit_cli(&[
        "report",
        "--config",
        cfg,
        "--database-url",
        url,
        "--subject",
        subject,
        "--prove",
        file.to_str().unwrap(),
    ])
}

/// `audit verify-report FILE` with the log's verifier keys in `vkey_file`.
pub(crate) fn verify_report(file: &std::path::Path, vkey_file: &std::path::Path) -> (i32, String) {
    audit_cli(&[
        "verify-report",
        file.to_str().unwrap(),
        "--vkey",
        vkey_file.to_str().unwrap(),
    ])
}

/// The log's verifier keys (`audit vkey`) written to `path`, for checks offline.
pub(crate) fn write_log_vkey(cfg: &str, path: &std::path::Path) {
    let (code, vkey) = audit_cli(&["vkey", "--config", cfg]);
    assert_eq!(code, 0, "{vkey}");
    std::fs::write(path, vkey).unwrap();
}

/// How many entries `verify-report` says it proved (`complete: N entries …`).
pub(crate) fn proven_count(text: &str) -> u64 {
    text.trim_start_matches("complete: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a proven report: {text}"))
}

/// Issue 28: a person's report proven complete. Every entry about the person up to a checkpoint
/// is in the proof, checked offline with the log's key; a person with no entries gets a proof of
/// absence; a row removed from the per-subject map by hand (as an operator could) fails both the
/// proof and `audit verify`, though every remaining entry's inclusion proof still holds.
#[tokio::test]
async fn a_persons_report_is_proven_complete_and_a_removed_index_row_is_caught() {
    let gw = Gateway::start();
    let bsn = "999993331";
    let case = crate::disclose::case_with_records(&gw, bsn).await;
    crate::disclose::include(&gw, &case).await;
    crate::disclose::answered(&gw, "rn", "reg.mulder", "regisseur", "regie", &case).await;
    // A checkpoint over all of it, committing the map.
    let note = checkpoint(&gw).await;
    assert!(note.contains("\nipga-r/subjects "), "{note}");
    let cfg = pki().join("gateway.toml");
    let cfg = cfg.to_str().unwrap();
    let dir = scratch().join(format!("proven-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let vkey_file = dir.join("log.vkey");
    write_log_vkey(cfg, &vkey_file);
    let prove = |who: &str, file: &std::path::Path| prove_report(cfg, &gw.database_url, who, file);
    let check = |file: &std::path::Path| verify_report(file, &vkey_file);
    let proven = dir.join("proven.json");
    let (code, text) = prove(bsn, &proven);
    assert_eq!(code, 0, "{text}");
    assert!(
        !std::fs::read_to_string(&proven).unwrap().contains(bsn),
        "no BSN in the proof"
    );
    let (code, text) = check(&proven);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("complete: "), "{text}");
    let entries = proven_count(&text);
    assert!(
        entries >= 4,
        "registered, changed, deposited, disclosed: {text}"
    );
    // Somebody the log knows nothing of: a proof of absence.
    let absent = dir.join("absent.json");
    let (code, text) = prove("999992223", &absent);
    assert_eq!(code, 0, "{text}");
    let (code, text) = check(&absent);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("complete: 0 entries"), "{text}");
    // A proof edited to leave one entry out no longer holds.
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&proven).unwrap()).unwrap();
    v["proof"]["subjects"][0]["entries"]
        .as_array_mut()
        .unwrap()
        .remove(1);
    let edited = dir.join("edited.json");
    std::fs::write(&edited, v.to_string()).unwrap();
    let (code, text) = check(&edited);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("do not rebuild its chain"), "{text}");

    // The operator removes one of the person's rows from the index.
    let seq = scalar(
        &gw.database_url,
        "SELECT CAST(MIN(seq) AS TEXT) FROM log_subject_entries",
    )
    .await;
    exec(
        &gw.database_url,
        "DROP TRIGGER IF EXISTS log_subject_entries_append_only_d",
    )
    .await;
    exec(
        &gw.database_url,
        &format!("DELETE FROM log_subject_entries WHERE seq = {seq}"),
    )
    .await;
    let (code, text) = prove(bsn, &dir.join("after.json"));
    assert_eq!(code, 0, "{text}");
    let (code, text) = check(&dir.join("after.json"));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("NOT PROVEN"), "{text}");
    let (code, text) = audit_cli(&[
        "verify",
        "--config",
        cfg,
        "--database-url",
        &gw.database_url,
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!(
            "entry {seq} is about a person, but the per-subject map"
        )),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
