//! `gateway demo`: a scripted stretch of the approach through real HTTPS calls with real tokens,
//! on a fresh example PKI and a fresh SQLite database, printed step by step. All people and
//! records are fictitious.
#![expect(
    clippy::indexing_slicing,
    reason = "indexing a serde_json::Value by key or position yields Null when absent, never panics; these read the API's own answers as a client would"
)]

use crate::auth::mint;
use crate::config::Config;
use crate::pki;
use anyhow::{Context, bail};
use policy::{Audience, CompiledCovenant};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A body's decision or review as the demo's minutes record it: its reference, the meeting's
/// date and the members (partner, staff id) who took it.
fn minutes(reference: &str, date: &str, members: &[(&str, &str)]) -> Value {
    let members: Vec<Value> = members
        .iter()
        .map(|(partner, staff_id)| json!({"partner": partner, "staff_id": staff_id}))
        .collect();
    json!({"reference": reference, "date": date, "members": members})
}

/// The Regieoverleg's members in the demo: three of three partners, the example's quorum.
const REGIEOVERLEG: [(&str, &str); 3] = [
    ("oov", "ro.gemeente"),
    ("politie", "ro.politie"),
    ("om", "ro.om"),
];
/// The PTO-R's members in the demo: four of four partners, the example's quorum (in the 2019
/// process the PTO-R approves inclusion).
const PTO_R: [(&str, &str); 4] = [
    ("oov", "pto.gemeente"),
    ("politie", "pto.politie"),
    ("om", "pto.om"),
    ("ggd", "pto.ggd"),
];
/// The ITAT-R's members in the demo: three of three partners, the example's quorum.
const ITAT_R: [(&str, &str); 3] = [
    ("oov", "itat.gemeente"),
    ("politie", "itat.politie"),
    ("rn", "itat.rn"),
];

/// The example covenant, built in so that the demo also runs outside the repository.
pub const EXAMPLE_COVENANT: &str = include_str!("../../ops/covenant/ipga-r.toml");

/// The fictitious subject of the demo.
pub const SUBJECT_BSN: &str = "999993331";
/// A second fictitious person, unknown to the approach.
pub const UNKNOWN_BSN: &str = "999992223";

/// The demo's synthetic records, per product, for the subject. Realistic Dutch fields; clearly
/// fictitious people ("de Proef", "Voorbeeld").
pub fn records() -> Vec<(&'static str, Value)> {
    vec![
        (
            "oov.casusdossier",
            json!([{
                "bsn": SUBJECT_BSN, "naam": "Daan de Proef", "geboortedatum": "1998-03-14",
                "adres": "Voorbeeldstraat 12-2", "postcode": "1055 XK", "telefoon": "0612345678",
                "risicogroep": "4", "risicoprofiel": "Radicaliseert; verheerlijkt geweld online; geen concrete plannen",
                "ideologie": "rechts-extremistisch", "status": "opgenomen", "regisseur": "rn/reg.mulder",
                "datum_melding": "2026-09-15", "datum_besluit": "2026-10-20",
                "leefgebieden": ["inkomen", "dagbesteding"], "plandoelen": ["dagbesteding vinden", "contact met broer herstellen"],
                "interventies": ["mentor", "schuldhulpverlening"], "netwerk": ["Groep Nachtwacht (online)"]
            }]),
        ),
        (
            "politie.registraties",
            json!([
                {"registratienummer": "PL1300-2026123456", "datum": "2026-08-02", "incidentsoort": "bedreiging (online)",
                 "rol": "verdachte", "omschrijving": "Dreigende berichten in openbare chatgroep gericht aan moskee-bestuur.",
                 "locatie_postcode": "1055 XK", "signaleringen": ["gevaar voor hulpverlening"], "contacten": ["J. Voorbeeld"]},
                {"registratienummer": "PL1300-2026099871", "datum": "2026-05-21", "incidentsoort": "openlijke geweldpleging",
                 "rol": "getuige", "omschrijving": "Aanwezig bij vechtpartij na demonstratie.", "locatie_postcode": "1012 AB",
                 "signaleringen": [], "contacten": []}
            ]),
        ),
        (
            "om.strafzaken",
            json!([{
                "parketnummer": "13/123456-26", "feit": "bedreiging (art. 285 Sr)", "status": "dagvaarding uitgebracht",
                "zittingsdatum": "2026-12-09", "bijzondere_voorwaarden": ["contactverbod aangevers"], "officier": "mr. A. Voorbeeld"
            }]),
        ),
        (
            "rn.toezicht",
            json!([{
                "toezicht_type": "schorsingstoezicht", "startdatum": "2026-08-20", "einddatum": "2027-02-20",
                "voorwaarden": ["meldplicht", "contactverbod"], "naleving": "goed",
                "toezichthouder": "R. Mulder", "toezichthouder_telefoon": "0201234567"
            }]),
        ),
        (
            "rvdk.onderzoeken",
            json!([{
                "onderzoek_type": "beschermingsonderzoek (broertje)", "startdatum": "2026-07-01", "maatregel": "geen",
                "minderjarigen_in_gezin": 2, "bevindingen": "Zorgen over veiligheid broertje (12) thuis.",
                "raadsonderzoeker": "S. Voorbeeld"
            }]),
        ),
        (
            "ggd.screening",
            json!([{
                "screeningsdatum": "2026-09-30", "in_zorg": true, "zorgaanbieder": "GGZ-instelling Voorbeeld",
                "diagnose": "fictieve diagnose", "medicatie": "fictieve medicatie", "contactpersoon": "GGD Voorbeeldteam"
            }]),
        ),
        (
            "wpi.inkomen",
            json!([{
                "uitkering": "Participatiewet (bijstand)", "uitkering_sinds": "2025-11-01", "bedrag_per_maand": 1187,
                "iban": "NL91ABNA0417164300", "schulden": true, "dagbesteding": "geen", "klantmanager": "K. Voorbeeld"
            }]),
        ),
    ]
}

/// Every personal value the demo uses, for the test that searches the operational log.
pub fn personal_values() -> Vec<String> {
    let mut out = vec![SUBJECT_BSN.to_owned(), UNKNOWN_BSN.to_owned()];
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if s.len() >= 4 => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    for (_, v) in records() {
        walk(&v, &mut out);
    }
    // Values that are also vocabulary (statuses, product words) are not personal.
    out.retain(|s| {
        !matches!(
            s.as_str(),
            "opgenomen"
                | "geen"
                | "goed"
                | "inkomen"
                | "dagbesteding"
                | "verdachte"
                | "getuige"
                | "mentor"
        )
    });
    out
}

