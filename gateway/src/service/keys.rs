//! The gateway's own key rings over their life: the storage keys (deposits and sealed BSNs) and
//! the pseudonym keys (subject pseudonyms, and what partners receive from `pseudonymize`). A
//! ring's current key is recorded when it changes; rows made with older keys are made again
//! with the current one while the gateway serves (re-sealed, re-keyed); old keys are retired
//! only when nothing is made with them. Every step is a log entry (ids and counts, never key
//! material or personal data), committed with the rows it moves.

use crate::app::App;
use crate::crypto::{
    PseudonymKeys, Secrets, StorageKeys, read_age_identities, read_pseudonym_keys,
};
use crate::log::entry::{KeyAction, KeyName, KeyStep, Kind, LogEntry, Outcome, Start, new_id};
use crate::log::{Log, LogError};
use crate::store::{
    Change, Db, Rekey, RekeyedCase, Reseal, ResealedCase, ResealedDeposit, StoreError,
};
use sha2::Digest;
use std::collections::BTreeSet;
use std::path::Path;

/// A key step could not be taken; nothing of it happened.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The log could not record the step.
    #[error("{0}")]
    Log(#[from] LogError),
    /// The key file cannot be used.
    #[error("{0}")]
    File(String),
    /// The new ring would drop a key that rows are still sealed with, or retire the current one.
    #[error("{0}")]
    Refused(String),
    /// A row cannot be opened with any key of the ring.
    #[error("a sealed row opens with no key of the ring: {0}")]
    Unopenable(String),
}

/// The name rows from before key ids were recorded are listed under.
pub const UNRECORDED: &str = "unrecorded";

fn entry(version: &str, now: i64, step: KeyStep) -> LogEntry {
    let mut e = LogEntry::new(Start {
        id: new_id(),
        at: now,
        trace_id: &uuid::Uuid::new_v4().to_string(),
        kind: Kind::Keys,
        partner: "(gateway)".into(),
        policy_version: version,
    });
    e.outcome = Outcome::Answered;
    e.keys = Some(step);
    e
}

fn step(action: KeyAction, current: &str, from: Vec<String>) -> KeyStep {
    keyed_step(KeyName::Storage, action, current, from)
}

fn keyed_step(key: KeyName, action: KeyAction, current: &str, from: Vec<String>) -> KeyStep {
    KeyStep {
        key,
        action,
        current: current.to_owned(),
        from,
        deposits: None,
        cases: None,
    }
}

/// The key of a ring the log last recorded as current.
pub async fn recorded_key(db: &Db, ring: KeyName) -> Result<Option<String>, StoreError> {
    for text in db.latest_key_entries(100).await? {
        if let Ok(e) = LogEntry::parse(0, &text)
            && let Some(k) = e.keys.filter(|k| k.key == ring)
        {
            return Ok(Some(k.current));
        }
    }
    Ok(None)
}

/// The storage key the log last recorded as current.
pub async fn recorded_storage_key(db: &Db) -> Result<Option<String>, StoreError> {
    recorded_key(db, KeyName::Storage).await
}

/// At start: records a rotation made while the gateway was stopped: the ring's current key is
/// not the one the log last recorded, or (nothing recorded yet) rows are sealed with another.
/// A fresh database, with nothing sealed, records nothing.
pub async fn record_storage_key(
    log: &Log,
    secrets: &Secrets,
    version: &str,
    now: i64,
) -> Result<bool, KeysError> {
    let current = secrets.storage().current().to_owned();
    let previous = match recorded_storage_key(log.db()).await? {
        Some(p) if p == current => return Ok(false),
        Some(p) => vec![p],
        None => log
            .db()
            .storage_key_use()
            .await?
            .into_iter()
            .filter_map(|u| u.key.filter(|k| *k != current && u.deposits + u.cases > 0))
            .collect(),
    };
    if previous.is_empty() {
        return Ok(false);
    }
    log.append(entry(
        version,
        now,
        step(KeyAction::Rotated, &current, previous),
    ))
    .await?;
    Ok(true)
}

