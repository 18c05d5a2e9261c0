//! The job the gateway exists for: a disclosure answers a partner with exactly what the covenant
//! allows for the purpose, field by field, encrypted to it with age, after its log entry is
//! durable. The entry records the inputs of the decision (case version and status, the
//! relation that bound the purpose, the digest of each source it opened).

use super::{Call, binding, clip};
use crate::app::App;
use crate::log::entry::{
    DecisionInputs, Outcome, ProductStatus, ProductSummary, SourceKind, SourceRef,
};
use crate::refusal::Refusal;
use crate::sources::{OpenedRecords, RecordsBody};
use policy::{ActionKind, Audience, Bsn, CompiledCovenant, ProductRef, TransformContext};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// `POST /v1/disclosures` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureRequest {
    /// `{"bsn": "…"}` or `{"ref": "…"}`; left out only by an audience a prohibition bars from
    /// the person's identity (it asks by case only).
    #[serde(default)]
    pub subject: Option<SubjectSelector>,
    /// Purpose id.
    pub purpose: String,
    /// Case id.
    pub case: super::Ident,
    /// Products wanted (default: every product the purpose permits).
    #[serde(default)]
    pub products: Option<Vec<super::Ident>>,
}

/// The subject of a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum SubjectSelector {
    /// By BSN (11-proef checked).
    Bsn(String),
    /// By the case's subject reference.
    Ref(super::Ident),
}

/// The answer to a disclosure.
#[derive(Debug, Serialize)]
pub struct DisclosureAnswer {
    /// Disclosure id.
    pub disclosure_id: String,
    /// Sequence number of its record in the disclosure log.
    pub audit_seq: i64,
    /// Merkle leaf hash of that record (hex), for `GET /v1/audit/proof/{seq}`.
    pub audit_leaf_hash: String,
    /// The gateway's signed promise that this record is leaf `audit_seq` and will be in a
    /// checkpoint by its `due` time (a C2SP signed note; see docs/audit.md, "Receipts").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_receipt: Option<String>,
    /// Covenant version that decided it.
    pub policy_version: String,
    /// The age recipient the payload is encrypted to.
    pub recipient: String,
    /// ASCII-armored age file; decrypted, JSON.
    pub payload: String,
}

/// Parses a BSN as the API takes it: exactly nine ASCII digits passing the 11-proef; nothing
/// is trimmed or normalised, so what the log records is what the partner sent.
pub fn parse_bsn(s: &str) -> Result<Bsn, Refusal> {
    Bsn::parse(s).map_err(|e| {
        Refusal::InvalidBsn(match e {
            policy::BsnError::Format => {
                "A BSN is exactly nine ASCII digits, without spaces, dots or other characters; send the number as it is"
            }
            policy::BsnError::Checksum => "The BSN fails the 11-proef; check for a typing error",
        })
    })
}

/// One product in a payload: its records as sent, or why there are none.
#[derive(Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
enum ProductAnswer<'a> {
    Ok {
        records: Vec<policy::AppliedRecord<'a>>,
    },
    NoRecords {
        records: [(); 0],
    },
    Unavailable,
    NotPermitted,
}

impl ProductAnswer<'_> {
    fn status(&self) -> (ProductStatus, usize) {
        match self {
            ProductAnswer::Ok { records } => (ProductStatus::Ok, records.len()),
            ProductAnswer::NoRecords { .. } => (ProductStatus::NoRecords, 0),
            ProductAnswer::Unavailable => (ProductStatus::Unavailable, 0),
            ProductAnswer::NotPermitted => (ProductStatus::NotPermitted, 0),
        }
    }
}

/// The decrypted payload of a disclosure, serialised straight from the decisions.
#[derive(Serialize)]
struct Payload<'a> {
    disclosure_id: &'a str,
    transaction_id: &'a str,
    purpose: &'a str,
    case: &'a str,
    subject_ref: &'a str,
    policy_version: &'a str,
    to: PayloadTo<'a>,
    products: &'a BTreeMap<&'a str, ProductAnswer<'a>>,
}

