//! The case register through the real binary: creation, reading, every allowed and forbidden
//! status change, and no personal data in the operational log.

use crate::helpers::*;
use serde_json::{Value, json};

struct Actor {
    client: reqwest::Client,
    token: String,
}

impl Actor {
    fn new(partner: &str, sub: &str, roles: &[&str]) -> Actor {
        Actor {
            client: client(partner),
            token: token(partner, sub, roles),
        }
    }
    async fn post(&self, gw: &Gateway, body: Value) -> reqwest::Response {
        self.client
            .post(gw.url("/v1/cases"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
    async fn get(&self, gw: &Gateway, id: &str) -> reqwest::Response {
        self.client
            .get(gw.url(&format!("/v1/cases/{id}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }
    async fn patch(&self, gw: &Gateway, id: &str, body: Value) -> reqwest::Response {
        self.client
            .patch(gw.url(&format!("/v1/cases/{id}")))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

async fn ok(resp: reqwest::Response, status: u16) -> Value {
    let s = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(s, status, "{v}");
    v
}

const BSN: &str = "111222333";

#[tokio::test]
async fn a_case_through_the_whole_work_process() {
    let gw = Gateway::start();
    let voorportaal = Actor::new("politie", "vp.jansen", &["voorportaal"]);
    let secretaris = Actor::new("oov", "sec.devries", &["secretaris"]);
    let overleg = Actor::new("om", "ro.bakker", &["regieoverleg-lid"]);
    let pto = Actor::new("oov", "pto.smit", &["pto-lid"]);
    let regisseur = Actor::new("rn", "reg.mulder", &["regisseur"]);

    // Register a signal.
    let resp = voorportaal.post(&gw, json!({"subject": {"bsn": BSN}, "signal_date": "2026-10-01", "risk_group": 4, "ideology": "rechts-extremistisch"})).await;
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let case = ok(resp, 201).await;
    let id = case["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/cases/{id}"));
    assert_eq!(case["status"], "melding");
    assert!(!case.to_string().contains(BSN), "the BSN never comes back");
    assert_eq!(case["classification"]["risk_group"], 4);

    // Forbidden: a step the work process does not have.
    problem(
        voorportaal
            .patch(&gw, &id, json!({"status": "uitvoering"}))
            .await,
        409,
        "transition-not-allowed",
    )
    .await;
    // melding → duiding by the voorportaal.
    ok(
        voorportaal
            .patch(&gw, &id, json!({"status": "duiding"}))
            .await,
        200,
    )
    .await;
    // duiding → opgenomen: not by the voorportaal; not without a regisseur.
    problem(
        voorportaal
            .patch(&gw, &id, json!({"status": "opgenomen"}))
            .await,
        403,
        "transition-forbidden",
    )
    .await;
    // Inclusion is the PTO-R's decision (the 2019 process): not without its members (issue 31).
    problem(
        secretaris
            .patch(&gw, &id, json!({"status": "opgenomen", "regisseur": {"partner": "rn", "staff_id": "reg.mulder"}}))
            .await,
        422,
        "decision-required",
    )
    .await;
    problem(
        secretaris
            .patch(
                &gw,
                &id,
                json!({"status": "opgenomen", "decision": pto_decision()}),
            )
            .await,
        422,
        "regisseur-required",
    )
    .await;
    // The GGD delivers no regisseurs.
    problem(
        secretaris
            .patch(
                &gw,
                &id,
                json!({"status": "opgenomen", "regisseur": {"partner": "ggd", "staff_id": "x"}, "decision": pto_decision()}),
            )
            .await,
        422,
        "invalid-regisseur",
    )
    .await;
    // The Regieoverleg appoints the regisseur; the regisseur chooses the UVO (seed 004).
    problem(
        secretaris
            .patch(&gw, &id, json!({"uvo_partners": ["politie", "wpi"]}))
            .await,
        403,
        "appointment-forbidden",
    )
    .await;
    // The double-approach check (issue 31): not included before an aanpak-check of the person
    // was answered complete.
    let include = json!({"status": "opgenomen", "regisseur": {"partner": "rn", "staff_id": "reg.mulder"}, "decision_date": "2026-11-01", "decision": pto_decision()});
    let v = problem(
        secretaris.patch(&gw, &id, include.clone()).await,
        409,
        "check-required",
    )
    .await;
    assert!(
        v["detail"].as_str().unwrap().contains("no aanpak-check"),
        "{v}"
    );
    let check = client("politie")
        .post(gw.url("/v1/checks"))
        .bearer_auth(token("politie", "vp.jansen", &["voorportaal"]))
        .json(&json!({"subject": {"bsn": BSN}, "purpose": "aanpak-check"}))
        .send()
        .await
        .unwrap();
    let check = ok(check, 200).await;
    assert_eq!(check["complete"], true, "{check}");
    let c = ok(secretaris.patch(&gw, &id, include).await, 200).await;
    assert_eq!(c["regisseur"]["partner"], "rn");
    // The inclusion's entry names the check it rests on.
    let entries: Value = client("oov")
        .get(gw.url(&format!(
            "/v1/audit/disclosures?case={id}&kind=case-change&limit=50"
        )))
        .bearer_auth(token("oov", "fg.1", &["privacy-officer"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rested = entries["items"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["case_change"]["inclusion_check"].as_object().cloned());
    assert_eq!(
        rested.map(|r| (r["by"].clone(), r["seq"].clone())),
        Some((json!("checked"), check["audit_seq"].clone())),
        "{entries}"
    );
    problem(
        regisseur
            .patch(&gw, &id, json!({"uvo_partners": ["politie", "atlantis"]}))
            .await,
        422,
        "unknown-partner",
    )
    .await;
    let c = ok(
        regisseur
            .patch(&gw, &id, json!({"uvo_partners": ["wpi", "politie", "wpi"]}))
            .await,
        200,
    )
    .await;
    assert_eq!(c["uvo_partners"], json!(["politie", "wpi"]));
    // opgenomen → plan by the regisseur; plan → uitvoering by the Regieoverleg, after the
    // ITAT-R's review of the plan.
    ok(
        regisseur.patch(&gw, &id, json!({"status": "plan"})).await,
        200,
    )
    .await;
    problem(
        overleg
            .patch(
                &gw,
                &id,
                json!({"status": "uitvoering", "decision": ro_decision()}),
            )
            .await,
        422,
        "review-required",
    )
    .await;
    ok(
        overleg
            .patch(
                &gw,
                &id,
                json!({"status": "uitvoering", "decision": ro_decision(), "review": itat_review()}),
            )
            .await,
        200,
    )
    .await;
    // Only the PTO-R makes a case static.
    problem(
        overleg.patch(&gw, &id, json!({"status": "statisch"})).await,
        403,
        "statisch-requires-pto",
    )
    .await;
    problem(
        secretaris
            .patch(&gw, &id, json!({"status": "statisch"}))
            .await,
        403,
        "statisch-requires-pto",
    )
    .await;
    ok(
        pto.patch(
            &gw,
            &id,
            json!({"status": "statisch", "decision": pto_decision()}),
        )
        .await,
        200,
    )
    .await;
    ok(
        pto.patch(
            &gw,
            &id,
            json!({"status": "uitvoering", "decision": pto_decision()}),
        )
        .await,
        200,
    )
    .await;
    // uitvoering → afbouw → afgesloten; nothing leaves afgesloten.
    ok(
        secretaris
            .patch(
                &gw,
                &id,
                json!({"status": "afbouw", "decision": ro_decision(), "review": itat_review()}),
            )
            .await,
        200,
    )
    .await;
    problem(
        regisseur
            .patch(&gw, &id, json!({"status": "afgesloten"}))
            .await,
        403,
        "transition-forbidden",
    )
    .await;
    let closed = ok(
        overleg
            .patch(
                &gw,
                &id,
                json!({"status": "afgesloten", "decision": ro_decision(), "review": itat_review()}),
            )
            .await,
        200,
    )
    .await;
    problem(
        overleg
            .patch(&gw, &id, json!({"status": "uitvoering"}))
            .await,
        409,
        "transition-not-allowed",
    )
    .await;

    // Every change is recorded with who made it, in which role.
    let history = closed["history"].as_array().unwrap();
    let trail: Vec<(String, String, String)> = history
        .iter()
        .map(|h| {
            (
                h["partner"].as_str().unwrap().into(),
                h["role"].as_str().unwrap().into(),
                h["status"].as_str().unwrap_or("-").into(),
            )
        })
        .collect();
    let expected = [
        ("politie", "voorportaal", "melding"),
        ("politie", "voorportaal", "duiding"),
        ("oov", "secretaris", "opgenomen"),
        ("rn", "regisseur", "-"),
        ("rn", "regisseur", "plan"),
        ("om", "regieoverleg-lid", "uitvoering"),
        ("oov", "pto-lid", "statisch"),
        ("oov", "pto-lid", "uitvoering"),
        ("oov", "secretaris", "afbouw"),
        ("om", "regieoverleg-lid", "afgesloten"),
    ];
    assert_eq!(
        trail,
        expected
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(history[0]["staff_id"], "vp.jansen");
    assert_eq!(closed["version"], 10);

    // Regisseurs and interventieplegers read only cases they have a role in; to others a case
    // does not exist.
    problem(
        Actor::new("oov", "reg.smit", &["regisseur"])
            .get(&gw, &id)
            .await,
        404,
        "case-not-found",
    )
    .await;
    problem(
        Actor::new("om", "ip.1", &["interventiepleger"])
            .get(&gw, &id)
            .await,
        404,
        "case-not-found",
    )
    .await;
    ok(
        Actor::new("wpi", "ip.2", &["interventiepleger"])
            .get(&gw, &id)
            .await,
        200,
    )
    .await;

    // The covenant's prohibitions hold in the register too: WPI's PTO member reads the risk
    // group but never the ideology ("ideologie-nooit-naar-wpi").
    let wpi_pto = ok(
        Actor::new("wpi", "pto.wpi", &["pto-lid"])
            .get(&gw, &id)
            .await,
        200,
    )
    .await;
    assert_eq!(wpi_pto["classification"]["risk_group"], 4, "{wpi_pto}");
    assert!(
        wpi_pto["classification"].get("ideology").is_none(),
        "{wpi_pto}"
    );
    assert!(!wpi_pto.to_string().contains("rechts-extremistisch"));
    let oov_pto = ok(pto.get(&gw, &id).await, 200).await;
    assert_eq!(
        oov_pto["classification"]["ideology"],
        "rechts-extremistisch"
    );

    // The regisseur reads the administration, not the classification.
    let seen = ok(regisseur.get(&gw, &id).await, 200).await;
    assert!(seen.get("classification").is_none(), "{seen}");
    assert_eq!(seen["status"], "afgesloten");

    // Nothing personal in the operational log.
    let log = gw.log();
    assert!(!log.is_empty());
    for secret in [BSN, "rechts-extremistisch"] {
        assert!(!log.contains(secret), "operational log contains `{secret}`");
    }
}

#[tokio::test]
async fn creation_rules() {
    let gw = Gateway::start();
    let voorportaal = Actor::new("oov", "vp.1", &["voorportaal"]);
    problem(
        voorportaal
            .post(&gw, json!({"subject": {"bsn": "123456789"}}))
            .await,
        422,
        "invalid-bsn",
    )
    .await;
    problem(
        voorportaal
            .post(&gw, json!({"subject": {"bsn": "12345"}}))
            .await,
        422,
        "invalid-bsn",
    )
    .await;
    problem(
        voorportaal
            .post(&gw, json!({"subject": {"bsn": BSN}, "risk_group": 9}))
            .await,
        400,
        "invalid-body",
    )
    .await;
    problem(
        voorportaal
            .post(
                &gw,
                json!({"subject": {"bsn": BSN}, "ideology": "onbekende-stroming"}),
            )
            .await,
        400,
        "invalid-body",
    )
    .await;
    problem(
        voorportaal
            .post(
                &gw,
                json!({"subject": {"bsn": BSN}, "signal_date": "01-10-2026"}),
            )
            .await,
        400,
        "invalid-body",
    )
    .await;
    // A regisseur may not register cases.
    problem(
        Actor::new("oov", "r.1", &["regisseur"])
            .post(&gw, json!({"subject": {"bsn": BSN}}))
            .await,
        403,
        "case-permission",
    )
    .await;
    // One open case per person: a second signal is pointed to the first case (issue 41).
    let a = ok(
        voorportaal
            .post(&gw, json!({"subject": {"bsn": BSN}}))
            .await,
        201,
    )
    .await;
    let again = problem(
        voorportaal
            .post(&gw, json!({"subject": {"bsn": BSN}}))
            .await,
        409,
        "case-open",
    )
    .await;
    assert!(
        again["detail"]
            .as_str()
            .unwrap()
            .contains(a["id"].as_str().unwrap()),
        "{again}"
    );
    let c = ok(
        voorportaal
            .post(&gw, json!({"subject": {"bsn": "123456782"}}))
            .await,
        201,
    )
    .await;
    assert_ne!(a["subject_ref"], c["subject_ref"]);
    // Reading: a peer may not; an unknown id is 404 for those who may.
    problem(
        Actor::new("gemeente-utrecht", "p.1", &["peer"])
            .get(&gw, a["id"].as_str().unwrap())
            .await,
        403,
        "case-permission",
    )
    .await;
    problem(
        voorportaal.get(&gw, "case-unknown").await,
        404,
        "case-not-found",
    )
    .await;
    problem(
        voorportaal
            .patch(&gw, a["id"].as_str().unwrap(), json!({}))
            .await,
        400,
        "empty-patch",
    )
    .await;
}