/// Reloads the ring from `path`. A new first key is a rotation; keys gone from the file are
/// retired, which is refused while rows are sealed with them (or with unrecorded keys), and for
/// the current key itself (rotate first, retire once the re-seal moved everything). Each step is
/// recorded before the new ring is used. Returns whether the ring changed.
pub async fn reload_storage(
    log: &Log,
    secrets: &Secrets,
    version: &str,
    now: i64,
    path: &Path,
) -> Result<bool, KeysError> {
    let ring = read_age_identities(path)
        .ok()
        .and_then(StorageKeys::new)
        .ok_or_else(|| {
            KeysError::File(format!(
                "{}: no usable AGE-SECRET-KEY line; keeping the keys in use",
                path.display()
            ))
        })?;
    let old = secrets.storage();
    if ring.ids() == old.ids() {
        return Ok(false);
    }
    let removed: Vec<String> = old
        .ids()
        .iter()
        .filter(|id| !ring.ids().contains(id))
        .cloned()
        .collect();
    if removed.iter().any(|id| id == old.current()) {
        return Err(KeysError::Refused(format!(
            "the storage key file drops the current key {}: rotate first (`gateway keys rotate-storage` keeps it below the new one), and remove it once `gateway keys status` shows nothing sealed with it",
            old.current()
        )));
    }
    if !removed.is_empty() {
        for u in log.db().storage_key_use().await? {
            let name = u.key.clone().unwrap_or_else(|| UNRECORDED.into());
            if (u.key.is_none() || u.key.as_ref().is_some_and(|k| removed.contains(k)))
                && u.deposits + u.cases > 0
            {
                return Err(KeysError::Refused(format!(
                    "the storage key file drops {} while {} deposits and {} cases are sealed with key {name}: keep it until the re-seal moved them (`gateway keys status`)",
                    removed.join(", "),
                    u.deposits,
                    u.cases
                )));
            }
        }
    }
    if ring.current() != old.current() {
        let s = step(
            KeyAction::Rotated,
            ring.current(),
            vec![old.current().to_owned()],
        );
        log.append(entry(version, now, s)).await?;
    }
    if !removed.is_empty() {
        let s = step(KeyAction::Retired, ring.current(), removed);
        log.append(entry(version, now, s)).await?;
    }
    drop(old);
    secrets.replace_storage(ring);
    Ok(true)
}

/// Seals up to `limit` deposits and as many cases that an older key sealed again with the
/// current one, in one logged step. Returns (deposits, cases) moved; (0, 0) when nothing is
/// left, or the step met a change made meanwhile (the next one reads again).
pub async fn reseal_step(
    log: &Log,
    secrets: &Secrets,
    version: &str,
    now: i64,
    limit: i64,
) -> Result<(u64, u64), KeysError> {
    let current = secrets.storage().current().to_owned();
    let (deposits, cases) = log.db().stale_seals(&current, limit).await?;
    if deposits.is_empty() && cases.is_empty() {
        return Ok((0, 0));
    }
    let mut from = BTreeSet::new();
    let mut change = Reseal {
        key: current.clone(),
        ..Reseal::default()
    };
    let again = |bytes: &[u8], what: &str| -> Result<Option<Vec<u8>>, KeysError> {
        let plain = secrets
            .open(bytes)
            .map_err(|_| KeysError::Unopenable(what.to_owned()))?;
        let sealed = secrets
            .seal(&plain)
            .map_err(|e| KeysError::Unopenable(e.to_string()))?;
        // A reload between reading the ring and sealing: this step waits for the next round.
        Ok((sealed.key == current).then_some(sealed.bytes))
    };
    for d in deposits {
        let Some(new) = again(&d.sealed, &format!("a deposit of {}", d.product))? else {
            return Ok((0, 0));
        };
        from.insert(d.sealed_key.unwrap_or_else(|| UNRECORDED.into()));
        let digest = d
            .deposit_sha256
            .unwrap_or_else(|| sha2::Sha256::digest(&d.sealed).into());
        change.deposits.push(ResealedDeposit {
            subject_ref: d.subject_ref,
            product: d.product,
            old: d.sealed,
            new,
            digest,
        });
    }
    for c in cases {
        let Some(new) = again(&c.sealed, "a case's BSN")? else {
            return Ok((0, 0));
        };
        from.insert(c.sealed_key.unwrap_or_else(|| UNRECORDED.into()));
        change.cases.push(ResealedCase {
            id: c.id,
            old: c.sealed,
            new,
        });
    }
    let moved = (change.deposits.len() as u64, change.cases.len() as u64);
    let mut s = step(KeyAction::Resealed, &current, from.into_iter().collect());
    s.deposits = Some(moved.0);
    s.cases = Some(moved.1);
    let a = log
        .append_with(entry(version, now, s), Change::Reseal(change))
        .await?;
    Ok(if a.applied { moved } else { (0, 0) })
}

