//! The storage key ring's rows: which key seals how many rows, the rows a re-seal has still to
//! move, and the change that moves them, applied in the append transaction of the entry that
//! records it.

use super::{Db, Hash32, StoreError, Tx, on_pool, on_tx};

/// How many rows one storage key seals.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyUse {
    /// The key's id (`None`: rows from before key ids were recorded).
    pub key: Option<String>,
    /// Deposits.
    pub deposits: i64,
    /// Sealed BSNs of cases.
    pub cases: i64,
}

/// A deposit sealed with another key than the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleDeposit {
    /// Subject reference.
    pub subject_ref: String,
    /// Product.
    pub product: String,
    /// Its sealed bytes now.
    pub sealed: Vec<u8>,
    /// The key that sealed them (`None`: unrecorded).
    pub sealed_key: Option<String>,
    /// The digest its deposit entry recorded, if stored.
    pub deposit_sha256: Option<Hash32>,
}

/// A case whose BSN is sealed with another key than the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleCase {
    /// Case id.
    pub id: String,
    /// The sealed BSN now.
    pub sealed: Vec<u8>,
    /// The key that sealed it (`None`: unrecorded).
    pub sealed_key: Option<String>,
}

/// A deposit sealed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResealedDeposit {
    /// Subject reference.
    pub subject_ref: String,
    /// Product.
    pub product: String,
    /// The bytes it was made from (the change is refused if they changed meanwhile).
    pub old: Vec<u8>,
    /// The new bytes.
    pub new: Vec<u8>,
    /// The digest its deposit entry recorded, kept so that disclosures name it.
    pub digest: Hash32,
}

/// A case's BSN sealed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResealedCase {
    /// Case id.
    pub id: String,
    /// The bytes it was made from.
    pub old: Vec<u8>,
    /// The new bytes.
    pub new: Vec<u8>,
}

/// Rows sealed again with `key`, each replacing exactly the bytes it was made from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reseal {
    /// The current key's id.
    pub key: String,
    /// Deposits.
    pub deposits: Vec<ResealedDeposit>,
    /// Cases.
    pub cases: Vec<ResealedCase>,
}

/// A case whose subject pseudonym another key than the current one made.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StalePseudonym {
    /// Case id.
    pub id: String,
    /// The pseudonym now.
    pub subject_pseudonym: String,
    /// The sealed BSN, to make the new one from.
    pub subject_sealed: Vec<u8>,
    /// The key that made it (`None`: unrecorded).
    pub pseudonym_key: Option<String>,
}

/// A case's subject pseudonym made again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekeyedCase {
    /// Case id.
    pub id: String,
    /// The pseudonym it was made from (the change is refused if it changed meanwhile).
    pub old: String,
    /// The new pseudonym.
    pub new: String,
}

/// Cases' pseudonyms made again with `key`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rekey {
    /// The current pseudonym key's id.
    pub key: String,
    /// The cases.
    pub cases: Vec<RekeyedCase>,
}

