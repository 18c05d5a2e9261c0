//! Storage behind one trait with two implementations: SQLite (embedded default, WAL) and
//! PostgreSQL (several gateway instances). The backend is chosen from the database URL.

pub mod postgres;
pub mod sqlite;

use std::future::Future;

/// A case as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRow {
    /// Case id.
    pub id: String,
    /// Opaque subject reference shared with partners.
    pub subject_ref: String,
    /// Keyed pseudonym of the BSN.
    pub subject_pseudonym: String,
    /// The BSN, encrypted at rest.
    pub subject_sealed: Vec<u8>,
    /// Work-process status.
    pub status: String,
    /// Risk group 1–5.
    pub risk_group: Option<i64>,
    /// Ideology.
    pub ideology: Option<String>,
    /// Regisseur's partner.
    pub regisseur_partner: Option<String>,
    /// Regisseur's staff id.
    pub regisseur_staff: Option<String>,
    /// Partners on the UVO, as a JSON array.
    pub uvo_partners: String,
    /// Date of the signal.
    pub signal_date: Option<String>,
    /// Date of the inclusion decision.
    pub decision_date: Option<String>,
    /// Date of the notification letter.
    pub notification_date: Option<String>,
    /// Created (epoch seconds).
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
    /// Incremented on every change.
    pub version: i64,
}

/// One change to a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseEventRow {
    /// Case id.
    pub case_id: String,
    /// Case version this change produced.
    pub version: i64,
    /// When (epoch seconds).
    pub at: i64,
    /// Partner of the person who made it.
    pub partner: String,
    /// Staff id.
    pub staff_id: String,
    /// Role they acted in.
    pub role: String,
    /// `created` or `updated`.
    pub action: String,
    /// Names of the changed fields, as a JSON array.
    pub fields: String,
    /// New status, if it changed.
    pub status: Option<String>,
}

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

/// One disclosure record (answer or refusal), as written before the answer leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisclosureRow {
    /// Disclosure id.
    pub id: String,
    /// When (epoch seconds).
    pub at: i64,
    /// FSC transaction id.
    pub transaction_id: String,
    /// `disclosure`, `check` or `records`.
    pub kind: String,
    /// Requesting partner.
    pub partner: String,
    /// Staff id (absent when the token was refused).
    pub staff_id: Option<String>,
    /// Role acted in.
    pub role: Option<String>,
    /// Purpose named.
    pub purpose: Option<String>,
    /// Case named.
    pub case_id: Option<String>,
    /// Subject pseudonym.
    pub subject_pseudonym: Option<String>,
    /// Covenant version that decided.
    pub policy_version: String,
    /// SHA-256 of the ciphertext sent.
    pub ciphertext_sha256: Option<String>,
    /// `answered`, `partly-unavailable` or `refused`.
    pub outcome: String,
    /// Problem type of a refusal.
    pub problem: Option<String>,
    /// Canonical JSON of the whole record.
    pub entry: String,
    /// Merkle leaf hash (hex), set when appended.
    pub leaf_hash: Option<String>,
    /// Hash chain value (hex), set when appended.
    pub chain_hash: Option<String>,
}

/// What aggregates are computed from: one case, without its subject.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CaseFacts {
    /// Status.
    pub status: String,
    /// Risk group.
    pub risk_group: Option<i64>,
    /// Ideology.
    pub ideology: Option<String>,
    /// Date of the signal.
    pub signal_date: Option<String>,
    /// Date of the inclusion decision.
    pub decision_date: Option<String>,
    /// When the case became `opgenomen` (epoch seconds).
    pub included_at: Option<i64>,
    /// When it was closed (epoch seconds).
    pub closed_at: Option<i64>,
}

/// One covenant draft: its text, the key material it was resolved with, and who did what to it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PolicyDraftRow {
    /// Draft id (`draft-…`).
    pub id: String,
    /// Version hash of the compiled covenant (keys resolved).
    pub version: String,
    /// The covenant text as submitted.
    pub source: String,
    /// JSON object: key file path to content, as resolved when drafted.
    pub key_material: String,
    /// `change`, `rollback` or `bootstrap`.
    pub kind: String,
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
    /// `draft`, `approved`, `active` or `superseded`.
    pub status: String,
}

