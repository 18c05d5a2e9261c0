//! The partners' signed approvals of a draft (issue 37): added and withdrawn as log entries,
//! counted at activation against the signatures the change's review names, and checked again
//! from the log whenever a version is served. See [`crate::lifecycle::approval`] for the note.

use super::policy_admin::{administrator, change, load_draft};
use super::{Call, clip};
use crate::app::App;
use crate::lifecycle::approval::{self, Approval, Requirement};
use crate::log::entry::{LogEntry, PolicyAction};
use crate::refusal::Refusal;
use crate::store::{DraftStatus, PolicyDraftRow};
use policy::CompiledCovenant;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The body of `POST /v1/policy/drafts/{id}/signatures`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureIn {
    /// The signed approval note, as `gateway policy sign` prints it.
    pub note: String,
}

/// The largest note accepted.
const MAX_NOTE: usize = 4096;

/// What the draft must approve: its version against the active version and its activation.
fn expected(cc: &CompiledCovenant, d: &PolicyDraftRow, active: &PolicyDraftRow) -> Approval {
    Approval {
        covenant: cc.covenant().id.clone(),
        partner: String::new(),
        version: d.version.clone(),
        base: active.version.clone(),
        base_draft: active.id.clone(),
        expires: 0,
    }
}

/// `POST /v1/policy/drafts/{id}/signatures`: adds a partner's signed approval. It is checked
/// against the partner's governance key in the active version and must approve this draft
/// against the active version; stored in the log, never elsewhere.
pub async fn add(
    app: &App,
    call: &mut Call,
    id: &str,
    body: SignatureIn,
) -> Result<Value, Refusal> {
    change(call, PolicyAction::Sign, Some(id));
    administrator(app, call)?;
    let d = load_draft(app, id).await?;
    if !matches!(d.status, DraftStatus::Draft | DraftStatus::Approved) {
        return Err(Refusal::DraftState(d.status.to_string(), "draft"));
    }
    if body.note.len() > MAX_NOTE {
        return Err(Refusal::SignatureInvalid(format!(
            "a note is at most {MAX_NOTE} bytes"
        )));
    }
    let active = app
        .db
        .active_policy_draft()
        .await?
        .ok_or(Refusal::Internal)?;
    let base = call.policy.covenant.clone();
    let a = approval::verify(
        &body.note,
        &base,
        &expected(&base, &d, &active),
        app.clock.now(),
    )
    .map_err(|e| Refusal::SignatureInvalid(e.to_string()))?;
    if let Some(pc) = call.record.policy_change.as_mut() {
        pc.version = Some(d.version.clone());
        pc.base_version = Some(active.version.clone());
        pc.signer = Some(a.partner.clone());
        pc.signature = Some(body.note.clone());
    }
    let seq = call.commit(app).await?.seq;
    tracing::info!(draft = %d.id, partner = %a.partner, "signed approval added");
    Ok(
        json!({"draft": d.id, "partner": a.partner, "expires": crate::log::entry::rfc3339::format(a.expires), "audit_seq": seq}),
    )
}

/// `POST /v1/policy/drafts/{id}/signatures/{partner}/withdraw`: a partner's approval no longer
/// counts (until it signs again). Withdrawn in the log, so that the activation sees it.
pub async fn withdraw(
    app: &App,
    call: &mut Call,
    id: &str,
    partner: &str,
) -> Result<Value, Refusal> {
    change(call, PolicyAction::Withdraw, Some(id));
    administrator(app, call)?;
    let d = load_draft(app, id).await?;
    if !matches!(d.status, DraftStatus::Draft | DraftStatus::Approved) {
        return Err(Refusal::DraftState(d.status.to_string(), "draft"));
    }
    let c = call.covenant();
    if c.partner(partner).is_none() {
        return Err(Refusal::UnknownPartner(clip(partner, 64)));
    }
    if let Some(pc) = call.record.policy_change.as_mut() {
        pc.version = Some(d.version.clone());
        pc.signer = Some(partner.to_owned());
    }
    let seq = call.commit(app).await?.seq;
    tracing::info!(draft = %d.id, %partner, "signed approval withdrawn");
    Ok(json!({"draft": d.id, "partner": partner, "withdrawn": true, "audit_seq": seq}))
}