fn read(p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

struct Actor {
    label: String,
    partner: String,
    role: String,
    client: reqwest::Client,
    token: String,
}

struct Demo {
    dir: PathBuf,
    api: String,
    cc: Arc<CompiledCovenant>,
    step: usize,
    out: String,
}

impl Demo {
    fn actor(&self, partner: &str, sub: &str, role: &str, label: &str) -> anyhow::Result<Actor> {
        let d = &self.dir;
        let mut pem = read(&d.join(pki::layout::client_cert(partner)))?;
        pem.extend(read(&d.join(pki::layout::client_key(partner)))?);
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&read(
                &d.join(pki::layout::CA),
            )?)?])
            .identity(reqwest::Identity::from_pem(&pem)?)
            .build()?;
        let certs = crate::tls::read_certs(&d.join(pki::layout::client_cert(partner)))?;
        let cert = certs.first().context("no client certificate")?;
        let key = read(&d.join(pki::layout::token_key(partner)))?;
        use crate::clock::Clock;
        let now = crate::clock::SystemClock.now();
        let token = mint(
            &key,
            &format!("{partner}-1"),
            partner,
            sub,
            &[role.to_owned()],
            &crate::registry::thumbprint(cert.as_ref()),
            "gateway.ipga-r.example",
            now,
            600,
        )?;
        Ok(Actor {
            label: label.into(),
            partner: partner.into(),
            role: role.into(),
            client,
            token,
        })
    }

    fn say(&mut self, title: &str) {
        self.step += 1;
        let line = format!("\n── {}. {title}", self.step);
        println!("{line}");
        self.out.push_str(&line);
        self.out.push('\n');
    }

    fn note(&mut self, text: &str) {
        for l in text.lines() {
            println!("   {l}");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    async fn call(
        &self,
        a: &Actor,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = a
            .client
            .request(method, format!("https://{}{path}", self.api))
            .bearer_auth(&a.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = resp.status().as_u16();
        let v = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, v))
    }

    /// One administrator approves a draft, another activates it: both statuses and the
    /// activation's answer.
    async fn approve_and_activate(
        &self,
        approver: &Actor,
        activator: &Actor,
        draft: &str,
    ) -> anyhow::Result<(u16, u16, Value)> {
        let (st1, _) = self
            .call(
                approver,
                reqwest::Method::POST,
                &format!("/v1/policy/drafts/{draft}/approve"),
                None,
            )
            .await?;
        let (st2, v) = self
            .call(
                activator,
                reqwest::Method::POST,
                &format!("/v1/policy/drafts/{draft}/activate"),
                None,
            )
            .await?;
        Ok((st1, st2, v))
    }

    /// An administrator submits a covenant text as a draft: its id and the gateway's answer;
    /// the demo stops if the draft is refused.
    async fn submit_draft(&self, admin: &Actor, text: String) -> anyhow::Result<(String, Value)> {
        let resp = admin
            .client
            .post(format!("https://{}/v1/policy/drafts", self.api))
            .bearer_auth(&admin.token)
            .header("content-type", "application/toml")
            .body(text)
            .send()
            .await?;
        let st = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        match v["id"].as_str() {
            Some(id) if st == 201 => Ok((id.to_owned(), v)),
            _ => bail!("the demo draft was refused: {v}"),
        }
    }

    /// A partner signs its approval of a draft with its own governance key, offline, as
    /// `gateway policy sign` does; an administrator adds the note. The answer's status.
    async fn partner_signs(
        &self,
        partner: &str,
        admin: &Actor,
        draft: &str,
    ) -> anyhow::Result<u16> {
        let (_, dv) = self
            .call(
                admin,
                reqwest::Method::GET,
                &format!("/v1/policy/drafts/{draft}"),
                None,
            )
            .await?;
        let (_, active) = self
            .call(admin, reqwest::Method::GET, "/v1/policy", None)
            .await?;
        let key = std::fs::read_to_string(self.dir.join(pki::layout::governance_key(partner)))?;
        let field = |v: &Value, k: &str| {
            v[k].as_str()
                .map(str::to_owned)
                .context("the gateway's answer lacks a version")
        };
        let a = crate::lifecycle::approval::Approval {
            covenant: self.cc.covenant().id.clone(),
            partner: partner.to_owned(),
            version: field(&dv, "version")?,
            base: field(&active, "version")?,
            base_draft: field(&active, "draft")?,
            expires: crate::clock::Clock::now(&crate::clock::SystemClock) + 14 * 86_400,
        };
        let note = crate::lifecycle::approval::sign(&hex::decode(key.trim())?, &a)?;
        let (st, _) = self
            .call(
                admin,
                reqwest::Method::POST,
                &format!("/v1/policy/drafts/{draft}/signatures"),
                Some(json!({ "note": note })),
            )
            .await?;
        Ok(st)
    }

    /// `partner` signs the draft, and `admin` adds the note and activates it: the activation's
    /// status.
    async fn signs_and_activates(
        &self,
        partner: &str,
        admin: &Actor,
        draft: &str,
    ) -> anyhow::Result<u16> {
        self.partner_signs(partner, admin, draft).await?;
        let (st, _) = self
            .call(
                admin,
                reqwest::Method::POST,
                &format!("/v1/policy/drafts/{draft}/activate"),
                None,
            )
            .await?;
        Ok(st)
    }

    /// Decrypts a payload with the receiving partner's identity, as its system would.
    fn decrypt(&self, partner: &str, armored: &str) -> anyhow::Result<Value> {
        let identity =
            crate::crypto::read_age_identity(&self.dir.join(pki::layout::age_identity(partner)))?;
        let decryptor = age::Decryptor::new(age::armor::ArmoredReader::new(armored.as_bytes()))?;
        let mut reader = decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))?;
        let mut plain = Vec::new();
        reader.read_to_end(&mut plain)?;
        Ok(serde_json::from_slice(&plain)?)
    }

    /// Prints a decrypted answer field by field with what the covenant did to each.
    fn show(&mut self, a: &Actor, purpose: &str, payload: &Value) {
        let c = self.cc.covenant();
        let audience = match (c.partner(&a.partner), c.role(&a.role), c.purpose(purpose)) {
            (Some(partner), Some(role), Some(purpose)) => Audience {
                partner,
                role,
                purpose,
            },
            _ => return,
        };
        let mut o = String::new();
        let products = payload["products"].as_object().cloned().unwrap_or_default();
        for (pid, prod) in &products {
            let status = prod["status"].as_str().unwrap_or("?");
            let _ = writeln!(o, "{pid}: {status}");
            let Some(pref) = c.product(pid) else { continue };
            for (i, rec) in prod["records"].as_array().into_iter().flatten().enumerate() {
                if prod["records"].as_array().is_some_and(|r| r.len() > 1) {
                    let _ = writeln!(o, "  record {}", i + 1);
                }
                let mut default_denied = Vec::new();
                for (fref, field) in c.product_fields(pref) {
                    let d = self
                        .cc
                        .decide(audience.partner, audience.role, audience.purpose, fref);
                    if !matches!(d.source, policy::DecisionSource::Rule(_)) {
                        default_denied.push(field.name.as_str());
                        continue;
                    }
                    match rec.get(&field.name) {
                        None => {
                            let _ = writeln!(o, "    {:<24} (omitted: {})", field.name, d.rule_id);
                        }
                        Some(v) if v.get("redacted").is_some() => {
                            let _ = writeln!(
                                o,
                                "    {:<24} WITHHELD [{}] rule {}: {}",
                                field.name,
                                v["redacted"].as_str().unwrap_or(""),
                                v["rule"].as_str().unwrap_or(""),
                                v["ground"].as_str().unwrap_or("")
                            );
                        }
                        Some(v) if d.action.kind() == policy::ActionKind::Exists => {
                            let present = v.get("exists").and_then(serde_json::Value::as_bool);
                            let _ = writeln!(
                                o,
                                "    {:<24} {}   ← exists ({})",
                                field.name,
                                if present == Some(true) {
                                    "a value is present"
                                } else {
                                    "no value"
                                },
                                d.rule_id
                            );
                        }
                        Some(v) => {
                            let how = match d.action.kind() {
                                policy::ActionKind::Disclose => String::new(),
                                _ => format!("   ← {} ({})", d.action.describe(), d.rule_id),
                            };
                            let _ = writeln!(o, "    {:<24} {v}{how}", field.name);
                        }
                    }
                }
                if !default_denied.is_empty() {
                    let _ = writeln!(
                        o,
                        "    WITHHELD [no-rule]: {} — no rule of the covenant covers them (default deny)",
                        default_denied.join(", ")
                    );
                }
            }
        }
        self.note(o.trim_end());
    }

    async fn disclosure(
        &mut self,
        a: &Actor,
        purpose: &str,
        case: &str,
        subject_ref: &str,
    ) -> anyhow::Result<Option<Value>> {
        let (status, v) = self
            .call(
                a,
                reqwest::Method::POST,
                "/v1/disclosures",
                Some(json!({"subject": {"ref": subject_ref}, "purpose": purpose, "case": case})),
            )
            .await?;
        if status == 200 {
            let payload = self.decrypt(&a.partner, v["payload"].as_str().unwrap_or(""))?;
            self.note(&format!("{} asks for purpose `{purpose}`: answered (log entry #{}); decrypted with {}'s age identity:", a.label, v["audit_seq"], a.partner));
            self.show(a, purpose, &payload);
            Ok(Some(payload))
        } else {
            self.note(&format!(
                "{} asks for purpose `{purpose}`: REFUSED {status} {}\n  {}",
                a.label,
                problem_slug(&v),
                v["detail"].as_str().unwrap_or("")
            ));
            Ok(None)
        }
    }
}

