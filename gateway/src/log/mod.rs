//! The tamper-evident disclosure log: every entry is a leaf of an RFC 6962 Merkle tree and a
//! link of a hash chain, written durably before the answer it records leaves.
//!
//! [`Log`] is the one object that owns it: the writer (group commit, [`writer`]), the stored
//! tree ([`tree`]), the signing key and checkpoints ([`checkpoint`]), proofs, and an orderly
//! shutdown. The record type is [`entry::LogEntry`]; `audit verify` is [`verify`].

pub mod availability;
pub mod checkpoint;
pub mod cosign;
pub mod entry;
pub mod merkle;
pub mod receipt;
pub mod subjects;
pub mod tree;
pub mod verify;
pub mod writer;

use crate::store::{Change, Db, HeadRow, NodeRow, StoreError, StoredCheckpoint};
use checkpoint::{Checkpoint, CheckpointError, KeySet, LogKey};
use entry::LogEntry;
use merkle::{Frontier, Hash, consistency_path, inclusion_path};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
pub use writer::Appended;

/// The chain value before the first entry.
pub const GENESIS: Hash = [0; 32];

/// `SHA-256(previous || leaf)`.
pub fn chain_hash(previous: &Hash, leaf: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(previous);
    h.update(leaf);
    h.finalize().into()
}

/// The log could not do what was asked; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// An entry could not be serialised.
    #[error("{0}")]
    Entry(String),
    /// The batch the entry was in could not be written.
    #[error("write failed: {0}")]
    Failed(String),
    /// The writer has stopped (shutdown).
    #[error("the log writer has stopped")]
    Stopped,
    /// The writer cannot write now (its last batch failed, or one is stalled); refused at once.
    #[error("the log cannot be written now")]
    Unavailable,
    /// A batch took longer than the writer allows; given up.
    #[error("the log batch took too long and was given up")]
    TimedOut,
    /// The stored log is inconsistent.
    #[error("{0}")]
    Corrupt(String),
    /// The signing key cannot be used.
    #[error("{0}")]
    Key(#[from] CheckpointError),
    /// A proof was asked for sizes the log does not have.
    #[error("{0}")]
    Range(String),
}

/// The log's signing key and the keys that signed before it.
pub struct LogKeys {
    /// Signs new checkpoints.
    pub current: LogKey,
    /// Verifiers of keys retired by a rotation (their checkpoints still verify).
    pub retired: Vec<checkpoint::NoteVerifier>,
}

impl LogKeys {
    /// Every verifier key: the current one first.
    pub fn key_set(&self) -> Result<KeySet, CheckpointError> {
        let mut all = vec![checkpoint::NoteVerifier::from_vkey(&self.current.vkey())?];
        all.extend(self.retired.iter().cloned());
        KeySet::new(all)
    }
}

/// Which key signed the latest checkpoint, compared with the configured one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// No checkpoint yet, or the current key signed it.
    Current,
    /// A retired key signed it: the key was rotated since (the rotation must be recorded).
    Retired(String),
}

/// An inclusion proof.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InclusionProof {
    /// Sequence number.
    pub seq: i64,
    /// Leaf index (`seq - 1`).
    pub leaf_index: u64,
    /// Leaf hash, hex.
    pub leaf_hash: String,
    /// Tree size the proof is against.
    pub tree_size: i64,
    /// Root at that size, hex.
    pub root: String,
    /// The proof, hex, bottom-up.
    pub proof: Vec<String>,
    /// The signed checkpoint of that size, when the proof is against the latest one.
    pub checkpoint: Option<String>,
}

/// A consistency proof.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsistencyProof {
    /// Smaller size.
    pub from: i64,
    /// Larger size.
    pub to: i64,
    /// Root at `from`, hex.
    pub from_root: String,
    /// Root at `to`, hex.
    pub to_root: String,
    /// The proof, hex.
    pub proof: Vec<String>,
}

