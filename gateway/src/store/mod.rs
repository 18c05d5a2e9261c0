//! Storage: one implementation over SQLite (the embedded default, WAL) and PostgreSQL (several
//! gateway instances sharing one database). Every query is written once: the same SQL text runs
//! on both (both accept `$N` parameters), and [`on_pool!`]/[`on_tx!`] expand one body for each
//! backend. The backend is chosen from the database URL in one place, [`Db::connect`].
//!
//! The store knows rows and transactions, not the log's hashing: the log hands it the rows it
//! must write ([`log`]), and state changes that must commit with their log entry are
//! [`Change`]s applied inside the log's append transaction.

mod aggregates;
pub mod appender;
mod cases;
mod keys;
mod log;
mod policy;
mod records;
mod retention;
pub mod view;

pub use aggregates::CaseFacts;
pub use cases::{CaseAction, CaseEventRow, CaseRow, OpenSubject, Regisseur};
pub use keys::{
    KeyUse, Rekey, RekeyedCase, Reseal, ResealedCase, ResealedDeposit, StaleCase, StaleDeposit,
    StalePseudonym,
};
pub use log::{
    AppendRows, EntryNames, HeadRow, LeafRow, LogFilter, NodeRow, ProductRow, RecordRow,
    StoredCheckpoint, StoredCosignature, StoredEntry, SubjectRow,
};
pub use policy::{DraftKind, DraftStatus, PolicyDraftRow};
pub use records::RecordsRow;
pub use retention::{ClosedCase, DepositKey, ExpiringEntry, Removal, TombstoneRow};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// A SHA-256 hash as stored (the log's hashes are bytes, never hex, in the database).
pub type Hash32 = [u8; 32];

/// Storage failed; the API reports `storage-unavailable` and changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value is not what the gateway writes (changed outside the gateway).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Unsupported URL.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://…")]
    Url(String),
    /// The log's SQLite appender failed.
    #[error("appender: {0}")]
    Appender(appender::AppendError),
}

/// What kind of failure a database error is, as far as the gateway can tell: for operators, the
/// log's outage entry and metrics. Never the database's message, which may quote a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The disk or the database's size limit is full.
    StorageFull,
    /// The database reported an I/O error.
    IoError,
    /// Another process held the database's write lock too long.
    Busy,
    /// The database server could not be reached, or dropped the connection.
    Unreachable,
    /// A write took longer than the writer allows.
    Timeout,
    /// Anything else the database refused.
    Other,
}

impl Fault {
    /// The name used in the log, metrics and the operational log.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::StorageFull => "storage-full",
            Fault::IoError => "io-error",
            Fault::Busy => "busy",
            Fault::Unreachable => "unreachable",
            Fault::Timeout => "timeout",
            Fault::Other => "other",
        }
    }
}

impl StoreError {
    /// The class of this failure (SQLite's primary result codes, PostgreSQL's SQLSTATE classes).
    pub fn fault(&self) -> Fault {
        match self {
            StoreError::Database(e) => sqlx_fault(e),
            StoreError::Appender(e) => e.fault(),
            StoreError::Migrate(_) | StoreError::Corrupt(_) | StoreError::Url(_) => Fault::Other,
        }
    }
}

fn sqlx_fault(e: &sqlx::Error) -> Fault {
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => Fault::StorageFull,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Fault::Unreachable,
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLite: the primary result code is the low byte of the extended one.
                return match code.parse::<i32>().map(|c| c & 0xff) {
                    Ok(13) => Fault::StorageFull,
                    Ok(10) => Fault::IoError,
                    Ok(5 | 6) => Fault::Busy,
                    _ => Fault::Other,
                };
            }
            // PostgreSQL: SQLSTATE codes and classes.
            match code.as_ref() {
                "53100" => Fault::StorageFull,
                "58030" => Fault::IoError,
                "55P03" | "40P01" => Fault::Busy,
                c if c.starts_with("08") || c.starts_with("57P") => Fault::Unreachable,
                _ => Fault::Other,
            }
        }
        _ => Fault::Other,
    }
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
                url.split(':')
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(32)
                    .collect(),
            ))
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database, on either backend. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Db {
    pub(crate) pool: Pool,
}