/// The administrators change the policy while partners use it: a draft that withholds one more
/// field from the regisseur, simulated on the day's log, refused to its own author, approved by
/// a second administrator, activated, and rolled back the same way.
async fn policy_change(
    d: &mut Demo,
    src: &str,
    regisseur: &Actor,
    case_id: &str,
    subject_ref: &str,
) -> anyhow::Result<()> {
    d.say("Policy change: the administrators withhold one more field from the regisseur");
    let (b1, b2) = (
        d.actor("oov", "beheerder-1", "beheerder", "Beheerder 1 (oov)")?,
        d.actor("oov", "beheerder-2", "beheerder", "Beheerder 2 (oov)")?,
    );
    // A field the regisseur received today from a store-backed product, and the rule that
    // decided it.
    let c = d.cc.covenant();
    let (Some(p), Some(r), Some(u)) = (c.partner("rn"), c.role("regisseur"), c.purpose("regie"))
    else {
        bail!("the example covenant lacks rn/regisseur/regie");
    };
    let (field, rule) = c
        .fields
        .iter()
        .filter(|f| f.qualified.starts_with("politie."))
        .filter_map(|f| {
            let dcs = d.cc.decide(p, r, u, c.field(&f.qualified)?);
            (dcs.class() == policy::OutcomeClass::Disclosed)
                .then(|| (f.qualified.clone(), dcs.rule_id.clone()))
        })
        .next()
        .context("no disclosed politie field")?;
    let draft = format!(
        "{src}\n[[rule]]\nid = \"demo-{name}-niet-naar-rn\"\ndescription = \"Demo: {field} niet meer naar de regisseur van de reclassering.\"\nto = [\"rn\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"{field}\"]\naction = \"withhold\"\ncode = \"wpg-20\"\nground = \"Wet politiegegevens art. 20\"\noverrides = [\"{rule}\"]\n",
        name = field.rsplit('.').next().unwrap_or("veld")
    );
    let (id, v) = d.submit_draft(&b1, draft.clone()).await?;
    let signers = v_signers(&v);
    d.note(&format!(
        "{} submits a draft adding a rule that withholds {field}: draft {id}, version {}; {} decision(s) change.",
        b1.label, v["version"].as_str().unwrap_or(""), v["diff"]["decision_changes"]
    ));
    let (_, sim) = d
        .call(
            &b1,
            reqwest::Method::POST,
            &format!("/v1/policy/drafts/{id}/simulate"),
            Some(json!({"days": 1})),
        )
        .await?;
    let rep = &sim["report"];
    d.note(&format!(
        "Simulated on today's log: {} request(s) replayed; {} would have come out differently ({} subject(s)), log entries {}.",
        rep["replayed"], rep["affected_requests"], rep["affected_subjects"], rep["changes"][0]["sequence_numbers"]
    ));
    let (st, v) = d
        .call(
            &b1,
            reqwest::Method::POST,
            &format!("/v1/policy/drafts/{id}/approve"),
            None,
        )
        .await?;
    d.note(&format!(
        "{} approves the own draft: REFUSED {st} {}: a second administrator must approve.",
        b1.label,
        problem_slug(&v)
    ));
    // Two oov administrators are four eyes, not the police's consent: the field is the
    // police's, so the change needs the police's signature (the review names it).
    d.note(&format!(
        "The review names whose signature the change needs: {signers}."
    ));
    let (st1, st2, refused) = d.approve_and_activate(&b2, &b1, &id).await?;
    d.note(&format!(
        "{} approves: {st1}; {} activates without the police's signature: REFUSED {st2} {}: {}",
        b2.label,
        b1.label,
        problem_slug(&refused),
        refused["detail"].as_str().unwrap_or("")
    ));
    let st = d.partner_signs("politie", &b1, &id).await?;
    let (st2, v) = d
        .call(
            &b1,
            reqwest::Method::POST,
            &format!("/v1/policy/drafts/{id}/activate"),
            None,
        )
        .await?;
    d.note(&format!(
        "The police signs its approval with its own governance key (gateway policy sign), {} adds the note: {st}; {} activates: {st2}. Active now: {} (requests in flight finished under the previous version).",
        b1.label, b1.label, v["version"].as_str().unwrap_or("")
    ));
    let before = d.cc.clone();
    if let Ok(cc) = policy::compile_toml(&draft) {
        d.cc = Arc::new(cc);
    }
    d.disclosure(regisseur, "regie", case_id, subject_ref)
        .await?;
    // And back, through the same four-eyes path.
    let old = v["previous_version"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, rb) = d
        .call(
            &b2,
            reqwest::Method::POST,
            &format!("/v1/policy/versions/{old}/rollback"),
            None,
        )
        .await?;
    let rb_id = rb["id"].as_str().unwrap_or_default().to_owned();
    d.partner_signs("politie", &b1, &rb_id).await?;
    let (st1, st2, _) = d.approve_and_activate(&b1, &b2, &rb_id).await?;
    d.cc = before;
    d.note(&format!(
        "Rollback: {} drafts a return to {old} ({rb_id}), {} approves: {st1}, {} activates: {st2}. Every step above is in the log.",
        b2.label, b1.label, b2.label
    ));
    let text = shared_change(d, src, &b1, &b2).await?;
    recipient_change(d, &text, &b1, &b2, regisseur, case_id, subject_ref).await
}

/// A change to a shared part (the checks' per-staff limit): the threshold of core partners signs
/// it, and one signature short is refused. The text now in force.
async fn shared_change(d: &mut Demo, src: &str, b1: &Actor, b2: &Actor) -> anyhow::Result<String> {
    let text = src.replacen("per_staff_per_minute = 30", "per_staff_per_minute = 25", 1);
    let (id, v) = d.submit_draft(b1, text.clone()).await?;
    d.note(&format!(
        "{} drafts a shared change (checks per staff member per minute 30 → 25): draft {id}; the review names {}.",
        b1.label,
        v_signers(&v)
    ));
    for p in ["oov", "politie", "om"] {
        d.partner_signs(p, b1, &id).await?;
    }
    let (st1, st2, refused) = d.approve_and_activate(b2, b1, &id).await?;
    d.note(&format!(
        "oov, politie and om sign; {} approves: {st1}; {} activates: REFUSED {st2} {}: {}",
        b2.label,
        b1.label,
        problem_slug(&refused),
        refused["detail"].as_str().unwrap_or("")
    ));
    let st = d.signs_and_activates("rn", b1, &id).await?;
    d.note(&format!(
        "rn signs as the fourth core partner (the covenant's threshold is 4 of 7); {} activates: {st}.",
        b1.label
    ));
    Ok(text)
}

