//! The case register's rows: cases (the subject only as pseudonym and sealed BSN) and their
//! history of changes.

use super::{Db, RecordsRow, StoreError, Tx, on_pool, on_tx, parsed};
use policy::CaseStatus;
use policy::domain::Ideology;

/// A regisseur: partner and staff id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regisseur {
    /// Partner id.
    pub partner: String,
    /// Staff id at that partner.
    pub staff_id: String,
}

/// An open case's subject, for checks by another approach's pseudonym.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpenSubject {
    /// Case id.
    pub id: String,
    /// The subject pseudonym.
    pub subject_pseudonym: String,
    /// The sealed BSN.
    pub subject_sealed: Vec<u8>,
    /// The regisseur's partner, if one is appointed.
    pub regisseur_partner: Option<String>,
}

/// A case as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRow {
    /// Case id (`case-…`).
    pub id: String,
    /// Opaque subject reference shared with partners.
    pub subject_ref: String,
    /// Keyed pseudonym of the BSN.
    pub subject_pseudonym: String,
    /// The BSN, encrypted at rest.
    pub subject_sealed: Vec<u8>,
    /// Work-process status.
    pub status: CaseStatus,
    /// Risk group 1–5.
    pub risk_group: Option<u8>,
    /// Ideology.
    pub ideology: Option<Ideology>,
    /// The appointed regisseur.
    pub regisseur: Option<Regisseur>,
    /// Partners on the UVO, sorted, without duplicates.
    pub uvo_partners: Vec<String>,
    /// Date of the signal (`YYYY-MM-DD`).
    pub signal_date: Option<String>,
    /// Date of the inclusion decision.
    pub decision_date: Option<String>,
    /// Date of the notification letter.
    pub notification_date: Option<String>,
    /// To whom it went.
    pub notification_to: Option<policy::NotificationTo>,
    /// Created (epoch seconds).
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
    /// Incremented on every change.
    pub version: i64,
    /// The storage key that sealed the BSN (`None`: before key ids were recorded).
    pub sealed_key: Option<String>,
    /// The pseudonym key that made `subject_pseudonym` (`None`: before key ids were recorded).
    pub pseudonym_key: Option<String>,
}

#[derive(sqlx::FromRow)]
struct CaseDto {
    id: String,
    subject_ref: String,
    subject_pseudonym: String,
    subject_sealed: Vec<u8>,
    status: String,
    risk_group: Option<i64>,
    ideology: Option<String>,
    regisseur_partner: Option<String>,
    regisseur_staff: Option<String>,
    uvo_partners: String,
    signal_date: Option<String>,
    decision_date: Option<String>,
    notification_date: Option<String>,
    notification_to: Option<String>,
    created_at: i64,
    updated_at: i64,
    version: i64,
    sealed_key: Option<String>,
    pseudonym_key: Option<String>,
}

impl TryFrom<CaseDto> for CaseRow {
    type Error = StoreError;
    fn try_from(d: CaseDto) -> Result<Self, StoreError> {
        Ok(CaseRow {
            status: parsed(&d.status, "case status")?,
            risk_group: d
                .risk_group
                .map(|g| u8::try_from(g).map_err(|_| StoreError::Corrupt("risk group".into())))
                .transpose()?,
            ideology: d
                .ideology
                .as_deref()
                .map(|i| parsed(i, "ideology"))
                .transpose()?,
            regisseur: match (d.regisseur_partner, d.regisseur_staff) {
                (Some(partner), Some(staff_id)) => Some(Regisseur { partner, staff_id }),
                (None, None) => None,
                _ => return Err(StoreError::Corrupt("half a regisseur".into())),
            },
            uvo_partners: serde_json::from_str(&d.uvo_partners)
                .map_err(|_| StoreError::Corrupt("uvo_partners is not a JSON list".into()))?,
            id: d.id,
            subject_ref: d.subject_ref,
            subject_pseudonym: d.subject_pseudonym,
            subject_sealed: d.subject_sealed,
            signal_date: d.signal_date,
            decision_date: d.decision_date,
            notification_date: d.notification_date,
            notification_to: d
                .notification_to
                .as_deref()
                .map(|t| parsed(t, "notification addressee"))
                .transpose()?,
            created_at: d.created_at,
            updated_at: d.updated_at,
            version: d.version,
            sealed_key: d.sealed_key,
            pseudonym_key: d.pseudonym_key,
        })
    }
}