/// What a privacy officer searches the disclosure log for. All conditions are combined with AND.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Subject pseudonym.
    pub subject: Option<String>,
    /// Requesting partner.
    pub partner: Option<String>,
    /// Staff id.
    pub staff_id: Option<String>,
    /// Purpose.
    pub purpose: Option<String>,
    /// Case id.
    pub case_id: Option<String>,
    /// A product that appears in the entry.
    pub product: Option<String>,
    /// Outcome.
    pub outcome: Option<String>,
    /// From (epoch seconds, inclusive).
    pub from: Option<i64>,
    /// To (epoch seconds, exclusive).
    pub to: Option<i64>,
    /// Only entries of this partner or about this partner's products (privacy officers of a
    /// partner); `None` for all (the programme's privacy officer).
    pub visible_to: Option<String>,
    /// Only purposes not in this list (confidential purposes left out of a subject report).
    pub exclude_purposes: Vec<String>,
    /// Paging: entries after this sequence number.
    pub after_seq: i64,
    /// Page size.
    pub limit: i64,
}

/// Storage failed; the API reports `storage-unavailable` and changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The disclosure log is inconsistent or its writer stopped.
    #[error("disclosure log: {0}")]
    Log(String),
    /// Unsupported URL.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://…")]
    Url(String),
}

