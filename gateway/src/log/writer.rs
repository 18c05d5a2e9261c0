//! The single writer of the disclosure log: requests wait in a queue, the writer takes every
//! waiting entry into one transaction (group commit), applies the state changes that go with
//! them, links and hashes the entries, stores the tree nodes they complete, and answers each
//! request once its batch is durable.

use super::entry::LogEntry;
use super::merkle::{Frontier, Hash, leaf_hash};
use super::{LogError, chain_hash, tree};
use crate::store::{AppendRows, Change, Db, HeadRow, LeafRow, NodeRow, ProductRow, RecordRow};
use tokio::sync::{mpsc, oneshot};

/// Where an entry landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Sequence number (1-based; the Merkle leaf index is `seq - 1`).
    pub seq: i64,
    /// Leaf hash.
    pub leaf_hash: Hash,
    /// Whether the change that came with it was made (`false`: its precondition no longer
    /// held, nothing changed, and the entry was recorded as that refusal).
    pub applied: bool,
    /// The entry as recorded.
    pub entry: LogEntry,
}

pub(super) struct Job {
    pub(super) entry: LogEntry,
    pub(super) change: Option<Change>,
    pub(super) reply: oneshot::Sender<Result<Appended, LogError>>,
}

/// Largest batch in one transaction.
pub const MAX_BATCH: usize = 512;

/// What the writer knows of the tree between batches.
#[derive(Debug, Clone)]
pub(super) struct TreeState {
    pub(super) size: i64,
    pub(super) chain: Hash,
    pub(super) frontier: Frontier,
}

impl TreeState {
    /// The state at `head`, from the stored tree.
    pub(super) async fn load(db: &Db, head: &HeadRow) -> Result<TreeState, LogError> {
        let size =
            u64::try_from(head.size).map_err(|_| LogError::Corrupt("negative size".into()))?;
        let frontier = tree::frontier(db, size).await?;
        if Some(frontier.root()) != head.root {
            return Err(LogError::Corrupt(
                "the stored tree does not give the log head's root: run `gateway audit verify`"
                    .into(),
            ));
        }
        Ok(TreeState {
            size: head.size,
            chain: head.chain_hash,
            frontier,
        })
    }
}

/// Runs the writer until the queue is closed and drained.
pub(super) async fn run(
    db: Db,
    mut rx: mpsc::Receiver<Job>,
    mut state: TreeState,
    stop: std::sync::Arc<tokio::sync::Notify>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        let first = if stopping {
            rx.recv().await
        } else {
            tokio::select! {
                j = rx.recv() => j,
                () = stop.notified() => {
                    // No new entries from now on; those already queued are still written.
                    rx.close();
                    stopping = true;
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let m = crate::metrics::metrics();
        m.log_queue
            .set(i64::try_from(rx.len() + batch.len()).unwrap_or(i64::MAX));
        m.writer.waiting_since.store(
            crate::metrics::uptime_ms(),
            std::sync::atomic::Ordering::Relaxed,
        );
        write_batch(&db, &mut state, std::mem::take(&mut batch)).await;
        m.writer
            .waiting_since
            .store(0, std::sync::atomic::Ordering::Relaxed);
        m.log_queue.set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
    }
}

async fn write_batch(db: &Db, state: &mut TreeState, jobs: Vec<Job>) {
    // An entry that cannot be serialised is refused on its own, before its change is applied.
    let mut ready = Vec::with_capacity(jobs.len());
    for job in jobs {
        match job.entry.canonical() {
            Ok(text) => ready.push((job, text)),
            Err(e) => {
                tracing::error!(error = %e, "a log entry could not be serialised; its request is refused");
                let _ = job.reply.send(Err(LogError::Entry(e.to_string())));
            }
        }
    }
    if ready.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let m = crate::metrics::metrics();
    match commit(db, state, &mut ready).await {
        Ok((next, done)) => {
            m.committed(ready.len(), started.elapsed().as_secs_f64());
            *state = next;
            for ((job, _), (seq, leaf, applied)) in ready.into_iter().zip(done) {
                let _ = job.reply.send(Ok(Appended {
                    seq,
                    leaf_hash: leaf,
                    applied,
                    entry: job.entry,
                }));
            }
        }
        Err(e) => {
            m.commit_failed();
            tracing::error!(error = %e, entries = ready.len(), "disclosure log batch failed; nothing of it was written");
            let msg = e.to_string();
            for (job, _) in ready {
                let _ = job.reply.send(Err(LogError::Failed(msg.clone())));
            }
        }
    }
}

/// One transaction: lock the head, apply the changes, link and hash, write, commit. On any
/// error nothing of the batch is written (the transaction rolls back when dropped).
async fn commit(
    db: &Db,
    state: &TreeState,
    ready: &mut [(Job, String)],
) -> Result<(TreeState, Vec<(i64, Hash, bool)>), LogError> {
    let mut tx = db.begin().await?;
    let head = tx.lock_head().await?;
    // Another instance may have appended since our last batch: then read the tree's edge anew.
    let mut st = if head.size == state.size && head.chain_hash == state.chain {
        state.clone()
    } else {
        TreeState::load(db, &head).await?
    };
    let mut applied = Vec::with_capacity(ready.len());
    for (job, text) in ready.iter_mut() {
        let ok = match &job.change {
            Some(c) => tx.apply(c).await?,
            None => true,
        };
        if !ok && let Some(c) = &job.change {
            // The change did not happen: the entry says so.
            job.entry.refuse(c.conflict_problem());
            *text = job
                .entry
                .canonical()
                .map_err(|e| LogError::Entry(e.to_string()))?;
        }
        applied.push(ok);
    }
    let mut leaves = Vec::with_capacity(ready.len());
    let mut records: Vec<RecordRow> = Vec::with_capacity(ready.len());
    let mut products: Vec<ProductRow> = Vec::new();
    let mut nodes: Vec<NodeRow> = Vec::new();
    let mut done = Vec::with_capacity(ready.len());
    let mut overflow = false;
    for ((job, text), ok) in ready.iter_mut().zip(applied) {
        let seq = st.size + 1;
        let leaf = leaf_hash(text.as_bytes());
        st.chain = chain_hash(&st.chain, &leaf);
        st.frontier.push_with(leaf, |h, k, x| {
            if tree::is_stored_height(h) {
                match (i64::try_from(k), i64::from(h)) {
                    (Ok(idx), height) => nodes.push(NodeRow {
                        height,
                        idx,
                        hash: *x,
                    }),
                    (Err(_), _) => overflow = true,
                }
            }
        });
        st.size = seq;
        leaves.push(LeafRow {
            seq,
            leaf_hash: leaf,
            chain_hash: st.chain,
        });
        let ix = job.entry.index(seq, std::mem::take(text));
        records.push(ix.record);
        products.extend(ix.products);
        done.push((seq, leaf, ok));
    }
    if overflow {
        return Err(LogError::Corrupt("tree index out of range".into()));
    }
    tx.append_rows(&AppendRows {
        leaves: &leaves,
        records: &records,
        products: &products,
        nodes: &nodes,
        head: &HeadRow {
            size: st.size,
            chain_hash: st.chain,
            root: Some(st.frontier.root()),
        },
    })
    .await?;
    tx.commit().await?;
    Ok((st, done))
}