/// rn replaces its own `age` recipient (a key rotation): the oov administrators can draft,
/// approve and activate it only once rn has signed, so no administrator can put its own key in
/// another partner's place. The first answer after it opens with rn's new key.
async fn recipient_change(
    d: &mut Demo,
    src: &str,
    b1: &Actor,
    b2: &Actor,
    regisseur: &Actor,
    case_id: &str,
    subject_ref: &str,
) -> anyhow::Result<()> {
    // rn's new key pair: the public half where the gateway reads `file:` keys, the identity
    // before the old one in rn's identity file (both stay usable, as `age -i` reads them all).
    let identity = age::x25519::Identity::generate();
    let public = "rn/age-recipient-2.txt";
    std::fs::write(d.dir.join(public), format!("{}\n", identity.to_public()))?;
    let id_path = d.dir.join(pki::layout::age_identity("rn"));
    let old = std::fs::read_to_string(&id_path)?;
    std::fs::write(
        &id_path,
        format!(
            "# rotated in the demo: the new identity first\n{}\n{old}",
            age::secrecy::ExposeSecret::expose_secret(&identity.to_string())
        ),
    )?;
    let text = src.replacen("file:rn/age-recipient.txt", &format!("file:{public}"), 1);
    let (id, v) = d.submit_draft(b1, text).await?;
    d.note(&format!(
        "rn rotates its age key: {} drafts rn's new recipient ({public}): draft {id}; the review names {}.",
        b1.label,
        v_signers(&v)
    ));
    let (st1, st2, refused) = d.approve_and_activate(b2, b1, &id).await?;
    d.note(&format!(
        "{} approves: {st1}; {} activates without rn's signature: REFUSED {st2} {}: no administrator can put a key in another partner's place.",
        b2.label,
        b1.label,
        problem_slug(&refused)
    ));
    let st = d.signs_and_activates("rn", b1, &id).await?;
    d.note(&format!(
        "rn signs the change to its own entry with its governance key; {} activates: {st}. rn's next answer opens with its new key:",
        b1.label
    ));
    d.disclosure(regisseur, "regie", case_id, subject_ref)
        .await
        .map(drop)
}

/// The signers a draft's review names, readably.
fn v_signers(draft: &Value) -> String {
    let r = &draft["diff"]["review"];
    let mut who: Vec<String> = r["partners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    if r["threshold"].as_bool() == Some(true) {
        who.push("the threshold of core partners".to_owned());
    }
    if who.is_empty() {
        "nobody".to_owned()
    } else {
        who.join(", ")
    }
}

/// A released table as text, suppressed cells as `·`.
pub fn render_table(t: &Value) -> String {
    let cell = |v: &Value| v.as_u64().map_or_else(|| "·".to_owned(), |n| n.to_string());
    let cols: Vec<String> = t["cols"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c.as_str().unwrap_or("").replace("groep ", "g"))
        .collect();
    let mut o = format!("{:<22}", "");
    for c in &cols {
        o.push_str(&format!("{c:>9}"));
    }
    o.push_str(&format!("{:>9}\n", "totaal"));
    for (i, r) in t["rows"].as_array().into_iter().flatten().enumerate() {
        o.push_str(&format!("{:<22}", r.as_str().unwrap_or("")));
        for v in t["cells"][i].as_array().into_iter().flatten() {
            o.push_str(&format!("{:>9}", cell(v)));
        }
        o.push_str(&format!("{:>9}\n", cell(&t["row_totals"][i])));
    }
    o.push_str(&format!("{:<22}", "totaal"));
    for v in t["col_totals"].as_array().into_iter().flatten() {
        o.push_str(&format!("{:>9}", cell(v)));
    }
    o.push_str(&format!("{:>9}", cell(&t["total"])));
    o
}

/// What a demo source was sent: per request, its `Fsc-Transaction-Id` and `traceparent`.
pub type SeenHeaders = Arc<std::sync::Mutex<Vec<(Option<String>, Option<String>)>>>;

/// A tiny HTTPS server standing in for a partner's own system (an upstream source): it requires
/// a client certificate of the covenant CA in `dir` and answers `GET {path}/{subject_ref}` with
/// `records`, after `delay`, noting in `seen` the trace headers each request came with.
pub async fn serve_source(
    dir: PathBuf,
    listener: tokio::net::TcpListener,
    path: &'static str,
    records: Value,
    delay: std::time::Duration,
    stop: tokio::sync::oneshot::Receiver<()>,
    seen: SeenHeaders,
) -> anyhow::Result<()> {
    let acceptor = partner_tls(&dir, "GGD bronsysteem (demo)")?;
    let app = axum::Router::new().route(
        &format!("{path}/{{subject_ref}}"),
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let records = records.clone();
            let seen = seen.clone();
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                if let Ok(mut s) = seen.lock() {
                    s.push((header("fsc-transaction-id"), header("traceparent")));
                }
                tokio::time::sleep(delay).await;
                axum::Json(json!({"records": records}))
            }
        }),
    );
    crate::register::serve(listener, acceptor, app, async {
        let _ = stop.await;
    })
    .await;
    Ok(())
}

/// What an approach register saw: each request's path and body, so a test can check that no
/// BSN ever reached it.
pub type SeenRequests = Arc<std::sync::Mutex<Vec<String>>>;

