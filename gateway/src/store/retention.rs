//! Retention's rows: what has expired (closed cases, their deposits, log entries by time), the
//! tombstones of removed log content, and the one change that removes it all, applied in the
//! append transaction of the retention entry that describes it.

use super::{Db, StoreError, Tx, on_pool, on_tx};
use sha2::Digest;

/// A removed range of log content, as stored (`log_tombstones`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct TombstoneRow {
    /// First sequence number.
    pub first_seq: i64,
    /// Last sequence number (inclusive).
    pub last_seq: i64,
    /// The covenant's retention rule.
    pub rule: String,
    /// When it was removed (epoch seconds).
    pub removed_at: i64,
}

/// A closed case and when it was closed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClosedCase {
    /// Case id.
    pub id: String,
    /// Its version (the removal is refused if it changed since).
    pub version: i64,
    /// When it reached its closed status (epoch seconds).
    pub closed_at: i64,
}

/// A deposit retention may remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositKey {
    /// Subject reference.
    pub subject_ref: String,
    /// Product.
    pub product: String,
    /// When it was deposited (the removal is refused if it was replaced since).
    pub updated_at: i64,
    /// SHA-256 of the sealed records, to forget their opened copy.
    pub sealed_sha256: [u8; 32],
}

/// An entry retention may remove, with what its rule depends on.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ExpiringEntry {
    /// Sequence number.
    pub seq: i64,
    /// Kind.
    pub kind: String,
    /// Purpose.
    pub purpose: Option<String>,
    /// When (epoch seconds).
    pub at: i64,
}

/// What one retention step removes, checked before anything is removed: every range still has
/// all its content, every case is still at its version, every deposit still as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// Log content to remove, with the tombstones to leave.
    pub tombstones: Vec<TombstoneRow>,
    /// Cases (id, version) to remove with their history.
    pub cases: Vec<(String, i64)>,
    /// Deposits to remove.
    pub deposits: Vec<DepositKey>,
}

// When a closed case closed: its latest event that set the status it has (or, for a case
// without such an event, its last change).
macro_rules! closed_at_sql {
    () => {
        "COALESCE((SELECT MAX(e.at) FROM case_events e WHERE e.case_id = c.id AND e.status = c.status), c.updated_at)"
    };
}