/// Runs one body against the pool of whichever backend `$db` is on; `$p` is the pool.
macro_rules! on_pool {
    ($db:expr, $p:ident => $body:expr) => {
        match &$db.pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs one body against the open transaction `$tx`; `$t` is its `&mut PoolConnection<_>`.
macro_rules! on_tx {
    ($tx:expr, $t:ident => $body:expr) => {
        match &mut $tx.inner {
            $crate::store::TxInner::Sqlite($t) => $body,
            $crate::store::TxInner::Postgres($t) => $body,
        }
    };
}
pub(crate) use on_tx;

/// An open transaction on either backend, on a connection of its own.
///
/// The transaction is begun and ended with plain `BEGIN`/`COMMIT` statements rather than
/// sqlx's nested-transaction bookkeeping: after a failed `COMMIT` that bookkeeping can be out of
/// step with the connection (it then turns the next "transaction" into a savepoint of the old
/// one, and its "commit" into a savepoint release that writes nothing). Here a `BEGIN` inside a
/// transaction is an error, so a `COMMIT` that succeeds ended the transaction this `Tx` began;
/// and a connection whose `COMMIT` failed, or whose transaction is dropped open, is closed (the
/// database rolls it back) and never goes back to the pool.
pub struct Tx {
    pub(crate) inner: TxInner,
    open: bool,
}

pub(crate) enum TxInner {
    Sqlite(sqlx::pool::PoolConnection<Sqlite>),
    Postgres(sqlx::pool::PoolConnection<Postgres>),
}

impl Tx {
    /// Commits (durably: SQLite runs with `synchronous = FULL`). On an error the outcome is
    /// the database's to say (read the head anew); the connection is closed either way.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        on_tx!(self, c => sqlx::raw_sql("COMMIT").execute(&mut **c).await.map(|_| ()))?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            // Rolled back or failed to commit: its state is unknown, so the connection ends.
            on_tx!(self, c => c.close_on_drop());
        }
    }
}

/// How long a request waits for one of SQLite's connections (they are busy only under load).
const READER_ACQUIRE: Duration = Duration::from_secs(5);

/// How long the log writer waits for a new connection: the database not giving one within this
/// is an outage (a loaded server may take a second to accept one).
const WRITER_ACQUIRE: Duration = Duration::from_secs(3);

impl Db {
    /// Opens the database at `url`: SQLite (created if missing; WAL, `synchronous = FULL`,
    /// foreign keys on) or PostgreSQL.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        let pool = match Backend::from_url(url)? {
            Backend::Sqlite => {
                let opts = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    // What is deleted (retention, a replaced deposit) is overwritten, not
                    // left in free pages.
                    .pragma("secure_delete", "ON")
                    .busy_timeout(Duration::from_secs(5));
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(8)
                        .acquire_timeout(READER_ACQUIRE)
                        .connect_with(opts)
                        .await?,
                )
            }
            Backend::Postgres => Pool::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(16)
                    // A server that is gone fails a request within seconds, not after the
                    // pool's retries (sqlx keeps reconnecting until this timeout); a loaded
                    // one may take a second to accept a connection.
                    .acquire_timeout(Duration::from_secs(3))
                    .connect(url)
                    .await?,
            ),
        };
        Ok(Db { pool })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// A consistent copy of a SQLite database at `path` (`VACUUM INTO`: one read snapshot,
    /// while writers go on). PostgreSQL is backed up with `pg_dump`.
    pub async fn snapshot_into(&self, path: &std::path::Path) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query("VACUUM INTO $1")
                    .bind(path.to_string_lossy().into_owned())
                    .execute(p)
                    .await?;
                Ok(())
            }
            Pool::Postgres(_) => Err(StoreError::Corrupt(
                "a PostgreSQL database is backed up with pg_dump (docs/operations.md, \"Backup\")"
                    .into(),
            )),
        }
    }

    /// Closes the pool (waits for its connections to end).
    pub async fn close(&self) {
        on_pool!(self, p => p.close().await);
    }

    /// Applies pending migrations (the folder of this backend).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => sqlx::migrate!("../migrations/sqlite").run(p).await?,
            Pool::Postgres(p) => sqlx::migrate!("../migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// Cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Begins a transaction on a connection of its own (`BEGIN IMMEDIATE` on SQLite: the
    /// write lock is taken at once, so a busy database is met here and not at `COMMIT`).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let inner = match &self.pool {
            Pool::Sqlite(p) => {
                let mut c = p.acquire().await?;
                if let Err(e) = sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *c).await {
                    c.close_on_drop();
                    return Err(e.into());
                }
                TxInner::Sqlite(c)
            }
            Pool::Postgres(p) => {
                let mut c = p.acquire().await?;
                if let Err(e) = sqlx::raw_sql("BEGIN").execute(&mut *c).await {
                    c.close_on_drop();
                    return Err(e.into());
                }
                TxInner::Postgres(c)
            }
        };
        Ok(Tx { inner, open: true })
    }

    /// The database file, when it is an SQLite file (not in memory).
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        match &self.pool {
            Pool::Sqlite(p) => {
                let f = p.connect_options().get_filename().to_path_buf();
                (!f.as_os_str().is_empty() && f.as_os_str() != ":memory:").then_some(f)
            }
            Pool::Postgres(_) => None,
        }
    }

    /// A handle on the same database with one connection of its own, for the log writer: it
    /// never waits behind readers for a connection. The connection is made now and kept (no
    /// idle or age limit, no ping before each batch: a connection that broke fails its batch,
    /// and the writer then takes a new one); when one must be made again, a database that does
    /// not give it within [`WRITER_ACQUIRE`] is reported at once.
    pub async fn for_writer(&self) -> Result<Db, StoreError> {
        fn options<DB: sqlx::Database>() -> sqlx::pool::PoolOptions<DB> {
            sqlx::pool::PoolOptions::new()
                .max_connections(1)
                .acquire_timeout(WRITER_ACQUIRE)
                .idle_timeout(None)
                .max_lifetime(None)
                .test_before_acquire(false)
        }
        let pool = match &self.pool {
            Pool::Sqlite(p) => Pool::Sqlite(
                options()
                    .connect_with((*p.connect_options()).clone())
                    .await?,
            ),
            Pool::Postgres(p) => Pool::Postgres(
                options()
                    .connect_with((*p.connect_options()).clone())
                    .await?,
            ),
        };
        Ok(Db { pool })
    }

    /// Runs raw SQL (tests and maintenance only; never with request input).
    pub async fn execute_unchecked(&self, sql: &str) -> Result<u64, StoreError> {
        let q = sqlx::AssertSqlSafe(sql.to_owned());
        let done =
            on_pool!(self, p => sqlx::raw_sql(q).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(done)
    }
}

