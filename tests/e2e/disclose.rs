//! Disclosures through the real binary: purpose binding, field-level answers as the receiver
//! decrypts them, fail-closed logging, sources, rate limits, and the demo.

use crate::helpers::*;
use serde_json::{Value, json};
use sha2::Digest;

pub(crate) struct Case {
    pub(crate) id: String,
    pub(crate) subject_ref: String,
}

pub(crate) async fn call(
    gw: &Gateway,
    partner: &str,
    sub: &str,
    role: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = client(partner)
        .request(method, gw.url(path))
        .bearer_auth(token(partner, sub, &[role]))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.json().await.unwrap_or(Value::Null), headers)
}

pub(crate) async fn patch(gw: &Gateway, case: &Case, partner: &str, role: &str, body: Value) {
    // The regisseur acts as the one the Regieoverleg appointed in `include`.
    let staff = if role == "regisseur" {
        "reg.mulder"
    } else {
        "staff.1"
    };
    let (s, v, _) = call(
        gw,
        partner,
        staff,
        role,
        reqwest::Method::PATCH,
        &format!("/v1/cases/{}", case.id),
        body,
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

/// A case in `duiding` with every product deposited from the demo's synthetic records.
pub(crate) async fn case_with_records(gw: &Gateway, bsn: &str) -> Case {
    let (s, v, _) = call(
        gw,
        "politie",
        "vp.1",
        "voorportaal",
        reqwest::Method::POST,
        "/v1/cases",
        json!({"subject": {"bsn": bsn}}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let case = Case {
        id: v["id"].as_str().unwrap().into(),
        subject_ref: v["subject_ref"].as_str().unwrap().into(),
    };
    patch(
        gw,
        &case,
        "politie",
        "voorportaal",
        json!({"status": "duiding"}),
    )
    .await;
    for (product, recs) in gateway::demo::records() {
        let owner = product.split('.').next().unwrap();
        let (s, v, _) = call(
            gw,
            owner,
            "bron",
            "bronsysteem",
            reqwest::Method::PUT,
            &format!("/v1/records/{product}/{}", case.subject_ref),
            json!({"records": recs}),
        )
        .await;
        assert_eq!(s, 200, "{product}: {v}");
    }
    case
}

pub(crate) async fn include(gw: &Gateway, case: &Case) {
    patch(
        gw,
        case,
        "oov",
        "secretaris",
        json!({"status": "opgenomen", "regisseur": {"partner": "rn", "staff_id": "reg.mulder"}, "decision": pto_decision(), "check_override": INCLUDED_WITHOUT_CHECK}),
    )
    .await;
    // The regisseur chooses the UVO (seed 004), not the secretaris.
    patch(
        gw,
        case,
        "rn",
        "regisseur",
        json!({"uvo_partners": ["politie", "wpi"]}),
    )
    .await;
}

pub(crate) async fn ask(
    gw: &Gateway,
    partner: &str,
    sub: &str,
    role: &str,
    purpose: &str,
    case: &Case,
) -> (u16, Value) {
    // The ITAT-R never sees the identity (the covenant's prohibition): it asks by case only.
    let body = if role == "itat-lid" {
        json!({"purpose": purpose, "case": case.id})
    } else {
        json!({"subject": {"ref": case.subject_ref}, "purpose": purpose, "case": case.id})
    };
    let (s, v, _) = call(
        gw,
        partner,
        sub,
        role,
        reqwest::Method::POST,
        "/v1/disclosures",
        body,
    )
    .await;
    (s, v)
}

pub(crate) async fn answered(
    gw: &Gateway,
    partner: &str,
    sub: &str,
    role: &str,
    purpose: &str,
    case: &Case,
) -> Value {
    let (s, v) = ask(gw, partner, sub, role, purpose, case).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["recipient"].as_str().unwrap().starts_with("age1"));
    assert!(v["audit_seq"].as_i64().unwrap() > 0);
    let payload = decrypt(partner, v["payload"].as_str().unwrap());
    assert_eq!(payload["disclosure_id"], v["disclosure_id"]);
    payload
}

async fn refused(
    gw: &Gateway,
    partner: &str,
    sub: &str,
    role: &str,
    purpose: &str,
    case: &Case,
    status: u16,
    slug: &str,
) {
    let (s, v) = ask(gw, partner, sub, role, purpose, case).await;
    assert_eq!(
        (s, v["type"].as_str().unwrap_or("")),
        (
            status,
            format!("https://gateway.ipga-r.example/problems/{slug}").as_str()
        ),
        "{v}"
    );
    assert!(v.get("payload").is_none());
}

fn rec<'a>(payload: &'a Value, product: &str) -> &'a Value {
    &payload["products"][product]["records"][0]
}

async fn log_rows(gw: &Gateway) -> Vec<(String, Option<String>, Option<String>, Option<String>)> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    sqlx::query_as(
        "SELECT outcome, problem, purpose, json_extract(entry, '$.ciphertext_sha256') FROM log_records WHERE kind IN ('disclosure', 'check') ORDER BY seq",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_purpose_and_relation_allowed_and_refused_with_transforms_as_received() {
    let gw = Gateway::start();
    let case = case_with_records(&gw, "999993331").await;

    // duiding: the voorportaal, while the case is being assessed.
    let p = answered(&gw, "politie", "vp.1", "voorportaal", "duiding", &case).await;
    assert_eq!(
        rec(&p, "politie.registraties")["datum"],
        "2026-08",
        "generalize to month"
    );
    assert_eq!(
        rec(&p, "ggd.screening")["in_zorg"],
        json!({"exists": true}),
        "exists"
    );
    assert_eq!(
        rec(&p, "wpi.inkomen")["uitkering"],
        json!({"exists": true}),
        "exists"
    );
    assert_eq!(rec(&p, "ggd.screening")["diagnose"]["redacted"], "avg-9");
    assert!(rec(&p, "ggd.screening").get("medicatie").is_none(), "omit");
    assert!(rec(&p, "wpi.inkomen").get("iban").is_none(), "omit");
    refused(
        &gw,
        "rn",
        "reg.mulder",
        "regisseur",
        "duiding",
        &case,
        403,
        "purpose-role",
    )
    .await;
    // Not yet appointed: the case does not exist for this regisseur yet.
    refused(
        &gw,
        "rn",
        "reg.mulder",
        "regisseur",
        "regie",
        &case,
        404,
        "case-not-found",
    )
    .await;

    include(&gw, &case).await;
    refused(
        &gw,
        "politie",
        "vp.1",
        "voorportaal",
        "duiding",
        &case,
        409,
        "purpose-case-status",
    )
    .await;

    // regie: only the case's own regisseur.
    let p = answered(&gw, "rn", "reg.mulder", "regisseur", "regie", &case).await;
    let pol = rec(&p, "politie.registraties");
    assert_eq!(
        pol["locatie_postcode"], "1055",
        "generalize to postcode area"
    );
    assert_eq!(pol["omschrijving"]["redacted"], "wpg-20");
    assert_eq!(pol["omschrijving"]["rule"], "regie-politie-omschrijving");
    assert!(
        pol["omschrijving"]["ground"]
            .as_str()
            .unwrap()
            .starts_with("voorbeeldgrond: Wet politiegegevens art. 20"),
        "the example covenant's grounds are labelled as examples (issue 31)"
    );
    assert_eq!(
        rec(&p, "oov.casusdossier")["ideologie"],
        "rechts-extremistisch"
    );
    assert_eq!(
        rec(&p, "ggd.screening")["zorgaanbieder"],
        json!({"exists": true})
    );
    assert_eq!(
        rec(&p, "wpi.inkomen")["bedrag_per_maand"]["redacted"],
        "5.1.2.e"
    );
    assert_eq!(
        rec(&p, "rvdk.onderzoeken")["bevindingen"]["redacted"],
        "5.1.2.e"
    );
    // No role in the case: it does not exist for them (issue 41), not "wrong relation".
    refused(
        &gw,
        "rn",
        "reg.other",
        "regisseur",
        "regie",
        &case,
        404,
        "case-not-found",
    )
    .await;
    refused(
        &gw,
        "oov",
        "reg.mulder",
        "regisseur",
        "regie",
        &case,
        404,
        "case-not-found",
    )
    .await;
    // A regisseur whose partner is on the UVO knows of the case: for it, the relation is named.
    refused(
        &gw,
        "politie",
        "reg.politie",
        "regisseur",
        "regie",
        &case,
        403,
        "purpose-relation",
    )
    .await;
    // The same request by BSN works; a BSN of someone else does not.
    let (s, v, _) = call(&gw, "rn", "reg.mulder", "regisseur", reqwest::Method::POST, "/v1/disclosures", json!({"subject": {"bsn": "999993331"}, "purpose": "regie", "case": case.id, "products": ["rn.toezicht"]})).await;
    assert_eq!(s, 200, "{v}");
    let only = decrypt("rn", v["payload"].as_str().unwrap());
    assert_eq!(
        only["products"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["rn.toezicht"]
    );
    let (s, v, _) = call(
        &gw,
        "rn",
        "reg.mulder",
        "regisseur",
        reqwest::Method::POST,
        "/v1/disclosures",
        json!({"subject": {"bsn": "999992223"}, "purpose": "regie", "case": case.id}),
    )
    .await;
    assert_eq!(
        (s, v["type"].as_str().unwrap()),
        (
            422,
            "https://gateway.ipga-r.example/problems/subject-case-mismatch"
        )
    );

    // uitvoering: interventieplegers of partners on the UVO, once there is a plan.
    refused(
        &gw,
        "wpi",
        "ip.1",
        "interventiepleger",
        "uitvoering",
        &case,
        409,
        "purpose-case-status",
    )
    .await;
    patch(&gw, &case, "oov", "secretaris", json!({"status": "plan"})).await;
    let p = answered(&gw, "wpi", "ip.1", "interventiepleger", "uitvoering", &case).await;
    assert_eq!(
        rec(&p, "oov.casusdossier")["ideologie"]["redacted"],
        "conv-11",
        "ideology never reaches wpi"
    );
    assert_eq!(rec(&p, "oov.casusdossier")["naam"], "Daan de Proef");
    refused(
        &gw,
        "om",
        "ip.2",
        "interventiepleger",
        "uitvoering",
        &case,
        404,
        "case-not-found",
    )
    .await;

    // toetsing: pseudonymised, per receiving partner.
    let a = answered(&gw, "oov", "itat.1", "itat-lid", "toetsing", &case).await;
    let b = answered(&gw, "politie", "itat.2", "itat-lid", "toetsing", &case).await;
    let (na, nb) = (
        rec(&a, "oov.casusdossier")["naam"].as_str().unwrap(),
        rec(&b, "oov.casusdossier")["naam"].as_str().unwrap(),
    );
    assert!(
        na.len() == 32 && na.bytes().all(|c| c.is_ascii_hexdigit()),
        "{na}"
    );
    assert_ne!(na, nb, "pseudonyms differ per receiving partner");
    // The ITAT-R's fixed members beyond the core partners (JBRA, WSG, Streetcornerwork: the
    // Handreiking's list, issue 31) review the plan too, under the same pseudonymisation.
    let j = answered(&gw, "jbra", "itat.3", "itat-lid", "toetsing", &case).await;
    let nj = rec(&j, "oov.casusdossier")["naam"].as_str().unwrap();
    assert!(nj.len() == 32 && nj != na && nj != nb, "{nj}");
    // Nothing else in the payload links the two answers or names the person (issue 41,
    // finding 4): the subject reference and the case id are pseudonyms of each recipient's own.
    for key in ["subject_ref", "case"] {
        let (x, y) = (a[key].as_str().unwrap(), b[key].as_str().unwrap());
        assert!(x.starts_with("psd-") && y.starts_with("psd-"), "{x} {y}");
        assert_ne!(x, y, "{key}");
    }
    assert!(!a.to_string().contains(&case.subject_ref) && !a.to_string().contains(&case.id));
    // A guessed BSN, right or wrong, gets the same answer: the ITAT-R cannot confirm whom the
    // case is about. Its own pseudonymous reference is accepted.
    for bsn in ["999993331", "999992223"] {
        let (s, v, _) = call(
            &gw,
            "oov",
            "itat.1",
            "itat-lid",
            reqwest::Method::POST,
            "/v1/disclosures",
            json!({"subject": {"bsn": bsn}, "purpose": "toetsing", "case": case.id}),
        )
        .await;
        assert_eq!(
            (s, v["type"].as_str().unwrap()),
            (
                422,
                "https://gateway.ipga-r.example/problems/subject-case-mismatch"
            ),
            "{bsn}"
        );
    }
    let (s, v, _) = call(
        &gw,
        "oov",
        "itat.1",
        "itat-lid",
        reqwest::Method::POST,
        "/v1/disclosures",
        json!({"subject": {"ref": a["subject_ref"]}, "purpose": "toetsing", "case": case.id}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // Everyone else still names the person.
    let (s, v, _) = call(
        &gw,
        "om",
        "ro.1",
        "regieoverleg-lid",
        reqwest::Method::POST,
        "/v1/disclosures",
        json!({"purpose": "besluitvorming", "case": case.id}),
    )
    .await;
    assert_eq!(
        (s, v["type"].as_str().unwrap()),
        (400, "https://gateway.ipga-r.example/problems/invalid-body"),
        "{v}"
    );
    assert_eq!(
        rec(&a, "oov.casusdossier")["geboortedatum"],
        "25-29",
        "age band of 5 years"
    );
    assert_eq!(rec(&a, "oov.casusdossier")["postcode"], "West", "district");

    // besluitvorming: a summary with a masked BSN.
    let p = answered(
        &gw,
        "om",
        "ro.1",
        "regieoverleg-lid",
        "besluitvorming",
        &case,
    )
    .await;
    assert_eq!(rec(&p, "oov.casusdossier")["bsn"], "******331", "mask");
    assert_eq!(
        rec(&p, "politie.registraties")["datum"],
        "2026",
        "generalize to year"
    );
    assert_eq!(rec(&p, "oov.casusdossier")["geboortedatum"], "20-29");

    refused(
        &gw,
        "rn",
        "reg.mulder",
        "regisseur",
        "besluitvorming",
        &case,
        403,
        "purpose-role",
    )
    .await;
    patch(
        &gw,
        &case,
        "om",
        "regieoverleg-lid",
        json!({"status": "uitvoering", "decision": ro_decision(), "review": itat_review()}),
    )
    .await;
    // A regisseur who gets stuck brings the case back to the ITAT-R (Handreiking, chapter 10):
    // toetsing in the uitvoering too (the matrix walk refuses it in every status it lacks).
    answered(&gw, "oov", "itat.1", "itat-lid", "toetsing", &case).await;

    // Aggregate purposes never give case-level data; unknown purposes are refused.
    refused(
        &gw,
        "oov",
        "an.1",
        "analist",
        "monitor",
        &case,
        422,
        "purpose-aggregate-only",
    )
    .await;
    refused(
        &gw,
        "gemeente-utrecht",
        "peer.1",
        "peer",
        "fenomeen",
        &case,
        422,
        "purpose-aggregate-only",
    )
    .await;
    refused(
        &gw,
        "gemeente-utrecht",
        "peer.1",
        "peer",
        "regie",
        &case,
        403,
        "purpose-role",
    )
    .await;
    refused(
        &gw,
        "rn",
        "reg.mulder",
        "regisseur",
        "nieuwsgierigheid",
        &case,
        422,
        "purpose-unknown",
    )
    .await;

    // aanpak-check: known / not known, no content.
    let (s, v, _) = call(
        &gw,
        "oov",
        "map.1",
        "melder-intake",
        reqwest::Method::POST,
        "/v1/checks",
        json!({"subject": {"bsn": "999993331"}, "purpose": "aanpak-check"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (v["known"].clone(), v["contact_partner"].clone()),
        (json!(true), json!("rn"))
    );
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec![
            "across",
            "approaches",
            "audit_receipt",
            "audit_seq",
            "complete",
            "contact_partner",
            "known"
        ]
    );
    // The receipt holds no content: the log's promise about seq and leaf hash, nothing else.
    let receipt = v["audit_receipt"].as_str().unwrap();
    assert_eq!(
        receipt.split("\n\n").next().unwrap().lines().count(),
        4,
        "{receipt}"
    );
    assert!(!receipt.contains("999993331"), "{receipt}");
    let (_, v, _) = call(
        &gw,
        "oov",
        "map.1",
        "melder-intake",
        reqwest::Method::POST,
        "/v1/checks",
        json!({"subject": {"bsn": "999992223"}, "purpose": "aanpak-check"}),
    )
    .await;
    assert_eq!(v["known"], false);
    let (s, _, _) = call(
        &gw,
        "rn",
        "reg.mulder",
        "regisseur",
        reqwest::Method::POST,
        "/v1/checks",
        json!({"subject": {"bsn": "999993331"}, "purpose": "aanpak-check"}),
    )
    .await;
    assert_eq!(s, 403);
    // A check is only ever an aanpak-check: no other purpose turns it into a probe for BSNs.
    for purpose in ["regie", "besluitvorming"] {
        let (partner, role) = if purpose == "regie" {
            ("rn", "regisseur")
        } else {
            ("om", "regieoverleg-lid")
        };
        let (s, v, _) = call(
            &gw,
            partner,
            "x.1",
            role,
            reqwest::Method::POST,
            "/v1/checks",
            json!({"subject": {"bsn": "999992223"}, "purpose": purpose}),
        )
        .await;
        assert_eq!(
            (s, v["type"].as_str().unwrap()),
            (
                422,
                "https://gateway.ipga-r.example/problems/purpose-not-for-checks"
            ),
            "{v}"
        );
        assert!(v.get("known").is_none());
    }

    // Every answer and every refusal is in the disclosure log, refusals with their type.
    let rows = log_rows(&gw).await;
    let refusals: Vec<&str> = rows
        .iter()
        .filter(|r| r.0 == "refused")
        .filter_map(|r| r.1.as_deref())
        .collect();
    for slug in [
        "purpose-role",
        "purpose-case-status",
        "purpose-relation",
        "subject-case-mismatch",
        "purpose-aggregate-only",
        "purpose-unknown",
    ] {
        assert!(
            refusals.contains(&slug),
            "{slug} not recorded: {refusals:?}"
        );
    }
    assert!(rows.iter().filter(|r| r.0 == "answered").count() >= 8);
    assert!(
        rows.iter()
            .filter(|r| r.0 == "answered" && r.2.as_deref() != Some("aanpak-check"))
            .all(|r| r.3.as_ref().is_some_and(|h| h.len() == 64))
    );
    // And the log holds no BSN.
    let entries: Vec<(String,)> = {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&gw.database_url)
            .await
            .unwrap();
        sqlx::query_as("SELECT entry FROM log_records")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    };
    assert!(
        entries
            .iter()
            .all(|(e,)| !e.contains("999993331") && !e.contains("Daan"))
    );
    assert!(!gw.log().contains("999993331") && !gw.log().contains("Daan de Proef"));
}

#[tokio::test]
async fn the_payload_is_the_ciphertext_logged_and_the_age_tool_decrypts_it() {
    let gw = Gateway::start();
    let case = case_with_records(&gw, "999991115").await;
    let (s, v) = ask(&gw, "politie", "vp.1", "voorportaal", "duiding", &case).await;
    assert_eq!(s, 200);
    let armored = v["payload"].as_str().unwrap();
    assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    let digest = hex::encode(sha2::Sha256::digest(armored.as_bytes()));
    assert!(
        log_rows(&gw)
            .await
            .iter()
            .any(|r| r.3.as_deref() == Some(digest.as_str())),
        "the log names the ciphertext sent"
    );
    // The standard `age` command-line tool, as a partner system would use it.
    let Ok(_) = std::process::Command::new("age").arg("--version").output() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must test decryption with the age tool (apt-get install age)"
        );
        eprintln!("`age` not installed: CLI decryption skipped");
        return;
    };
    use std::io::Write;
    let mut child = std::process::Command::new("age")
        .args([
            "--decrypt",
            "--identity",
            pki().join("politie/age-identity.txt").to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(armored.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(by_cli, decrypt("politie", armored));
    assert_eq!(
        by_cli["products"]["oov.casusdossier"]["records"][0]["naam"],
        "Daan de Proef"
    );
    // Another partner's identity cannot read it.
    let other = std::process::Command::new("age")
        .args([
            "--decrypt",
            "--identity",
            pki().join("wpi/age-identity.txt").to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut other = other;
    other
        .stdin
        .take()
        .unwrap()
        .write_all(armored.as_bytes())
        .unwrap();
    assert!(!other.wait_with_output().unwrap().status.success());
}

#[tokio::test]
async fn when_the_log_cannot_be_written_nothing_is_disclosed() {
    let gw = Gateway::start();
    let case = case_with_records(&gw, "999990019").await;
    answered(&gw, "politie", "vp.1", "voorportaal", "duiding", &case).await;
    // The disclosure log becomes unwritable mid-run.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    sqlx::query("CREATE TRIGGER log_unwritable BEFORE INSERT ON log_records BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        .execute(&mut conn)
        .await
        .unwrap();
    let (s, v) = ask(&gw, "politie", "vp.1", "voorportaal", "duiding", &case).await;
    assert_eq!(
        (s, v["type"].as_str().unwrap()),
        (
            503,
            "https://gateway.ipga-r.example/problems/disclosure-log-unavailable"
        ),
        "{v}"
    );
    assert!(v.get("payload").is_none() && !v.to_string().contains("AGE ENCRYPTED"));
    let (s, _, _) = call(
        &gw,
        "oov",
        "map.1",
        "melder-intake",
        reqwest::Method::POST,
        "/v1/checks",
        json!({"subject": {"bsn": "999990019"}, "purpose": "aanpak-check"}),
    )
    .await;
    assert_eq!(s, 503, "a check is not answered without its record either");
    assert_eq!(
        writer_check(&gw).await,
        Some(false),
        "readiness says the log cannot be written"
    );
    // Writable again: the writer resumes by itself, records the outage, and answers again; the
    // log shows no answer for the failed attempts.
    sqlx::query("DROP TRIGGER log_unwritable")
        .execute(&mut conn)
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    while writer_check(&gw).await != Some(true) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "the writer did not resume"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    answered(&gw, "politie", "vp.1", "voorportaal", "duiding", &case).await;
    let answered_rows = log_rows(&gw)
        .await
        .iter()
        .filter(|r| r.0 == "answered")
        .count();
    assert_eq!(answered_rows, 2);
    // The outage entry: when, why, and the refusals that could not be written one by one (the
    // disclosure's and the check's `disclosure-log-unavailable`).
    let (outage,): (String,) =
        sqlx::query_as("SELECT entry FROM log_records WHERE kind = 'log-outage'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let outage: Value = serde_json::from_str(&outage).unwrap();
    let counted: u64 = outage["log_outage"]["unrecorded_refusals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["problem"] == "disclosure-log-unavailable")
        .map(|u| u["count"].as_u64().unwrap())
        .sum();
    assert!(counted >= 2, "{outage}");
    assert_eq!(outage["log_outage"]["cause"], "other", "{outage}");
}

/// The `log-writer` check of `/readyz` (`None`: no answer).
pub(crate) async fn writer_check(gw: &Gateway) -> Option<bool> {
    let r: Value = reqwest::get(format!("http://{}/readyz", gw.health))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    r["checks"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "log-writer")
        .and_then(|c| c["ok"].as_bool())
}

#[tokio::test]
async fn a_slow_upstream_source_is_unavailable_not_a_hang() {
    // The GGD serves its own product from an HTTPS endpoint that answers too late.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let ggd = gateway::demo::records()
        .into_iter()
        .find(|(p, _)| *p == "ggd.screening")
        .unwrap()
        .1;
    let server = tokio::spawn(gateway::demo::serve_source(
        pki().to_path_buf(),
        listener,
        "/screening",
        ggd,
        std::time::Duration::from_secs(30),
        stop_rx,
        Default::default(),
    ));
    let gw = Gateway::start_with_config(
        |c| {
            format!(
                "{c}\n[[source]]\nproduct = \"ggd.screening\"\nurl = \"https://{addr}/screening\"\ntimeout_ms = 300\n"
            )
        },
        &[],
    );
    let (s, v, _) = call(
        &gw,
        "politie",
        "vp.1",
        "voorportaal",
        reqwest::Method::POST,
        "/v1/cases",
        json!({"subject": {"bsn": "123456782"}}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let case = Case {
        id: v["id"].as_str().unwrap().into(),
        subject_ref: v["subject_ref"].as_str().unwrap().into(),
    };
    patch(
        &gw,
        &case,
        "politie",
        "voorportaal",
        json!({"status": "duiding"}),
    )
    .await;
    // The GGD's product cannot be deposited: it is served upstream.
    let (s, _, _) = call(
        &gw,
        "ggd",
        "bron",
        "bronsysteem",
        reqwest::Method::PUT,
        &format!("/v1/records/ggd.screening/{}", case.subject_ref),
        json!({"records": []}),
    )
    .await;
    assert_eq!(s, 409);
    let (s, _, _) = call(
        &gw,
        "politie",
        "bron",
        "bronsysteem",
        reqwest::Method::PUT,
        &format!("/v1/records/politie.registraties/{}", case.subject_ref),
        json!({"records": gateway::demo::records()[1].1}),
    )
    .await;
    assert_eq!(s, 200);
    let p = answered(&gw, "politie", "vp.1", "voorportaal", "duiding", &case).await;
    assert_eq!(
        p["products"]["ggd.screening"],
        json!({"status": "unavailable"})
    );
    assert_eq!(p["products"]["politie.registraties"]["status"], "ok");
    assert_eq!(p["products"]["om.strafzaken"]["status"], "no-records");
    assert!(
        log_rows(&gw)
            .await
            .iter()
            .any(|r| r.0 == "partly-unavailable")
    );
    let _ = stop.send(());
    let _ = server.await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_are_recorded() {
    let gw = Gateway::start_with_config(
        |c| format!("{c}\n[limits]\nstaff_per_second = 1\npartner_per_second = 1000\n"),
        &[],
    );
    let mut limited = None;
    for _ in 0..5 {
        let (s, v, h) = call(
            &gw,
            "oov",
            "map.1",
            "melder-intake",
            reqwest::Method::POST,
            "/v1/checks",
            json!({"subject": {"bsn": "999993331"}, "purpose": "aanpak-check"}),
        )
        .await;
        if s == 429 {
            limited = Some((v, h));
            break;
        }
    }
    let (v, h) = limited.expect("five requests at once exceed one per second");
    assert_eq!(
        v["type"],
        "https://gateway.ipga-r.example/problems/rate-limited"
    );
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(
        log_rows(&gw)
            .await
            .iter()
            .any(|r| r.1.as_deref() == Some("rate-limited"))
    );
}

#[tokio::test]
async fn records_only_by_their_owner_fitting_the_catalogue_about_known_subjects() {
    let gw = Gateway::start();
    let case = case_with_records(&gw, "111222333").await;
    let put = |partner: &'static str, product: &'static str, subject: String, body: Value| {
        let gw = &gw;
        async move {
            call(
                gw,
                partner,
                "bron",
                "bronsysteem",
                reqwest::Method::PUT,
                &format!("/v1/records/{product}/{subject}"),
                body,
            )
            .await
        }
    };
    let (s, v, _) = put(
        "wpi",
        "oov.casusdossier",
        case.subject_ref.clone(),
        json!({"records": []}),
    )
    .await;
    assert_eq!(
        (s, v["type"].as_str().unwrap()),
        (
            403,
            "https://gateway.ipga-r.example/problems/product-not-owned"
        )
    );
    // The owner's own privacy officer (or regisseur) may not overwrite its records: only the
    // roles the covenant lists for the product deposit it.
    for role in ["privacy-officer", "regisseur"] {
        let (s, v, _) = call(
            &gw,
            "politie",
            "p.1",
            role,
            reqwest::Method::PUT,
            &format!("/v1/records/politie.registraties/{}", case.subject_ref),
            json!({"records": []}),
        )
        .await;
        assert_eq!(
            (s, v["type"].as_str().unwrap()),
            (403, "https://gateway.ipga-r.example/problems/deposit-role"),
            "{role}: {v}"
        );
        assert!(v["detail"].as_str().unwrap().contains("bronsysteem"), "{v}");
    }
    let (s, v, _) = put(
        "wpi",
        "wpi.inkomen",
        case.subject_ref.clone(),
        json!({"records": [{"uitkering": "x", "geheim": "y"}]}),
    )
    .await;
    assert_eq!(
        (s, v["type"].as_str().unwrap()),
        (
            422,
            "https://gateway.ipga-r.example/problems/invalid-record"
        )
    );
    assert!(v["detail"].as_str().unwrap().contains("`geheim`"));
    let (s, v, _) = put(
        "wpi",
        "wpi.inkomen",
        case.subject_ref.clone(),
        json!({"records": [{"bedrag_per_maand": "veel"}]}),
    )
    .await;
    assert_eq!(
        (s, v["type"].as_str().unwrap()),
        (
            422,
            "https://gateway.ipga-r.example/problems/invalid-record"
        )
    );
    let (s, v, _) = put(
        "wpi",
        "wpi.inkomen",
        "subj-unknown".into(),
        json!({"records": []}),
    )
    .await;
    assert_eq!(
        (s, v["type"].as_str().unwrap()),
        (
            404,
            "https://gateway.ipga-r.example/problems/subject-not-found"
        )
    );
    let (s, v, _) = put(
        "wpi",
        "wpi.nothing",
        case.subject_ref.clone(),
        json!({"records": []}),
    )
    .await;
    assert_eq!(
        (s, v["type"].as_str().unwrap()),
        (
            422,
            "https://gateway.ipga-r.example/problems/product-unknown"
        )
    );
    // At rest the records are sealed: the database holds no clear value.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    let blobs: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT sealed FROM records")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(blobs.len(), 7);
    assert!(
        blobs
            .iter()
            .all(|(b,)| b.starts_with(b"age-encryption.org/v1")
                && !b.windows(4).any(|w| w == b"Daan"))
    );
}

#[test]
fn the_demo_runs_and_its_operational_log_holds_no_personal_value() {
    let dir = std::env::temp_dir().join(format!("gateway-e2e-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = std::process::Command::new(BIN)
        .args(["demo", "--dir", dir.to_str().unwrap()])
        .current_dir(repo())
        .env("GATEWAY_LOG_LEVEL", "debug")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "REFUSED 404 case-not-found",
        "REFUSED 403 purpose-role",
        "REFUSED 422 purpose-aggregate-only",
        "ggd.screening: unavailable",
        "WITHHELD [avg-9]",
        "known = true",
        "known = false",
        "Top600: known (call Regieteam Top600",
        "Top600: unavailable",
        "cosigned by 3 of the partners' witnesses",
        "\u{2014} witness.politie.ipga-r.example ",
        // Issue 37: a partner's own entry changes only with its signature, a shared part only
        // with the threshold's.
        "activates without the police's signature: REFUSED 4",
        "activates: REFUSED 4",
        "activates without rn's signature: REFUSED 4",
        "rn signs the change to its own entry with its governance key; Beheerder 1 (oov) activates: 200",
        // Issue 31: the 2019 process, with the bodies' decisions and the letter.
        "recorded as the PTO-R's decision PTO-2026-10-20/4",
        "recorded with the Regieoverleg's decision RO-2026-11-03/2 of 2026-11-03 (members",
        "the ITAT-R's review of the plan ITAT-2026-10-29/5",
        "MAP (oov, map.bakker) records the notification letter (2026-11-02, to the person; within the covenant's 21 days): 200",
        "Detentie & Terugkeer: not-known",
        "rule gezondheid-details: voorbeeldgrond: AVG art. 9",
    ] {
        assert!(
            stdout.contains(expected),
            "demo output lacks `{expected}`:\n{stdout}"
        );
    }
    // The operational log is there (debug level) and holds none of the personal values used.
    assert!(stderr.lines().count() > 20, "{stderr}");
    for value in gateway::demo::personal_values() {
        for line in stderr.lines() {
            assert!(
                !line.contains(&value),
                "operational log line contains `{value}`: {line}"
            );
        }
    }
    // The demo's database verifies, and the attack acceptance testing tried (moving an answered
    // disclosure to another subject and partner in the searchable columns, to hide it from that
    // person's art. 15 report) fails `audit verify`, naming the entry.
    let config = dir.join("gateway.toml");
    let verify = || {
        let out = std::process::Command::new(BIN)
            .args(["audit", "verify", "--config", config.to_str().unwrap()])
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
    let (code, text) = verify();
    assert_eq!(code, Some(0), "{text}");
    let url = format!("sqlite://{}", dir.join("demo.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seq: i64 = rt.block_on(async {
        let db = gateway::store::Db::connect(&url).await.unwrap();
        db.execute_unchecked("DROP TRIGGER log_records_append_only_u").await.unwrap();
        db.execute_unchecked("UPDATE log_records SET subject_pseudonym = 'someone-else', partner = 'gemeente-utrecht' WHERE seq = (SELECT MIN(seq) FROM log_records WHERE kind = 'disclosure' AND outcome = 'answered')").await.unwrap();
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT seq FROM log_records WHERE subject_pseudonym = 'someone-else'").fetch_one(&mut c).await.unwrap()
    });
    let (code, text) = verify();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("FAILED at sequence number {seq}: entry {seq}'s stored column `partner` does not match the entry")),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_new_deposit_is_answered_at_once_not_an_opened_copy_of_the_old_one() {
    let gw = Gateway::start();
    let case = case_with_records(&gw, "999993331").await;
    include(&gw, &case).await;
    let p = answered(&gw, "rn", "reg.mulder", "regisseur", "regie", &case).await;
    assert_eq!(
        rec(&p, "ggd.screening")["contactpersoon"],
        "GGD Voorbeeldteam"
    );
    let mut recs = gateway::demo::records()
        .into_iter()
        .find(|(p, _)| *p == "ggd.screening")
        .unwrap()
        .1;
    recs[0]["contactpersoon"] = json!("GGD Nieuw Team");
    let (s, v, _) = call(
        &gw,
        "ggd",
        "bron",
        "bronsysteem",
        reqwest::Method::PUT,
        &format!("/v1/records/ggd.screening/{}", case.subject_ref),
        json!({"records": recs}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let p = answered(&gw, "rn", "reg.mulder", "regisseur", "regie", &case).await;
    assert_eq!(rec(&p, "ggd.screening")["contactpersoon"], "GGD Nieuw Team");
}

#[tokio::test]
async fn a_request_longer_than_allowed_is_given_up_and_more_than_allowed_at_once_are_refused() {
    // A source that takes 5 s, its own timeout 10 s: the request's bound (1 s) decides.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let ggd = gateway::demo::records()
        .into_iter()
        .find(|(p, _)| *p == "ggd.screening")
        .unwrap()
        .1;
    let server = tokio::spawn(gateway::demo::serve_source(
        pki().to_path_buf(),
        listener,
        "/screening",
        ggd,
        std::time::Duration::from_secs(5),
        stop_rx,
        Default::default(),
    ));
    let gw = Gateway::start_with_config(
        |c| {
            format!(
                "{c}\n[limits]\nrequest_timeout_ms = 1000\nconcurrent_requests = 1\n\n[[source]]\nproduct = \"ggd.screening\"\nurl = \"https://{addr}/screening\"\ntimeout_ms = 10000\n"
            )
        },
        &[],
    );
    let (s, v, _) = call(
        &gw,
        "politie",
        "vp.1",
        "voorportaal",
        reqwest::Method::POST,
        "/v1/cases",
        json!({"subject": {"bsn": "123456782"}}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let case = Case {
        id: v["id"].as_str().unwrap().into(),
        subject_ref: v["subject_ref"].as_str().unwrap().into(),
    };
    patch(
        &gw,
        &case,
        "politie",
        "voorportaal",
        json!({"status": "duiding"}),
    )
    .await;
    let slow = ask(&gw, "politie", "vp.1", "voorportaal", "duiding", &case);
    // While the slow one holds the only place, another request is refused at once.
    let other = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let r = client("oov")
            .post(gw.url("/v1/checks"))
            .bearer_auth(token("oov", "map.1", &["melder-intake"]))
            .json(&json!({"subject": {"bsn": "123456782"}, "purpose": "aanpak-check"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["retry-after"], "1");
        (problem(r, 503, "overloaded").await, started.elapsed())
    };
    let ((s, v), (_, waited)) = tokio::join!(slow, other);
    assert!(
        waited < std::time::Duration::from_millis(500),
        "refused at once, not queued: {waited:?}"
    );
    assert_eq!(s, 503, "{v}");
    assert_eq!(
        v["type"],
        "https://gateway.ipga-r.example/problems/request-timeout"
    );
    let rows = log_rows(&gw).await;
    assert!(
        rows.iter()
            .any(|r| r.1.as_deref() == Some("request-timeout")),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r.1.as_deref() == Some("overloaded")),
        "{rows:?}"
    );
    let _ = stop.send(());
    let _ = server.await;
}

/// The probe of 2026-12-05: a voorportaal member set itself as regisseur of a case in
/// `uitvoering` and then received the regie dossier. Now it is refused, recorded as refused, and
/// the case's own regisseur keeps its dossier.
#[tokio::test]
async fn nobody_takes_a_regisseur_appointment_or_composes_another_regisseurs_uvo() {
    let gw = Gateway::start();
    let case = case_with_records(&gw, "999993331").await;
    include(&gw, &case).await;
    patch(&gw, &case, "rn", "regisseur", json!({"status": "plan"})).await;
    patch(
        &gw,
        &case,
        "om",
        "regieoverleg-lid",
        json!({"status": "uitvoering", "decision": ro_decision(), "review": itat_review()}),
    )
    .await;
    let set = |partner: &'static str, sub: &'static str, role: &'static str, body: Value| {
        let (gw, path) = (&gw, format!("/v1/cases/{}", case.id));
        async move {
            let (s, v, _) = call(gw, partner, sub, role, reqwest::Method::PATCH, &path, body).await;
            (
                s,
                v["type"]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            )
        }
    };
    let itself = json!({"regisseur": {"partner": "politie", "staff_id": "vp.1"}});
    assert_eq!(
        set("politie", "vp.1", "voorportaal", itself.clone()).await,
        (403, "appointment-forbidden".to_owned())
    );
    let ro_itself = json!({"regisseur": {"partner": "om", "staff_id": "ro.1"}});
    assert_eq!(
        set("om", "ro.1", "regieoverleg-lid", ro_itself).await,
        (403, "self-appointment".to_owned())
    );
    assert_eq!(
        set(
            "oov",
            "reg.smit",
            "regisseur",
            json!({"uvo_partners": ["oov"]})
        )
        .await,
        (404, "case-not-found".to_owned()),
        "to another case's regisseur this case does not exist (issue 41)"
    );
    refused(
        &gw,
        "politie",
        "vp.1",
        "regisseur",
        "regie",
        &case,
        403,
        "purpose-relation",
    )
    .await;
    answered(&gw, "rn", "reg.mulder", "regisseur", "regie", &case).await;
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    let problems: Vec<(String,)> = sqlx::query_as(
        "SELECT problem FROM log_records WHERE kind = 'case-change' AND outcome = 'refused' ORDER BY seq",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let problems: Vec<&str> = problems.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        problems,
        vec![
            "appointment-forbidden",
            "self-appointment",
            "case-not-found"
        ]
    );
}
