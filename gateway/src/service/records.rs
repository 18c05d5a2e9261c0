//! Deposits: a partner stores its own records for one of its own products (store-backed
//! sources), sealed with age at rest. Each deposit is a log entry, committed with the records in
//! one transaction; disclosures that open them name the same digest.

use super::{Call, clip};
use crate::app::App;
use crate::log::entry::{Deposit, ProductStatus, ProductSummary};
use crate::refusal::Refusal;
use crate::sources::RecordsBody;
use crate::store::{Change, RecordsRow};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The answer to a deposit.
#[derive(Debug, Serialize)]
pub struct DepositAnswer {
    /// Product.
    pub product: String,
    /// Subject reference.
    pub subject_ref: String,
    /// Records stored.
    pub records: usize,
    /// Sequence number of the deposit's log entry.
    pub audit_seq: i64,
}

/// Stores a partner's records.
pub async fn deposit(
    app: &App,
    call: &mut Call,
    product: &str,
    subject_ref: &str,
    body: RecordsBody,
) -> Result<DepositAnswer, Refusal> {
    let active = call.policy.clone();
    let c = active.covenant.covenant();
    let req = call.requester.clone();
    let pref = c
        .product(product)
        .ok_or_else(|| Refusal::ProductUnknown(clip(product, 64)))?;
    let p = c.products.get(pref.index()).ok_or(Refusal::Internal)?;
    if p.owner != req.partner {
        return Err(Refusal::ProductNotOwned(product.to_owned()));
    }
    if app.upstream.serves(pref) {
        return Err(Refusal::ProductUpstream(product.to_owned()));
    }
    // Only the roles the covenant lets deposit this product: not every member of the owner.
    let role = req
        .roles
        .iter()
        .copied()
        .find(|r| p.may_deposit(*r))
        .ok_or_else(|| {
            let roles: Vec<&str> = c
                .roles
                .iter()
                .enumerate()
                .filter(|(i, _)| p.deposit_roles.get(*i).copied().unwrap_or(false))
                .map(|(_, r)| r.id.as_str())
                .collect();
            Refusal::DepositRole(
                product.to_owned(),
                if roles.is_empty() {
                    "none".into()
                } else {
                    roles.join(", ")
                },
            )
        })?;
    call.record.role = call.role_id(role);
    super::disclose::check_records(&active.covenant, pref, &body)?;
    let pseudonym = app
        .db
        .subject_of_ref(subject_ref)
        .await?
        .ok_or(Refusal::SubjectNotFound)?;
    call.record.data_subject = Some(pseudonym);
    let plain = serde_json::to_vec(&body.records).map_err(|_| Refusal::Internal)?;
    let sealed = app.secrets.seal(&plain).map_err(|_| Refusal::Internal)?;
    let digest: [u8; 32] = Sha256::digest(&sealed.bytes).into();
    call.record.products.insert(
        product.to_owned(),
        ProductSummary::new(ProductStatus::Ok, &req.partner_id, body.records.len()),
    );
    call.record.deposit = Some(Deposit {
        product: product.to_owned(),
        subject_ref: subject_ref.to_owned(),
        records: body.records.len(),
        sealed_sha256: hex::encode(digest),
    });
    let row = RecordsRow {
        product: product.to_owned(),
        subject_ref: subject_ref.to_owned(),
        owner: req.partner_id.clone(),
        sealed: sealed.bytes,
        updated_at: app.clock.now(),
        updated_by: req.staff_id.clone(),
        sealed_key: Some(sealed.key),
        deposit_sha256: Some(digest),
    };
    let appended = call
        .commit_change(app, Change::PutRecords(row), Refusal::SubjectNotFound)
        .await?;
    let n = body.records.len();
    tracing::info!(product = %product, records = n, seq = appended.seq, "records deposited");
    // The first disclosure of these records need not open what was sealed just now.
    app.opened.insert(digest, std::sync::Arc::new(body.records));
    Ok(DepositAnswer {
        product: product.to_owned(),
        subject_ref: subject_ref.to_owned(),
        records: n,
        audit_seq: appended.seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::entry::{Kind, SourceKind};
    use crate::service::Ident;
    use crate::service::disclose::{DisclosureRequest, SubjectSelector};
    use crate::testkit;
    use serde_json::json;

    fn body(v: serde_json::Value) -> RecordsBody {
        serde_json::from_value(json!({ "records": v })).unwrap()
    }

    #[tokio::test]
    async fn only_the_products_deposit_roles_deposit_and_a_disclosure_names_the_digest() {
        let (app, _) = testkit::app().await;
        let case = testkit::register(&app, "999993331").await;
        let recs = json!([{"registratienummer": "PL-1", "datum": "2026-08-02", "incidentsoort": "x", "rol": "verdachte", "omschrijving": "y", "locatie_postcode": "1055 XK", "signaleringen": [], "contacten": []}]);
        // The owner's privacy officer may not overwrite the police's records.
        let mut po = testkit::call(&app, Kind::Deposit, "politie", "fg.1", &["privacy-officer"]);
        assert!(matches!(
            deposit(
                &app,
                &mut po,
                "politie.registraties",
                &case.subject_ref,
                body(recs.clone())
            )
            .await,
            Err(Refusal::DepositRole(..))
        ));
        // Another partner's source system neither.
        let mut other = testkit::call(&app, Kind::Deposit, "rn", "bron", &["bronsysteem"]);
        assert!(matches!(
            deposit(
                &app,
                &mut other,
                "politie.registraties",
                &case.subject_ref,
                body(recs.clone())
            )
            .await,
            Err(Refusal::ProductNotOwned(_))
        ));
        // A subject no case has.
        let mut src = testkit::call(&app, Kind::Deposit, "politie", "bron", &["bronsysteem"]);
        assert_eq!(
            deposit(
                &app,
                &mut src,
                "politie.registraties",
                "subj-nobody",
                body(recs.clone())
            )
            .await
            .unwrap_err(),
            Refusal::SubjectNotFound
        );
        let mut src = testkit::call(&app, Kind::Deposit, "politie", "bron", &["bronsysteem"]);
        let a = deposit(
            &app,
            &mut src,
            "politie.registraties",
            &case.subject_ref,
            body(recs),
        )
        .await
        .unwrap();
        assert_eq!(a.records, 1);
        let dep = src.record.deposit.clone().unwrap();
        // Kept opened from the deposit itself (a refused one is not), by the digest its entry
        // names.
        assert_eq!(app.opened.len(), 1);
        let digest: [u8; 32] = hex::decode(&dep.sealed_sha256).unwrap().try_into().unwrap();
        assert!(app.opened.get(&digest).is_some());
        // The voorportaal's duiding opens the deposit, and its entry names the same digest.
        let mut u = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        crate::service::cases::update(
            &app,
            &mut u,
            &case.id,
            crate::service::cases::CasePatch {
                status: Some(policy::CaseStatus::Duiding),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let mut d = testkit::call(&app, Kind::Disclosure, "politie", "vp.1", &["voorportaal"]);
        crate::service::disclose::disclose(
            &app,
            &mut d,
            DisclosureRequest {
                subject: Some(SubjectSelector::Ref(
                    Ident::parse("ref", &case.subject_ref).unwrap(),
                )),
                purpose: "duiding".into(),
                case: Ident::parse("case", &case.id).unwrap(),
                products: None,
            },
        )
        .await
        .unwrap();
        let inputs = d.record.decision.clone().unwrap();
        let source = &inputs.sources["politie.registraties"];
        assert_eq!(
            (source.from, source.sha256.as_str()),
            (SourceKind::Deposit, dep.sealed_sha256.as_str())
        );
        assert_eq!(
            (inputs.case_version, inputs.satisfied_by.as_str()),
            (2, "role")
        );
    }
}