/// The disclosure log.
pub struct Log {
    db: Db,
    queue: mpsc::Sender<writer::Job>,
    keys: arc_swap::ArcSwap<LogKeys>,
    origin: String,
    stop: Arc<Notify>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    availability: Arc<availability::Availability>,
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "the writer's fault points are set by the crate's tests only"
        )
    )]
    faults: Arc<availability::Faults>,
    /// The per-subject map as far as this instance indexed it (issue 28), loaded at start in
    /// the background ([`Log::warm_subject_map`]) or else at the first checkpoint.
    subjects: Mutex<Option<subjects::Indexed>>,
    /// What this instance's writer appended and the map has not indexed yet.
    pending: Arc<subjects::Pending>,
    /// The map as the latest checkpoint this instance signed commits it, with its size.
    checkpointed: Mutex<Option<(i64, subjects::SubjectMap)>>,
    /// The case register in memory (issue 40), kept current by the writer.
    register: Arc<crate::store::view::Register>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("origin", &self.origin).finish()
    }
}

impl Log {
    /// Opens the log on a migrated database and starts its writer. A log migrated from before
    /// the stored tree gets its tree built once (reading every leaf); afterwards a start reads
    /// only the head and the tree's right edge.
    pub async fn open(
        db: Db,
        keys: LogKeys,
        origin: String,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<Log, LogError> {
        let head = db.log_head().await?;
        if head.root.is_none() {
            build_tree(&db).await?;
        }
        let head = db.log_head().await?;
        let state = writer::TreeState::load(&db, &head).await?;
        let (queue, rx) = mpsc::channel(4 * writer::MAX_BATCH);
        let stop = Arc::new(Notify::new());
        let availability = Arc::new(availability::Availability::default());
        crate::metrics::metrics().log_writer_available.set(1);
        let faults = Arc::new(availability::Faults::default());
        let register = Arc::new(crate::store::view::Register::load(&db).await?);
        let appender = match db.sqlite_file() {
            Some(f) => Some(crate::store::appender::Appender::start(f)?),
            None => None,
        };
        let pending = Arc::new(subjects::Pending::default());
        let w = writer::Writer::new(
            db.for_writer().await?,
            db.clone(),
            register.clone(),
            state,
            availability.clone(),
            clock,
            faults.clone(),
        )
        .with_appender(appender)
        .with_pending(pending.clone());
        let task = tokio::spawn(writer::run(w, rx, stop.clone()));
        Ok(Log {
            db,
            queue,
            keys: arc_swap::ArcSwap::from_pointee(keys),
            origin,
            stop,
            task: Mutex::new(Some(task)),
            availability,
            faults,
            subjects: Mutex::new(None),
            checkpointed: Mutex::new(None),
            pending,
            register,
        })
    }

    /// The case register in memory, as far as this instance's writer has committed it.
    pub fn register(&self) -> &crate::store::view::Register {
        &self.register
    }

    /// The log's origin line (`<gateway id>/disclosures`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier keys (current first, then retired).
    pub fn key_set(&self) -> Result<KeySet, CheckpointError> {
        self.keys.load().key_set()
    }

    /// The current key's `vkey`.
    pub fn vkey(&self) -> String {
        self.keys.load().current.vkey()
    }

    /// Puts new keys in place (a rotation picked up while serving): checkpoints and receipts
    /// are signed with the new current key from now on.
    pub fn replace_keys(&self, keys: LogKeys) {
        self.keys.store(Arc::new(keys));
    }

    /// The database the log is in.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Appends an entry; returns once it is durable.
    pub async fn append(&self, entry: LogEntry) -> Result<Appended, LogError> {
        self.submit(entry, None).await
    }

    /// Appends an entry together with the change it describes, in one transaction. When the
    /// change's precondition no longer holds, nothing changes and the entry is recorded as the
    /// refusal (`applied` is false).
    pub async fn append_with(&self, entry: LogEntry, change: Change) -> Result<Appended, LogError> {
        self.submit(entry, Some(change)).await
    }

    async fn submit(&self, entry: LogEntry, change: Option<Change>) -> Result<Appended, LogError> {
        // While the writer cannot write, nothing waits for it: refused now, counted if a refusal.
        if self.availability.refuse_now(&entry) {
            return Err(LogError::Unavailable);
        }
        let (reply, wait) = oneshot::channel();
        self.queue
            .send(writer::Job {
                entry,
                change,
                reply,
            })
            .await
            .map_err(|_| LogError::Stopped)?;
        wait.await.map_err(|_| LogError::Stopped)?
    }

    /// Whether the log can be written now, and what an outage has cost so far.
    pub fn availability(&self) -> &availability::Availability {
        &self.availability
    }

    /// Where the crate's tests make the writer fail.
    #[cfg(test)]
    pub fn faults(&self) -> &availability::Faults {
        &self.faults
    }

    /// Stops taking entries, writes those already queued, and waits for the writer to end.
    pub async fn shutdown(&self) {
        self.stop.notify_one();
        if let Some(task) = self.task.lock().await.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the log writer ended abnormally");
        }
    }