/// Everything the gateway stores.
pub trait Store: Clone + Send + Sync + 'static {
    /// Applies pending migrations.
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Cheap round trip, for `/readyz`.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Inserts a new case and its first event in one transaction.
    fn create_case(
        &self,
        case: &CaseRow,
        event: &CaseEventRow,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A case by id.
    fn get_case(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<CaseRow>, StoreError>> + Send;
    /// Replaces a case if it is still at `expected_version`, with its event, in one transaction.
    /// Returns false (and changes nothing) if someone else changed it first.
    fn update_case(
        &self,
        case: &CaseRow,
        expected_version: i64,
        event: &CaseEventRow,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The changes to a case, oldest first.
    fn case_events(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Vec<CaseEventRow>, StoreError>> + Send;
    /// The subject reference already used for this subject pseudonym, if any.
    fn subject_ref(
        &self,
        pseudonym: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Every case of a subject (by pseudonym).
    fn subject_cases(
        &self,
        pseudonym: &str,
    ) -> impl Future<Output = Result<Vec<CaseRow>, StoreError>> + Send;
    /// Whether any case has this subject reference.
    fn subject_known(
        &self,
        subject_ref: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Inserts or replaces a partner's records for one product and subject.
    fn put_records(&self, row: &RecordsRow) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A case and every product's stored records of its subject, in one query.
    fn case_with_records(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<(CaseRow, Vec<RecordsRow>)>, StoreError>> + Send;
    /// Appends disclosure records in one durable transaction, assigning sequence numbers, leaf
    /// and chain hashes under the lock on the log head; returns (seq, leaf hash hex) per row.
    fn append_batch(
        &self,
        rows: &[DisclosureRow],
    ) -> impl Future<Output = Result<Vec<(i64, String)>, StoreError>> + Send;
    /// The log head: size and last chain hash.
    fn log_head(&self) -> impl Future<Output = Result<(i64, String), StoreError>> + Send;
    /// Leaf hashes (hex) of the first `size` entries, in order.
    fn leaf_hashes(
        &self,
        size: i64,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Leaf hashes (hex) of entries `after + 1 ..= size`, in order.
    fn leaf_hashes_after(
        &self,
        after: i64,
        size: i64,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Stores a checkpoint unless one for that size exists; returns the stored note for the size.
    fn put_checkpoint(
        &self,
        size: i64,
        root: &str,
        note: &str,
        at: i64,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
    /// The checkpoint of the largest size.
    fn latest_checkpoint(
        &self,
    ) -> impl Future<Output = Result<Option<(i64, String)>, StoreError>> + Send;
    /// Disclosure records matching a filter, by sequence number.
    fn search(
        &self,
        filter: &LogFilter,
    ) -> impl Future<Output = Result<Vec<(i64, DisclosureRow)>, StoreError>> + Send;
    /// The facts of every case, for aggregate views.
    fn case_facts(&self) -> impl Future<Output = Result<Vec<CaseFacts>, StoreError>> + Send;
    /// The frozen answer of a view for a period, if any.
    fn release(
        &self,
        view: &str,
        period: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Stores a view's answer for a period unless one exists; returns the stored one.
    fn put_release(
        &self,
        view: &str,
        period: &str,
        body: &str,
        at: i64,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
    /// Every stored checkpoint, by size.
    fn checkpoints(
        &self,
    ) -> impl Future<Output = Result<Vec<(i64, String, String)>, StoreError>> + Send;
    /// Stores a new covenant draft.
    fn insert_policy_draft(
        &self,
        d: &PolicyDraftRow,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A draft by id.
    fn policy_draft(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<PolicyDraftRow>, StoreError>> + Send;
    /// The newest drafts first (at most `limit`); only ever-activated ones if `activated`.
    fn policy_drafts(
        &self,
        activated: bool,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<PolicyDraftRow>, StoreError>> + Send;
    /// Marks a draft approved if it is still a draft; false if it is not.
    fn approve_policy_draft(
        &self,
        id: &str,
        partner: &str,
        staff: &str,
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Makes an approved draft the active one if `expected_active` still is, in one transaction;
    /// false (nothing changed) if another activation came first or the draft is not approved.
    fn activate_policy_draft(
        &self,
        id: &str,
        expected_active: &str,
        partner: &str,
        staff: &str,
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The active draft, if any version was ever activated.
    fn active_policy_draft(
        &self,
    ) -> impl Future<Output = Result<Option<PolicyDraftRow>, StoreError>> + Send;
    /// Makes `d` the active version if none is yet; returns the active draft either way.
    fn bootstrap_policy(
        &self,
        d: &PolicyDraftRow,
    ) -> impl Future<Output = Result<PolicyDraftRow, StoreError>> + Send;
    /// Disclosure records after `after_seq`, oldest first (at most `limit`).
    fn disclosures(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<(i64, DisclosureRow)>, StoreError>> + Send;
}

/// Which backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://…`
    Sqlite,
    /// `postgres://…` or `postgresql://…`
    Postgres,
}

impl Backend {
    /// From the URL scheme.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Url(
                url.split(':').next().unwrap_or("").to_owned(),
            ))
        }
    }
}

macro_rules! case_from_row {
    ($row:expr) => {{
        use sqlx::Row;
        let r = $row;
        crate::store::CaseRow {
            id: r.try_get("id")?,
            subject_ref: r.try_get("subject_ref")?,
            subject_pseudonym: r.try_get("subject_pseudonym")?,
            subject_sealed: r.try_get("subject_sealed")?,
            status: r.try_get("status")?,
            risk_group: r.try_get::<Option<i64>, _>("risk_group").or_else(|_| {
                r.try_get::<Option<i32>, _>("risk_group")
                    .map(|v| v.map(i64::from))
            })?,
            ideology: r.try_get("ideology")?,
            regisseur_partner: r.try_get("regisseur_partner")?,
            regisseur_staff: r.try_get("regisseur_staff")?,
            uvo_partners: r.try_get("uvo_partners")?,
            signal_date: r.try_get("signal_date")?,
            decision_date: r.try_get("decision_date")?,
            notification_date: r.try_get("notification_date")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            version: r.try_get("version")?,
        }
    }};
}
pub(crate) use case_from_row;

macro_rules! event_from_row {
    ($row:expr) => {{
        use sqlx::Row;
        let r = $row;
        crate::store::CaseEventRow {
            case_id: r.try_get("case_id")?,
            version: r.try_get("version")?,
            at: r.try_get("at")?,
            partner: r.try_get("partner")?,
            staff_id: r.try_get("staff_id")?,
            role: r.try_get("role")?,
            action: r.try_get("action")?,
            fields: r.try_get("fields")?,
            status: r.try_get("status")?,
        }
    }};
}
pub(crate) use event_from_row;

macro_rules! disclosure_from_row {
    ($row:expr) => {{
        use sqlx::Row;
        let r = $row;
        (
            r.try_get::<i64, _>("seq")?,
            crate::store::DisclosureRow {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                transaction_id: r.try_get("transaction_id")?,
                kind: r.try_get("kind")?,
                partner: r.try_get("partner")?,
                staff_id: r.try_get("staff_id")?,
                role: r.try_get("role")?,
                purpose: r.try_get("purpose")?,
                case_id: r.try_get("case_id")?,
                subject_pseudonym: r.try_get("subject_pseudonym")?,
                policy_version: r.try_get("policy_version")?,
                ciphertext_sha256: r.try_get("ciphertext_sha256")?,
                outcome: r.try_get("outcome")?,
                problem: r.try_get("problem")?,
                entry: r.try_get("entry")?,
                leaf_hash: r.try_get("leaf_hash")?,
                chain_hash: r.try_get("chain_hash")?,
            },
        )
    }};
}
pub(crate) use disclosure_from_row;

/// The policy-version methods, the same SQL for SQLite and PostgreSQL (both take `$N`).
macro_rules! policy_versions_impl {
    () => {
        async fn insert_policy_draft(
            &self,
            d: &crate::store::PolicyDraftRow,
        ) -> Result<(), StoreError> {
            crate::store::bind_policy_draft!(sqlx::query(crate::store::INSERT_POLICY_DRAFT), d)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn policy_draft(
            &self,
            id: &str,
        ) -> Result<Option<crate::store::PolicyDraftRow>, StoreError> {
            Ok(sqlx::query_as("SELECT * FROM policy_drafts WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn policy_drafts(
            &self,
            activated: bool,
            limit: i64,
        ) -> Result<Vec<crate::store::PolicyDraftRow>, StoreError> {
            let sql = if activated {
                "SELECT * FROM policy_drafts WHERE activated_at IS NOT NULL ORDER BY activated_at DESC, id LIMIT $1"
            } else {
                "SELECT * FROM policy_drafts ORDER BY created_at DESC, id LIMIT $1"
            };
            Ok(sqlx::query_as(sql).bind(limit).fetch_all(&self.pool).await?)
        }

        async fn approve_policy_draft(
            &self,
            id: &str,
            partner: &str,
            staff: &str,
            at: i64,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query("UPDATE policy_drafts SET status = 'approved', approved_partner = $2, approved_staff = $3, approved_at = $4 WHERE id = $1 AND status = 'draft'")
                .bind(id).bind(partner).bind(staff).bind(at)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn activate_policy_draft(
            &self,
            id: &str,
            expected_active: &str,
            partner: &str,
            staff: &str,
            at: i64,
        ) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            let switched = sqlx::query("UPDATE policy_state SET active_draft = $1, generation = generation + 1 WHERE singleton = 1 AND active_draft = $2")
                .bind(id).bind(expected_active)
                .execute(&mut *tx)
                .await?;
            let activated = sqlx::query("UPDATE policy_drafts SET status = 'active', activated_partner = $2, activated_staff = $3, activated_at = $4 WHERE id = $1 AND status = 'approved'")
                .bind(id).bind(partner).bind(staff).bind(at)
                .execute(&mut *tx)
                .await?;
            if switched.rows_affected() != 1 || activated.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query("UPDATE policy_drafts SET status = 'superseded' WHERE id = $1")
                .bind(expected_active)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        }

        async fn active_policy_draft(
            &self,
        ) -> Result<Option<crate::store::PolicyDraftRow>, StoreError> {
            Ok(sqlx::query_as("SELECT d.* FROM policy_state s JOIN policy_drafts d ON d.id = s.active_draft WHERE s.singleton = 1")
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn bootstrap_policy(
            &self,
            d: &crate::store::PolicyDraftRow,
        ) -> Result<crate::store::PolicyDraftRow, StoreError> {
            if let Some(active) = self.active_policy_draft().await? {
                return Ok(active);
            }
            let mut tx = self.pool.begin().await?;
            crate::store::bind_policy_draft!(sqlx::query(crate::store::INSERT_POLICY_DRAFT), d)
                .execute(&mut *tx)
                .await?;
            let won = sqlx::query("INSERT INTO policy_state (singleton, active_draft, generation) VALUES (1, $1, 1) ON CONFLICT (singleton) DO NOTHING")
                .bind(&d.id)
                .execute(&mut *tx)
                .await?;
            if won.rows_affected() == 1 {
                tx.commit().await?;
            } else {
                // Another instance bootstrapped first: its version is the active one.
                tx.rollback().await?;
            }
            self.active_policy_draft()
                .await?
                .ok_or_else(|| StoreError::Log("no active policy after bootstrap".into()))
        }
    };
}
pub(crate) use policy_versions_impl;

pub(crate) const INSERT_POLICY_DRAFT: &str = "INSERT INTO policy_drafts (id, version, source, key_material, kind, base_version, author_partner, author_staff, created_at, approved_partner, approved_staff, approved_at, activated_partner, activated_staff, activated_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

macro_rules! bind_policy_draft {
    ($q:expr, $d:expr) => {
        $q.bind(&$d.id)
            .bind(&$d.version)
            .bind(&$d.source)
            .bind(&$d.key_material)
            .bind(&$d.kind)
            .bind(&$d.base_version)
            .bind(&$d.author_partner)
            .bind(&$d.author_staff)
            .bind($d.created_at)
            .bind(&$d.approved_partner)
            .bind(&$d.approved_staff)
            .bind($d.approved_at)
            .bind(&$d.activated_partner)
            .bind(&$d.activated_staff)
            .bind($d.activated_at)
            .bind(&$d.status)
    };
}
pub(crate) use bind_policy_draft;

/// Inserts a linked batch of log entries with multi-row INSERTs (one statement per 256 rows
/// instead of one per row); returns (seq, leaf hash hex) per row. The same SQL on both backends.
macro_rules! insert_log_rows {
    ($db:ty, $tx:expr, $rows:expr, $linked:expr) => {{
        let mut out = Vec::with_capacity($rows.len());
        for (rows, links) in $rows.chunks(256).zip($linked.chunks(256)) {
            let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO disclosures (seq, id, at, transaction_id, kind, partner, staff_id, role, purpose, case_id, subject_pseudonym, policy_version, ciphertext_sha256, outcome, problem, entry, leaf_hash, chain_hash) ");
            qb.push_values(rows.iter().zip(links), |mut b, (d, (seq, leaf, link))| {
                b.push_bind(*seq)
                    .push_bind(&d.id)
                    .push_bind(d.at)
                    .push_bind(&d.transaction_id)
                    .push_bind(&d.kind)
                    .push_bind(&d.partner)
                    .push_bind(&d.staff_id)
                    .push_bind(&d.role)
                    .push_bind(&d.purpose)
                    .push_bind(&d.case_id)
                    .push_bind(&d.subject_pseudonym)
                    .push_bind(&d.policy_version)
                    .push_bind(&d.ciphertext_sha256)
                    .push_bind(&d.outcome)
                    .push_bind(&d.problem)
                    .push_bind(&d.entry)
                    .push_bind(hex::encode(leaf))
                    .push_bind(hex::encode(link));
            });
            qb.build().execute(&mut *$tx).await?;
            out.extend(links.iter().map(|(seq, leaf, _)| (*seq, hex::encode(leaf))));
        }
        out
    }};
}
pub(crate) use insert_log_rows;

/// `case_with_records` and `leaf_hashes_after`, the same SQL on both backends.
macro_rules! case_with_records_impl {
    () => {
        async fn leaf_hashes_after(&self, after: i64, size: i64) -> Result<Vec<String>, StoreError> {
            let rows: Vec<(Option<String>,)> = sqlx::query_as(
                "SELECT leaf_hash FROM disclosures WHERE seq > $1 AND seq <= $2 ORDER BY seq",
            )
            .bind(after)
            .bind(size)
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|(h,)| h.ok_or_else(|| StoreError::Log("an entry has no leaf hash".into())))
                .collect()
        }

        async fn case_with_records(
            &self,
            id: &str,
        ) -> Result<Option<(crate::store::CaseRow, Vec<crate::store::RecordsRow>)>, StoreError> {
            use sqlx::Row;
            let rows = sqlx::query("SELECT c.*, r.product AS r_product, r.owner AS r_owner, r.sealed AS r_sealed, r.updated_at AS r_updated_at, r.updated_by AS r_updated_by FROM cases c LEFT JOIN records r ON r.subject_ref = c.subject_ref WHERE c.id = $1")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            let case = crate::store::case_from_row!(first);
            let mut records = Vec::with_capacity(rows.len());
            for r in &rows {
                if let Some(product) = r.try_get::<Option<String>, _>("r_product")? {
                    records.push(crate::store::RecordsRow {
                        product,
                        subject_ref: case.subject_ref.clone(),
                        owner: r.try_get("r_owner")?,
                        sealed: r.try_get("r_sealed")?,
                        updated_at: r.try_get("r_updated_at")?,
                        updated_by: r.try_get("r_updated_by")?,
                    });
                }
            }
            Ok(Some((case, records)))
        }
    };
}
pub(crate) use case_with_records_impl;