/// Another approach's register, started for the demo and the tests: a fresh key, the set of
/// `members` published for this month and valid `valid_secs` (as `gateway approach publish` makes
/// it), served over TLS
/// with a certificate of the example CA in `dir`, requiring client certificates of it, until
/// `stop`. Returns its address, its state (what it received) and the `[[approach]]` table for
/// the gateway's configuration.
pub async fn start_register(
    dir: &Path,
    approach: &str,
    members: &[&str],
    quota: crate::register::Quota,
    valid_secs: i64,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<(std::net::SocketAddr, Arc<crate::register::Register>, String)> {
    use crate::clock::Clock;
    let mut seed = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let now = crate::clock::SystemClock.now();
    let bsns = members
        .iter()
        .map(|b| policy::Bsn::parse(b).map_err(|e| anyhow::anyhow!("{e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (_, note) = crate::oprf::publish(
        approach,
        &seed,
        crate::oprf::Epoch::of(now),
        (now, now + valid_secs),
        bsns.iter().map(|b| b.expose().as_bytes()),
        &mut crate::oprf::SystemRng,
    )?;
    let (public, vkey) = crate::oprf::pins(approach, &seed)?;
    let table = format!(
        "\n[[approach]]\nid = \"{approach}\"\nurl = \"https://{{addr}}\"\noprf_public = \"{public}\"\nset_vkey = \"{vkey}\"\ntimeout_ms = 1500\n"
    );
    let register = Arc::new(crate::register::Register::new(
        approach,
        crate::oprf::RegisterKey::from_seed(&seed)?,
        note,
        quota,
        Arc::new(crate::clock::SystemClock),
    ));
    let acceptor = partner_tls(dir, &format!("{approach} register (example)"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(crate::register::serve(
        listener,
        acceptor,
        crate::register::router(register.clone()),
        async move {
            let _ = stop.await;
        },
    ));
    Ok((addr, register, table.replace("{addr}", &addr.to_string())))
}

/// A server certificate from the example CA in `dir`, requiring client certificates of it.
fn partner_tls(dir: &Path, name: &str) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let ca = pki::Ca::load(dir)?;
    let issued = ca.issue(
        name,
        None,
        &["127.0.0.1", "localhost"],
        false,
        crate::clock::Clock::now(&crate::clock::SystemClock),
    )?;
    let provider = crate::tls::provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(
        ca.cert_der().to_vec(),
    ))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![issued.cert_der.into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(issued.key_der.into()),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Runs the demo in `dir`; keeps the gateway running afterwards if `keep`.
pub async fn run(dir: PathBuf, keep: bool) -> anyhow::Result<String> {
    // The example covenant of the repository, or the copy built into the binary when the demo
    // runs elsewhere.
    std::fs::create_dir_all(&dir)?;
    let in_repo = std::env::current_dir()?.join("ops/covenant/ipga-r.toml");
    let covenant_path = if in_repo.exists() {
        in_repo
    } else {
        let p = dir.join("ipga-r.toml");
        std::fs::write(&p, EXAMPLE_COVENANT)?;
        p
    };
    let plain = std::fs::read_to_string(&covenant_path)
        .with_context(|| format!("reading {}", covenant_path.display()))?;
    let plain_cc = policy::compile_toml(&plain)
        .map_err(|d| anyhow::anyhow!(d.render("ipga-r.toml", &plain)))?;
    println!("iPGA-R gateway demo — all people and data are fictitious.");
    println!("   working directory {}", dir.display());

    // 1. Example PKI, configuration, the GGD's own source system, three partners' witnesses.
    use crate::clock::Clock;
    pki::init(&dir, &plain_cc, crate::clock::SystemClock.now())?;
    let ggd_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ggd_addr = ggd_listener.local_addr()?;
    let write_config = |covenant: &Path, extra: &str| -> anyhow::Result<Config> {
        let mut config = pki::example_config(&dir, covenant);
        config = config.replace(
            "database_url = \"sqlite://gateway.db\"",
            "database_url = \"sqlite://demo.db\"",
        );
        config.push_str(&format!("\n[[source]]\nproduct = \"ggd.screening\"\nurl = \"https://{ggd_addr}/screening\"\ntimeout_ms = 1500\n"));
        config.push_str(extra);
        let config_path = dir.join(pki::layout::CONFIG);
        std::fs::write(&config_path, &config)?;
        Ok(Config::load(&config_path, std::iter::empty())?)
    };
    let cfg = write_config(&covenant_path, "")?;
    let (witnesses, stop_witnesses) = start_witnesses(&dir, &cfg).await?;
    let (registers, approach_config) = start_registers(&dir).await?;
    let mut src = plain;
    for w in &witnesses {
        let _ = write!(
            src,
            "\n[[witness]]\npartner = \"{}\"\nname = \"{}\"\nvkey = \"{}\"\nurl = \"http://{}/\"\n",
            w.partner, w.name, w.vkey, w.addr
        );
    }
    src.push_str("\n[witnessing]\nquorum = 2\n");
    src.push_str(APPROACHES);
    let witnessed_path = dir.join("ipga-r-witnessed.toml");
    std::fs::write(&witnessed_path, &src)?;
    // The installation ceremony: every core partner signs the first version (here with the
    // example PKI's keys, in one hand).
    let installed = pki::sign_installation(&dir, &src, crate::clock::SystemClock.now())?;
    println!(
        "   the seven core partners signed the covenant's first version {installed} (the installation ceremony; in {}/)",
        pki::layout::INSTALLATION
    );
    let cc = Arc::new(
        policy::compile_toml(&src).map_err(|d| anyhow::anyhow!(d.render("ipga-r.toml", &src)))?,
    );
    let cfg = write_config(&witnessed_path, &approach_config)?;
    let loaded = crate::runtime::load(&cfg, true).map_err(|p| anyhow::anyhow!(p.join("\n")))?;
    let log_vkey = loaded.log_keys.current.vkey();
    // What Top600's register pins to ask iPGA-R (`gateway approach pins --for top600`).
    let ours = cc.covenant().governance.approach.clone();
    let top600_pins = crate::service::checks::pins(&loaded.secrets, &ours, "top600")?;
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let health = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api_addr = api.local_addr()?.to_string();
    let (stop_gw, stop_gw_rx) = tokio::sync::oneshot::channel::<()>();
    let database_url = cfg.database_url.clone();
    let gateway = tokio::spawn(crate::startup::run_any(
        loaded,
        cfg,
        api,
        health,
        async move {
            let _ = stop_gw_rx.await;
        },
        || {},
    ));
    let ggd_records = records()
        .into_iter()
        .find(|(p, _)| *p == "ggd.screening")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let (stop_ggd, stop_ggd_rx) = tokio::sync::oneshot::channel::<()>();
    let ggd = tokio::spawn(serve_source(
        dir.clone(),
        ggd_listener,
        "/screening",
        ggd_records,
        std::time::Duration::ZERO,
        stop_ggd_rx,
        SeenHeaders::default(),
    ));

    let mut d = Demo {
        dir: dir.clone(),
        api: api_addr.clone(),
        cc: cc.clone(),
        step: 0,
        out: String::new(),
    };
    d.say("Set-up");
    d.note(&format!("Example PKI, gateway on https://{api_addr} (SQLite), GGD source system on https://{ggd_addr} (served upstream)."));
    d.note(&format!(
        "Witnesses of the log, run by three partners (`gateway witness serve`), quorum 2: {}.",
        witnesses
            .iter()
            .map(|w| format!("{} (http://{})", w.name, w.addr))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let vp = d.actor(
        "politie",
        "vp.jansen",
        "voorportaal",
        "Voorportaal (politie, vp.jansen)",
    )?;
    let mapintake = d.actor(
        "oov",
        "map.bakker",
        "melder-intake",
        "MAP intake (oov, map.bakker)",
    )?;
    let sec = d.actor(
        "oov",
        "sec.devries",
        "secretaris",
        "Secretaris Regieoverleg (oov)",
    )?;
    let overleg = d.actor("om", "ro.visser", "regieoverleg-lid", "Regieoverleg (om)")?;
    let regisseur = d.actor(
        "rn",
        "reg.mulder",
        "regisseur",
        "Regisseur (rn, reg.mulder)",
    )?;
    let other_regisseur = d.actor(
        "oov",
        "reg.smit",
        "regisseur",
        "Another regisseur (oov, reg.smit)",
    )?;
    let wpi = d.actor(
        "wpi",
        "ip.dekker",
        "interventiepleger",
        "Interventiepleger (wpi, ip.dekker)",
    )?;
    let peer = d.actor(
        "gemeente-utrecht",
        "peer.1",
        "peer",
        "Peer municipality (gemeente-utrecht)",
    )?;

    // 2. A signal.
    d.say("A signal reaches the voorportaal");
    let (st, case) = d.call(&vp, reqwest::Method::POST, "/v1/cases", Some(json!({"subject": {"bsn": SUBJECT_BSN}, "signal_date": "2026-09-15", "risk_group": 4, "ideology": "rechts-extremistisch"}))).await?;
    if st != 201 {
        bail!("registering the case failed: {case}");
    }
    let case_id = case["id"].as_str().unwrap_or_default().to_owned();
    let subject_ref = case["subject_ref"].as_str().unwrap_or_default().to_owned();
    d.note(&format!("{} registers a signal: case {case_id}, subject reference {subject_ref} (the BSN is stored only as a pseudonym, sealed).", vp.label));
    let (st, _) = d
        .call(
            &vp,
            reqwest::Method::PATCH,
            &format!("/v1/cases/{case_id}"),
            Some(json!({"status": "duiding"})),
        )
        .await?;
    d.note(&format!("Status melding → duiding: {st}."));

    // 3. Partners deposit what they know.
    d.say("Partners deposit their records (store-backed); the GGD serves its own");
    for (product, recs) in records() {
        if product == "ggd.screening" {
            continue;
        }
        let owner = product.split('.').next().unwrap_or_default();
        let a = d.actor(owner, &format!("{owner}.bron"), "bronsysteem", owner)?;
        let (st, v) = d
            .call(
                &a,
                reqwest::Method::PUT,
                &format!("/v1/records/{product}/{subject_ref}"),
                Some(json!({"records": recs})),
            )
            .await?;
        d.note(&format!(
            "{owner:<8} PUT {product}: {st} ({} record(s), sealed at rest)",
            v["records"]
        ));
    }

    // 4. aanpak-check, across approaches.
    d.say("Aanpak-check: known in this or another approach (Top600, Top400, Criminele Families, Top1000, Detentie & Terugkeer)?");
    let mut registers = registers;
    for (bsn, top600_down) in [
        (SUBJECT_BSN, false),
        (UNKNOWN_BSN, false),
        (SUBJECT_BSN, true),
    ] {
        if top600_down {
            if let Some(stop) = registers.pop() {
                let _ = stop.send(());
            }
            d.note("The Top600 register goes down.");
        }
        let (_, v) = d
            .call(
                &mapintake,
                reqwest::Method::POST,
                "/v1/checks",
                Some(json!({"subject": {"bsn": bsn}, "purpose": "aanpak-check"})),
            )
            .await?;
        let across: Vec<String> = v["across"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| match x["contact"].as_str() {
                        Some(c) => format!(
                            "{}: {} (call {c})",
                            x["name"].as_str().unwrap_or(""),
                            x["status"].as_str().unwrap_or("")
                        ),
                        None => format!(
                            "{}: {}",
                            x["name"].as_str().unwrap_or(""),
                            x["status"].as_str().unwrap_or("")
                        ),
                    })
                    .collect()
            })
            .unwrap_or_default();
        d.note(&format!(
            "{} checks a person: known = {}, complete = {}; {} (no content; each register saw one blinded element, never the BSN or anything computable from it, RFC 9497 POPRF)",
            mapintake.label,
            v["known"],
            v["complete"],
            across.join("; ")
        ));
    }

    d.say("The other direction: Top600's register asks iPGA-R, just as obliviously");
    let set_note = mapintake
        .client
        .get(format!("https://{}/v1/checks/set?approach=top600", d.api))
        .bearer_auth(&mapintake.token)
        .send()
        .await?
        .text()
        .await?;
    let verifier = crate::log::checkpoint::NoteVerifier::from_vkey(&top600_pins.1)?;
    let set = crate::oprf::PublishedSet::verify(
        &set_note,
        &verifier,
        &ours,
        crate::clock::Clock::now(&crate::clock::SystemClock),
        1 << 17,
    )?;
    let blinded = crate::oprf::Blinded::new(SUBJECT_BSN.as_bytes(), &mut crate::oprf::SystemRng)?;
    let (st, e) = d
        .call(
            &mapintake,
            reqwest::Method::POST,
            "/v1/checks/evaluate",
            Some(json!({"approach": "top600", "epoch": set.epoch.as_str(), "blinded": hex::encode(blinded.message())})),
        )
        .await?;
    let (Some(evaluated), Some(proof)) = (e["evaluated"].as_str(), e["proof"].as_str()) else {
        bail!("iPGA-R did not evaluate Top600's blinded element ({st}): {e}");
    };
    let member = blinded.finish(
        SUBJECT_BSN.as_bytes(),
        &hex::decode(evaluated)?,
        &hex::decode(proof)?,
        &hex::decode(&top600_pins.0)?,
        &crate::oprf::info(&ours, &set.epoch),
    )?;
    d.note(&format!(
        "Top600 fetches {ours}'s signed set for it ({} values, padded; epoch {}) and has one blinded element evaluated ({st}), the proof checked against the key it pinned: the person is {} in {ours}. {ours}'s log records that Top600 asked, not about whom.",
        set.members.len(),
        set.epoch,
        if set.contains(&member) { "known" } else { "not known" }
    ));

    // 5. Duiding.
    d.say("Duiding: the voorportaal collects limited facts");
    d.disclosure(&vp, "duiding", &case_id, &subject_ref).await?;

    // 6. Decision.
    d.say("The PTO-R approves inclusion (the 2019 process); the Regieoverleg's regisseur comes from Reclassering, the UVO partners follow");
    let mut include = json!({"status": "opgenomen", "regisseur": {"partner": "rn", "staff_id": "reg.mulder"}, "decision_date": "2026-10-20", "decision": minutes("PTO-2026-10-20/4", "2026-10-20", &PTO_R)});
    // The double-approach check: the person's newest check was not answered by Top600.
    let (st, v) = d
        .call(
            &sec,
            reqwest::Method::PATCH,
            &format!("/v1/cases/{case_id}"),
            Some(include.clone()),
        )
        .await?;
    d.note(&format!(
        "{} records the inclusion: REFUSED {st} {}: {}",
        sec.label,
        problem_slug(&v),
        v["detail"].as_str().unwrap_or("")
    ));
    include["check_override"] = json!(
        "Top600 onbereikbaar; het PTO-R besluit niet te wachten gezien het risico (notulen PTO-2026-10-20/4)"
    );
    let (st, _) = d
        .call(
            &sec,
            reqwest::Method::PATCH,
            &format!("/v1/cases/{case_id}"),
            Some(include),
        )
        .await?;
    d.note(&format!(
        "With the PTO-R's reason to go without a complete check (recorded with the change): {st}"
    ));
    d.note(&format!(
        "{}: duiding → opgenomen, regisseur rn/reg.mulder: {st} — recorded as the PTO-R's decision PTO-2026-10-20/4 of 2026-10-20, taken by oov/pto.gemeente, politie/pto.politie, om/pto.om and ggd/pto.ggd (the covenant's quorum: 4 members of 4 partners; one member alone is refused, decision-required)",
        sec.label
    ));
    // The regisseur, not the secretaris, chooses the interventieplegers (Handreiking 2016).
    let (st, _) = d
        .call(
            &regisseur,
            reqwest::Method::PATCH,
            &format!("/v1/cases/{case_id}"),
            Some(json!({"uvo_partners": ["politie", "wpi", "ggd"]})),
        )
        .await?;
    d.note(&format!("{}: UVO politie, wpi, ggd: {st}", regisseur.label));
    // The MAP sends the notification letter on the mayor's behalf and records it (Handreiking
    // 2016, "De notificatiebrief": within three weeks, to whom and when).
    let map = d.actor("oov", "map.bakker", "voorportaal", "MAP (oov, map.bakker)")?;
    let (st, _) = d
        .call(
            &map,
            reqwest::Method::PATCH,
            &format!("/v1/cases/{case_id}"),
            Some(json!({"notification_date": "2026-11-02", "notification_to": "betrokkene"})),
        )
        .await?;
    d.note(&format!(
        "{} records the notification letter (2026-11-02, to the person; within the covenant's 21 days): {st}",
        map.label
    ));

    // 7. Regie.
    d.say("The regisseur's own request (purpose regie)");
    d.disclosure(&regisseur, "regie", &case_id, &subject_ref)
        .await?;

    // 8. Uitvoering.
    d.say("Plan adopted; an interventiepleger asks for what the intervention needs");
    let (st1, _) = d
        .call(
            &regisseur,
            reqwest::Method::PATCH,
            &format!("/v1/cases/{case_id}"),
            Some(json!({"status": "plan"})),
        )
        .await?;
    let (st2, _) = d
        .call(
            &overleg,
            reqwest::Method::PATCH,
            &format!("/v1/cases/{case_id}"),
            Some(json!({"status": "uitvoering", "decision": minutes("RO-2026-11-03/2", "2026-11-03", &REGIEOVERLEG), "review": minutes("ITAT-2026-10-29/5", "2026-10-29", &ITAT_R)})),
        )
        .await?;
    d.note(&format!(
        "opgenomen → plan (regisseur): {st1}; plan → uitvoering: {st2}, recorded with the Regieoverleg's decision RO-2026-11-03/2 of 2026-11-03 (members ro.gemeente/oov, ro.politie/politie, ro.om/om) and the ITAT-R's review of the plan ITAT-2026-10-29/5 (itat.gemeente/oov, itat.politie/politie, itat.rn/rn)"
    ));
    d.disclosure(&wpi, "uitvoering", &case_id, &subject_ref)
        .await?;

    // 9–10. Refusals.
    d.say("Refused: a regisseur asks about someone else's case (to it the case does not exist)");
    d.disclosure(&other_regisseur, "regie", &case_id, &subject_ref)
        .await?;
    d.say("Refused: the right person, the wrong purpose");
    d.disclosure(&regisseur, "duiding", &case_id, &subject_ref)
        .await?;

    // 11. A source down.
    d.say("The GGD's source system goes down; the regisseur asks again");
    let _ = stop_ggd.send(());
    let _ = ggd.await;
    if let Some(p) = d
        .disclosure(&regisseur, "regie", &case_id, &subject_ref)
        .await?
    {
        d.note(&format!("ggd.screening status: {} — the rest is answered; the log records `partly-unavailable`.", p["products"]["ggd.screening"]["status"]));
    }

    // 12. Peer municipality.
    d.say("A peer municipality asks for case-level data");
    d.disclosure(&peer, "fenomeen", &case_id, &subject_ref)
        .await?;
    d.disclosure(&peer, "regie", &case_id, &subject_ref).await?;

    // The monitor and a peer municipality: figures, never case level.
    d.say("Phenomenon level: the monitor and a peer municipality get protected figures");
    let mut registered = 0;
    let mix: [(&str, u8, usize); 6] = [
        ("jihadistisch", 1, 14),
        ("jihadistisch", 3, 12),
        ("rechts-extremistisch", 4, 17),
        ("rechts-extremistisch", 2, 3),
        ("links-extremistisch", 4, 4),
        ("single-issue", 4, 11),
    ];
    let mut bsns = (100_000_000u32..)
        .map(|x| format!("{x:09}"))
        .filter(|b| policy::Bsn::parse(b).is_ok());
    for (ideology, group, n) in mix {
        for k in 0..n {
            let a = d.actor(
                "politie",
                &format!("vp.{}", k % 20),
                "voorportaal",
                "voorportaal",
            )?;
            let body = json!({"subject": {"bsn": bsns.next().unwrap_or_default()}, "signal_date": "2026-07-01", "risk_group": group, "ideology": ideology});
            if d.call(&a, reqwest::Method::POST, "/v1/cases", Some(body))
                .await?
                .0
                == 201
            {
                registered += 1;
            }
        }
    }
    d.note(&format!("{registered} more fictitious signals registered (ideology and risk group only matter here)."));
    let analist = d.actor("oov", "an.jong", "analist", "Analyst monitor (oov)")?;
    for who in [&analist, &peer] {
        let (st, v) = d
            .call(
                who,
                reqwest::Method::GET,
                "/v1/aggregates/casussen-ideologie-risicogroep",
                None,
            )
            .await?;
        if st != 200 {
            d.note(&format!("{}: {st} {}", who.label, v["type"]));
            continue;
        }
        let figures = d.decrypt(&who.partner, v["payload"].as_str().unwrap_or(""))?;
        let table = render_table(&figures["table"]);
        d.note(&format!("{} asks view `casussen-ideologie-risicogroep` ({}): period {}, threshold {}, rounded to {}; · = suppressed", who.label, figures["name"].as_str().unwrap_or(""), figures["period"].as_str().unwrap_or(""), figures["threshold"], figures["rounding"]));
        d.note(&table);
    }
    let (st, v) = d
        .call(
            &peer,
            reqwest::Method::GET,
            "/v1/aggregates/doorlooptijd-melding-besluit",
            None,
        )
        .await?;
    d.note(&format!(
        "{} asks the monitor-only view `doorlooptijd-melding-besluit`: REFUSED {st} {}",
        peer.label,
        problem_slug(&v)
    ));

    policy_change(&mut d, &src, &regisseur, &case_id, &subject_ref).await?;

    d.say("The log: a signed checkpoint any partner can keep and check proofs against");
    let resp = regisseur
        .client
        .get(format!("https://{api_addr}/v1/audit/checkpoint"))
        .bearer_auth(&regisseur.token)
        .send()
        .await?;
    let mut note = resp.text().await?;
    // The witnesses cosign within a second or two of a new checkpoint.
    let verifiers: Vec<_> = witnesses.iter().map(|w| w.verifier.clone()).collect();
    for _ in 0..50 {
        if crate::log::cosign::witnessed(&note, &verifiers).map_or(0, |w| w.len())
            == witnesses.len()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        note = regisseur
            .client
            .get(format!("https://{api_addr}/v1/audit/checkpoint"))
            .bearer_auth(&regisseur.token)
            .send()
            .await?
            .text()
            .await?;
    }
    let cosigned = crate::log::cosign::witnessed(&note, &verifiers).unwrap_or_default();
    d.note(&format!("Every answer and refusal above is an entry of the tamper-evident log. Checkpoint (C2SP signed note), signed by the gateway and cosigned by {} of the partners' witnesses:\n{}", cosigned.len(), note.trim_end()));
    let witness_args: String = witnesses
        .iter()
        .map(|w| format!(" --witness {}", w.vkey))
        .collect();
    d.note(&format!(
        "Verify it offline: gateway audit verify --config {}{witness_args} --quorum 2",
        dir.join(pki::layout::CONFIG).display()
    ));

    retention_preview(&mut d, &database_url, &cc).await?;

    d.say("Done");
    if keep {
        let witness_vkeys: Vec<String> = witnesses.iter().map(|w| w.vkey.clone()).collect();
        for (user, what) in [
            (
                ConsoleUser {
                    staff: "fg.1",
                    roles: "privacy-officer",
                },
                "The privacy officer's console for oov (staff fg.1) runs beside it",
            ),
            (
                ConsoleUser {
                    staff: "beheerder-2",
                    roles: "beheerder,privacy-officer",
                },
                "A second administrator's console (oov, staff beheerder-2) reviews, approves and activates covenant drafts",
            ),
        ] {
            let link = start_console(
                &dir,
                &api_addr,
                &log_vkey,
                &witnessed_path,
                &witness_vkeys,
                user,
            )
            .await?;
            d.note(&format!(
                "{what}: open {link} once to log in (docs/console.md)."
            ));
        }
        let token_cmd = format!(
            "TOKEN=$(gateway token --dir {} --partner rn --sub reg.mulder --roles regisseur --cert {}/rn/client.pem)",
            dir.display(),
            dir.display()
        );
        d.note(&format!(
            "The gateway keeps running on https://{api_addr} (Ctrl-C stops it). Try:\n  {token_cmd}\n  curl --cacert {dir}/ca.pem --cert {dir}/rn/client.pem --key {dir}/rn/client.key -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"subject\":{{\"ref\":\"{subject_ref}\"}},\"purpose\":\"regie\",\"case\":\"{case_id}\"}}' https://{api_addr}/v1/disclosures",
            dir = dir.display()
        ));
        let _ = tokio::signal::ctrl_c().await;
    } else {
        d.note("Stopping the gateway.");
    }
    let _ = stop_gw.send(());
    gateway.await.context("gateway task")??;
    let _ = stop_witnesses.send(true);
    Ok(d.out)
}

/// Who a demo console is for: an oov staff member and their roles.
struct ConsoleUser {
    staff: &'static str,
    roles: &'static str,
}

/// Starts an oov console against the demo's gateway; returns its login link.
async fn start_console(
    dir: &Path,
    api_addr: &str,
    log_vkey: &str,
    covenant: &Path,
    witnesses: &[String],
    user: ConsoleUser,
) -> anyhow::Result<String> {
    let exe = std::env::current_exe()?.display().to_string();
    let path = |p: &str| dir.join(p).display().to_string();
    let cfg = crate::console::ConsoleConfig {
        listen: "127.0.0.1:0".into(),
        gateway_url: format!("https://{api_addr}"),
        ca: dir.join("ca.pem"),
        client_cert: dir.join("oov/client.pem"),
        client_key: dir.join("oov/client.key"),
        log_vkey: log_vkey.to_owned(),
        token_command: vec![
            exe,
            "token".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--covenant".into(),
            covenant.display().to_string(),
            "--partner".into(),
            "oov".into(),
            "--sub".into(),
            user.staff.into(),
            "--roles".into(),
            user.roles.into(),
            "--cert".into(),
            path("oov/client.pem"),
        ],
        session_secs: 8 * 3600,
        names: Vec::new(),
        witnesses: witnesses.to_vec(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        let served = crate::console::serve(
            cfg,
            listener,
            Arc::new(crate::clock::SystemClock),
            std::future::pending(),
            move |link| {
                let _ = tx.send(link.to_owned());
            },
        )
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the demo's console stopped");
        }
    });
    Ok(rx.await?)
}

/// What the covenant keeps how long, and a dry run of retention years on: what would go.
async fn retention_preview(
    d: &mut Demo,
    database_url: &str,
    cc: &policy::CompiledCovenant,
) -> anyhow::Result<()> {
    use crate::clock::Clock;
    d.say("Retention: how long the covenant keeps what the gateway holds");
    let r = &cc.covenant().retention;
    let mut lines = Vec::new();
    if let Some(p) = &r.deposits {
        lines.push(format!(
            "deposits: {} days after the subject's last case closed ({})",
            p.days, p.ground
        ));
    }
    if let Some(p) = &r.cases {
        lines.push(format!(
            "closed cases: {} days after closing ({})",
            p.days, p.ground
        ));
    }
    for l in &r.log {
        let kinds: Vec<&str> = l.kinds.iter().map(|k| k.as_str()).collect();
        lines.push(format!(
            "log entries {}: {} days ({}; rule {})",
            kinds.join(", "),
            l.period.days,
            l.period.ground,
            l.id
        ));
    }
    d.note(&lines.join("\n"));
    let later = crate::clock::SystemClock.now() + 8 * 365 * 86_400;
    let db = crate::store::Db::connect(database_url).await?;
    let dry = crate::service::retention::dry_run(&db, cc.covenant(), later).await?;
    db.close().await;
    let when = crate::log::entry::rfc3339::format(later).unwrap_or_default();
    let mut out = vec![format!(
        "A dry run as of {} (nothing is removed now) would remove:",
        when.get(..10).unwrap_or(&when)
    )];
    for (rule, t) in &dry.rules {
        let what = match t.target {
            crate::log::entry::RetentionTarget::Log => "log entries' content (their hashes stay)",
            crate::log::entry::RetentionTarget::Cases => "closed cases",
            crate::log::entry::RetentionTarget::Deposits => "deposits",
        };
        out.push(format!("  {:>4} {what} under {rule}", t.removed));
    }
    out.push("`gateway retention run` removes what is due (a serving gateway runs it daily); each step is a log entry, and `gateway audit verify` still passes after it.".into());
    d.note(&out.join("\n"));
    Ok(())
}

/// The other approaches in the demo's covenant: the five the documents name beside iPGA-R
/// (concept memo 2019, `../shared/seeds/003`, lines 34 and 41).
const APPROACHES: &str = "\n[[approach]]\nid = \"top600\"\nname = \"Top600\"\npartner = \"oov\"\ncontact = \"Regieteam Top600 (gemeente)\"\n\n[[approach]]\nid = \"top400\"\nname = \"Top400\"\npartner = \"oov\"\ncontact = \"Regieteam Top400 (gemeente)\"\n\n[[approach]]\nid = \"criminele-families\"\nname = \"Criminele Families\"\npartner = \"politie\"\ncontact = \"Programmabureau Criminele Families\"\n\n[[approach]]\nid = \"top1000\"\nname = \"Top1000\"\npartner = \"oov\"\ncontact = \"Actiecentrum Veiligheid en Zorg (AcVZ)\"\n\n[[approach]]\nid = \"detentie-terugkeer\"\nname = \"Detentie & Terugkeer\"\npartner = \"oov\"\ncontact = \"Team Detentie & Terugkeer (gemeente)\"\n";

/// Starts the registers of Top400, Criminele Families, Top1000 and Detentie & Terugkeer (they
/// know nobody of the demo) and Top600 (knows the demo's subject), each with its own key and published set; returns their stop senders (Top600
/// last) and the configuration's `[[approach]]` tables.
async fn start_registers(
    dir: &Path,
) -> anyhow::Result<(Vec<tokio::sync::oneshot::Sender<()>>, String)> {
    let mut stops = Vec::new();
    let mut config = String::new();
    for (id, knows) in [
        ("top400", vec![]),
        ("criminele-families", vec![]),
        ("top1000", vec![]),
        ("detentie-terugkeer", vec![]),
        ("top600", vec![SUBJECT_BSN]),
    ] {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (_, _, table) = start_register(
            dir,
            id,
            &knows,
            crate::register::Quota::default(),
            35 * 86_400,
            rx,
        )
        .await?;
        stops.push(tx);
        config.push_str(&table);
    }
    Ok((stops, config))
}

/// A witness the demo runs for a partner.
struct DemoWitness {
    partner: &'static str,
    name: String,
    vkey: String,
    addr: std::net::SocketAddr,
    verifier: crate::log::cosign::CosignVerifier,
}

/// Starts the witnesses of politie, om and rn in this process, each with its own key and state
/// in `dir/witness-<partner>/`, following the log of `cfg`; stopped when the sender sends.
async fn start_witnesses(
    dir: &Path,
    cfg: &Config,
) -> anyhow::Result<(Vec<DemoWitness>, tokio::sync::watch::Sender<bool>)> {
    use crate::witness::server::{Witness, WitnessConfig, WitnessedLog, router};
    let origin = format!("{}/disclosures", cfg.gateway_id);
    let log_vkey = crate::runtime::load_log_key(&cfg.secrets.log_key_file, &origin)
        .map_err(anyhow::Error::msg)?
        .vkey();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut out = Vec::new();
    for partner in ["politie", "om", "rn"] {
        let base = dir.join(format!("witness-{partner}"));
        std::fs::create_dir_all(&base)?;
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow::anyhow!("no randomness"))?;
        std::fs::write(base.join("witness-ed25519.key"), hex::encode(seed))?;
        let name = format!("witness.{partner}.ipga-r.example");
        let wcfg = WitnessConfig {
            name: name.clone(),
            key_file: "witness-ed25519.key".into(),
            listen: "127.0.0.1:0".into(),
            database: "sqlite://witness.db".into(),
            logs: vec![WitnessedLog {
                origin: origin.clone(),
                vkeys: vec![log_vkey.clone()],
            }],
        };
        let w = Arc::new(Witness::open(&wcfg, &base, Arc::new(crate::clock::SystemClock)).await?);
        let vkey = w.vkey();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router(w))
                .with_graceful_shutdown(async move {
                    let _ = stopped.changed().await;
                })
                .await;
        });
        out.push(DemoWitness {
            partner,
            name,
            verifier: crate::log::cosign::CosignVerifier::from_vkey(&vkey)?,
            vkey,
            addr,
        });
    }
    Ok((out, stop))
}

/// The last segment of a problem's `type` URI: what the demo prints of a refusal.
fn problem_slug(v: &serde_json::Value) -> &str {
    v["type"]
        .as_str()
        .and_then(|t| t.rsplit('/').next())
        .unwrap_or("")
}
