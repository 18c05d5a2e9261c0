//! SQLite: the embedded default. WAL journal, `synchronous = FULL`, foreign keys on.

use super::{
    CaseEventRow, CaseRow, DisclosureRow, RecordsRow, Store, StoreError, case_from_row,
    disclosure_from_row, event_from_row,
};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        Ok(SqliteStore { pool })
    }

    /// The pool (tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

const INSERT_CASE: &str = "INSERT INTO cases (id, subject_ref, subject_pseudonym, subject_sealed, status, risk_group, ideology, regisseur_partner, regisseur_staff, uvo_partners, signal_date, decision_date, notification_date, created_at, updated_at, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";
const INSERT_EVENT: &str = "INSERT INTO case_events (case_id, version, at, partner, staff_id, role, action, fields, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const UPDATE_CASE: &str = "UPDATE cases SET status = ?2, risk_group = ?3, ideology = ?4, regisseur_partner = ?5, regisseur_staff = ?6, uvo_partners = ?7, signal_date = ?8, decision_date = ?9, notification_date = ?10, updated_at = ?11, version = ?12 WHERE id = ?1 AND version = ?13";

macro_rules! bind_event {
    ($q:expr, $e:expr) => {
        $q.bind(&$e.case_id)
            .bind($e.version)
            .bind($e.at)
            .bind(&$e.partner)
            .bind(&$e.staff_id)
            .bind(&$e.role)
            .bind(&$e.action)
            .bind(&$e.fields)
            .bind(&$e.status)
    };
}