/// At start: records a pseudonym key rotation made while the gateway was stopped (as
/// [`record_storage_key`] does for the storage ring).
pub async fn record_pseudonym_key(
    log: &Log,
    secrets: &Secrets,
    version: &str,
    now: i64,
) -> Result<bool, KeysError> {
    let current = secrets.pseudonyms().current().to_owned();
    let previous = match recorded_key(log.db(), KeyName::Pseudonym).await? {
        Some(p) if p == current => return Ok(false),
        Some(p) => vec![p],
        None => log
            .db()
            .pseudonym_key_use()
            .await?
            .into_iter()
            .filter_map(|(k, n)| k.filter(|k| *k != current && n > 0))
            .collect(),
    };
    if previous.is_empty() {
        return Ok(false);
    }
    let s = keyed_step(KeyName::Pseudonym, KeyAction::Rotated, &current, previous);
    log.append(entry(version, now, s)).await?;
    Ok(true)
}

/// Reloads the pseudonym ring from `path`, as [`reload_storage`] does the storage ring: a new
/// first key is a rotation (new subject pseudonyms, and new partner pseudonyms from
/// `pseudonymize`: the active version is rebuilt with the new partner keys); a key leaves only
/// when no case's pseudonym is made with it. Entries made with a retired key are no longer
/// found by BSN.
pub async fn reload_pseudonyms(app: &App, path: &Path) -> Result<bool, KeysError> {
    let ring = read_pseudonym_keys(path)
        .ok()
        .and_then(PseudonymKeys::new)
        .ok_or_else(|| {
            KeysError::File(format!(
                "{}: no usable pseudonym key (or more than four); keeping the keys in use",
                path.display()
            ))
        })?;
    let old = app.secrets.pseudonyms();
    if ring.ids() == old.ids() {
        return Ok(false);
    }
    let removed: Vec<String> = old
        .ids()
        .into_iter()
        .filter(|id| !ring.ids().contains(id))
        .collect();
    if removed.iter().any(|id| id == old.current()) {
        return Err(KeysError::Refused(format!(
            "the pseudonym key file drops the current key {}: rotate first (`gateway keys rotate-pseudonym` keeps it below the new one)",
            old.current()
        )));
    }
    for (key, n) in app.db.pseudonym_key_use().await? {
        if n > 0 && key.as_ref().is_none_or(|k| removed.contains(k)) && !removed.is_empty() {
            return Err(KeysError::Refused(format!(
                "the pseudonym key file drops {} while {n} cases have a pseudonym made with key {}: keep it until the re-key moved them (`gateway keys status`)",
                removed.join(", "),
                key.unwrap_or_else(|| UNRECORDED.into())
            )));
        }
    }
    let version = app.policy.load().version().to_owned();
    let now = app.clock.now();
    let (current, previous) = (ring.current().to_owned(), old.current().to_owned());
    drop(old);
    // The active version's partner keys come from the current key: rebuilt under the
    // activation lock, so that an activation meanwhile is not undone.
    let _one = app.activation.lock().await;
    let before = app.secrets.swap_pseudonyms(ring);
    let active = app.policy.load_full();
    let next = match app
        .builder
        .build(active.covenant.clone(), &active.draft, &app.secrets)
    {
        Ok(n) => n,
        Err(es) => {
            app.secrets.restore_pseudonyms(before);
            return Err(KeysError::File(es.join("; ")));
        }
    };
    let mut steps = Vec::new();
    if current != previous {
        steps.push(keyed_step(
            KeyName::Pseudonym,
            KeyAction::Rotated,
            &current,
            vec![previous],
        ));
    }
    if !removed.is_empty() {
        steps.push(keyed_step(
            KeyName::Pseudonym,
            KeyAction::Retired,
            &current,
            removed,
        ));
    }
    for s in steps {
        if let Err(e) = app.log.append(entry(&version, now, s)).await {
            app.secrets.restore_pseudonyms(before);
            return Err(e.into());
        }
    }
    app.policy.store(std::sync::Arc::new(next));
    Ok(true)
}