    /// The signed receipt of an appended entry: the promise that a checkpoint includes it by
    /// `due` (unix seconds).
    pub fn receipt(&self, a: &Appended, due: i64) -> String {
        receipt::Receipt {
            origin: self.origin.clone(),
            seq: u64::try_from(a.seq).unwrap_or(0),
            leaf: a.leaf_hash,
            due,
        }
        .sign(&self.keys.load().current)
    }

    /// Which key signed the latest checkpoint.
    pub async fn signer(&self) -> Result<Signer, LogError> {
        let Some(latest) = self.db.latest_checkpoint().await? else {
            return Ok(Signer::Current);
        };
        let keys = self.keys.load();
        let set = keys.key_set()?;
        let (_, signers) = set.verify(&latest.note).map_err(|_| {
            LogError::Key(CheckpointError::Key(format!(
                "the latest checkpoint (size {}) is signed by none of the log's keys: the current key or a retired one in secrets.retired_log_vkeys_file; if you rotated the key, add the old key's vkey there",
                latest.size
            )))
        })?;
        let current = keys.current.vkey();
        if signers.contains(&current) {
            Ok(Signer::Current)
        } else {
            signers
                .into_iter()
                .next()
                .map(Signer::Retired)
                .ok_or_else(|| LogError::Corrupt("a verified checkpoint without a signer".into()))
        }
    }

    /// Signs a checkpoint when one is due by `now`: the log grew since the latest one, and
    /// that one is at least `interval` seconds old (or there is none). Returns it if made.
    pub async fn checkpoint_if_due(
        &self,
        now: i64,
        interval: i64,
    ) -> Result<Option<(i64, String)>, LogError> {
        let head = self.db.log_head().await?;
        let latest = self.db.latest_checkpoint().await?;
        let due = match &latest {
            None => head.size > 0,
            Some(c) => head.size > c.size && now - c.at >= interval,
        };
        if !due {
            return Ok(None);
        }
        self.checkpoint(now).await.map(Some)
    }