impl Store for SqliteStore {
    crate::store::policy_versions_impl!();
    crate::store::case_with_records_impl!();

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_case(&self, c: &CaseRow, e: &CaseEventRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(INSERT_CASE)
            .bind(&c.id)
            .bind(&c.subject_ref)
            .bind(&c.subject_pseudonym)
            .bind(&c.subject_sealed)
            .bind(&c.status)
            .bind(c.risk_group)
            .bind(&c.ideology)
            .bind(&c.regisseur_partner)
            .bind(&c.regisseur_staff)
            .bind(&c.uvo_partners)
            .bind(&c.signal_date)
            .bind(&c.decision_date)
            .bind(&c.notification_date)
            .bind(c.created_at)
            .bind(c.updated_at)
            .bind(c.version)
            .execute(&mut *tx)
            .await?;
        bind_event!(sqlx::query(INSERT_EVENT), e)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_case(&self, id: &str) -> Result<Option<CaseRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM cases WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(case_from_row!(&r)),
            None => None,
        })
    }

    async fn update_case(
        &self,
        c: &CaseRow,
        expected: i64,
        e: &CaseEventRow,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(UPDATE_CASE)
            .bind(&c.id)
            .bind(&c.status)
            .bind(c.risk_group)
            .bind(&c.ideology)
            .bind(&c.regisseur_partner)
            .bind(&c.regisseur_staff)
            .bind(&c.uvo_partners)
            .bind(&c.signal_date)
            .bind(&c.decision_date)
            .bind(&c.notification_date)
            .bind(c.updated_at)
            .bind(c.version)
            .bind(expected)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        bind_event!(sqlx::query(INSERT_EVENT), e)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn case_events(&self, id: &str) -> Result<Vec<CaseEventRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM case_events WHERE case_id = ?1 ORDER BY version")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(event_from_row!(r));
        }
        Ok(out)
    }

    async fn subject_ref(&self, pseudonym: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar(
                "SELECT subject_ref FROM cases WHERE subject_pseudonym = ?1 LIMIT 1",
            )
            .bind(pseudonym)
            .fetch_optional(&self.pool)
            .await?,
        )
    }

    async fn subject_known(&self, subject_ref: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases WHERE subject_ref = ?1")
            .bind(subject_ref)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn put_records(&self, r: &RecordsRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO records (product, subject_ref, owner, sealed, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (subject_ref, product) DO UPDATE SET owner = excluded.owner, sealed = excluded.sealed, updated_at = excluded.updated_at, updated_by = excluded.updated_by")
            .bind(&r.product).bind(&r.subject_ref).bind(&r.owner).bind(&r.sealed).bind(r.updated_at).bind(&r.updated_by)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn append_batch(&self, rows: &[DisclosureRow]) -> Result<Vec<(i64, String)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // One writer at a time, across instances: the head row is the lock.
        sqlx::query("UPDATE log_head SET size = size WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        // The update above took the write lock; now read the head.
        let (size, chain): (i64, String) =
            sqlx::query_as("SELECT size, chain_hash FROM log_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        let chain = crate::audit::parse_hash(&chain)
            .ok_or_else(|| StoreError::Log("the log head's chain hash is corrupt".into()))?;
        let entries: Vec<&str> = rows.iter().map(|r| r.entry.as_str()).collect();
        let linked = crate::audit::link(size, chain, &entries);
        let out = crate::store::insert_log_rows!(sqlx::Sqlite, tx, rows, linked);
        let mut last = chain;
        if let Some((_, _, l)) = linked.last() {
            last = *l;
        }
        sqlx::query("UPDATE log_head SET size = ?1, chain_hash = ?2 WHERE id = 1")
            .bind(size + rows.len() as i64)
            .bind(hex::encode(last))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn log_head(&self) -> Result<(i64, String), StoreError> {
        Ok(
            sqlx::query_as("SELECT size, chain_hash FROM log_head WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn leaf_hashes(&self, size: i64) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(Option<String>,)> =
            sqlx::query_as("SELECT leaf_hash FROM disclosures WHERE seq <= ?1 ORDER BY seq")
                .bind(size)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(h,)| h.ok_or_else(|| StoreError::Log("an entry has no leaf hash".into())))
            .collect()
    }

    async fn put_checkpoint(
        &self,
        size: i64,
        root: &str,
        note: &str,
        at: i64,
    ) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO checkpoints (size, root, note, at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (size) DO NOTHING")
            .bind(size).bind(root).bind(note).bind(at)
            .execute(&self.pool)
            .await?;
        // Never two checkpoints for one size: whoever stored first wins, everyone serves that one.
        Ok(
            sqlx::query_scalar("SELECT note FROM checkpoints WHERE size = ?1")
                .bind(size)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn latest_checkpoint(&self) -> Result<Option<(i64, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn checkpoints(&self) -> Result<Vec<(i64, String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT size, root, note FROM checkpoints ORDER BY size")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn disclosures(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<(i64, DisclosureRow)>, StoreError> {
        let rows = sqlx::query("SELECT * FROM disclosures WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(disclosure_from_row!(r));
        }
        Ok(out)
    }

    async fn subject_cases(&self, pseudonym: &str) -> Result<Vec<CaseRow>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM cases WHERE subject_pseudonym = ?1 ORDER BY created_at")
                .bind(pseudonym)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(case_from_row!(r));
        }
        Ok(out)
    }

    async fn search(
        &self,
        f: &crate::store::LogFilter,
    ) -> Result<Vec<(i64, DisclosureRow)>, StoreError> {
        let mut q =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT * FROM disclosures WHERE seq > ");
        q.push_bind(f.after_seq);
        let eq = |q: &mut sqlx::QueryBuilder<sqlx::Sqlite>, col: &str, v: &Option<String>| {
            if let Some(v) = v {
                q.push(format!(" AND {col} = "));
                q.push_bind(v.clone());
            }
        };
        eq(&mut q, "subject_pseudonym", &f.subject);
        eq(&mut q, "partner", &f.partner);
        eq(&mut q, "staff_id", &f.staff_id);
        eq(&mut q, "purpose", &f.purpose);
        eq(&mut q, "case_id", &f.case_id);
        eq(&mut q, "outcome", &f.outcome);
        if let Some(p) = &f.product {
            q.push(" AND entry LIKE ");
            q.push_bind(format!("%\"{}\":{{\"status\"%", p.replace('%', "")));
        }
        if let Some(from) = f.from {
            q.push(" AND at >= ");
            q.push_bind(from);
        }
        if let Some(to) = f.to {
            q.push(" AND at < ");
            q.push_bind(to);
        }
        if let Some(p) = &f.visible_to {
            q.push(" AND (partner = ");
            q.push_bind(p.clone());
            q.push(" OR entry LIKE ");
            q.push_bind(format!("%\"{}.%\":{{\"status\"%", p.replace('%', "")));
            q.push(")");
        }
        for u in &f.exclude_purposes {
            q.push(" AND (purpose IS NULL OR purpose <> ");
            q.push_bind(u.clone());
            q.push(")");
        }
        q.push(" ORDER BY seq LIMIT ");
        q.push_bind(f.limit);
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(disclosure_from_row!(r));
        }
        Ok(out)
    }

    async fn case_facts(&self) -> Result<Vec<crate::store::CaseFacts>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT c.status, c.risk_group, c.ideology, c.signal_date, c.decision_date, \
             (SELECT MIN(e.at) FROM case_events e WHERE e.case_id = c.id AND e.status = 'opgenomen') AS included_at, \
             (SELECT MIN(e.at) FROM case_events e WHERE e.case_id = c.id AND e.status = 'afgesloten') AS closed_at \
             FROM cases c",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn release(&self, view: &str, period: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT body FROM aggregate_releases WHERE view = ?1 AND period = ?2",
        )
        .bind(view)
        .bind(period)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn put_release(
        &self,
        view: &str,
        period: &str,
        body: &str,
        at: i64,
    ) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO aggregate_releases (view, period, body, released_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (view, period) DO NOTHING")
            .bind(view).bind(period).bind(body).bind(at)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar(
            "SELECT body FROM aggregate_releases WHERE view = ?1 AND period = ?2",
        )
        .bind(view)
        .bind(period)
        .fetch_one(&self.pool)
        .await?)
    }
}