/// Makes the pseudonyms of up to `limit` cases an older key made again with the current one
/// (from their sealed BSNs), in one logged step. Returns the cases moved (0 when nothing is
/// left, or the step met a change made meanwhile).
pub async fn rekey_step(
    log: &Log,
    secrets: &Secrets,
    version: &str,
    now: i64,
    limit: i64,
) -> Result<u64, KeysError> {
    let current = secrets.pseudonyms().current().to_owned();
    let stale = log.db().stale_pseudonyms(&current, limit).await?;
    if stale.is_empty() {
        return Ok(0);
    }
    let mut from = BTreeSet::new();
    let mut change = Rekey {
        key: current.clone(),
        cases: Vec::new(),
    };
    for c in stale {
        let plain = secrets
            .open(&c.subject_sealed)
            .map_err(|_| KeysError::Unopenable("a case's BSN".into()))?;
        let bsn = std::str::from_utf8(&plain)
            .ok()
            .and_then(|t| policy::Bsn::parse(t).ok())
            .ok_or_else(|| KeysError::Unopenable("a case's BSN is not a BSN".into()))?;
        let (new, key) = secrets.subject_pseudonym_keyed(&bsn);
        if key != current {
            // A reload between reading the ring and making the pseudonym: the next round.
            return Ok(0);
        }
        from.insert(c.pseudonym_key.unwrap_or_else(|| UNRECORDED.into()));
        change.cases.push(RekeyedCase {
            id: c.id,
            old: c.subject_pseudonym,
            new,
        });
    }
    let moved = change.cases.len() as u64;
    let mut s = keyed_step(
        KeyName::Pseudonym,
        KeyAction::Rekeyed,
        &current,
        from.into_iter().collect(),
    );
    s.cases = Some(moved);
    let a = log
        .append_with(entry(version, now, s), Change::Rekey(change))
        .await?;
    Ok(if a.applied { moved } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use secrecy::ExposeSecret;

    fn ring_file(keys: &[&age::x25519::Identity]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("ring-{}.txt", uuid::Uuid::new_v4().simple()));
        let text: String = keys
            .iter()
            .map(|k| format!("{}\n", k.to_string().expose_secret()))
            .collect();
        std::fs::write(&p, text).unwrap();
        p
    }

    async fn steps(app: &crate::app::App) -> Vec<KeyStep> {
        testkit::entries(app)
            .await
            .into_iter()
            .filter_map(|e| e.keys)
            .collect()
    }

    #[tokio::test]
    async fn a_rotation_reseals_every_row_and_an_old_key_leaves_only_when_unused() {
        let (app, _) = testkit::app().await;
        let version = app.policy.load().version().to_owned();
        let case = testkit::register(&app, "999990068").await;
        let mut dep = testkit::call(&app, Kind::Deposit, "ggd", "bron", &["bronsysteem"]);
        let recs = serde_json::from_value(serde_json::json!({"records": [{"screeningsdatum": "2026-09-30", "in_zorg": false, "zorgaanbieder": "GGZ", "diagnose": "x", "medicatie": "y", "contactpersoon": "GGD Team"}]})).unwrap();
        crate::service::records::deposit(&app, &mut dep, "ggd.screening", &case.subject_ref, recs)
            .await
            .unwrap();
        let recorded = dep.record.deposit.clone().unwrap().sealed_sha256;
        let old_id = app.secrets.storage().current().to_owned();
        let old = crate::crypto::read_age_identities(
            &testkit::pki().join(crate::pki::layout::STORAGE_IDENTITY),
        )
        .unwrap()
        .remove(0);
        let new = age::x25519::Identity::generate();
        let new_id = crate::crypto::storage_key_id(&new.to_public());
        let now = testkit::T0;

        // The current key cannot leave the file, rotated or not.
        let without_current = ring_file(&[&new]);
        assert!(matches!(
            reload_storage(&app.log, &app.secrets, &version, now, &without_current).await,
            Err(KeysError::Refused(_))
        ));
        // Rotation: the new key first, the old below it.
        let rotated = ring_file(&[&new, &old]);
        assert!(
            reload_storage(&app.log, &app.secrets, &version, now, &rotated)
                .await
                .unwrap()
        );
        assert_eq!(app.secrets.storage().current(), new_id);
        // The old key cannot leave while rows are sealed with it.
        assert!(matches!(
            reload_storage(&app.log, &app.secrets, &version, now, &without_current).await,
            Err(KeysError::Refused(_))
        ));
        // The re-seal moves the deposit and the case's BSN; then nothing is left.
        assert_eq!(
            reseal_step(&app.log, &app.secrets, &version, now, 200)
                .await
                .unwrap(),
            (1, 1)
        );
        assert_eq!(
            reseal_step(&app.log, &app.secrets, &version, now, 200)
                .await
                .unwrap(),
            (0, 0)
        );
        let uses = app.db.storage_key_use().await.unwrap();
        assert_eq!(uses.len(), 1);
        assert_eq!(uses[0].key.as_deref(), Some(new_id.as_str()));
        // The data still opens, and disclosures still name the deposit entry's digest.
        let (row, records) = app.db.case_with_records(&case.id).await.unwrap().unwrap();
        assert_eq!(app.secrets.open(&row.subject_sealed).unwrap(), b"999990068");
        assert_eq!(hex::encode(records[0].deposit_digest()), recorded);
        let only_new = Secrets::from_parts(new.clone(), vec![1; 32]);
        assert!(
            only_new.open(&records[0].sealed).is_ok(),
            "sealed with the new key"
        );
        // Now the old key may leave.
        assert!(
            reload_storage(&app.log, &app.secrets, &version, now, &without_current)
                .await
                .unwrap()
        );
        let s = steps(&app).await;
        let actions: Vec<KeyAction> = s.iter().map(|k| k.action).collect();
        assert_eq!(
            actions,
            vec![KeyAction::Rotated, KeyAction::Resealed, KeyAction::Retired]
        );
        assert_eq!(s[0].from, vec![old_id.clone()]);
        assert_eq!((s[1].deposits, s[1].cases), (Some(1), Some(1)));
        assert_eq!(s[2].from, vec![old_id]);
        // A start finds the rotation recorded: nothing more to record.
        assert!(
            !record_storage_key(&app.log, &app.secrets, &version, now)
                .await
                .unwrap()
        );
    }
}

