//! The policy lifecycle through the real binary: a draft that withholds one field from one
//! partner, simulated on the logged history, refused approval by its author, approved by a
//! second administrator, activated under load without a failed request, and rolled back.

use crate::disclose::{Case, answered, case_with_records, include};
use crate::helpers::*;
use serde_json::{Value, json};

const FIELD: &str = "ggd.screening.contactpersoon";

async fn admin(
    gw: &Gateway,
    staff: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<(&str, String)>,
) -> (u16, Value) {
    let mut r = client("oov")
        .request(method, gw.url(path))
        .bearer_auth(token("oov", staff, &["beheerder"]));
    if let Some((ct, b)) = body {
        r = r.header("content-type", ct).body(b);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn slug(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("")
}

/// The example covenant plus a rule that withholds FIELD from `rn`'s regisseur under `regie`.
pub(crate) fn draft_text() -> String {
    let src = std::fs::read_to_string(covenant_path()).unwrap();
    let cc = policy::compile_toml(&src).unwrap();
    let c = cc.covenant();
    let deciding = cc
        .decide(
            c.partner("rn").unwrap(),
            c.role("regisseur").unwrap(),
            c.purpose("regie").unwrap(),
            c.field(FIELD).unwrap(),
        )
        .rule_id
        .clone();
    format!(
        "{src}\n[[rule]]\nid = \"contactpersoon-niet-naar-rn\"\ndescription = \"Test: de GGD-contactpersoon niet meer naar de regisseur van de reclassering.\"\nto = [\"rn\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"{FIELD}\"]\naction = \"withhold\"\ncode = \"5.1.2.e\"\nground = \"Woo art. 5.1 lid 2 sub e\"\noverrides = [\"{deciding}\"]\n"
    )
}

fn contact(payload: &Value) -> &Value {
    &payload["products"]["ggd.screening"]["records"][0]["contactpersoon"]
}

async fn regie(gw: &Gateway, case: &Case) -> Value {
    answered(gw, "rn", "reg.mulder", "regisseur", "regie", case).await
}

fn cli(gw: &Gateway, staff: &str, args: &[&str]) -> (i32, String, String) {
    let d = pki();
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("policy")
        .args(args)
        .env("GATEWAY_URL", format!("https://{}", gw.api))
        .env("GATEWAY_CA", d.join("ca.pem"))
        .env("GATEWAY_CLIENT_CERT", d.join("oov/client.pem"))
        .env("GATEWAY_CLIENT_KEY", d.join("oov/client.key"));
    let t = token("oov", staff, &["beheerder"]);
    if staff == "beheerder-2" {
        // The second administrator keeps the token in a file, as on a shared machine.
        let f = std::env::temp_dir().join(format!("gw-token-{}-{staff}", std::process::id()));
        std::fs::write(&f, format!("{t}\n")).unwrap();
        cmd.arg("--token-file").arg(f);
    } else {
        cmd.env("GATEWAY_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn draft_simulate_four_eyes_activate_under_load_and_roll_back() {
    // The load below is one regisseur asking as fast as it can: no rate limit may interfere.
    let gw = Gateway::start_with_config(
        |c| c + "\n[limits]\nstaff_per_second = 1000000\npartner_per_second = 1000000\n",
        &[],
    );
    let case = case_with_records(&gw, "999993331").await;
    include(&gw, &case).await;

    // History: the regisseur receives the contact person twice.
    let mut past = Vec::new();
    for _ in 0..2 {
        let (s, v) =
            crate::disclose::ask(&gw, "rn", "reg.mulder", "regisseur", "regie", &case).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            contact(&crate::helpers::decrypt(
                "rn",
                v["payload"].as_str().unwrap()
            )),
            "GGD Voorbeeldteam"
        );
        past.push(v["audit_seq"].as_i64().unwrap());
    }
    let (_, before) = admin(&gw, "beheerder-1", reqwest::Method::GET, "/v1/policy", None).await;
    let old_version = before["version"].as_str().unwrap().to_owned();
    assert_eq!(before["kind"], "bootstrap");

    // Only administrators draft; an invalid draft is refused with line and column.
    let r = client("rn")
        .post(gw.url("/v1/policy/drafts"))
        .bearer_auth(token("rn", "reg.mulder", &["regisseur"]))
        .header("content-type", "application/toml")
        .body(draft_text())
        .send()
        .await
        .unwrap();
    problem(r, 403, "not-administrator").await;
    let broken = draft_text().replace("action = \"withhold\"\ncode", "action = \"shred\"\ncode");
    let (s, v) = admin(
        &gw,
        "beheerder-1",
        reqwest::Method::POST,
        "/v1/policy/drafts",
        Some(("application/toml", broken)),
    )
    .await;
    assert_eq!((s, slug(&v)), (422, "covenant-invalid"), "{v}");
    assert!(v["errors"][0].as_str().unwrap().contains("shred"), "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .parse::<usize>()
            .is_ok(),
        "starts with the line: {v}"
    );

    // The draft: the static diff names the one decision that changes.
    let (s, d) = admin(
        &gw,
        "beheerder-1",
        reqwest::Method::POST,
        "/v1/policy/drafts",
        Some(("application/toml", draft_text())),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_owned();
    assert_eq!(d["status"], "draft");
    assert_eq!(d["base_version"], old_version.as_str());
    assert!(d["diff"]["decision_changes"].as_u64().unwrap() >= 1);
    assert!(
        d["diff"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["partner"] == "rn" && c["field"] == FIELD),
        "{d}"
    );

    // Simulation names the past requests it would have changed.
    let (s, sim) = admin(
        &gw,
        "beheerder-1",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{id}/simulate"),
        Some(("application/json", json!({"days": 7}).to_string())),
    )
    .await;
    assert_eq!(s, 200, "{sim}");
    let rep = &sim["report"];
    assert_eq!(rep["affected_requests"], 2, "{sim}");
    assert_eq!(rep["affected_subjects"], 1);
    let g = &rep["changes"][0];
    assert_eq!(
        (g["partner"].as_str(), g["purpose"].as_str()),
        (Some("rn"), Some("regie"))
    );
    assert_eq!(g["sequence_numbers"], json!(past));
    assert_eq!(g["fields"][0]["field"], FIELD);
    assert_eq!(g["fields"][0]["from"], "disclosed");
    assert_eq!(g["fields"][0]["to"], "withheld");
    assert_eq!(
        rep["changes"].as_array().unwrap().len(),
        1,
        "nothing else changes"
    );

    // Four eyes: not before approval, not by the author.
    let (s, v) = admin(
        &gw,
        "beheerder-1",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{id}/activate"),
        None,
    )
    .await;
    assert_eq!((s, slug(&v)), (409, "draft-state"), "{v}");
    let (s, v) = admin(
        &gw,
        "beheerder-1",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{id}/approve"),
        None,
    )
    .await;
    assert_eq!((s, slug(&v)), (403, "four-eyes"), "{v}");
    // Someone with the role but not listed as administrator cannot approve either.
    let (s, v) = admin(
        &gw,
        "stagiair",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{id}/approve"),
        None,
    )
    .await;
    assert_eq!((s, slug(&v)), (403, "not-administrator"), "{v}");
    // The second administrator approves, from the command line.
    let (code, out, err) = cli(&gw, "beheerder-2", &["approve", &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("approved"), "{out}");

    // The change withholds rn's regisseur a GGD field: the GGD's data, so the GGD signs
    // (issue 37). Without it, no activation; two oov administrators are not the GGD.
    let (s, v) = admin(
        &gw,
        "beheerder-1",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{id}/activate"),
        None,
    )
    .await;
    assert_eq!((s, slug(&v)), (409, "signatures-missing"), "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("ggd's signature"),
        "{v}"
    );
    // The GGD signs offline with its own key, and an administrator adds the note.
    let (_, active) = admin(&gw, "beheerder-1", reqwest::Method::GET, "/v1/policy", None).await;
    let (_, draft) = admin(
        &gw,
        "beheerder-1",
        reqwest::Method::GET,
        &format!("/v1/policy/drafts/{id}"),
        None,
    )
    .await;
    let note_file = std::env::temp_dir().join(format!("gw-ggd-note-{}", std::process::id()));
    let signed = std::process::Command::new(BIN)
        .args([
            "policy",
            "sign",
            "--partner",
            "ggd",
            "--covenant",
            "ipga-r-amsterdam",
        ])
        .arg("--key")
        .arg(pki().join(gateway::pki::layout::governance_key("ggd")))
        .args(["--draft-version", draft["version"].as_str().unwrap()])
        .args(["--base", active["version"].as_str().unwrap()])
        .args(["--base-draft", active["draft"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    std::fs::write(&note_file, &signed.stdout).unwrap();
    let (code, out, err) = cli(
        &gw,
        "beheerder-2",
        &["signature", &id, "--note", note_file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ggd's signed approval"), "{out}");

    // Activation under load: requests before, during and after; none may fail.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, api, case_id, subject_ref) = (
            stop.clone(),
            gw.api.clone(),
            case.id.clone(),
            case.subject_ref.clone(),
        );
        load.push(tokio::spawn(async move {
            let c = client("rn");
            let t = token("rn", "reg.mulder", &["regisseur"]);
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || seen.len() < 5 {
                let r = c
                    .post(format!("https://{api}/v1/disclosures"))
                    .bearer_auth(&t)
                    .json(&json!({"subject": {"ref": subject_ref}, "purpose": "regie", "case": case_id}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap();
                seen.push((status, v["policy_version"].as_str().unwrap_or("").to_owned()));
            }
            seen
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (s, act) = admin(
        &gw,
        "beheerder-1",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{id}/activate"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{act}");
    let new_version = act["version"].as_str().unwrap().to_owned();
    assert_ne!(new_version, old_version);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut all = Vec::new();
    for h in load {
        all.extend(h.await.unwrap());
    }
    let failed: Vec<_> = all.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        all.len()
    );
    eprintln!(
        "{} disclosures during the activation, none failed",
        all.len()
    );
    assert!(
        all.iter().any(|(_, v)| *v == old_version),
        "load ran before the switch"
    );
    assert!(
        all.iter().any(|(_, v)| *v == new_version),
        "load ran after the switch"
    );

    // The next disclosure withholds the field, labelled with the new rule.
    let p = regie(&gw, &case).await;
    assert_eq!(p["policy_version"], new_version.as_str());
    assert_eq!(contact(&p)["redacted"], "5.1.2.e");
    assert_eq!(contact(&p)["rule"], "contactpersoon-niet-naar-rn");
    // Other partners are unaffected: the same field still reaches the voorportaal as before.
    let (_, now) = admin(&gw, "beheerder-2", reqwest::Method::GET, "/v1/policy", None).await;
    assert_eq!(now["version"], new_version.as_str());
    assert_eq!(now["author"]["staff_id"], "beheerder-1");
    assert_eq!(now["approver"]["staff_id"], "beheerder-2");
    assert!(now["activated_at"].as_str().is_some());

    // Rollback goes the same way: drafted, approved by the other administrator, activated.
    let (code, out, err) = cli(&gw, "beheerder-2", &["rollback", &old_version]);
    assert_eq!(code, 0, "{out}{err}");
    let rb = out.split_whitespace().nth(1).unwrap().to_owned();
    assert!(rb.starts_with("draft-"), "{out}");
    let (s, v) = admin(
        &gw,
        "beheerder-2",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{rb}/approve"),
        None,
    )
    .await;
    assert_eq!((s, slug(&v)), (403, "four-eyes"), "{v}");
    let (s, _) = admin(
        &gw,
        "beheerder-1",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{rb}/approve"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    sign_all(&gw, &rb).await;
    let (code, out, err) = cli(&gw, "beheerder-2", &["activate", &rb]);
    assert_eq!(code, 0, "{out}{err}");
    let p = regie(&gw, &case).await;
    assert_eq!(p["policy_version"], old_version.as_str());
    assert_eq!(contact(&p), "GGD Voorbeeldteam");
    let (code, out, _) = cli(&gw, "beheerder-1", &["versions"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "bootstrap, change, rollback: {out}");
    assert!(
        out.lines().next().unwrap().starts_with("* "),
        "newest first and active: {out}"
    );

    // Every step is in the tamper-evident log, refusals included; the log verifies.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    let steps: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT outcome, problem, entry FROM log_records WHERE kind = 'policy' ORDER BY seq",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let actions: Vec<String> = steps
        .iter()
        .map(|(o, p, e)| {
            let v: Value = serde_json::from_str(e).unwrap();
            format!(
                "{} {}",
                v["policy_change"]["action"].as_str().unwrap(),
                p.as_deref().unwrap_or(o)
            )
        })
        .collect();
    for want in [
        "bootstrap answered",
        "draft not-administrator",
        "draft covenant-invalid",
        "draft answered",
        "simulate answered",
        "activate draft-state",
        "approve four-eyes",
        "approve not-administrator",
        "approve answered",
        "activate answered",
        "rollback-draft answered",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} missing from {actions:?}"
        );
    }
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
async fn a_revoked_certificate_is_refused_without_a_restart_even_on_an_open_connection() {
    let dir = own_pki("revocation-pki");
    let gw = Gateway::start_in(&dir, |c| {
        c.replace("[tls]\n", "[tls]\ncrl_check_secs = 1\n")
    });
    let (c, t) = client_in(&dir, "politie", "p1", &["voorportaal"]);
    let r = c
        .get(gw.url("/v1/policy"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let out = std::process::Command::new(BIN)
        .args([
            "certs",
            "revoke",
            "--partner",
            "politie",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = gw.wait_log(&["revocation lists reloaded"]);
    assert!(log.contains("revocation lists reloaded"), "{log}");

    // The connection opened before the revocation: refused from its next request.
    let r = c
        .get(gw.url("/v1/policy"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    problem(r, 401, "certificate-revoked").await;
    // A new connection with the revoked certificate fails the handshake.
    let (c2, t2) = client_in(&dir, "politie", "p1", &["voorportaal"]);
    assert!(
        c2.get(gw.url("/v1/policy"))
            .bearer_auth(&t2)
            .send()
            .await
            .is_err()
    );
    // Another partner is unaffected.
    let (c3, t3) = client_in(&dir, "rn", "r1", &["regisseur"]);
    let r = c3
        .get(gw.url("/v1/policy"))
        .bearer_auth(&t3)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Both the reload and the refusal are on the record.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT entry, problem FROM log_records ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(rows.iter().any(|(e, _)| e.contains("\"crl-reload\"")));
    assert!(
        rows.iter()
            .any(|(_, p)| p.as_deref() == Some("certificate-revoked"))
    );
}

#[tokio::test]
async fn a_rotated_token_key_is_a_new_version_that_needs_four_eyes() {
    let dir = own_pki("rotation-pki");
    let gw = Gateway::start_in(&dir, |c| c);
    let admin_call =
        |staff: &'static str, method: reqwest::Method, path: String, body: Option<String>| {
            let (c, t) = client_in(&dir, "oov", staff, &["beheerder"]);
            let url = gw.url(&path);
            async move {
                let mut r = c.request(method, url).bearer_auth(t);
                if let Some(b) = body {
                    r = r.header("content-type", "application/toml").body(b);
                }
                let r = r.send().await.unwrap();
                let s = r.status().as_u16();
                (s, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
    // The politie's identity provider rotates its key: the key file in the key directory is
    // replaced, the covenant text stays the same.
    let new = rcgen::KeyPair::generate().unwrap();
    std::fs::write(
        dir.join("politie/token-es256.pub.pem"),
        new.public_key_pem(),
    )
    .unwrap();
    std::fs::write(
        dir.join(gateway::pki::layout::token_key("politie")),
        new.serialize_pem(),
    )
    .unwrap();
    // Until a version with the new key is active, the new key's tokens are refused: the active
    // version holds the key material it was approved with.
    let (c, t) = client_in(&dir, "politie", "p1", &["voorportaal"]);
    let r = c
        .get(gw.url("/v1/policy"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    problem(r, 401, "token-invalid").await;

    let text = std::fs::read_to_string(covenant_path()).unwrap();
    let (s, d) = admin_call(
        "beheerder-1",
        reqwest::Method::POST,
        "/v1/policy/drafts".into(),
        Some(text),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["diff"]["decision_changes"], 0);
    let reg = d["diff"]["registry_changes"].to_string();
    assert!(
        reg.contains("partner politie: token key politie-1"),
        "{reg}"
    );
    let id = d["id"].as_str().unwrap().to_owned();
    let (s, _) = admin_call(
        "beheerder-2",
        reqwest::Method::POST,
        format!("/v1/policy/drafts/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    // A key read from a file is the partner's: the review names politie, which signs.
    assert!(
        d["diff"]["review"]["partners"]
            .to_string()
            .contains("politie"),
        "{d}"
    );
    let (s, v) = admin_call(
        "beheerder-1",
        reqwest::Method::POST,
        format!("/v1/policy/drafts/{id}/activate"),
        None,
    )
    .await;
    assert_eq!((s, slug(&v)), (409, "signatures-missing"), "{v}");
    sign_all_in(&gw, &dir, &id).await;
    let (s, v) = admin_call(
        "beheerder-1",
        reqwest::Method::POST,
        format!("/v1/policy/drafts/{id}/activate"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let r = c
        .get(gw.url("/v1/policy"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the new key is accepted once its version is active"
    );
}

#[tokio::test]
async fn on_postgresql_an_activation_reaches_every_instance() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let poll = |c: String| c.replace("[administration]\n", "[administration]\npoll_secs = 1\n");
    let env = [("GATEWAY_DATABASE_URL", url.as_str())];
    let a = Gateway::start_with_config(poll, &env);
    let b = Gateway::start_with_config(poll, &env);
    let version = |gw: &Gateway| {
        let url = gw.url("/v1/policy");
        async move {
            let r = client("oov")
                .get(url)
                .bearer_auth(token("oov", "beheerder-1", &["beheerder"]))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["version"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let old = version(&a).await;
    assert_eq!(version(&b).await, old, "one bootstrap for both");
    let (s, d) = admin(
        &a,
        "beheerder-1",
        reqwest::Method::POST,
        "/v1/policy/drafts",
        Some(("application/toml", draft_text())),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    // Approved on one instance, activated on the other.
    let (s, _) = admin(
        &a,
        "beheerder-2",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    sign_all(&a, id).await;
    let (s, v) = admin(
        &b,
        "beheerder-1",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{id}/activate"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let new = v["version"].as_str().unwrap().to_owned();
    assert_eq!(version(&b).await, new);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while version(&a).await != new {
        assert!(
            std::time::Instant::now() < deadline,
            "instance a never followed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A second activation of the same draft is refused on both.
    let (s, v) = admin(
        &a,
        "beheerder-1",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{id}/activate"),
        None,
    )
    .await;
    assert_eq!((s, slug(&v)), (409, "draft-state"), "{v}");
}

#[tokio::test]
async fn the_art_15_report_names_each_disclosure_by_the_version_that_decided_it() {
    let gw = Gateway::start();
    let case = case_with_records(&gw, "999993331").await;
    include(&gw, &case).await;
    regie(&gw, &case).await;
    // The administrators change the ground the regisseur's data goes out on.
    let old_ground = "Wet PGA art. 3 lid 2; AVG art. 6 lid 1 sub e; Wpg art. 20;";
    let text = std::fs::read_to_string(covenant_path()).unwrap().replace(
        old_ground,
        "Gewijzigde grondslag (test); AVG art. 6 lid 1 sub e; Wpg art. 20;",
    );
    let (s, d) = admin(
        &gw,
        "beheerder-1",
        reqwest::Method::POST,
        "/v1/policy/drafts",
        Some(("application/toml", text)),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_owned();
    let (s, _) = admin(
        &gw,
        "beheerder-2",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    sign_all(&gw, &id).await;
    let (s, v) = admin(
        &gw,
        "beheerder-1",
        reqwest::Method::POST,
        &format!("/v1/policy/drafts/{id}/activate"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let new_version = v["version"].as_str().unwrap().to_owned();
    regie(&gw, &case).await;

    let r = client("oov")
        .post(gw.url("/v1/audit/subjects/report"))
        .bearer_auth(token("oov", "fg.1", &["privacy-officer"]))
        .json(&json!({"subject": {"bsn": "999993331"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    let regie: Vec<&Value> = report["disclosures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["purpose"] == "regie")
        .collect();
    assert_eq!(regie.len(), 2, "{report}");
    let ground = |d: &Value| {
        d["legal_grounds"]["regie-basis"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        ground(regie[0]).starts_with(&format!("voorbeeldgrond: {old_ground}")),
        "the first as its own version says: {report}"
    );
    assert!(
        ground(regie[1]).starts_with("voorbeeldgrond: Gewijzigde grondslag"),
        "{report}"
    );
    assert_ne!(regie[0]["policy_version"], regie[1]["policy_version"]);
    assert_eq!(regie[1]["policy_version"], new_version.as_str());

    // The command-line report reads the database's versions, not the covenant file.
    let out = std::process::Command::new(BIN)
        .args([
            "audit",
            "report",
            "--config",
            pki().join("gateway.toml").to_str().unwrap(),
            "--database-url",
            &gw.database_url,
            "--subject",
            "999993331",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "ground (regie-basis): voorbeeldgrond: {old_ground}"
        )),
        "{text}"
    );
    assert!(
        text.contains("ground (regie-basis): voorbeeldgrond: Gewijzigde grondslag"),
        "{text}"
    );
}

/// Issue 37: an operator who points `policy_state` at another stored version (a copy of a
/// draft, a superseded one) got it served after a restart, with only a line in the
/// operational log. The gateway now serves only the version the log last activated.
#[tokio::test]
async fn a_version_switched_in_the_database_is_not_served() {
    let url = sqlite_url("switched");
    let mut gw = Gateway::start_with(&url, &[]);
    let stopped =
        tokio::task::spawn_blocking(move || gw.terminate(std::time::Duration::from_secs(20)))
            .await
            .unwrap();
    assert_eq!(stopped.map(|s| s.success()), Some(true));
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let logged: String = sqlx::query_scalar("SELECT active_draft FROM policy_state")
        .fetch_one(&mut db)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO policy_drafts SELECT 'draft-forged', version, source, key_material, kind, base_version, \
         author_partner, author_staff, created_at, approved_partner, approved_staff, approved_at, \
         activated_partner, activated_staff, activated_at, status FROM policy_drafts \
         WHERE id = (SELECT active_draft FROM policy_state); \
         UPDATE policy_state SET active_draft = 'draft-forged'",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let config = pki().join("gateway.toml");
    let err = crate::witness::refused_start(config.to_str().unwrap(), &url, &[]);
    assert!(
        err.contains("draft-forged")
            && err.contains(&format!("the log last activated draft {logged} (version")),
        "{err}"
    );
    // The logged draft's own row edited in place (its text and its hash): refused as well.
    let version: String = sqlx::query_scalar("SELECT version FROM policy_drafts WHERE id = $1")
        .bind(&logged)
        .fetch_one(&mut db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE policy_drafts SET version = 'v-forged', source = source || '\n# edited' WHERE id = $1",
    )
    .bind(&logged)
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::query("UPDATE policy_state SET active_draft = $1")
        .bind(&logged)
        .execute(&mut db)
        .await
        .unwrap();
    let err = crate::witness::refused_start(config.to_str().unwrap(), &url, &[]);
    assert!(
        err.contains("(version v-forged)") && err.contains(&format!("(version {version})")),
        "{err}"
    );
    // `audit verify` replays every activation the log shows against its stored versions and
    // signatures, and names the one whose version was edited.
    let out = std::process::Command::new(BIN)
        .args([
            "audit",
            "verify",
            "--config",
            config.to_str().unwrap(),
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    assert!(
        err.contains(&format!(
            "activated a version without what it needed: draft {logged} is stored as version v-forged, but the log recorded {version}"
        )),
        "{text}{err}"
    );
    sqlx::query(
        "UPDATE policy_drafts SET version = $2, source = substr(source, 1, length(source) - 9) WHERE id = $1",
    )
    .bind(&logged)
    .bind(&version)
    .execute(&mut db)
    .await
    .unwrap();
    // Set back to what the log shows, it serves again.
    sqlx::query("UPDATE policy_state SET active_draft = $1")
        .bind(&logged)
        .execute(&mut db)
        .await
        .unwrap();
    let gw = Gateway::start_with(&url, &[("GATEWAY_ADMINISTRATION_POLL_SECS", "1")]);
    // Switched while it serves: it stops answering, and readiness says why, until the database
    // agrees with the log again.
    sqlx::query("UPDATE policy_state SET active_draft = 'draft-forged'")
        .execute(&mut db)
        .await
        .unwrap();
    let covenant_check = || async {
        let r: Value = reqwest::get(format!("http://{}/readyz", gw.health))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "covenant")
            .map(|c| c["ok"] == true)
    };
    let t0 = std::time::Instant::now();
    while covenant_check().await != Some(false) {
        assert!(t0.elapsed().as_secs() < 15, "readiness never noticed");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let r = client("politie")
        .get(gw.url("/v1/cases/case-any"))
        .bearer_auth(token("politie", "vp.1", &["voorportaal"]))
        .send()
        .await
        .unwrap();
    problem(r, 503, "covenant-mismatch").await;
    sqlx::query("UPDATE policy_state SET active_draft = $1")
        .bind(&logged)
        .execute(&mut db)
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    while covenant_check().await != Some(true) {
        assert!(t0.elapsed().as_secs() < 15, "readiness never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Issue 37, the installation ceremony: an empty database takes its first version only with
/// every core partner's signature on it, and says whose is missing.
#[test]
fn the_first_version_is_installed_only_with_every_core_partners_signature() {
    let dir = scratch().join(format!("installation-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut notes = 0;
    for f in std::fs::read_dir(pki().join("installation")).unwrap() {
        let f = f.unwrap().path();
        let name = f.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".note") && !name.starts_with("rn-") {
            std::fs::copy(&f, dir.join(&name)).unwrap();
            notes += 1;
        }
    }
    assert!(
        notes >= 6,
        "the example PKI signed the e2e covenant: {notes} notes"
    );
    let text = std::fs::read_to_string(pki().join("gateway.toml")).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("installation_signatures") {
                format!("installation_signatures = {:?}", dir.to_str().unwrap())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = pki().join(format!("gateway-no-rn-{}.toml", std::process::id()));
    std::fs::write(&config, text).unwrap();
    let url = sqlite_url("installation");
    let err = crate::witness::refused_start(config.to_str().unwrap(), &url, &[]);
    assert!(
        err.contains("refusing to install covenant version")
            && err.contains("it lacks rn's signature")
            && !err.contains("oov's signature"),
        "{err}"
    );
    // rn signs too: the same empty database takes it.
    for f in std::fs::read_dir(pki().join("installation")).unwrap() {
        let f = f.unwrap().path();
        let name = f.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with("rn-") {
            std::fs::copy(&f, dir.join(&name)).unwrap();
        }
    }
    let gw = Gateway::spawn_on(
        config.to_str().unwrap(),
        &[("GATEWAY_DATABASE_URL", url.as_str())],
    );
    drop(gw);
}