#[derive(Serialize)]
struct PayloadTo<'a> {
    partner: &'a str,
    staff_id: &'a str,
    role: Option<&'a str>,
}

/// Whether the audience may receive anything at all of a product.
pub fn permitted(cc: &CompiledCovenant, a: Audience, p: ProductRef) -> bool {
    cc.covenant().product_fields(p).any(|(f, _)| {
        !matches!(
            cc.decide(a.partner, a.role, a.purpose, f).action.kind(),
            ActionKind::Withhold | ActionKind::Omit
        )
    })
}

/// The record's summary of one product: every field's class and rule for this audience.
pub fn summarise(
    cc: &CompiledCovenant,
    a: Audience,
    p: ProductRef,
    status: ProductStatus,
    records: usize,
) -> Option<ProductSummary> {
    let c = cc.covenant();
    let product = c.products.get(p.index())?;
    let owner = c.partner_at(product.owner)?;
    let mut s = ProductSummary::new(status, &owner.id, records);
    for (f, field) in c.product_fields(p) {
        let d = cc.decide(a.partner, a.role, a.purpose, f);
        s.add(d.class(), &field.name, &d.rule_id);
    }
    Some(s)
}

/// Answers a disclosure request.
pub async fn disclose(
    app: &App,
    call: &mut Call,
    body: DisclosureRequest,
) -> Result<DisclosureAnswer, Refusal> {
    let active = call.policy.clone();
    let cc = &active.covenant;
    let c = cc.covenant();
    let req = call.requester.clone();
    call.record.processing_activity = Some(clip(&body.purpose, 64));
    call.record.case_id = Some(clip(&body.case, 80));
    // Role and purpose first: they need no data.
    let bound = binding::purpose_role(c, &req, &body.purpose)?;
    call.record.role = call.role_id(bound.role);
    // An audience barred from the person's identity asks by case only (issue 41): it can
    // neither name the person nor learn from an answer whether a guess was right.
    let identity_barred = c.identity_barred(req.partner, bound.role, bound.purpose);
    if body.subject.is_none() && !identity_barred {
        return Err(Refusal::InvalidBody(
            "`subject` is required: {\"bsn\": \"…\"} or {\"ref\": \"…\"} of the case's person"
                .into(),
        ));
    }
    let keys = active
        .registry
        .partner(req.partner)
        .ok_or(Refusal::Internal)?;
    // What the payload names the person and the case by: for a barred audience, pseudonyms
    // of its own, as its identity fields are.
    let named = |kind: &str, v: &str| {
        if identity_barred {
            format!(
                "psd-{}",
                keys.pseudonym_key
                    .pseudonym(format!("{kind}:{v}").as_bytes())
            )
        } else {
            v.to_owned()
        }
    };
    // The case and its subject's deposits from the register in memory, no query; the writer
    // checks them again before the entry is written. The deposits stay sealed unless the
    // checks below pass.
    let (case, stored) = app
        .log
        .register()
        .case_with_records(&body.case)
        .ok_or(Refusal::CaseNotFound)?;
    // The relation before anything about the case: whoever has none (and no purpose that needs
    // none) gets the answer for an unknown case, so that a subject mismatch or a purpose
    // refusal cannot confirm whom the case is about.
    let purpose_relation = c
        .purposes
        .get(bound.purpose.index())
        .map(|p| p.relation)
        .ok_or(Refusal::Internal)?;
    // The entry names the subject all the same: the privacy officers see who asked about the
    // person, also where the asker was told that no such case exists.
    call.record.data_subject = Some(case.subject_pseudonym.clone());
    if !binding::may_know_of(c, &req, &case)
        && binding::relation(c, purpose_relation, &req, Some(bound.role), &case).is_none()
    {
        return Err(Refusal::CaseNotFound);
    }
    // Any subject from a barred audience is answered as a mismatch, right or wrong, except the
    // reference the gateway gave it for this case.
    let subject_matches = match &body.subject {
        None => true,
        Some(SubjectSelector::Ref(r)) if identity_barred => {
            r.as_str() == named("subject", &case.subject_ref)
        }
        Some(_) if identity_barred => false,
        // Under any key in use: the case may not have been re-keyed yet.
        Some(SubjectSelector::Bsn(b)) => app
            .secrets
            .subject_pseudonyms(&parse_bsn(b)?)
            .contains(&case.subject_pseudonym),
        Some(SubjectSelector::Ref(r)) => r.as_str() == case.subject_ref,
    };
    if !subject_matches {
        return Err(Refusal::SubjectCaseMismatch);
    }
    // Then the case: its status and the requester's relation to it.
    let satisfied_by = binding::case_binding(c, &req, bound, &case)?;
    let purpose = c
        .purposes
        .get(bound.purpose.index())
        .ok_or(Refusal::Internal)?;
    let mut inputs = DecisionInputs {
        case_version: case.version,
        case_status: case.status,
        relation: purpose.relation,
        satisfied_by: satisfied_by.to_owned(),
        sources: BTreeMap::new(),
    };
    let audience = Audience {
        partner: req.partner,
        role: bound.role,
        purpose: bound.purpose,
    };

    // Whether the audience may receive anything of each product: decided once per request.
    let allowed: Vec<bool> = (0..c.products.len())
        .map(|i| u16::try_from(i).is_ok_and(|i| permitted(cc, audience, ProductRef(i))))
        .collect();
    let allowed_p = |p: &ProductRef| allowed.get(p.index()).copied().unwrap_or(false);

    // Which products: the ones asked for, or every product the purpose permits.
    let products: Vec<ProductRef> = match &body.products {
        Some(list) => list
            .iter()
            .map(|p| {
                c.product(p)
                    .ok_or_else(|| Refusal::ProductUnknown(clip(p, 64)))
            })
            .collect::<Result<_, _>>()?,
        None => (0..c.products.len())
            .filter_map(|i| u16::try_from(i).ok().map(ProductRef))
            .filter(allowed_p)
            .collect(),
    };

    // Fan out: one query for every stored product (above), the upstream sources concurrently.
    let wanted_upstream: Vec<ProductRef> = products
        .iter()
        .copied()
        .filter(|p| app.upstream.serves(*p) && allowed_p(p))
        .collect();
    // The partner's transaction and trace go on to the sources, so their logs correlate.
    let trace = crate::trace::Propagation::of(&call.record);
    let fetched = futures::future::join_all(wanted_upstream.iter().map(|p| {
        let name = c.products.get(p.index()).map_or("", |x| x.id.as_str());
        app.upstream.fetch(*p, name, &case.subject_ref, &trace)
    }))
    .await;
    let mut sources: HashMap<ProductRef, Option<(OpenedRecords, SourceRef)>> = HashMap::new();
    for (p, r) in wanted_upstream.iter().zip(fetched) {
        sources.insert(
            *p,
            r.map(|f| {
                (
                    f.records,
                    SourceRef {
                        from: SourceKind::Upstream,
                        sha256: hex::encode(f.sha256),
                    },
                )
            }),
        );
    }
    // Only the products that will be answered are opened; each sealed value once (the cache is
    // keyed by the ciphertext's digest, so a new deposit is never answered from an old one).
    for row in stored {
        if let Some(p) = c
            .product(&row.product)
            .filter(|p| products.contains(p) && allowed_p(p))
        {
            // The deposit's own digest (its entry's): a new deposit has a new one, a re-seal
            // keeps it and the content; no hashing of the sealed bytes on every request.
            let key = row.deposit_digest();
            let records = opened(app, key, &row.sealed);
            let source = SourceRef {
                from: SourceKind::Deposit,
                sha256: hex::encode(key),
            };
            sources.insert(p, records.map(|r| (r, source)));
        }
    }

    // Decide and transform, product by product. A product with any bad record is unavailable
    // as a whole: never a partial leak.
    let cx = TransformContext {
        today: app.clock.today(),
        pseudonym_key: &keys.pseudonym_key,
    };
    let mut out: BTreeMap<&str, ProductAnswer<'_>> = BTreeMap::new();
    let mut unavailable = false;
    for p in &products {
        let product = c.products.get(p.index()).ok_or(Refusal::Internal)?;
        let pid = product.id.as_str();
        let answer = if !allowed_p(p) {
            ProductAnswer::NotPermitted
        } else {
            match sources.get(p) {
                None if !app.upstream.serves(*p) => ProductAnswer::NoRecords { records: [] },
                None | Some(None) => ProductAnswer::Unavailable,
                Some(Some((records, source))) => {
                    let applied: Result<Vec<_>, _> = records
                        .iter()
                        .map(|r| cc.apply_record(audience, *p, r, &cx))
                        .collect();
                    match applied {
                        Ok(records) => {
                            inputs.sources.insert(pid.to_owned(), source.clone());
                            ProductAnswer::Ok { records }
                        }
                        Err(e) => {
                            tracing::warn!(product = %pid, error = %e, "source data does not fit the catalogue");
                            ProductAnswer::Unavailable
                        }
                    }
                }
            }
        };
        let (status, n) = answer.status();
        unavailable |= status == ProductStatus::Unavailable;
        out.insert(pid, answer);
        let summary = summarise(cc, audience, *p, status, n).ok_or(Refusal::Internal)?;
        call.record.products.insert(pid.to_owned(), summary);
    }
    call.record.decision = Some(inputs);

    let payload = Payload {
        disclosure_id: &call.record.id,
        transaction_id: &call.record.trace_id,
        purpose: &body.purpose,
        case: &named("case", &case.id),
        subject_ref: &named("subject", &case.subject_ref),
        policy_version: cc.version().as_str(),
        to: PayloadTo {
            partner: &req.partner_id,
            staff_id: &req.staff_id,
            role: call.record.role.as_deref(),
        },
        products: &out,
    };
    let plain = serde_json::to_vec(&payload).map_err(|_| Refusal::Internal)?;
    let armored = age::encrypt_and_armor(&keys.recipient, &plain).map_err(|_| Refusal::Internal)?;
    call.record.ciphertext_sha256 = Some(hex::encode(Sha256::digest(armored.as_bytes())));
    call.record.outcome = if unavailable {
        Outcome::PartlyUnavailable
    } else {
        Outcome::Answered
    };

    // Fail closed: the record is committed before the answer leaves, or nothing leaves.
    let appended = call.commit(app).await?;
    tracing::info!(disclosure = %call.record.id, seq = appended.seq, outcome = call.record.outcome.as_str(), products = call.record.products.len(), "disclosed");
    Ok(DisclosureAnswer {
        disclosure_id: call.record.id.clone(),
        audit_seq: appended.seq,
        audit_leaf_hash: hex::encode(appended.leaf_hash),
        audit_receipt: app.receipt(&appended),
        policy_version: call.record.policy_version.clone(),
        recipient: keys.recipient.to_string(),
        payload: armored,
    })
}