#[cfg(test)]
mod pseudonym_tests {
    use super::*;
    use crate::testkit;

    fn key_file(lines: &[&str]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("pseud-{}.key", uuid::Uuid::new_v4().simple()));
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    }

    fn partner_pseudonym(app: &App) -> String {
        let active = app.policy.load_full();
        let rn = active.covenant.covenant().partner("rn").unwrap();
        active
            .registry
            .partner(rn)
            .unwrap()
            .pseudonym_key
            .pseudonym(b"999990093")
    }

    #[tokio::test]
    async fn a_pseudonym_rotation_rekeys_the_register_and_still_finds_the_person() {
        let (app, _) = testkit::app().await;
        let version = app.policy.load().version().to_owned();
        let case = testkit::register(&app, "999990093").await;
        let bsn = policy::Bsn::parse("999990093").unwrap();
        let before = app.secrets.subject_pseudonym(&bsn);
        let partner_before = partner_pseudonym(&app);
        let old_key =
            std::fs::read_to_string(testkit::pki().join(crate::pki::layout::PSEUDONYM_KEY))
                .unwrap();
        let new_key = "ab".repeat(32);

        // The current key cannot leave the file.
        let without_current = key_file(&[&new_key]);
        assert!(matches!(
            reload_pseudonyms(&app, &without_current).await,
            Err(KeysError::Refused(_))
        ));
        let rotated = key_file(&[&new_key, old_key.trim()]);
        assert!(reload_pseudonyms(&app, &rotated).await.unwrap());
        let after = app.secrets.subject_pseudonym(&bsn);
        assert_ne!(after, before);
        assert_eq!(
            app.secrets.subject_pseudonyms(&bsn),
            vec![after.clone(), before.clone()]
        );
        // What partners receive from `pseudonymize` changes with it.
        assert_ne!(partner_pseudonym(&app), partner_before);
        // The register still finds the person, under the old pseudonym until re-keyed.
        let found = app
            .db
            .subject_cases(&app.secrets.subject_pseudonyms(&bsn))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert!(matches!(
            reload_pseudonyms(&app, &without_current).await,
            Err(KeysError::Refused(_))
        ));
        assert_eq!(
            rekey_step(&app.log, &app.secrets, &version, testkit::T0, 200)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            rekey_step(&app.log, &app.secrets, &version, testkit::T0, 200)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            app.db
                .case(&case.id)
                .await
                .unwrap()
                .unwrap()
                .subject_pseudonym,
            after
        );
        // The log entry made before the rotation is found by BSN under the old key.
        let filter = crate::store::LogFilter {
            subjects: app.secrets.subject_pseudonyms(&bsn),
            kinds: vec![Kind::CaseChange.as_str()],
            limit: 10,
            ..Default::default()
        };
        assert_eq!(app.db.search(&filter).await.unwrap().len(), 1);
        // Retired once the register no longer uses it; then only the new pseudonym is looked for.
        assert!(reload_pseudonyms(&app, &without_current).await.unwrap());
        assert_eq!(app.secrets.subject_pseudonyms(&bsn), vec![after]);
        let steps: Vec<(KeyName, KeyAction)> = testkit::entries(&app)
            .await
            .into_iter()
            .filter_map(|e| e.keys)
            .map(|k| (k.key, k.action))
            .collect();
        assert_eq!(
            steps,
            vec![
                (KeyName::Pseudonym, KeyAction::Rotated),
                (KeyName::Pseudonym, KeyAction::Rekeyed),
                (KeyName::Pseudonym, KeyAction::Retired)
            ]
        );
    }
}