/// A state change that must commit in the same transaction as the log entry that describes it,
/// so that the log never describes a step that did not happen (and no step happens unlogged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new case and its first event.
    CreateCase {
        /// The case.
        case: CaseRow,
        /// Its first history event.
        event: CaseEventRow,
    },
    /// A case replaced if it is still at `expected_version`.
    UpdateCase {
        /// The new state.
        case: CaseRow,
        /// The version it was read at.
        expected_version: i64,
        /// The history event.
        event: CaseEventRow,
    },
    /// A partner's records for one product and subject, inserted or replaced.
    PutRecords(RecordsRow),
    /// A new covenant draft.
    InsertDraft(PolicyDraftRow),
    /// A draft approved if it is still a draft.
    ApproveDraft {
        /// Draft id.
        id: String,
        /// Approver's partner.
        partner: String,
        /// Approver's staff id.
        staff: String,
        /// When.
        at: i64,
    },
    /// An approved draft made active if `expected_active` still is.
    ActivateDraft {
        /// Draft id.
        id: String,
        /// The draft active when the activation was checked.
        expected_active: String,
        /// Activator's partner.
        partner: String,
        /// Activator's staff id.
        staff: String,
        /// When.
        at: i64,
    },
    /// The first version of an empty database (if no version is active yet).
    Bootstrap(PolicyDraftRow),
    /// Expired data removed by a retention run (if all of it is still as read).
    RemoveExpired(Removal),
    /// Rows sealed again with the current storage key (if all of them are still as read).
    Reseal(Reseal),
    /// Cases' subject pseudonyms made again with the current key (if all are still as read).
    Rekey(Rekey),
}

impl Change {
    /// The problem type a request meets when the change's precondition no longer holds (someone
    /// else changed the same thing first); the log entry records the refusal instead.
    pub fn conflict_problem(&self) -> &'static str {
        match self {
            Change::CreateCase { .. } | Change::UpdateCase { .. } => "case-conflict",
            Change::PutRecords(_) => "subject-not-found",
            Change::InsertDraft(_) | Change::ApproveDraft { .. } => "draft-state",
            Change::ActivateDraft { .. } | Change::Bootstrap(_) => "activation-conflict",
            Change::RemoveExpired(_) => "retention-conflict",
            Change::Reseal(_) => "reseal-conflict",
            Change::Rekey(_) => "rekey-conflict",
        }
    }
}

impl Tx {
    /// Applies a change; `false` (and nothing changed) when its precondition no longer holds.
    /// The caller holds the log head's lock, so changes are serialised with every append, on
    /// every instance.
    pub async fn apply(&mut self, change: &Change) -> Result<bool, StoreError> {
        match change {
            Change::CreateCase { case, event } => self.create_case(case, event).await,
            Change::UpdateCase {
                case,
                expected_version,
                event,
            } => self.update_case(case, *expected_version, event).await,
            Change::PutRecords(r) => self.put_records(r).await,
            Change::InsertDraft(d) => self.insert_draft(d).await,
            Change::ApproveDraft {
                id,
                partner,
                staff,
                at,
            } => self.approve_draft(id, partner, staff, *at).await,
            Change::ActivateDraft {
                id,
                expected_active,
                partner,
                staff,
                at,
            } => {
                self.activate_draft(id, expected_active, partner, staff, *at)
                    .await
            }
            Change::Bootstrap(d) => self.bootstrap(d).await,
            Change::RemoveExpired(r) => self.remove_expired(r).await,
            Change::Reseal(r) => self.reseal(r).await,
            Change::Rekey(r) => self.rekey(r).await,
        }
    }
}

/// Reads a stored 32-byte hash.
pub(crate) fn hash32(bytes: Vec<u8>, what: &str) -> Result<Hash32, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is not a 32-byte hash")))
}

/// Parses a stored vocabulary value (status, kind, …).
pub(crate) fn parsed<T: FromStr>(s: &str, what: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| {
        StoreError::Corrupt(format!(
            "{what} `{}` is not known",
            s.chars().take(40).collect::<String>()
        ))
    })
}