    /// Signs and stores a checkpoint for the current size (or returns the stored one). Reads
    /// the head only: the root is kept with it.
    pub async fn checkpoint(&self, now: i64) -> Result<(i64, String), LogError> {
        // The map's lock before the head: nothing indexes past a head read under it, so the
        // map below is the one at exactly this size.
        let mut held = self.subjects.lock().await;
        let head = self.db.log_head().await?;
        if let Some(latest) = self.db.latest_checkpoint().await?
            && latest.size == head.size
        {
            checkpoint_metrics(latest.size, latest.at);
            return Ok((latest.size, latest.note));
        }
        let root = head
            .root
            .ok_or_else(|| LogError::Corrupt("the log head has no root".into()))?;
        let size = u64::try_from(head.size).map_err(|_| LogError::Corrupt("size".into()))?;
        // The per-subject map at this size, committed in the same note (issue 28).
        let map = {
            let indexed = loaded(&self.db, &mut held, head.size).await?;
            indexed.advance(&self.db, head.size, &self.pending).await?;
            indexed.map.clone()
        };
        drop(held);
        let note = self.keys.load().current.sign(&Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
            extensions: vec![map.head().line()],
        });
        let stored = self
            .db
            .put_checkpoint(&StoredCheckpoint {
                size: head.size,
                root,
                note,
                at: now,
            })
            .await?;
        *self.checkpointed.lock().await = Some((head.size, map));
        checkpoint_metrics(head.size, now);
        Ok((head.size, stored))
    }

    /// Indexes the entries appended since the map was last brought forward (the background
    /// does it every second), so that the per-subject map's cost is spread over the requests
    /// that cause it rather than falling on one checkpoint: a minute of a busy gateway's
    /// entries, read and indexed at once, took seconds of CPU. Nothing before the map is
    /// loaded.
    pub async fn index_subjects(&self) -> Result<(), LogError> {
        let mut held = self.subjects.lock().await;
        if let Some(indexed) = held.as_mut() {
            let head = self.db.log_head().await?;
            indexed.advance(&self.db, head.size, &self.pending).await?;
        }
        Ok(())
    }

    /// Loads the per-subject map from its stored rows if this instance has not yet: at start,
    /// beside the first requests, so that the first checkpoint does not read a long log's
    /// million rows while requests wait for it. Returns the people and the entries it holds.
    pub async fn warm_subject_map(&self) -> Result<(usize, i64), LogError> {
        let mut held = self.subjects.lock().await;
        let size = self.db.log_head().await?.size;
        let indexed = loaded(&self.db, &mut held, size).await?;
        Ok((indexed.map.chains.len(), indexed.applied))
    }

    /// The per-subject map of this instance's latest checkpoint, with its size (none before
    /// this instance signed one).
    pub async fn subject_map(&self) -> Option<(i64, subjects::SubjectMap)> {
        self.checkpointed.lock().await.clone()
    }

    /// The inclusion proof of entry `seq` against the tree of `size` entries, or against the
    /// latest checkpoint (made now if the log grew) when `size` is not given.
    pub async fn inclusion(
        &self,
        seq: i64,
        size: Option<i64>,
        now: i64,
    ) -> Result<InclusionProof, LogError> {
        let (size, note) = match size {
            Some(s) => (s, None),
            None => {
                let (s, n) = self.checkpoint(now).await?;
                (s, Some(n))
            }
        };
        let head = self.db.log_head().await?;
        if size < 1 || size > head.size {
            return Err(LogError::Range(format!(
                "`size` must be 1 to {} (the log size)",
                head.size
            )));
        }
        if seq < 1 || seq > size {
            return Err(LogError::Range(format!(
                "`seq` must be 1 to {size} (the tree size)"
            )));
        }
        let (index, n) = (to_u64(seq - 1)?, to_u64(size)?);
        let (proof, root, leaf) = tree::with_nodes(&self.db, |get| {
            (
                inclusion_path(index, n, get),
                root_from(n, get),
                get(0, index),
            )
        })
        .await?;
        Ok(InclusionProof {
            seq,
            leaf_index: index,
            leaf_hash: hex::encode(leaf),
            tree_size: size,
            root: hex::encode(root),
            proof: proof.iter().map(hex::encode).collect(),
            checkpoint: note,
        })
    }

    /// The consistency proof between the trees of `from` and `to` entries.
    pub async fn consistency(&self, from: i64, to: i64) -> Result<ConsistencyProof, LogError> {
        let head = self.db.log_head().await?;
        if from < 1 || from > to || to > head.size {
            return Err(LogError::Range(format!(
                "need 1 <= from <= to <= {} (the log size)",
                head.size
            )));
        }
        let (m, n) = (to_u64(from)?, to_u64(to)?);
        let (proof, r1, r2) = tree::with_nodes(&self.db, |get| {
            (
                consistency_path(m, n, get),
                root_from(m, get),
                root_from(n, get),
            )
        })
        .await?;
        Ok(ConsistencyProof {
            from,
            to,
            from_root: hex::encode(r1),
            to_root: hex::encode(r2),
            proof: proof.iter().map(hex::encode).collect(),
        })
    }
}

