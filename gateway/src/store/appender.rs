//! The log's appends on SQLite through a connection of their own on a thread of their own
//! (issue 40): the rows of a batch that changes nothing but the log go over in one hand-off, and
//! the thread writes them with statements prepared once for the life of the connection, in one
//! transaction, instead of a statement text of the batch's size parsed anew for every batch.
//!
//! The same durability rules as the writer's own connection: the head is locked and compared
//! with what the writer expects (another writer in between: nothing is written, and the writer
//! takes its general path), the `COMMIT`'s result is what decides, and after any error the
//! connection is closed (a new one is opened for the next batch), so that no batch ever starts
//! on a connection in an unknown state.

use super::{
    AppendRows, Fault, HeadRow, LeafRow, NodeRow, ProductRow, RecordRow, StoreError, SubjectRow,
};
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;

/// Why an append through the appender did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The head was not where the writer expected it: nothing written.
    #[error("the log head moved")]
    HeadMoved,
    /// SQLite refused; nothing written unless the `COMMIT` itself failed.
    #[error("sqlite: {message}")]
    Sqlite {
        /// The class of the failure.
        fault: Fault,
        /// SQLite's message (the statement's, never a value).
        message: String,
    },
    /// Aborted before its `COMMIT` at the caller's request (the writer's fault tests).
    #[error("aborted before commit")]
    Aborted,
    /// The appender's thread is gone.
    #[error("the appender's thread stopped")]
    Stopped,
}

impl AppendError {
    /// The class of this failure.
    pub fn fault(&self) -> Fault {
        match self {
            AppendError::Sqlite { fault, .. } => *fault,
            _ => Fault::Other,
        }
    }
}

impl From<AppendError> for StoreError {
    fn from(e: AppendError) -> StoreError {
        StoreError::Appender(e)
    }
}

fn sqlite_error(e: rusqlite::Error) -> AppendError {
    let fault = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => Fault::StorageFull,
        Some(rusqlite::ErrorCode::SystemIoFailure) => Fault::IoError,
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            Fault::Busy
        }
        _ => Fault::Other,
    };
    AppendError::Sqlite {
        fault,
        message: e.to_string(),
    }
}

/// One batch's rows, owned, for the thread.
#[derive(Debug)]
pub struct OwnedRows {
    /// Leaves.
    pub leaves: Vec<LeafRow>,
    /// Content and columns.
    pub records: Vec<RecordRow>,
    /// Products.
    pub products: Vec<ProductRow>,
    /// Tree nodes.
    pub nodes: Vec<NodeRow>,
    /// Places in the per-subject map.
    pub subjects: Vec<SubjectRow>,
    /// The head after them.
    pub head: HeadRow,
}

struct Work {
    /// The head the writer expects before the batch (size and chain hash).
    expect: (i64, super::Hash32),
    rows: OwnedRows,
    abort_before_commit: bool,
    reply: oneshot::Sender<Result<(), AppendError>>,
}

/// The handle the log's writer keeps; dropping it ends the thread.
#[derive(Debug)]
pub struct Appender {
    queue: std::sync::mpsc::Sender<Work>,
}

impl Appender {
    /// Starts the thread for the database file at `path` (its connection opens on first use).
    pub fn start(path: PathBuf) -> Result<Appender, StoreError> {
        let (queue, rx) = std::sync::mpsc::channel::<Work>();
        std::thread::Builder::new()
            .name("log-appender".into())
            .spawn(move || {
                let mut conn: Option<Connection> = None;
                while let Ok(w) = rx.recv() {
                    let r = match conn.take().map_or_else(|| open(&path), Ok) {
                        Ok(mut c) => {
                            let r = write(&mut c, &w);
                            // Only a connection whose last batch ended cleanly is kept.
                            if r.is_ok() || matches!(r, Err(AppendError::HeadMoved)) {
                                conn = Some(c);
                            }
                            r
                        }
                        Err(e) => Err(e),
                    };
                    let _ = w.reply.send(r);
                }
            })
            .map_err(|e| StoreError::Corrupt(format!("the log appender's thread: {e}")))?;
        Ok(Appender { queue })
    }