impl Db {
    /// Cases per pseudonym key.
    pub async fn pseudonym_key_use(&self) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT pseudonym_key, COUNT(*) FROM cases GROUP BY pseudonym_key ORDER BY pseudonym_key",
        )
        .fetch_all(p)
        .await)?)
    }

    /// Up to `limit` cases whose pseudonym another key than `current` made.
    pub async fn stale_pseudonyms(
        &self,
        current: &str,
        limit: i64,
    ) -> Result<Vec<StalePseudonym>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT id, subject_pseudonym, subject_sealed, pseudonym_key FROM cases \
             WHERE pseudonym_key IS NULL OR pseudonym_key <> $1 ORDER BY id LIMIT $2",
        )
        .bind(current)
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }

    /// Rows per storage key, deposits and cases.
    pub async fn storage_key_use(&self) -> Result<Vec<KeyUse>, StoreError> {
        let deposits: Vec<(Option<String>, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT sealed_key, COUNT(*) FROM records GROUP BY sealed_key",
        )
        .fetch_all(p)
        .await)?;
        let cases: Vec<(Option<String>, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT sealed_key, COUNT(*) FROM cases GROUP BY sealed_key",
        )
        .fetch_all(p)
        .await)?;
        let mut out: Vec<KeyUse> = Vec::new();
        for (key, n, is_case) in deposits
            .into_iter()
            .map(|(k, n)| (k, n, false))
            .chain(cases.into_iter().map(|(k, n)| (k, n, true)))
        {
            let at = match out.iter().position(|u| u.key == key) {
                Some(i) => i,
                None => {
                    out.push(KeyUse {
                        key,
                        deposits: 0,
                        cases: 0,
                    });
                    out.len() - 1
                }
            };
            if let Some(u) = out.get_mut(at) {
                if is_case {
                    u.cases += n;
                } else {
                    u.deposits += n;
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The newest `keys` entries, newest first (their canonical text), by a partial index that
    /// holds only them: a start does not read the log.
    pub async fn latest_key_entries(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_scalar(
            "SELECT entry FROM log_records WHERE kind = 'keys' ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }

    /// Up to `limit` deposits and cases sealed with another key than `current`.
    pub async fn stale_seals(
        &self,
        current: &str,
        limit: i64,
    ) -> Result<(Vec<StaleDeposit>, Vec<StaleCase>), StoreError> {
        type DepositDto = (String, String, Vec<u8>, Option<String>, Option<Vec<u8>>);
        let deposits: Vec<DepositDto> = on_pool!(self, p => sqlx::query_as(
            "SELECT subject_ref, product, sealed, sealed_key, deposit_sha256 FROM records \
             WHERE sealed_key IS NULL OR sealed_key <> $1 ORDER BY subject_ref, product LIMIT $2",
        )
        .bind(current)
        .bind(limit)
        .fetch_all(p)
        .await)?;
        let cases: Vec<(String, Vec<u8>, Option<String>)> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, subject_sealed, sealed_key FROM cases \
             WHERE sealed_key IS NULL OR sealed_key <> $1 ORDER BY id LIMIT $2",
        )
        .bind(current)
        .bind(limit)
        .fetch_all(p)
        .await)?;
        let deposits = deposits
            .into_iter()
            .map(|(subject_ref, product, sealed, sealed_key, digest)| {
                Ok(StaleDeposit {
                    subject_ref,
                    product,
                    sealed,
                    sealed_key,
                    deposit_sha256: digest
                        .map(|d| super::hash32(d, "a deposit's SHA-256"))
                        .transpose()?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let cases = cases
            .into_iter()
            .map(|(id, sealed, sealed_key)| StaleCase {
                id,
                sealed,
                sealed_key,
            })
            .collect();
        Ok((deposits, cases))
    }
}

impl Tx {
    /// Replaces each case's pseudonym if it is still the one re-keyed; `false` (nothing changed)
    /// when any changed meanwhile.
    pub(super) async fn rekey(&mut self, r: &Rekey) -> Result<bool, StoreError> {
        for c in &r.cases {
            let now: Option<String> = on_tx!(self, x => sqlx::query_scalar(
                "SELECT subject_pseudonym FROM cases WHERE id = $1",
            )
            .bind(&c.id)
            .fetch_optional(&mut **x)
            .await)?;
            if now.as_ref() != Some(&c.old) {
                return Ok(false);
            }
        }
        for c in &r.cases {
            on_tx!(self, x => sqlx::query(
                "UPDATE cases SET subject_pseudonym = $2, pseudonym_key = $3 WHERE id = $1",
            )
            .bind(&c.id)
            .bind(&c.new)
            .bind(&r.key)
            .execute(&mut **x)
            .await
            .map(|d| d.rows_affected()))?;
        }
        Ok(true)
    }

    /// Replaces each row's sealed bytes if they are still the ones re-sealed; `false` (nothing
    /// changed) when any row changed meanwhile.
    pub(super) async fn reseal(&mut self, r: &Reseal) -> Result<bool, StoreError> {
        for d in &r.deposits {
            let now: Option<Vec<u8>> = on_tx!(self, x => sqlx::query_scalar(
                "SELECT sealed FROM records WHERE subject_ref = $1 AND product = $2",
            )
            .bind(&d.subject_ref)
            .bind(&d.product)
            .fetch_optional(&mut **x)
            .await)?;
            if now.as_ref() != Some(&d.old) {
                return Ok(false);
            }
        }
        for c in &r.cases {
            let now: Option<Vec<u8>> = on_tx!(self, x => sqlx::query_scalar(
                "SELECT subject_sealed FROM cases WHERE id = $1",
            )
            .bind(&c.id)
            .fetch_optional(&mut **x)
            .await)?;
            if now.as_ref() != Some(&c.old) {
                return Ok(false);
            }
        }
        for d in &r.deposits {
            on_tx!(self, x => sqlx::query(
                "UPDATE records SET sealed = $3, sealed_key = $4, deposit_sha256 = $5 \
                 WHERE subject_ref = $1 AND product = $2",
            )
            .bind(&d.subject_ref)
            .bind(&d.product)
            .bind(&d.new)
            .bind(&r.key)
            .bind(d.digest.to_vec())
            .execute(&mut **x)
            .await
            .map(|d| d.rows_affected()))?;
        }
        for c in &r.cases {
            on_tx!(self, x => sqlx::query(
                "UPDATE cases SET subject_sealed = $2, sealed_key = $3 WHERE id = $1",
            )
            .bind(&c.id)
            .bind(&c.new)
            .bind(&r.key)
            .execute(&mut **x)
            .await
            .map(|d| d.rows_affected()))?;
        }
        Ok(true)
    }
}