/// The root of the tree of `size` leaves from its complete subtrees.
fn root_from(size: u64, get: &mut dyn FnMut(u32, u64) -> Hash) -> Hash {
    let parts: Vec<Hash> = Frontier::parts(size)
        .into_iter()
        .map(|(h, k)| get(h, k))
        .collect();
    Frontier::from_parts(size, &parts)
        .map(|f| f.root())
        .unwrap_or_else(|| merkle::root(&[]))
}

fn to_u64(v: i64) -> Result<u64, LogError> {
    u64::try_from(v).map_err(|_| LogError::Range("negative".into()))
}

/// Builds the stored tree of a log from before it (migration 0006): reads every leaf once, in
/// pages, stores every complete subtree and the root, under the head's lock.
async fn build_tree(db: &Db) -> Result<(), LogError> {
    let mut tx = db.begin().await?;
    let head = tx.lock_head().await?;
    if head.root.is_some() {
        return Ok(());
    }
    tracing::info!(
        entries = head.size,
        "building the stored Merkle tree of an older log (once)"
    );
    let mut f = Frontier::default();
    let mut chain = GENESIS;
    let mut after = 0i64;
    while after < head.size {
        let upto = head.size.min(after + 100_000);
        let page = db.leaf_hashes(after, upto).await?;
        let mut nodes = Vec::new();
        for (seq, leaf) in page {
            if seq != after + 1 {
                return Err(LogError::Corrupt(format!(
                    "entry {} is missing: run `gateway audit verify`",
                    after + 1
                )));
            }
            chain = chain_hash(&chain, &leaf);
            f.push_with(leaf, |h, k, x| {
                if tree::is_stored_height(h)
                    && let Ok(idx) = i64::try_from(k)
                {
                    nodes.push(NodeRow {
                        height: i64::from(h),
                        idx,
                        hash: *x,
                    });
                }
            });
            after = seq;
        }
        tx.insert_nodes(&nodes).await?;
        if after < upto {
            return Err(LogError::Corrupt(format!(
                "entry {} is missing: run `gateway audit verify`",
                after + 1
            )));
        }
    }
    if head.size > 0 && chain != head.chain_hash {
        return Err(LogError::Corrupt(
            "the log head's chain hash does not match the entries: run `gateway audit verify`"
                .into(),
        ));
    }
    tx.set_head(&HeadRow {
        size: head.size,
        chain_hash: head.chain_hash,
        root: Some(f.root()),
    })
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The latest checkpoint, for the metrics.
/// The map `held`, loaded from its stored rows up to `size` if it was not yet.
async fn loaded<'a>(
    db: &Db,
    held: &'a mut Option<subjects::Indexed>,
    size: i64,
) -> Result<&'a mut subjects::Indexed, LogError> {
    if held.is_none() {
        *held = Some(subjects::Indexed::load(db, size).await?);
    }
    held.as_mut()
        .ok_or_else(|| LogError::Corrupt("the per-subject map was not loaded".into()))
}