    /// Writes a batch in one transaction if the head is still at `expect`.
    pub async fn append(
        &self,
        expect: &HeadRow,
        rows: OwnedRows,
        abort_before_commit: bool,
    ) -> Result<(), AppendError> {
        let (reply, wait) = oneshot::channel();
        self.queue
            .send(Work {
                expect: (expect.size, expect.chain_hash),
                rows,
                abort_before_commit,
                reply,
            })
            .map_err(|_| AppendError::Stopped)?;
        wait.await.map_err(|_| AppendError::Stopped)?
    }
}

impl OwnedRows {
    /// The rows as the general path takes them.
    pub fn as_rows(&self) -> AppendRows<'_> {
        AppendRows {
            leaves: &self.leaves,
            records: &self.records,
            products: &self.products,
            nodes: &self.nodes,
            subjects: &self.subjects,
            head: &self.head,
        }
    }
}

/// The connection as [`super::Db::connect`] configures SQLite's.
fn open(path: &PathBuf) -> Result<Connection, AppendError> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error)?;
    c.busy_timeout(Duration::from_secs(5))
        .map_err(sqlite_error)?;
    // The file is in WAL mode already (a persistent setting the pool made); the rest is per
    // connection.
    // A page cache of 16 MB (SQLite's default is 2 MB): the indexes' pages that new entries
    // reach stay in it as the log grows to millions of entries.
    c.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; PRAGMA cache_size = -16384;",
    )
    .map_err(sqlite_error)?;
    Ok(c)
}

fn write(c: &mut Connection, w: &Work) -> Result<(), AppendError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let (size, chain): (i64, Vec<u8>) = tx
        .prepare_cached("SELECT size, chain_hash FROM log_tree_head WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(sqlite_error)?;
    if size != w.expect.0 || chain.as_slice() != w.expect.1.as_slice() {
        // Dropping the transaction rolls it back.
        return Err(AppendError::HeadMoved);
    }
    let r = &w.rows;
    {
        let mut s = tx
            .prepare_cached(super::log::INSERT_LEAF)
            .map_err(sqlite_error)?;
        for l in &r.leaves {
            s.execute(params![l.seq, &l.leaf_hash[..], &l.chain_hash[..]])
                .map_err(sqlite_error)?;
        }
        let mut s = tx
            .prepare_cached(super::log::INSERT_RECORD)
            .map_err(sqlite_error)?;
        for x in &r.records {
            s.execute(params![
                x.seq,
                x.entry,
                x.id,
                x.at,
                x.trace_id,
                x.kind,
                x.partner,
                x.staff_id,
                x.role,
                x.purpose,
                x.case_id,
                x.subject_pseudonym,
                x.policy_version,
                x.outcome,
                x.problem
            ])
            .map_err(sqlite_error)?;
        }
        let mut s = tx
            .prepare_cached(super::log::INSERT_PRODUCT)
            .map_err(sqlite_error)?;
        for p in &r.products {
            s.execute(params![p.seq, p.product, p.owner])
                .map_err(sqlite_error)?;
        }
        let mut s = tx
            .prepare_cached(super::log::INSERT_NODE)
            .map_err(sqlite_error)?;
        for n in &r.nodes {
            s.execute(params![n.height, n.idx, &n.hash[..]])
                .map_err(sqlite_error)?;
        }
        let mut s = tx
            .prepare_cached(super::log::INSERT_SUBJECT)
            .map_err(sqlite_error)?;
        for x in &r.subjects {
            s.execute(params![x.key, x.seq]).map_err(sqlite_error)?;
        }
        tx.prepare_cached(super::log::SET_HEAD)
            .and_then(|mut s| {
                s.execute(params![
                    r.head.size,
                    &r.head.chain_hash[..],
                    r.head.root.as_ref().map(|h| &h[..])
                ])
            })
            .map_err(sqlite_error)?;
    }
    if w.abort_before_commit {
        return Err(AppendError::Aborted);
    }
    tx.commit().map_err(sqlite_error)
}