/// A deposit's records, opened once and then kept by `key` (the deposit's digest) within the
/// configured number; `None` when they cannot be opened.
pub fn opened(app: &App, key: [u8; 32], sealed: &[u8]) -> Option<OpenedRecords> {
    if let Some(r) = app.opened.get(&key) {
        return Some(r);
    }
    let r = std::sync::Arc::new(
        serde_json::from_slice::<Vec<Map<String, Value>>>(&app.secrets.open(sealed).ok()?).ok()?,
    );
    app.opened.insert(key, r.clone());
    Some(r)
}

/// Opens every deposit the register holds, as far as the cache takes them, so that after a
/// start the first disclosures cost what the later ones do. A few at a time, between requests.
pub async fn warm(app: &App) {
    let rows = app.log.register().deposits();
    let mut opened_now = 0usize;
    for chunk in rows.chunks(32) {
        if app.opened.len() >= app.limits.opened_records_cached {
            break;
        }
        for row in chunk {
            opened_now += usize::from(opened(app, row.deposit_digest(), &row.sealed).is_some());
        }
        tokio::task::yield_now().await;
    }
    tracing::info!(
        deposits = opened_now,
        "deposits opened for the first disclosures"
    );
}

/// Checks deposited or fetched records against the catalogue (no values in the error).
pub fn check_records(
    cc: &CompiledCovenant,
    p: ProductRef,
    body: &RecordsBody,
) -> Result<(), Refusal> {
    for rec in &body.records {
        cc.check_record(p, rec)
            .map_err(|e| Refusal::InvalidRecord(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::entry::Kind;
    use crate::service::Ident;
    use crate::testkit;

    #[tokio::test]
    async fn a_decision_the_case_changed_under_is_recorded_as_a_conflict_not_answered() {
        let (app, _) = testkit::app().await;
        let case = testkit::included(&app, "999993331").await;
        let (now, _) = app.log.register().case_with_records(&case.id).unwrap();
        let decided_at = |version: i64| {
            let mut d = testkit::call(&app, Kind::Disclosure, "rn", "reg.1", &["regisseur"]);
            d.record.case_id = Some(case.id.clone());
            d.record.decision = Some(DecisionInputs {
                case_version: version,
                case_status: now.status,
                relation: policy::Relation::IsRegisseur,
                satisfied_by: "regisseur".into(),
                sources: BTreeMap::new(),
            });
            d
        };
        // Decided on the version the register holds: written as it is.
        let mut current = decided_at(now.version);
        assert!(current.commit(&app).await.is_ok());
        // Decided on an older one (a change committed between the decision and its entry):
        // the writer records the conflict, and nothing is answered.
        let mut old = decided_at(now.version - 1);
        assert!(matches!(old.commit(&app).await, Err(Refusal::CaseConflict)));
        assert_eq!(old.record.problem.as_deref(), Some("case-conflict"));
        assert_eq!(old.record.outcome, Outcome::Refused);
    }

    #[tokio::test]
    async fn a_second_instance_follows_the_others_changes_without_reading_its_register_whole() {
        let (a, _) = testkit::app().await;
        let (b, _) = testkit::beside(&a).await;
        let whole = b.log.register().whole_reads();
        // Any entry B writes first brings its register up to what A committed.
        async fn touch(app: &std::sync::Arc<crate::app::App>) {
            let mut c = testkit::call(app, Kind::CaseRead, "rn", "reg.1", &["regisseur"]);
            c.commit(app).await.unwrap();
        }
        let case = testkit::included(&a, "999993331").await;
        assert!(b.log.register().case_with_records(&case.id).is_none());
        touch(&b).await;
        let (seen, records) = b.log.register().case_with_records(&case.id).unwrap();
        let (on_a, _) = a.log.register().case_with_records(&case.id).unwrap();
        assert_eq!((seen.version, seen.status), (on_a.version, on_a.status));
        assert!(records.is_empty());
        // A deposit about the person on A: B holds it after its next entry.
        let mut dep = testkit::call(&a, Kind::Deposit, "ggd", "bron", &["bronsysteem"]);
        let recs = serde_json::from_value(serde_json::json!({"records": [{"screeningsdatum": "2026-09-30", "in_zorg": false, "zorgaanbieder": "GGZ", "diagnose": "x", "medicatie": "y", "contactpersoon": "GGD Team"}]})).unwrap();
        crate::service::records::deposit(&a, &mut dep, "ggd.screening", &case.subject_ref, recs)
            .await
            .unwrap();
        touch(&b).await;
        let (_, records) = b.log.register().case_with_records(&case.id).unwrap();
        assert_eq!(
            records
                .iter()
                .map(|r| r.product.as_str())
                .collect::<Vec<_>>(),
            ["ggd.screening"]
        );
        assert_eq!(
            b.log.register().whole_reads(),
            whole,
            "followed entry by entry, never read whole"
        );
    }

    #[tokio::test]
    async fn the_regisseur_gets_what_the_covenant_allows_and_another_regisseur_nothing() {
        let (app, _) = testkit::app().await;
        let case = testkit::included(&app, "999993331").await;
        let mut dep = testkit::call(&app, Kind::Deposit, "ggd", "bron", &["bronsysteem"]);
        let recs = serde_json::from_value(serde_json::json!({"records": [{"screeningsdatum": "2026-09-30", "in_zorg": false, "zorgaanbieder": "GGZ", "diagnose": "x", "medicatie": "y", "contactpersoon": "GGD Team"}]})).unwrap();
        crate::service::records::deposit(&app, &mut dep, "ggd.screening", &case.subject_ref, recs)
            .await
            .unwrap();
        let ask = |staff: &str| testkit::call(&app, Kind::Disclosure, "rn", staff, &["regisseur"]);
        let req = || DisclosureRequest {
            subject: Some(SubjectSelector::Bsn("999993331".into())),
            purpose: "regie".into(),
            case: Ident::parse("case", &case.id).unwrap(),
            products: Some(vec![Ident::parse("product", "ggd.screening").unwrap()]),
        };
        let mut d = ask("reg.1");
        let a = disclose(&app, &mut d, req()).await.unwrap();
        let p = testkit::decrypt("rn", &a.payload);
        let rec = &p["products"]["ggd.screening"]["records"][0];
        assert_eq!(
            rec["diagnose"]["redacted"], "avg-9",
            "health detail stays with the GGD"
        );
        assert!(rec.get("medicatie").is_none(), "omitted");
        assert_eq!(
            rec["in_zorg"],
            serde_json::json!({"exists": true}),
            "`false` in care exists: never a bare value"
        );
        assert_eq!(
            d.record.ciphertext_sha256.as_deref(),
            Some(hex::encode(Sha256::digest(a.payload.as_bytes())).as_str())
        );
        let summary = &d.record.products["ggd.screening"];
        assert_eq!(
            (summary.status, summary.owner.as_deref()),
            (ProductStatus::Ok, Some("ggd"))
        );
        // Another regisseur, with no role in the case: the case does not exist for it, with the
        // case's real BSN, with any other, and exactly as for an id no case has (issue 41). Its
        // entry does not name the subject either.
        for (bsn, case_id) in [
            ("999993331", case.id.as_str()),
            ("999992223", case.id.as_str()),
            ("999993331", "case-that-does-not-exist"),
        ] {
            let mut d = ask("reg.2");
            let probe = DisclosureRequest {
                subject: Some(SubjectSelector::Bsn(bsn.into())),
                case: Ident::parse("case", case_id).unwrap(),
                ..req()
            };
            assert_eq!(
                disclose(&app, &mut d, probe).await.unwrap_err(),
                Refusal::CaseNotFound,
                "{bsn} {case_id}"
            );
            // Recorded with the subject where there is a case: the officers see the probe.
            assert_eq!(d.record.data_subject.is_some(), case_id == case.id);
            assert!(d.committed.is_none());
        }
        // The wrong subject for the case.
        let mut d = ask("reg.1");
        let wrong = DisclosureRequest {
            subject: Some(SubjectSelector::Bsn("999992223".into())),
            ..req()
        };
        assert_eq!(
            disclose(&app, &mut d, wrong).await.unwrap_err(),
            Refusal::SubjectCaseMismatch
        );
    }
}

#[cfg(test)]
mod withheld_tests {
    use super::*;
    use crate::log::entry::Kind;
    use crate::service::Ident;
    use crate::service::cases::{CasePatch, update};
    use crate::testkit;

    /// Issue 41, finding 5: a product the audience may receive nothing of says nothing about
    /// whether the partner holds data on the person: the same `not-permitted`, no count, no
    /// digest, in the payload and in the entry, with a deposit and without one.
    #[tokio::test]
    async fn a_product_withheld_as_a_whole_says_nothing_of_whether_data_exists() {
        let (app, _) = testkit::app().await;
        let mut answers = Vec::new();
        for (bsn, deposit) in [("999993331", true), ("999992223", false)] {
            let case = testkit::included(&app, bsn).await;
            let mut plan = testkit::call(&app, Kind::CaseChange, "rn", "reg.1", &["regisseur"]);
            let to_plan = CasePatch {
                status: Some(policy::CaseStatus::Plan),
                ..CasePatch::default()
            };
            update(&app, &mut plan, &case.id, to_plan).await.unwrap();
            if deposit {
                let mut dep = testkit::call(&app, Kind::Deposit, "ggd", "bron", &["bronsysteem"]);
                let recs = serde_json::from_value(serde_json::json!({"records": [{"screeningsdatum": "2026-09-30", "in_zorg": true, "zorgaanbieder": "GGZ", "diagnose": "x", "medicatie": "y", "contactpersoon": "GGD Team"}]})).unwrap();
                crate::service::records::deposit(
                    &app,
                    &mut dep,
                    "ggd.screening",
                    &case.subject_ref,
                    recs,
                )
                .await
                .unwrap();
            }
            for products in [
                Some(vec![Ident::parse("product", "ggd.screening").unwrap()]),
                None,
            ] {
                let listed = products.is_some();
                let mut d =
                    testkit::call(&app, Kind::Disclosure, "om", "ro.om", &["regieoverleg-lid"]);
                let req = DisclosureRequest {
                    subject: Some(SubjectSelector::Ref(
                        Ident::parse("ref", &case.subject_ref).unwrap(),
                    )),
                    purpose: "besluitvorming".into(),
                    case: Ident::parse("case", &case.id).unwrap(),
                    products,
                };
                let a = disclose(&app, &mut d, req).await.unwrap();
                let p = testkit::decrypt("om", &a.payload);
                let product = p["products"].get("ggd.screening").cloned();
                let summary = d
                    .record
                    .products
                    .get("ggd.screening")
                    .map(|s| (s.status, serde_json::to_value(s).unwrap()));
                if listed {
                    assert_eq!(
                        product,
                        Some(serde_json::json!({"status": "not-permitted"}))
                    );
                    assert_eq!(
                        summary.as_ref().map(|s| s.0),
                        Some(ProductStatus::NotPermitted)
                    );
                } else {
                    assert_eq!(product, None, "not listed when not asked for");
                    assert!(summary.is_none());
                }
                answers.push((listed, product, summary.map(|s| s.1)));
            }
        }
        // With the GGD's deposit and without it: the same payload part and the same entry part.
        assert_eq!(answers[0], answers[2]);
        assert_eq!(answers[1], answers[3]);
    }
}

#[cfg(test)]
mod existence_tests {
    use super::*;
    use crate::log::entry::Kind;
    use crate::service::Ident;
    use crate::service::cases::{CasePatch, update};
    use crate::testkit;
    use policy::CaseStatus;
    use proptest::prelude::*;

    /// Issue 41: for any requester without a relation to a case, every route that names the
    /// case answers exactly as for a case id that does not exist (the problem, and so its
    /// status, type, title and detail), whatever the purpose, subject or change asked.
    #[test]
    fn without_a_relation_a_case_answers_as_one_that_does_not_exist() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (app, case) = rt.block_on(async {
            let (app, _) = testkit::app().await;
            let case = testkit::included(&app, "999993331").await;
            let mut u = testkit::call(&app, Kind::CaseChange, "rn", "reg.1", &["regisseur"]);
            let uvo = CasePatch {
                uvo_partners: Some(vec!["wpi".into()]),
                ..CasePatch::default()
            };
            update(&app, &mut u, &case.id, uvo).await.unwrap();
            (app, case)
        });
        let policy = app.policy.load_full();
        let c = policy.covenant.covenant();
        // Every partner x role it may hold, and every case-level purpose.
        let mut askers: Vec<(String, String)> = Vec::new();
        for p in &c.partners {
            for r in &c.roles {
                let i = c.partner(&p.id).unwrap().index();
                if r.held_by.get(i).copied().unwrap_or(false) {
                    askers.push((p.id.clone(), r.id.clone()));
                }
            }
        }
        let purposes: Vec<String> = c.purposes.iter().map(|u| u.id.clone()).collect();
        let stored = rt.block_on(app.db.case(&case.id)).unwrap().unwrap();
        proptest!(ProptestConfig::with_cases(64), |(
            a in 0..askers.len(),
            u in 0..purposes.len(),
            by_bsn in any::<bool>(),
            right_subject in any::<bool>(),
            to in prop::sample::select(CaseStatus::ALL.to_vec()),
        )| {
            let (partner, role) = &askers[a];
            let staff = "someone.else";
            let probe = testkit::call(&app, Kind::Disclosure, partner, staff, &[role]);
            // Only requesters with no relation to this case at all.
            let relation = c.purpose(&purposes[u]).and_then(|p| c.purposes.get(p.index()))
                .map(|p| p.relation);
            let has = binding::may_know_of(c, &probe.requester, &stored)
                || relation.is_some_and(|rel| {
                    binding::relation(c, rel, &probe.requester, probe.requester.roles.first().copied(), &stored).is_some()
                });
            prop_assume!(!has);
            let subject = match (by_bsn, right_subject) {
                (true, true) => SubjectSelector::Bsn("999993331".into()),
                (true, false) => SubjectSelector::Bsn("999992223".into()),
                (false, true) => SubjectSelector::Ref(Ident::parse("ref", &case.subject_ref).unwrap()),
                (false, false) => SubjectSelector::Ref(Ident::parse("ref", "subj-other").unwrap()),
            };
            let ask = |id: &str| DisclosureRequest {
                subject: Some(match &subject {
                    SubjectSelector::Bsn(b) => SubjectSelector::Bsn(b.clone()),
                    SubjectSelector::Ref(r) => SubjectSelector::Ref(r.clone()),
                }),
                purpose: purposes[u].clone(),
                case: Ident::parse("case", id).unwrap(),
                products: None,
            };
            let (real, none) = rt.block_on(async {
                let mut x = testkit::call(&app, Kind::Disclosure, partner, staff, &[role]);
                let mut y = testkit::call(&app, Kind::Disclosure, partner, staff, &[role]);
                (
                    disclose(&app, &mut x, ask(&case.id)).await.err(),
                    disclose(&app, &mut y, ask("case-none")).await.err(),
                )
            });
            prop_assert_eq!(&real, &none, "disclosure by {}/{} for {}", partner, role, purposes[u]);
            prop_assert!(real.is_some(), "nothing is disclosed to {}/{}", partner, role);
            let (real, none) = rt.block_on(async {
                let change = || CasePatch { status: Some(to), ..CasePatch::default() };
                let mut x = testkit::call(&app, Kind::CaseChange, partner, staff, &[role]);
                let mut y = testkit::call(&app, Kind::CaseChange, partner, staff, &[role]);
                (
                    update(&app, &mut x, &case.id, change()).await.err(),
                    update(&app, &mut y, "case-none", change()).await.err(),
                )
            });
            prop_assert_eq!(&real, &none, "change to {} by {}/{}", to, partner, role);
        });
    }
}
