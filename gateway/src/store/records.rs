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
    /// The storage key that sealed them (`None`: before key ids were recorded).
    pub sealed_key: Option<String>,
    /// The SHA-256 of the sealed records as their deposit entry recorded it (`None`: that of
    /// `sealed`, which was never sealed again).
    pub deposit_sha256: Option<super::Hash32>,
}

impl RecordsRow {
    /// The digest disclosures name: the deposit entry's, which a re-seal does not change.
    pub fn deposit_digest(&self) -> super::Hash32 {
        use sha2::Digest;
        self.deposit_sha256
            .unwrap_or_else(|| sha2::Sha256::digest(&self.sealed).into())
    }
}

impl Tx {
    /// Inserts or replaces the records, only if a case has the subject reference (checked in
    /// the same statement, so a deposit never lands for a subject that is not registered).
    pub(super) async fn put_records(&mut self, r: &RecordsRow) -> Result<bool, StoreError> {
        let done = on_tx!(self, t => sqlx::query(
            "INSERT INTO records (product, subject_ref, owner, sealed, updated_at, updated_by, sealed_key, deposit_sha256) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM cases WHERE subject_ref = $2) \
             ON CONFLICT (subject_ref, product) DO UPDATE SET owner = excluded.owner, sealed = excluded.sealed, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by, \
             sealed_key = excluded.sealed_key, deposit_sha256 = excluded.deposit_sha256",
        )
        .bind(&r.product)
        .bind(&r.subject_ref)
        .bind(&r.owner)
        .bind(&r.sealed)
        .bind(r.updated_at)
        .bind(&r.updated_by)
        .bind(&r.sealed_key)
        .bind(r.deposit_sha256.map(|h| h.to_vec()))
        .execute(&mut **t)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }
}