impl Db {
    /// Every tombstone, by first sequence number.
    pub async fn tombstones(&self) -> Result<Vec<TombstoneRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT first_seq, last_seq, rule, removed_at FROM log_tombstones ORDER BY first_seq",
        )
        .fetch_all(p)
        .await)?)
    }

    /// Entries after `after` older than `before` that still have content, oldest first.
    pub async fn expiring_entries(
        &self,
        after: i64,
        before: i64,
        limit: i64,
    ) -> Result<Vec<ExpiringEntry>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT seq, kind, purpose, at FROM log_records WHERE seq > $1 AND at < $2 ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(before)
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }

    /// Cases closed before `before`, oldest closing first.
    pub async fn closed_cases(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<ClosedCase>, StoreError> {
        const SQL: &str = concat!(
            "SELECT id, version, closed_at FROM (SELECT c.id, c.version, ",
            closed_at_sql!(),
            " AS closed_at FROM cases c WHERE c.status IN ('afgesloten', 'niet-opgenomen')) x \
             WHERE closed_at < $1 ORDER BY closed_at, id LIMIT $2"
        );
        Ok(on_pool!(self, p => sqlx::query_as(SQL)
            .bind(before)
            .bind(limit)
            .fetch_all(p)
            .await)?)
    }

    /// Deposits whose subject has no open case and no case closed at or after `before`
    /// (`None`: only deposits of subjects the register no longer has at all).
    pub async fn expired_deposits(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DepositKey>, StoreError> {
        const DUE: &str = concat!(
            "SELECT r.subject_ref, r.product, r.updated_at, r.sealed FROM records r WHERE NOT EXISTS \
             (SELECT 1 FROM cases c WHERE c.subject_ref = r.subject_ref AND \
             (c.status NOT IN ('afgesloten', 'niet-opgenomen') OR ",
            closed_at_sql!(),
            " >= $1)) ORDER BY r.subject_ref, r.product LIMIT $2"
        );
        const ORPHANS: &str = "SELECT r.subject_ref, r.product, r.updated_at, r.sealed FROM records r \
             WHERE NOT EXISTS (SELECT 1 FROM cases c WHERE c.subject_ref = r.subject_ref) \
             ORDER BY r.subject_ref, r.product LIMIT $1";
        let rows: Vec<(String, String, i64, Vec<u8>)> = match before {
            Some(b) => {
                on_pool!(self, p => sqlx::query_as(DUE).bind(b).bind(limit).fetch_all(p).await)?
            }
            None => on_pool!(self, p => sqlx::query_as(ORPHANS).bind(limit).fetch_all(p).await)?,
        };
        Ok(rows
            .into_iter()
            .map(|(subject_ref, product, updated_at, sealed)| DepositKey {
                subject_ref,
                product,
                updated_at,
                sealed_sha256: sha2::Sha256::digest(&sealed).into(),
            })
            .collect())
    }

    /// After removals: on SQLite the write-ahead log is emptied, so that no earlier copy of a
    /// removed value stays in it (the database file itself holds none: it runs with
    /// `secure_delete`, which overwrites what is deleted); with `vacuum`, the file is also
    /// rewritten without the free pages and shrinks (this holds the write lock for as long as
    /// it takes). On PostgreSQL, `VACUUM` of the tables retention touches. Returns whether the
    /// write-ahead log could be emptied (a reader may still hold it).
    pub async fn reclaim(&self, vacuum: bool) -> Result<bool, StoreError> {
        match &self.pool {
            super::Pool::Sqlite(p) => {
                if vacuum {
                    sqlx::query("VACUUM").execute(p).await?;
                }
                let (busy, _, _): (i64, i64, i64) =
                    sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                        .fetch_one(p)
                        .await?;
                Ok(busy == 0)
            }
            super::Pool::Postgres(p) => {
                // The simple protocol: VACUUM runs outside any transaction block.
                sqlx::raw_sql("VACUUM log_records, log_products, records, cases, case_events")
                    .execute(p)
                    .await?;
                Ok(true)
            }
        }
    }
}

impl Tx {
    /// Removes what `r` names if all of it is still as read; `false` (nothing removed)
    /// otherwise. Log content goes under a tombstone (the triggers allow nothing else).
    pub(super) async fn remove_expired(&mut self, r: &Removal) -> Result<bool, StoreError> {
        for t in &r.tombstones {
            let present: i64 = on_tx!(self, x => sqlx::query_scalar(
                "SELECT COUNT(*) FROM log_records WHERE seq >= $1 AND seq <= $2",
            )
            .bind(t.first_seq)
            .bind(t.last_seq)
            .fetch_one(&mut **x)
            .await)?;
            if present != t.last_seq - t.first_seq + 1 {
                return Ok(false);
            }
        }
        for (id, version) in &r.cases {
            let found: Option<i64> = on_tx!(self, x => sqlx::query_scalar(
                "SELECT version FROM cases WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&mut **x)
            .await)?;
            if found != Some(*version) {
                return Ok(false);
            }
        }
        for d in &r.deposits {
            let found: Option<i64> = on_tx!(self, x => sqlx::query_scalar(
                "SELECT updated_at FROM records WHERE subject_ref = $1 AND product = $2",
            )
            .bind(&d.subject_ref)
            .bind(&d.product)
            .fetch_optional(&mut **x)
            .await)?;
            if found != Some(d.updated_at) {
                return Ok(false);
            }
        }
        for t in &r.tombstones {
            on_tx!(self, x => sqlx::query(
                "INSERT INTO log_tombstones (first_seq, last_seq, rule, removed_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(t.first_seq)
            .bind(t.last_seq)
            .bind(&t.rule)
            .bind(t.removed_at)
            .execute(&mut **x)
            .await
            .map(|d| d.rows_affected()))?;
            on_tx!(self, x => sqlx::query("DELETE FROM log_products WHERE seq >= $1 AND seq <= $2")
                .bind(t.first_seq)
                .bind(t.last_seq)
                .execute(&mut **x)
                .await
                .map(|d| d.rows_affected()))?;
            on_tx!(self, x => sqlx::query("DELETE FROM log_records WHERE seq >= $1 AND seq <= $2")
                .bind(t.first_seq)
                .bind(t.last_seq)
                .execute(&mut **x)
                .await
                .map(|d| d.rows_affected()))?;
        }
        for (id, _) in &r.cases {
            on_tx!(self, x => sqlx::query("DELETE FROM case_events WHERE case_id = $1")
                .bind(id)
                .execute(&mut **x)
                .await
                .map(|d| d.rows_affected()))?;
            on_tx!(self, x => sqlx::query("DELETE FROM cases WHERE id = $1")
                .bind(id)
                .execute(&mut **x)
                .await
                .map(|d| d.rows_affected()))?;
        }
        for d in &r.deposits {
            on_tx!(self, x => sqlx::query("DELETE FROM records WHERE subject_ref = $1 AND product = $2")
                .bind(&d.subject_ref)
                .bind(&d.product)
                .execute(&mut **x)
                .await
                .map(|d| d.rows_affected()))?;
        }
        Ok(true)
    }
}