/// The signed approvals of a draft that stand: per partner its newest `sign` step, unless a
/// `withdraw` came after it. Read from the log, newest first, back to the draft's creation.
pub async fn standing(db: &crate::store::Db, draft: &str) -> Result<Vec<String>, Refusal> {
    let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut before = i64::MAX;
    'pages: loop {
        let page = db.policy_entries_before(before, 200).await?;
        let Some((last, _)) = page.last() else { break };
        before = *last;
        for (seq, text) in &page {
            let e = LogEntry::parse(*seq, text).map_err(|_| Refusal::Internal)?;
            let Some(pc) = e.policy_change else { continue };
            if pc.draft.as_deref() != Some(draft) {
                continue;
            }
            match (pc.action, pc.signer) {
                (Some(PolicyAction::Sign), Some(p)) => {
                    latest.entry(p).or_insert(pc.signature);
                }
                (Some(PolicyAction::Withdraw), Some(p)) => {
                    latest.entry(p).or_insert(None);
                }
                (Some(PolicyAction::Draft | PolicyAction::RollbackDraft), _) => break 'pages,
                _ => {}
            }
        }
    }
    Ok(latest.into_values().flatten().collect())
}

/// Of `notes`, those that approve the change now, and who signed them.
fn counted(
    notes: &[String],
    base: &CompiledCovenant,
    want: &Approval,
    at: i64,
) -> (Vec<String>, BTreeSet<String>) {
    let mut used = Vec::new();
    let mut signed = BTreeSet::new();
    for n in notes {
        if let Ok(a) = approval::verify(n, base, want, at) {
            signed.insert(a.partner);
            used.push(n.clone());
        }
    }
    (used, signed)
}

/// At activation: whether the partners' standing approvals meet what the change's review asks
/// under the active version. Returns the notes to record with the activation (none where the
/// active version sets no threshold).
pub async fn check_for_activation(
    app: &App,
    call: &Call,
    d: &PolicyDraftRow,
    cc: &CompiledCovenant,
    active: &PolicyDraftRow,
) -> Result<Option<Vec<String>>, Refusal> {
    let base = call.policy.covenant.clone();
    // The review alone: the decision diff of the draft's answer is not needed to count signers.
    let review = policy::review::review(&active.source, &base, &d.source, cc).map_err(|e| {
        tracing::error!(error = %e, "a stored covenant text does not parse");
        Refusal::Internal
    })?;
    let Some(req) = approval::requirement(&base, &review) else {
        return Ok(None);
    };
    let notes = standing(&app.db, &d.id).await?;
    let (used, signed) = counted(&notes, &base, &expected(&base, d, active), app.clock.now());
    let missing = approval::missing(&base, &req, &signed);
    if !missing.is_empty() {
        return Err(Refusal::SignaturesMissing(missing.join(" and ")));
    }
    Ok(Some(used))
}

/// For a served version: whether the activation the log shows carries the signatures its
/// change needed under the version before it, valid when it was made. `previous` is that
/// version's stored row (its text checked against its hash); `None` for the first version.
pub fn check_logged_activation(
    previous: &PolicyDraftRow,
    row: &PolicyDraftRow,
    notes: &[String],
    at: i64,
) -> Result<(), String> {
    let compile = |r: &PolicyDraftRow| {
        crate::lifecycle::PolicyBuilder::compile_stored(r)
            .map_err(|e| format!("the stored version {} ({}): {e}", r.id, r.version))
    };
    let (base, cc) = (compile(previous)?, compile(row)?);
    let review = policy::review::review(&previous.source, &base, &row.source, &cc)
        .map_err(|e| e.to_string())?;
    let Some(req): Option<Requirement> = approval::requirement(&base, &review) else {
        return Ok(());
    };
    let (_, signed) = counted(notes, &base, &expected(&base, row, previous), at);
    let missing = approval::missing(&base, &req, &signed);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the log's activation of draft {} lacks {} under the version before it (draft {})",
            row.id,
            missing.join(" and "),
            previous.id
        ))
    }
}

