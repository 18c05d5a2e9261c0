//! The case register in memory (issue 40): every case and its subject's deposits as the
//! database holds them, so that a disclosure decides without a query.
//!
//! Only the log's writer changes it, right after a batch's `COMMIT` succeeded, with the
//! [`Change`]s that batch applied (every change to the register commits with its entry). What
//! it cannot mirror row for row (a retention run, a re-seal, a re-key) and a writer resuming
//! after a failure make it read the register again; another instance's appends are followed
//! ([`Register::refresh`] with what their entries name). A disclosure decided from the view is
//! checked against it once more by the writer, under the log head's lock, before its entry is
//! written: a case that changed in between turns the disclosure into a `case-conflict`
//! refusal, so no answer ever rests on a view older than the entries already written.

use super::{CaseRow, Change, Db, RecordsRow, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A case and its subject's deposits, as a disclosure reads them.
pub type CaseWithRecords = (Arc<CaseRow>, Vec<Arc<RecordsRow>>);

#[derive(Debug, Default)]
struct Inner {
    /// By case id.
    cases: HashMap<String, Arc<CaseRow>>,
    /// By subject reference, one per product.
    records: HashMap<String, Vec<Arc<RecordsRow>>>,
}

/// The register in memory; see the module documentation.
#[derive(Debug, Default)]
pub struct Register {
    inner: RwLock<Inner>,
    /// Set while the view may miss a committed change (a reload failed or is under way).
    stale: AtomicBool,
    /// Times it was read whole.
    whole_reads: AtomicU64,
}

impl Register {
    /// The register as the database holds it now.
    pub async fn load(db: &Db) -> Result<Register, StoreError> {
        let r = Register::default();
        r.reload(db).await?;
        Ok(r)
    }

    /// Reads the register again from the database.
    pub async fn reload(&self, db: &Db) -> Result<(), StoreError> {
        self.stale.store(true, Ordering::SeqCst);
        let rows = db.register_rows().await?;
        let mut next = Inner::default();
        for r in rows {
            let (case, record) = r.split()?;
            if let Some(rec) = record {
                next.records
                    .entry(rec.subject_ref.clone())
                    .or_default()
                    .push(Arc::new(rec));
            }
            if !next.cases.contains_key(&case.id) {
                next.cases.insert(case.id.clone(), Arc::new(case));
            }
        }
        match self.inner.write() {
            Ok(mut g) => *g = next,
            Err(p) => *p.into_inner() = next,
        }
        self.stale.store(false, Ordering::SeqCst);
        self.whole_reads.fetch_add(1, Ordering::Relaxed);
        crate::metrics::metrics()
            .register_reads
            .get_or_create(&crate::metrics::ReasonLabel { reason: "whole" })
            .inc();
        Ok(())
    }

    /// Reads again the cases `cases` and every case about the people `subjects` (pseudonyms),
    /// each with its subject's deposits, and puts them in the view: what another instance's
    /// entries changed, without reading the whole register. `false` when the view cannot be
    /// brought up to date this way (a case it holds is gone from the database): then it is
    /// marked stale and must be read whole.
    pub async fn refresh(
        &self,
        db: &Db,
        cases: &BTreeSet<String>,
        subjects: &BTreeSet<String>,
    ) -> Result<bool, StoreError> {
        let was_stale = self.stale.swap(true, Ordering::SeqCst);
        if was_stale {
            return Ok(false);
        }
        // By case id; a case read twice (named, and about a person named) counts once.
        let mut fresh: BTreeMap<String, (CaseRow, Vec<RecordsRow>)> = BTreeMap::new();
        for id in cases {
            match db.case_with_records(id).await? {
                Some(c) => {
                    fresh.entry(c.0.id.clone()).or_insert(c);
                }
                None if self.read().cases.contains_key(id) => return Ok(false),
                // A refused change of a case that never existed: nothing to read.
                None => {}
            }
        }
        for pseudonym in subjects {
            for c in db.cases_with_records_of_subject(pseudonym).await? {
                fresh.entry(c.0.id.clone()).or_insert(c);
            }
        }
        {
            let mut g = match self.inner.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            for (case, records) in fresh.into_values() {
                // Every deposit of the person replaces what the view held for them.
                g.records.insert(
                    case.subject_ref.clone(),
                    records.into_iter().map(Arc::new).collect(),
                );
                g.cases.insert(case.id.clone(), Arc::new(case));
            }
        }
        self.stale.store(false, Ordering::SeqCst);
        Ok(true)
    }

    /// Times the view was read whole (at start included).
    pub fn whole_reads(&self) -> u64 {
        self.whole_reads.load(Ordering::Relaxed)
    }

    /// Whether the view may miss a committed change (then it must be read again).
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::SeqCst)
    }

    /// A case and its subject's deposits (`None`: no such case).
    pub fn case_with_records(&self, id: &str) -> Option<CaseWithRecords> {
        let g = self.read();
        let case = g.cases.get(id)?.clone();
        let records = g
            .records
            .get(&case.subject_ref)
            .cloned()
            .unwrap_or_default();
        Some((case, records))
    }

    /// Every deposit held.
    pub fn deposits(&self) -> Vec<Arc<RecordsRow>> {
        self.read().records.values().flatten().cloned().collect()
    }

    /// Whether a disclosure decided at `case_version` would be decided the same now: the case
    /// (status, relations, roles) is what binds the purpose. A deposit replaced meanwhile does
    /// not count: the entry names the digest of the one it answered with, as a query read a
    /// moment earlier would have.
    pub fn still_current(&self, case_id: &str, case_version: i64) -> bool {
        if self.is_stale() {
            return false;
        }
        self.read()
            .cases
            .get(case_id)
            .is_some_and(|c| c.version == case_version)
    }

    /// Applies a committed change as the database applied it; `false` when the view cannot
    /// mirror it and must be read again.
    pub fn apply(&self, change: &Change) -> bool {
        let mirrored = self.mirror(change);
        if !mirrored {
            self.stale.store(true, Ordering::SeqCst);
        }
        mirrored
    }

    fn mirror(&self, change: &Change) -> bool {
        let mut g = match self.inner.write() {
            Ok(g) => g,
            Err(_) => return false,
        };
        match change {
            Change::CreateCase { case, .. } => {
                g.cases.insert(case.id.clone(), Arc::new(case.clone()));
                true
            }
            Change::UpdateCase { case: new, .. } => match g.cases.get(&new.id) {
                // The columns the UPDATE sets, no more (a re-key may have changed the others).
                Some(old) => {
                    let mut c = CaseRow::clone(old);
                    c.status = new.status;
                    c.risk_group = new.risk_group;
                    c.ideology = new.ideology;
                    c.regisseur = new.regisseur.clone();
                    c.uvo_partners = new.uvo_partners.clone();
                    c.signal_date = new.signal_date.clone();
                    c.decision_date = new.decision_date.clone();
                    c.notification_date = new.notification_date.clone();
                    c.notification_to = new.notification_to;
                    c.updated_at = new.updated_at;
                    c.version = new.version;
                    g.cases.insert(c.id.clone(), Arc::new(c));
                    true
                }
                None => false,
            },
            Change::PutRecords(r) => {
                let held = g.records.entry(r.subject_ref.clone()).or_default();
                held.retain(|x| x.product != r.product);
                held.push(Arc::new(r.clone()));
                true
            }
            Change::InsertDraft(_)
            | Change::ApproveDraft { .. }
            | Change::ActivateDraft { .. }
            | Change::Bootstrap(_) => true,
            Change::RemoveExpired(_) | Change::Reseal(_) | Change::Rekey(_) => false,
        }
    }

    /// Cases held.
    pub fn len(&self) -> usize {
        self.read().cases.len()
    }

    /// Whether no case is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A writer that panicked mid-change cannot happen (no panics outside tests); the data
        // is replaced whole or changed by one insert.
        match self.inner.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}
