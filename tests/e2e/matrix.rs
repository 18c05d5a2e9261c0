//! The authorization matrix (issue 41), walked through the API: the in-process server over
//! mutual TLS, on SQLite and on PostgreSQL. Every cell that `gateway::service::access` generates
//! from the covenant is asked as a partner would ask it, and must get the cell's status and
//! problem type; every `404` must be byte for byte (body and headers but the date) the answer
//! for an id that does not exist; and every request must have its log entry.

use crate::helpers::*;
use crate::inproc::{InProc, spawn_app};
use gateway::service::access::{self, Answer, Route, Standing};
use policy::{CaseStatus, Covenant};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The regisseur every case with a team has: `rn`'s `reg.1`. Its partner is kept off the
/// UVOs, so that "on the UVO" and "no role in it" are never the regisseur's partner.
const REGISSEUR: (&str, &str) = ("rn", "reg.1");

/// The nth nine-digit number that passes the 11-proef, from 100000000 on.
fn bsn(n: usize) -> String {
    (100_000_000u64..)
        .filter(|v| {
            let d: Vec<u64> = v.to_string().bytes().map(|b| u64::from(b - b'0')).collect();
            let sum: i64 = (0..8).map(|i| (9 - i as i64) * d[i] as i64).sum::<i64>() - d[8] as i64;
            sum % 11 == 0
        })
        .nth(n)
        .unwrap()
        .to_string()
}

struct Api<'a> {
    gw: &'a InProc,
    t0: i64,
    clients: HashMap<String, reqwest::Client>,
}