/// For a served first version: whether its bootstrap in the log carries every core partner's
/// installation signature its covenant asks for, valid when it was installed.
pub fn check_logged_installation(
    row: &PolicyDraftRow,
    notes: &[String],
    at: i64,
) -> Result<(), String> {
    let cc = crate::lifecycle::PolicyBuilder::compile_stored(row)
        .map_err(|e| format!("the stored version {} ({}): {e}", row.id, row.version))?;
    approval::check_installation(&cc, notes, at)
        .map(|_| ())
        .map_err(|missing| {
            format!(
                "the log's installation of draft {} lacks {}: no installation ceremony shows that the core partners agreed to this first version",
                row.id,
                missing.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::log::entry::Kind;
    use crate::service::policy_admin::{activate, approve, create_draft};
    use crate::testkit;

    /// The example covenant with `edit` applied to its parsed form.
    fn text(edit: impl Fn(&mut toml::Table)) -> String {
        let mut doc: toml::Table = crate::demo::EXAMPLE_COVENANT.parse().unwrap();
        edit(&mut doc);
        toml::to_string(&doc).unwrap()
    }

    /// The `[[partner]]` table of `id`.
    fn partner<'a>(doc: &'a mut toml::Table, id: &str) -> &'a mut toml::Table {
        doc["partner"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|p| p["id"].as_str() == Some(id))
            .and_then(toml::Value::as_table_mut)
            .unwrap()
    }

    /// rn's payloads encrypted to oov's key: a change to rn's own entry.
    fn rn_recipient_to_oov(doc: &mut toml::Table) {
        partner(doc, "rn").insert("recipient".into(), "file:oov/age-recipient.txt".into());
    }

    fn admin(app: &App, staff: &str) -> Call {
        testkit::call(app, Kind::Policy, "oov", staff, &["beheerder"])
    }

    /// A draft of `source`, approved by the second administrator.
    async fn drafted(app: &App, source: String) -> PolicyDraftRow {
        let d = create_draft(app, &mut admin(app, "beheerder-1"), Ok(source))
            .await
            .unwrap();
        let id = d["id"].as_str().unwrap().to_owned();
        approve(app, &mut admin(app, "beheerder-2"), &id)
            .await
            .unwrap();
        app.db.policy_draft(&id).await.unwrap().unwrap()
    }

    async fn note(
        app: &App,
        partner: &str,
        key_of: &str,
        d: &PolicyDraftRow,
        expires: i64,
    ) -> String {
        let active = app.db.active_policy_draft().await.unwrap().unwrap();
        let a = Approval {
            covenant: "ipga-r-amsterdam".into(),
            partner: partner.into(),
            version: d.version.clone(),
            base: active.version,
            base_draft: active.id,
            expires,
        };
        approval::sign(&testkit::governance_seed(key_of), &a).unwrap()
    }

    async fn add_note(app: &App, d: &PolicyDraftRow, n: String) -> Result<Value, Refusal> {
        add(
            app,
            &mut admin(app, "beheerder-1"),
            &d.id,
            SignatureIn { note: n },
        )
        .await
    }

    /// Issue 37: every core partner's administrators hold `beheerder` for their own part. The
    /// police's administrators draft, approve and activate a change to the police's own entry;
    /// a change to rn's entry, or a shared one, is not theirs (the programme partner's
    /// administrators handle those).
    #[tokio::test]
    async fn a_partners_administrators_handle_their_own_part_only() {
        let (app, _) = testkit::app().await;
        let politie =
            |staff: &str| testkit::call(&app, Kind::Policy, "politie", staff, &["beheerder"]);
        let own = text(|doc| {
            partner(doc, "politie").insert("name".into(), "Politie Eenheid Amsterdam (IGP)".into());
        });
        let d = create_draft(&app, &mut politie("beheerder-1"), Ok(own))
            .await
            .unwrap();
        let id = d["id"].as_str().unwrap().to_owned();
        approve(&app, &mut politie("beheerder-2"), &id)
            .await
            .unwrap();

        // rn's entry: not the police's part.
        let err = create_draft(
            &app,
            &mut politie("beheerder-1"),
            Ok(text(rn_recipient_to_oov)),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Refusal::PolicyNotYourPart(p, lines) if p == "politie" && lines.contains("[partner] rn")),
            "{err:?}"
        );
        // A shared change drafted by oov: the police's administrators may not approve it.
        let shared = text(|doc| {
            doc["checks"]
                .as_table_mut()
                .unwrap()
                .insert("per_staff_per_minute".into(), 7.into());
        });
        let d = create_draft(&app, &mut admin(&app, "beheerder-1"), Ok(shared))
            .await
            .unwrap();
        let id = d["id"].as_str().unwrap().to_owned();
        assert!(matches!(
            approve(&app, &mut politie("beheerder-1"), &id).await,
            Err(Refusal::PolicyNotYourPart(..))
        ));
        approve(&app, &mut admin(&app, "beheerder-2"), &id)
            .await
            .unwrap();
    }

    /// Issue 37: under a covenant that sets `approval_threshold`, a change to a partner's entry
    /// takes that partner's signature, a shared change the threshold's; a signature by another
    /// key, for another change, expired or withdrawn does not count; the activation carries
    /// the notes, and the start-up check finds them in the log.
    #[tokio::test]
    async fn a_change_goes_in_only_with_the_signatures_its_review_names() {
        let (app, clock) = testkit::app().await;
        // The example covenant gives the core partners governance keys and a threshold of 4.
        let first = app.db.active_policy_draft().await.unwrap().unwrap();
        let now = clock.now();

        // rn's recipient replaced by oov's: rn's signature, nobody else's.
        let d = drafted(
            &app,
            text(|doc| {
                rn_recipient_to_oov(doc);
            }),
        )
        .await;
        assert_eq!(
            activate(&app, &mut admin(&app, "beheerder-1"), &d.id)
                .await
                .unwrap_err(),
            Refusal::SignaturesMissing("rn's signature".into())
        );
        // Two oov administrators cannot stand in for rn: a note "from rn" signed with oov's key.
        let forged = note(&app, "rn", "oov", &d, now + 3600).await;
        assert!(
            matches!(add_note(&app, &d, forged).await, Err(Refusal::SignatureInvalid(why)) if why.contains("does not verify"))
        );
        // Expired.
        let old = note(&app, "rn", "rn", &d, now - 1).await;
        assert!(
            matches!(add_note(&app, &d, old).await, Err(Refusal::SignatureInvalid(why)) if why.contains("expired"))
        );
        // rn's own, then withdrawn: it does not count; signed again, the change goes in.
        let good = note(&app, "rn", "rn", &d, now + 3600).await;
        add_note(&app, &d, good.clone()).await.unwrap();
        withdraw(&app, &mut admin(&app, "beheerder-1"), &d.id, "rn")
            .await
            .unwrap();
        assert!(matches!(
            activate(&app, &mut admin(&app, "beheerder-1"), &d.id).await,
            Err(Refusal::SignaturesMissing(_))
        ));
        add_note(&app, &d, good.clone()).await.unwrap();
        activate(&app, &mut admin(&app, "beheerder-1"), &d.id)
            .await
            .unwrap();
        let entries = testkit::entries(&app).await;
        let activation = entries
            .iter()
            .rev()
            .find_map(|e| {
                e.policy_change
                    .clone()
                    .filter(|p| p.action == Some(PolicyAction::Activate))
            })
            .unwrap();
        assert_eq!(activation.signatures, Some(vec![good.clone()]));
        // The start-up check reads them back from the log; without them it refuses.
        let row = app.db.active_policy_draft().await.unwrap().unwrap();
        super::super::policy_admin::check_logged(&app.db, &row)
            .await
            .unwrap();
        let previous = app.db.policy_draft(&first.id).await.unwrap().unwrap();
        assert!(check_logged_activation(&previous, &row, &[], now).is_err());

        // A shared part (retention 0): four core partners; rn's old note is for another change.
        let e = drafted(
            &app,
            text(|doc| {
                rn_recipient_to_oov(doc);
                doc["retention"]["deposits"]
                    .as_table_mut()
                    .unwrap()
                    .insert("days".into(), 0.into());
            }),
        )
        .await;
        assert!(
            matches!(add_note(&app, &e, good).await, Err(Refusal::SignatureInvalid(why)) if why.contains("not this change"))
        );
        for p in ["oov", "politie", "om"] {
            let n = note(&app, p, p, &e, now + 3600).await;
            add_note(&app, &e, n).await.unwrap();
        }
        assert!(matches!(
            activate(&app, &mut admin(&app, "beheerder-1"), &e.id).await,
            Err(Refusal::SignaturesMissing(why)) if why.contains("1 more core partners")
        ));
        let n = note(&app, "ggd", "ggd", &e, now + 3600).await;
        add_note(&app, &e, n).await.unwrap();
        activate(&app, &mut admin(&app, "beheerder-1"), &e.id)
            .await
            .unwrap();
    }
}