/// Whether a history event created the case or changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseAction {
    /// The case was registered.
    Created,
    /// The case was changed.
    Updated,
}

impl CaseAction {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseAction::Created => "created",
            CaseAction::Updated => "updated",
        }
    }
}

impl std::str::FromStr for CaseAction {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "created" => Ok(CaseAction::Created),
            "updated" => Ok(CaseAction::Updated),
            _ => Err(()),
        }
    }
}

/// One change to a case: who, in which role, which fields (names only; values stay in the case).
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
    /// Created or updated.
    pub action: CaseAction,
    /// Names of the changed fields.
    pub fields: Vec<String>,
    /// New status, if it changed.
    pub status: Option<CaseStatus>,
}

#[derive(sqlx::FromRow)]
struct EventDto {
    case_id: String,
    version: i64,
    at: i64,
    partner: String,
    staff_id: String,
    role: String,
    action: String,
    fields: String,
    status: Option<String>,
}

impl TryFrom<EventDto> for CaseEventRow {
    type Error = StoreError;
    fn try_from(d: EventDto) -> Result<Self, StoreError> {
        Ok(CaseEventRow {
            action: parsed(&d.action, "case event action")?,
            fields: serde_json::from_str(&d.fields)
                .map_err(|_| StoreError::Corrupt("case event fields".into()))?,
            status: d
                .status
                .as_deref()
                .map(|s| parsed(s, "case status"))
                .transpose()?,
            case_id: d.case_id,
            version: d.version,
            at: d.at,
            partner: d.partner,
            staff_id: d.staff_id,
            role: d.role,
        })
    }
}

/// A subject's pseudonyms (at most four keys are in use at once) as four query parameters, the
/// missing ones repeating the first.
fn four(p: &[String]) -> [&str; 4] {
    let at = |i: usize| p.get(i).or_else(|| p.first()).map_or("", String::as_str);
    [at(0), at(1), at(2), at(3)]
}