fn checkpoint_metrics(size: i64, at: i64) {
    let m = crate::metrics::metrics();
    m.checkpoint_size.set(size);
    m.checkpoint_timestamp.set(at);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::entry::{Kind, Start};

    fn entry(n: i64) -> LogEntry {
        LogEntry::new(Start {
            id: format!("disc-{n}"),
            at: 1_700_000_000 + n,
            trace_id: "t-unit-0001",
            kind: Kind::Check,
            partner: "politie".into(),
            policy_version: "v",
        })
    }

    #[tokio::test]
    async fn the_head_keeps_the_root_of_its_entries() {
        let dir = std::env::temp_dir().join(format!("gw-log-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let db = Db::connect(&format!(
            "sqlite://{}/{}.db",
            dir.display(),
            uuid::Uuid::new_v4().simple()
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        db.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let keys = LogKeys {
            current: LogKey::from_seed("t/disclosures", &[1; 32]).unwrap_or_else(|e| panic!("{e}")),
            retired: vec![],
        };
        let log = Log::open(
            db.clone(),
            keys,
            "t/disclosures".into(),
            Arc::new(crate::clock::SystemClock),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let mut leaves = Vec::new();
        for n in 0..6 {
            let a = log.append(entry(n)).await.unwrap_or_else(|e| panic!("{e}"));
            leaves.push(a.leaf_hash);
            let head = db.log_head().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(head.root, Some(merkle::root(&leaves)), "after {}", n + 1);
        }
    }

    /// Two logs, each with its own writer and connection, on one fresh SQLite file.
    async fn two_logs() -> (Db, Log, Log) {
        let dir = std::env::temp_dir().join(format!("gw-log-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let url = format!(
            "sqlite://{}/{}.db",
            dir.display(),
            uuid::Uuid::new_v4().simple()
        );
        let db = Db::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
        db.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let open = |db: Db| async move {
            let keys = LogKeys {
                current: LogKey::from_seed("t/disclosures", &[1; 32])
                    .unwrap_or_else(|e| panic!("{e}")),
                retired: vec![],
            };
            Log::open(
                db,
                keys,
                "t/disclosures".into(),
                Arc::new(crate::clock::SystemClock),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let a = open(db.clone()).await;
        let b = open(Db::connect(&url).await.unwrap_or_else(|e| panic!("{e}"))).await;
        (db, a, b)
    }

    #[tokio::test]
    async fn two_writers_on_one_sqlite_file_keep_one_chain() {
        // A second process on the same file (a CLI command while serving): each writer's
        // appender finds the other's entries under the head, leaves the batch to the general
        // path, and the log stays one chain with every entry in it.
        let (db, a, b) = two_logs().await;
        let mut leaves = Vec::new();
        for n in 0..8 {
            let log = if n % 3 == 0 { &a } else { &b };
            let got = log.append(entry(n)).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got.seq, n + 1, "one sequence across both writers");
            leaves.push(got.leaf_hash);
        }
        let head = db.log_head().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.size, 8);
        assert_eq!(head.root, Some(merkle::root(&leaves)));
    }

    #[tokio::test]
    async fn the_map_indexed_from_what_the_writer_appended_is_the_map_the_entries_give() {
        // Two writers on one file: A notes its own entries' people as it appends them; B's
        // entries (a gap in A's notes) are read from the log. A's map at its checkpoint must be
        // the one the log's entries give on their own.
        let (db, a, b) = two_logs().await;
        a.warm_subject_map().await.unwrap_or_else(|e| panic!("{e}"));
        for n in 0..40 {
            let mut e = entry(n);
            // People 0..5, some entries about nobody.
            e.data_subject = (n % 7 != 0).then(|| format!("{:064x}", n % 5));
            let log = if n % 4 == 3 { &b } else { &a };
            log.append(e).await.unwrap_or_else(|e| panic!("{e}"));
            if n % 9 == 0 {
                a.index_subjects().await.unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let (size, _) = a
            .checkpoint(1_700_000_100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(size, 40);
        let (at, held) = a.subject_map().await.unwrap_or_else(|| panic!("no map"));
        assert_eq!(at, 40);
        let from_log = subjects::map_at(&db, 40)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(held.head(), from_log.head());
        assert_eq!(held.chains.len(), 5);
        let report = verify::verify(
            &db,
            &a.keys.load().key_set().unwrap_or_else(|e| panic!("{e}")),
            |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(report.first_bad.is_none(), "{:?}", report.first_bad);
    }
}
