//! The covenant as a versioned object: every draft with its exact text and key material, and
//! which one is active.

use super::{Db, StoreError, Tx, on_pool, on_tx, parsed};

/// Where a draft stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DraftStatus {
    /// Submitted, not yet approved.
    Draft,
    /// Approved by a second administrator.
    Approved,
    /// The version in force.
    Active,
    /// Was active, replaced by a later activation.
    Superseded,
}

/// What a draft is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DraftKind {
    /// A change to the covenant.
    Change,
    /// An earlier version, submitted again.
    Rollback,
    /// The configured file, activated on an empty database.
    Bootstrap,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),+ }) => {
        impl $t {
            /// As stored and shown.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl std::str::FromStr for $t {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($s => Ok(Self::$v),)+ _ => Err(()) }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(DraftStatus { Draft => "draft", Approved => "approved", Active => "active", Superseded => "superseded" });
text_enum!(DraftKind { Change => "change", Rollback => "rollback", Bootstrap => "bootstrap" });

/// One covenant draft: its text, the key material it was resolved with, and who did what to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDraftRow {
    /// Draft id (`draft-…`).
    pub id: String,
    /// Version hash of the compiled covenant (keys resolved).
    pub version: String,
    /// The covenant text as submitted.
    pub source: String,
    /// JSON object: key file path to content, as resolved when drafted.
    pub key_material: String,
    /// Change, rollback or bootstrap.
    pub kind: DraftKind,
    /// The version that was active when the draft was made.
    pub base_version: Option<String>,
    /// Author's partner.
    pub author_partner: String,
    /// Author's staff id.
    pub author_staff: String,
    /// When drafted (epoch seconds).
    pub created_at: i64,
    /// Approver's partner.
    pub approved_partner: Option<String>,
    /// Approver's staff id.
    pub approved_staff: Option<String>,
    /// When approved.
    pub approved_at: Option<i64>,
    /// Activator's partner.
    pub activated_partner: Option<String>,
    /// Activator's staff id.
    pub activated_staff: Option<String>,
    /// When activated.
    pub activated_at: Option<i64>,
    /// Where it stands.
    pub status: DraftStatus,
}

#[derive(sqlx::FromRow)]
struct DraftDto {
    id: String,
    version: String,
    source: String,
    key_material: String,
    kind: String,
    base_version: Option<String>,
    author_partner: String,
    author_staff: String,
    created_at: i64,
    approved_partner: Option<String>,
    approved_staff: Option<String>,
    approved_at: Option<i64>,
    activated_partner: Option<String>,
    activated_staff: Option<String>,
    activated_at: Option<i64>,
    status: String,
}

impl TryFrom<DraftDto> for PolicyDraftRow {
    type Error = StoreError;
    fn try_from(d: DraftDto) -> Result<Self, StoreError> {
        Ok(PolicyDraftRow {
            kind: parsed(&d.kind, "draft kind")?,
            status: parsed(&d.status, "draft status")?,
            id: d.id,
            version: d.version,
            source: d.source,
            key_material: d.key_material,
            base_version: d.base_version,
            author_partner: d.author_partner,
            author_staff: d.author_staff,
            created_at: d.created_at,
            approved_partner: d.approved_partner,
            approved_staff: d.approved_staff,
            approved_at: d.approved_at,
            activated_partner: d.activated_partner,
            activated_staff: d.activated_staff,
            activated_at: d.activated_at,
        })
    }
}

const INSERT_DRAFT: &str = "INSERT INTO policy_drafts (id, version, source, key_material, kind, base_version, author_partner, author_staff, created_at, approved_partner, approved_staff, approved_at, activated_partner, activated_staff, activated_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
const ACTIVE_DRAFT: &str = "SELECT d.* FROM policy_state s JOIN policy_drafts d ON d.id = s.active_draft WHERE s.singleton = 1";

impl Tx {
    pub(super) async fn insert_draft(&mut self, d: &PolicyDraftRow) -> Result<bool, StoreError> {
        on_tx!(self, t => sqlx::query(INSERT_DRAFT)
            .bind(&d.id)
            .bind(&d.version)
            .bind(&d.source)
            .bind(&d.key_material)
            .bind(d.kind.as_str())
            .bind(&d.base_version)
            .bind(&d.author_partner)
            .bind(&d.author_staff)
            .bind(d.created_at)
            .bind(&d.approved_partner)
            .bind(&d.approved_staff)
            .bind(d.approved_at)
            .bind(&d.activated_partner)
            .bind(&d.activated_staff)
            .bind(d.activated_at)
            .bind(d.status.as_str())
            .execute(&mut **t)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(true)
    }

    pub(super) async fn approve_draft(
        &mut self,
        id: &str,
        partner: &str,
        staff: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let done = on_tx!(self, t => sqlx::query("UPDATE policy_drafts SET status = 'approved', approved_partner = $2, approved_staff = $3, approved_at = $4 WHERE id = $1 AND status IN ('draft', 'approved')")
            .bind(id).bind(partner).bind(staff).bind(at)
            .execute(&mut **t)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    pub(super) async fn activate_draft(
        &mut self,
        id: &str,
        expected_active: &str,
        partner: &str,
        staff: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        on_tx!(self, t => {
            // Both preconditions first (the log head's lock serialises every change), then both
            // updates: never half an activation.
            let ready: Option<String> = sqlx::query_scalar("SELECT d.id FROM policy_state s, policy_drafts d WHERE s.singleton = 1 AND s.active_draft = $2 AND d.id = $1 AND d.status = 'approved'")
                .bind(id).bind(expected_active)
                .fetch_optional(&mut **t)
                .await?;
            if ready.is_none() {
                return Ok(false);
            }
            sqlx::query("UPDATE policy_state SET active_draft = $1, generation = generation + 1 WHERE singleton = 1 AND active_draft = $2")
                .bind(id).bind(expected_active)
                .execute(&mut **t)
                .await?;
            sqlx::query("UPDATE policy_drafts SET status = 'active', activated_partner = $2, activated_staff = $3, activated_at = $4 WHERE id = $1")
                .bind(id).bind(partner).bind(staff).bind(at)
                .execute(&mut **t)
                .await?;
            sqlx::query("UPDATE policy_drafts SET status = 'superseded' WHERE id = $1")
                .bind(expected_active)
                .execute(&mut **t)
                .await?;
        });
        Ok(true)
    }

    pub(super) async fn bootstrap(&mut self, d: &PolicyDraftRow) -> Result<bool, StoreError> {
        let active: Option<String> = on_tx!(self, t => sqlx::query_scalar("SELECT active_draft FROM policy_state WHERE singleton = 1")
            .fetch_optional(&mut **t)
            .await)?;
        if active.is_some() {
            return Ok(false);
        }
        self.insert_draft(d).await?;
        on_tx!(self, t => sqlx::query("INSERT INTO policy_state (singleton, active_draft, generation) VALUES (1, $1, 1)")
            .bind(&d.id)
            .execute(&mut **t)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(true)
    }
}

impl Db {
    /// A draft by id.
    pub async fn policy_draft(&self, id: &str) -> Result<Option<PolicyDraftRow>, StoreError> {
        let dto: Option<DraftDto> = on_pool!(self, p => sqlx::query_as("SELECT * FROM policy_drafts WHERE id = $1")
            .bind(id)
            .fetch_optional(p)
            .await)?;
        dto.map(PolicyDraftRow::try_from).transpose()
    }

    /// The newest drafts first (at most `limit`); only ever-activated ones if `activated`.
    pub async fn policy_drafts(
        &self,
        activated: bool,
        limit: i64,
    ) -> Result<Vec<PolicyDraftRow>, StoreError> {
        let sql = if activated {
            "SELECT * FROM policy_drafts WHERE activated_at IS NOT NULL ORDER BY activated_at DESC, id LIMIT $1"
        } else {
            "SELECT * FROM policy_drafts ORDER BY created_at DESC, id LIMIT $1"
        };
        let rows: Vec<DraftDto> =
            on_pool!(self, p => sqlx::query_as(sql).bind(limit).fetch_all(p).await)?;
        rows.into_iter().map(PolicyDraftRow::try_from).collect()
    }

    /// Every draft of one version hash (the stored text a log entry was decided under).
    pub async fn drafts_of_version(
        &self,
        version: &str,
    ) -> Result<Vec<PolicyDraftRow>, StoreError> {
        let rows: Vec<DraftDto> = on_pool!(self, p => sqlx::query_as(
            "SELECT * FROM policy_drafts WHERE version = $1 ORDER BY created_at, id",
        )
        .bind(version)
        .fetch_all(p)
        .await)?;
        rows.into_iter().map(PolicyDraftRow::try_from).collect()
    }

    /// The answered `policy` entries with seq below `before`, newest first, at most `limit` (by
    /// a partial index that holds only them).
    pub async fn policy_entries_before(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT seq, entry FROM log_records WHERE kind = 'policy' AND outcome = 'answered' AND seq < $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }

    /// The active draft, if any version was ever activated.
    pub async fn active_policy_draft(&self) -> Result<Option<PolicyDraftRow>, StoreError> {
        let dto: Option<DraftDto> =
            on_pool!(self, p => sqlx::query_as(ACTIVE_DRAFT).fetch_optional(p).await)?;
        dto.map(PolicyDraftRow::try_from).transpose()
    }
}
