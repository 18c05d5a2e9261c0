//! Store-backed sources: a partner's records for one of its products about one subject, sealed
//! with age to the gateway's storage key.

use super::{StoreError, Tx, on_tx};

/// A partner's records for one product about one subject, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsRow {
    /// Product id.
    pub product: String,
    /// Subject reference.
    pub subject_ref: String,
    /// Owning partner.
    pub owner: String,
    /// The records as JSON, sealed with age.
    pub sealed: Vec<u8>,
    /// When deposited.
    pub updated_at: i64,
    /// Staff id that deposited them.
    pub updated_by: String,
}

impl Tx {
    /// Inserts or replaces the records, only if a case has the subject reference (checked in
    /// the same statement, so a deposit never lands for a subject that is not registered).
    pub(super) async fn put_records(&mut self, r: &RecordsRow) -> Result<bool, StoreError> {
        let done = on_tx!(self, t => sqlx::query(
            "INSERT INTO records (product, subject_ref, owner, sealed, updated_at, updated_by) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM cases WHERE subject_ref = $2) \
             ON CONFLICT (subject_ref, product) DO UPDATE SET owner = excluded.owner, sealed = excluded.sealed, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(&r.product)
        .bind(&r.subject_ref)
        .bind(&r.owner)
        .bind(&r.sealed)
        .bind(r.updated_at)
        .bind(&r.updated_by)
        .execute(&mut **t)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }
}