#[cfg(test)]
mod tamper_tests {
    use super::*;
    use crate::log::entry::Kind;
    use crate::service::policy_admin::{activate, approve, check_logged, create_draft};
    use crate::testkit;
    use proptest::prelude::*;

    /// Whether a gateway would serve what the database names active: the start-up and
    /// follow checks, in their order (the log's activation, then the text against its hash).
    async fn serves(app: &App) -> bool {
        let Some(row) = app.db.active_policy_draft().await.unwrap() else {
            return false;
        };
        check_logged(&app.db, &row).await.is_ok()
            && crate::lifecycle::PolicyBuilder::compile_stored(&row).is_ok()
    }

    fn quoted(s: &str) -> String {
        format!("'{}'", s.replace('\'', "''"))
    }

    /// Issue 37: any change to a stored version, the signatures it was activated with, or
    /// `policy_state` that the log does not show makes the gateway refuse to serve; undone, it
    /// serves again.
    #[test]
    fn any_unlogged_change_to_the_active_covenant_is_refused() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (app, first, active) = rt.block_on(async {
            let (app, _) = testkit::app().await;
            let first = app.db.active_policy_draft().await.unwrap().unwrap();
            let admin =
                |staff: &str| testkit::call(&app, Kind::Policy, "oov", staff, &["beheerder"]);
            let text = crate::demo::EXAMPLE_COVENANT.replace(
                "recipient = \"file:rn/age-recipient.txt\"",
                "recipient = \"file:oov/age-recipient.txt\"",
            );
            let d = create_draft(&app, &mut admin("beheerder-1"), Ok(text))
                .await
                .unwrap();
            let id = d["id"].as_str().unwrap().to_owned();
            approve(&app, &mut admin("beheerder-2"), &id).await.unwrap();
            testkit::sign_all(&app, &id).await;
            activate(&app, &mut admin("beheerder-1"), &id)
                .await
                .unwrap();
            let active = app.db.active_policy_draft().await.unwrap().unwrap();
            assert!(serves(&app).await);
            (app, first, active)
        });
        proptest!(ProptestConfig::with_cases(24), |(kind in 0..6usize, junk in "[a-z0-9 ]{1,12}")| {
            let (a, f) = (&active.id, &first.id);
            let (tamper, undo) = match kind {
                // Back to a version the log activated earlier, but not last.
                0 => (format!("UPDATE policy_state SET active_draft = '{f}'"),
                      format!("UPDATE policy_state SET active_draft = '{a}'")),
                // The active row's recorded hash.
                1 => (format!("UPDATE policy_drafts SET version = 'sha256:{junk}' WHERE id = '{a}'"),
                      format!("UPDATE policy_drafts SET version = {} WHERE id = '{a}'", quoted(&active.version))),
                // Its text (a retention period; comments are not the covenant's content and do
                // not change its version), the hash left as it was.
                2 => (format!("UPDATE policy_drafts SET source = replace(source, 'days = 90', 'days = {}') WHERE id = '{a}'", junk.len() % 3),
                      format!("UPDATE policy_drafts SET source = {} WHERE id = '{a}'", quoted(&active.source))),
                // The key material it was built with.
                3 => (format!("UPDATE policy_drafts SET key_material = '{{}}' WHERE id = '{a}'"),
                      format!("UPDATE policy_drafts SET key_material = {} WHERE id = '{a}'", quoted(&active.key_material))),
                // The version before it (whose keys checked the signatures).
                4 => (format!("UPDATE policy_drafts SET version = 'sha256:{junk}' WHERE id = '{f}'"),
                      format!("UPDATE policy_drafts SET version = {} WHERE id = '{f}'", quoted(&first.version))),
                // The version before it, its threshold lowered so that no signature is needed.
                _ => (format!("UPDATE policy_drafts SET source = replace(source, 'approval_threshold = 4', 'approval_threshold = 1') WHERE id = '{f}'"),
                      format!("UPDATE policy_drafts SET source = {} WHERE id = '{f}'", quoted(&first.source))),
            };
            let (refused, restored) = rt.block_on(async {
                app.db.execute_unchecked(&tamper).await.unwrap();
                let refused = !serves(&app).await;
                app.db.execute_unchecked(&undo).await.unwrap();
                (refused, serves(&app).await)
            });
            prop_assert!(refused, "served after: {}", tamper);
            prop_assert!(restored, "not served after undoing: {}", tamper);
        });
    }
}