/// An answer: status, headers (but the date and the per-request transaction id), body bytes.
#[derive(Debug, PartialEq, Eq)]
struct Said {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Said {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
    fn slug(&self) -> Option<String> {
        let v = self.json();
        v["type"]
            .as_str()
            .and_then(|t| t.rsplit_once('/'))
            .map(|(_, s)| s.to_owned())
    }
}

impl Api<'_> {
    async fn ask(
        &mut self,
        who: (&str, &str, &str),
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Said {
        let (partner, staff, role) = who;
        let client = self
            .clients
            .entry(partner.to_owned())
            .or_insert_with(|| client(partner))
            .clone();
        let token = token_with(
            partner,
            staff,
            &[role],
            &pki().join(format!("{partner}/client.pem")),
            "gateway.ipga-r.example",
            self.t0,
            600,
        );
        let mut req = client.request(method, self.gw.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let mut headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter(|(k, _)| !["date", "fsc-transaction-id"].contains(&k.as_str()))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
            .collect();
        headers.sort();
        let body = resp.text().await.unwrap();
        Said {
            status,
            headers,
            body,
        }
    }

    async fn patch(&mut self, who: (&str, &str, &str), id: &str, body: Value) {
        let said = self
            .ask(
                who,
                reqwest::Method::PATCH,
                &format!("/v1/cases/{id}"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(said.status, 200, "{who:?} {body}: {}", said.body);
    }
}

/// A case brought through the work process to `status`, as its partners would: with its team
/// (the regisseur `regisseur`, the UVO `uvo`) from its inclusion on. Returns its id and subject
/// reference.
async fn case_in(
    api: &mut Api<'_>,
    n: usize,
    status: CaseStatus,
    regisseur: (&str, &str),
    uvo: &[&str],
) -> (String, String) {
    let vp = ("politie", "vp.1", "voorportaal");
    let sec = ("oov", "sec.1", "secretaris");
    let created = api
        .ask(
            vp,
            reqwest::Method::POST,
            "/v1/cases",
            Some(json!({"subject": {"bsn": bsn(n)}})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let case = created.json();
    let id = case["id"].as_str().unwrap().to_owned();
    let subject = case["subject_ref"].as_str().unwrap().to_owned();
    use CaseStatus::*;
    if status == Melding {
        return (id, subject);
    }
    if status == NietOpgenomen {
        api.patch(vp, &id, json!({"status": "niet-opgenomen"}))
            .await;
        return (id, subject);
    }
    api.patch(vp, &id, json!({"status": "duiding"})).await;
    if status == Duiding {
        return (id, subject);
    }
    api.patch(
        sec,
        &id,
        json!({"status": "opgenomen", "decision": pto_decision(), "check_override": INCLUDED_WITHOUT_CHECK,
               "regisseur": {"partner": regisseur.0, "staff_id": regisseur.1}}),
    )
    .await;
    if !uvo.is_empty() {
        api.patch(
            (regisseur.0, regisseur.1, "regisseur"),
            &id,
            json!({"uvo_partners": uvo}),
        )
        .await;
    }
    let steps: &[(CaseStatus, bool)] = match status {
        Opgenomen => &[],
        Plan => &[(Plan, false)],
        Uitvoering => &[(Plan, false), (Uitvoering, true)],
        Statisch => &[(Plan, false), (Uitvoering, true), (Statisch, true)],
        Afbouw => &[(Plan, false), (Uitvoering, true), (Afbouw, true)],
        Afgesloten => &[
            (Plan, false),
            (Uitvoering, true),
            (Afbouw, true),
            (Afgesloten, true),
        ],
        Melding | Duiding | NietOpgenomen => unreachable!(),
    };
    for (to, decided) in steps {
        let (who, decision) = if *to == Statisch {
            (("oov", "pto.1", "pto-lid"), pto_decision())
        } else {
            (sec, ro_decision())
        };
        let mut body = json!({"status": to.as_str()});
        if *decided {
            body["decision"] = decision;
        }
        // The ITAT-R's review before the plan's adoption, afbouw and afsluiting (2019).
        if matches!(to, Uitvoering | Afbouw | Afgesloten) {
            body["review"] = itat_review();
        }
        api.patch(who, &id, body).await;
    }
    (id, subject)
}

/// A partner that may hold `role` and is not excluded, if any.
fn holder<'c>(c: &'c Covenant, role: policy::RoleRef, not: &[&str]) -> Option<&'c str> {
    let r = c.roles.get(role.index())?;
    c.partners
        .iter()
        .enumerate()
        .find(|(i, p)| r.held_by.get(*i).copied().unwrap_or(false) && !not.contains(&p.id.as_str()))
        .map(|(_, p)| p.id.as_str())
}

async fn walk(database_url: Option<String>) {
    let t0 = now();
    let mut env = vec![
        ("GATEWAY_LIMITS_PARTNER_PER_SECOND", "1000000".to_owned()),
        ("GATEWAY_LIMITS_STAFF_PER_SECOND", "1000000".to_owned()),
    ];
    if let Some(url) = &database_url {
        env.push(("GATEWAY_DATABASE_URL", url.clone()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gw = spawn_app(t0, &env).await;
    let active = gw.app.policy.load_full();
    let c = active.covenant.covenant();
    let mut api = Api {
        gw: &gw,
        t0,
        clients: HashMap::new(),
    };
    // The UVO of every case with a team: every partner but the regisseur's. "No role in it" is
    // then asked of a case with an empty UVO whose regisseur is someone else's (`om`), by a
    // partner that is on every other case's UVO: a role in another case opens nothing here.
    let team: Vec<&str> = c
        .partners
        .iter()
        .map(|p| p.id.as_str())
        .filter(|p| *p != REGISSEUR.0)
        .collect();
    let mut cases: HashMap<(Standing, CaseStatus), (String, String)> = HashMap::new();
    let mut n = 0;
    for status in CaseStatus::ALL.iter().copied() {
        if access::has_team(status) {
            n += 1;
            let case = case_in(&mut api, n, status, REGISSEUR, &team).await;
            cases.insert((Standing::OwnRegisseur, status), case);
        }
        n += 1;
        let outside = case_in(&mut api, n, status, ("om", "reg.om"), &[]).await;
        cases.insert((Standing::Outside, status), outside);
    }
    let before = gw.app.db.log_head().await.unwrap().size;
    let mut asked = 0i64;
    let mut missing_answers: HashMap<(String, String, &'static str, String), Said> = HashMap::new();
    let cells = access::matrix(c);
    for cell in &cells {
        let role = &c.roles[cell.role.index()].id;
        let (case, who_partner, staff) = match cell.standing {
            Standing::OwnRegisseur => (
                cases.get(&(Standing::OwnRegisseur, cell.status.unwrap())),
                Some(REGISSEUR.0),
                REGISSEUR.1,
            ),
            Standing::Team => (
                cases.get(&(Standing::OwnRegisseur, cell.status.unwrap())),
                holder(c, cell.role, &[REGISSEUR.0]),
                "team.1",
            ),
            Standing::Outside => (
                cases.get(&(Standing::Outside, cell.status.unwrap())),
                holder(c, cell.role, &[REGISSEUR.0, "om"]),
                "outside.1",
            ),
            Standing::NoSuchCase => (None, holder(c, cell.role, &[]), "nobody.1"),
        };
        // A role only the excluded partners hold has no such requester: nothing to ask.
        let Some(partner) = who_partner else { continue };
        let (id, subject) = match case {
            Some((id, subject)) => (id.clone(), subject.clone()),
            None => (
                "case-does-not-exist".to_owned(),
                "subj-does-not-exist".to_owned(),
            ),
        };
        let who = (partner, staff, role.as_str());
        let (method, path, body, kind) = match cell.route {
            Route::ReadCase => (
                reqwest::Method::GET,
                format!("/v1/cases/{id}"),
                None,
                "read",
            ),
            Route::ChangeCase => (
                reqwest::Method::PATCH,
                format!("/v1/cases/{id}"),
                Some(json!({"notification_date": "2026-11-02"})),
                "change",
            ),
            Route::Disclose(p) => {
                let purpose = &c.purposes[p.index()].id;
                let barred = c.identity_barred(c.partner(partner).unwrap(), cell.role, p);
                let mut body = json!({"purpose": purpose, "case": id});
                if !barred {
                    body["subject"] = json!({"ref": subject});
                }
                (
                    reqwest::Method::POST,
                    "/v1/disclosures".to_owned(),
                    Some(body),
                    "disclose",
                )
            }
        };
        let said = api.ask(who, method.clone(), &path, body.clone()).await;
        asked += 1;
        assert_eq!(
            (said.status, said.slug().as_deref()),
            (cell.answer.status(), cell.answer.slug()),
            "{} by {partner}/{staff} as {role}, {}, case {:?}: {}",
            access::route_name(c, cell.route),
            cell.standing.as_str(),
            cell.status,
            said.body
        );
        if cell.answer == Answer::CaseNotFound {
            // The same request for an id that does not exist, by the same requester.
            let key = (
                partner.to_owned(),
                role.clone(),
                kind,
                format!("{body:?}").replace(&id, "").replace(&subject, ""),
            );
            if !missing_answers.contains_key(&key) {
                let path = path.replace(&id, "case-does-not-exist");
                let body = body.map(|b| {
                    serde_json::from_str(
                        &b.to_string()
                            .replace(&id, "case-does-not-exist")
                            .replace(&subject, "subj-does-not-exist"),
                    )
                    .unwrap()
                });
                let none = api.ask(who, method, &path, body).await;
                asked += 1;
                missing_answers.insert(key.clone(), none);
            }
            assert_eq!(
                &said,
                &missing_answers[&key],
                "{} by {partner}/{role}, {}: a 404 that differs from an unknown id's",
                access::route_name(c, cell.route),
                cell.standing.as_str()
            );
        }
    }
    assert!(asked > 400, "{asked} cells asked");
    // Every request, answered or refused, has its entry.
    let after = gw.app.db.log_head().await.unwrap().size;
    assert_eq!(after - before, asked, "one log entry per request");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cell_of_the_authorization_matrix_on_sqlite() {
    walk(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cell_of_the_authorization_matrix_on_postgresql() {
    let Some(url) = postgres_database().await else {
        return;
    };
    walk(Some(url)).await;
}