fn json_list(v: &[String]) -> String {
    // A list of strings always serialises.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// A new case, unless its subject (under this pseudonym) has an open case already: one case per
/// person at a time, checked again under the log head's lock.
const INSERT_CASE: &str = "INSERT INTO cases (id, subject_ref, subject_pseudonym, subject_sealed, status, risk_group, ideology, regisseur_partner, regisseur_staff, uvo_partners, signal_date, decision_date, notification_date, created_at, updated_at, version, sealed_key, pseudonym_key) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 WHERE NOT EXISTS (SELECT 1 FROM cases WHERE subject_pseudonym = $3 AND status NOT IN ('afgesloten', 'niet-opgenomen'))";
const UPDATE_CASE: &str = "UPDATE cases SET status = $2, risk_group = $3, ideology = $4, regisseur_partner = $5, regisseur_staff = $6, uvo_partners = $7, signal_date = $8, decision_date = $9, notification_date = $10, updated_at = $11, version = $12, notification_to = $14 WHERE id = $1 AND version = $13";
const INSERT_EVENT: &str = "INSERT INTO case_events (case_id, version, at, partner, staff_id, role, action, fields, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// Every case with each deposit of its subject (one row per deposit, one for a case without).
macro_rules! cases_with_records {
    () => { "SELECT c.*, r.product AS r_product, r.owner AS r_owner, r.sealed AS r_sealed, r.updated_at AS r_updated_at, r.updated_by AS r_updated_by, r.sealed_key AS r_sealed_key, r.deposit_sha256 AS r_deposit_sha256 FROM cases c LEFT JOIN records r ON r.subject_ref = c.subject_ref"
    };
}
const CASES_WITH_RECORDS: &str = cases_with_records!();
const CASE_WITH_RECORDS: &str = concat!(cases_with_records!(), " WHERE c.id = $1");
const CASES_OF_SUBJECT_WITH_RECORDS: &str =
    concat!(cases_with_records!(), " WHERE c.subject_pseudonym = $1");

/// The rows of a case-with-records query grouped by case, in the order the cases come.
fn by_case(rows: Vec<CaseWithRecordDto>) -> Result<Vec<(CaseRow, Vec<RecordsRow>)>, StoreError> {
    let mut out: Vec<(CaseRow, Vec<RecordsRow>)> = Vec::new();
    for r in rows {
        let (c, record) = r.split()?;
        match out.iter_mut().find(|(held, _)| held.id == c.id) {
            Some((_, records)) => records.extend(record),
            None => out.push((c, record.into_iter().collect())),
        }
    }
    Ok(out)
}

/// A case joined with one deposit of its subject (none: the `r_` columns are null).
#[derive(sqlx::FromRow)]
pub(super) struct CaseWithRecordDto {
    #[sqlx(flatten)]
    case: CaseDto,
    r_product: Option<String>,
    r_owner: Option<String>,
    r_sealed: Option<Vec<u8>>,
    r_updated_at: Option<i64>,
    r_updated_by: Option<String>,
    r_sealed_key: Option<String>,
    r_deposit_sha256: Option<Vec<u8>>,
}

impl CaseWithRecordDto {
    /// The case and, when the row has one, a deposit of its subject.
    pub(super) fn split(self) -> Result<(CaseRow, Option<RecordsRow>), StoreError> {
        let record = match (
            self.r_product,
            self.r_owner,
            self.r_sealed,
            self.r_updated_at,
            self.r_updated_by,
        ) {
            (Some(product), Some(owner), Some(sealed), Some(updated_at), Some(updated_by)) => {
                Some(RecordsRow {
                    product,
                    subject_ref: self.case.subject_ref.clone(),
                    owner,
                    sealed,
                    updated_at,
                    updated_by,
                    sealed_key: self.r_sealed_key,
                    deposit_sha256: self
                        .r_deposit_sha256
                        .map(|h| super::hash32(h, "a deposit's SHA-256"))
                        .transpose()?,
                })
            }
            _ => None,
        };
        Ok((CaseRow::try_from(self.case)?, record))
    }
}

macro_rules! insert_event {
    ($t:expr, $e:expr) => {
        sqlx::query(INSERT_EVENT)
            .bind(&$e.case_id)
            .bind($e.version)
            .bind($e.at)
            .bind(&$e.partner)
            .bind(&$e.staff_id)
            .bind(&$e.role)
            .bind($e.action.as_str())
            .bind(json_list(&$e.fields))
            .bind($e.status.map(|s| s.as_str()))
            .execute(&mut **$t)
            .await?;
    };
}

impl Tx {
    pub(super) async fn create_case(
        &mut self,
        c: &CaseRow,
        e: &CaseEventRow,
    ) -> Result<bool, StoreError> {
        on_tx!(self, t => {
            let q = sqlx::query(INSERT_CASE)
                .bind(&c.id)
                .bind(&c.subject_ref)
                .bind(&c.subject_pseudonym)
                .bind(&c.subject_sealed);
            let done = bind_changeable!(q, c)
                .bind(c.created_at)
                .bind(c.updated_at)
                .bind(c.version)
                .bind(&c.sealed_key)
                .bind(&c.pseudonym_key)
                .execute(&mut **t)
                .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            insert_event!(t, e);
        });
        Ok(true)
    }

    pub(super) async fn update_case(
        &mut self,
        c: &CaseRow,
        expected: i64,
        e: &CaseEventRow,
    ) -> Result<bool, StoreError> {
        on_tx!(self, t => {
            let q = sqlx::query(UPDATE_CASE).bind(&c.id);
            let done = bind_changeable!(q, c)
                .bind(c.updated_at)
                .bind(c.version)
                .bind(expected)
                .bind(c.notification_to.map(|t| t.as_str()))
                .execute(&mut **t)
                .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            insert_event!(t, e);
        });
        Ok(true)
    }
}

/// Binds the columns a case update may change, in the order both statements list them.
macro_rules! bind_changeable {
    ($q:expr, $c:expr) => {{
        let (rp, rs) = regisseur_columns($c);
        $q.bind($c.status.as_str())
            .bind($c.risk_group.map(i64::from))
            .bind($c.ideology.map(|i| i.as_str()))
            .bind(rp)
            .bind(rs)
            .bind(json_list(&$c.uvo_partners))
            .bind(&$c.signal_date)
            .bind(&$c.decision_date)
            .bind(&$c.notification_date)
    }};
}
use bind_changeable;

fn regisseur_columns(c: &CaseRow) -> (Option<&str>, Option<&str>) {
    match &c.regisseur {
        Some(r) => (Some(r.partner.as_str()), Some(r.staff_id.as_str())),
        None => (None, None),
    }
}

impl Db {
    /// A case by id.
    pub async fn case(&self, id: &str) -> Result<Option<CaseRow>, StoreError> {
        let dto: Option<CaseDto> = on_pool!(self, p => sqlx::query_as("SELECT * FROM cases WHERE id = $1")
            .bind(id)
            .fetch_optional(p)
            .await)?;
        dto.map(CaseRow::try_from).transpose()
    }

    /// The changes to a case, oldest first.
    pub async fn case_events(&self, id: &str) -> Result<Vec<CaseEventRow>, StoreError> {
        let rows: Vec<EventDto> = on_pool!(self, p => sqlx::query_as(
            "SELECT * FROM case_events WHERE case_id = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(p)
        .await)?;
        rows.into_iter().map(CaseEventRow::try_from).collect()
    }

    /// The subject pseudonym behind a subject reference, if any case has it.
    pub async fn subject_of_ref(&self, subject_ref: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_scalar(
            "SELECT subject_pseudonym FROM cases WHERE subject_ref = $1 LIMIT 1",
        )
        .bind(subject_ref)
        .fetch_optional(p)
        .await)?)
    }

    /// Every case that is not closed (`afgesloten`, `niet-opgenomen`): id, subject pseudonym,
    /// sealed BSN and regisseur's partner; for checks by another approach's pseudonym.
    pub async fn open_case_subjects(&self) -> Result<Vec<OpenSubject>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT id, subject_pseudonym, subject_sealed, regisseur_partner FROM cases WHERE status NOT IN ('afgesloten', 'niet-opgenomen') ORDER BY created_at, id",
        )
        .fetch_all(p)
        .await)?)
    }

    /// Every case of a subject (by its pseudonyms under every key of the ring), oldest first.
    pub async fn subject_cases(&self, pseudonyms: &[String]) -> Result<Vec<CaseRow>, StoreError> {
        let [a, b, c, d] = four(pseudonyms);
        let rows: Vec<CaseDto> = on_pool!(self, p => sqlx::query_as(
            "SELECT * FROM cases WHERE subject_pseudonym IN ($1, $2, $3, $4) ORDER BY created_at, id",
        )
        .bind(a)
        .bind(b)
        .bind(c)
        .bind(d)
        .fetch_all(p)
        .await)?;
        rows.into_iter().map(CaseRow::try_from).collect()
    }

    /// A case and every product's stored records of its subject, in one query.
    pub async fn case_with_records(
        &self,
        id: &str,
    ) -> Result<Option<(CaseRow, Vec<RecordsRow>)>, StoreError> {
        let rows: Vec<CaseWithRecordDto> = on_pool!(self, p => sqlx::query_as(CASE_WITH_RECORDS)
            .bind(id)
            .fetch_all(p)
            .await)?;
        Ok(by_case(rows)?.into_iter().next())
    }

    /// Every case about one person (by pseudonym), each with every product's stored records.
    pub async fn cases_with_records_of_subject(
        &self,
        pseudonym: &str,
    ) -> Result<Vec<(CaseRow, Vec<RecordsRow>)>, StoreError> {
        let rows: Vec<CaseWithRecordDto> = on_pool!(self, p => sqlx::query_as(CASES_OF_SUBJECT_WITH_RECORDS)
            .bind(pseudonym)
            .fetch_all(p)
            .await)?;
        by_case(rows)
    }

    /// Every case with its subject's deposits, for the register in memory.
    pub(super) async fn register_rows(&self) -> Result<Vec<CaseWithRecordDto>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(CASES_WITH_RECORDS).fetch_all(p).await)?)
    }
}
