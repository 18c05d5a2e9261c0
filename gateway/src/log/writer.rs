//! The single writer of the disclosure log: requests wait in a queue, the writer takes every
//! waiting entry into one transaction (group commit), applies the state changes that go with
//! them, links and hashes the entries, stores the tree nodes they complete, and answers each
//! request once its batch is durable.
//!
//! A batch counts as durable only when its own `COMMIT` succeeded (see [`crate::store::Tx`]).
//! Any failure takes the writer down: from then on every entry is refused at once (counted
//! when it records a refusal) until the writer, trying every few hundred milliseconds, has read
//! the durable head anew and written a `log-outage` entry that says when, why, and what went
//! unrecorded. Sequence numbers come only from that durable head, so a number in a receipt is
//! never handed out twice.

use super::availability::{Availability, Faults, Point};
use super::entry::{Kind, LogEntry, LogOutage, Outcome, Start, new_id};
use super::merkle::{Frontier, Hash, leaf_hash};
use super::{LogError, chain_hash, tree};
use crate::clock::Clock;
use crate::store::appender::{AppendError, Appender, OwnedRows};
use crate::store::view::Register;
use crate::store::{
    Change, Db, EntryNames, Fault, HeadRow, LeafRow, NodeRow, ProductRow, RecordRow, SubjectRow,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
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

/// Longest a batch's transaction may take before the writer gives it up (the database's own
/// busy wait is 5 s); its outcome is then read from the durable head.
const COMMIT_LIMIT: Duration = Duration::from_secs(10);

/// How long a look at the durable head may take while the writer is down.
const HEAD_LIMIT: Duration = Duration::from_secs(1);

/// Pause between two tries to resume: short, so that the gateway is back within seconds.
const RETRY: Duration = Duration::from_millis(250);

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

    fn is_at(&self, head: &HeadRow) -> bool {
        head.size == self.size && head.chain_hash == self.chain
    }
}

/// A batch whose `COMMIT` was sent but not confirmed: whether it is in the log is read from
/// the durable head when the writer resumes.
#[derive(Debug)]
struct Attempt {
    /// Size before the batch.
    from: i64,
    /// Its leaf hashes, in order from `from + 1`.
    leaves: Vec<Hash>,
    /// The refusal counts it reported, when it was an outage entry.
    outage: Option<LogOutage>,
}

/// A failed batch: why, and what was sent if the `COMMIT` itself went out.
struct Failure {
    error: LogError,
    attempt: Option<Attempt>,
}

/// The writer task's own state.
pub(super) struct Writer {
    /// The writer's connection (one, its own).
    pub(super) db: Db,
    /// The shared pool, for fresh reads of the durable head after a failure.
    pub(super) reader: Db,
    /// The case register in memory, kept current here (see [`crate::store::view`]).
    pub(super) register: Arc<Register>,
    /// On SQLite, the appender thread for batches that change nothing but the log.
    pub(super) appender: Option<Appender>,
    pub(super) state: TreeState,
    pub(super) availability: Arc<Availability>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) faults: Arc<Faults>,
    /// The policy version of the latest entry written, for the writer's own entries.
    pub(super) policy_version: String,
    uncertain: Option<Attempt>,
    /// Where each appended entry's person is noted for the per-subject map.
    pending: Option<Arc<super::subjects::Pending>>,
}

impl Writer {
    /// A writer at `state`.
    pub(super) fn new(
        db: Db,
        reader: Db,
        register: Arc<Register>,
        state: TreeState,
        availability: Arc<Availability>,
        clock: Arc<dyn Clock>,
        faults: Arc<Faults>,
    ) -> Writer {
        Writer {
            db,
            reader,
            register,
            appender: None,
            state,
            availability,
            clock,
            faults,
            policy_version: String::from("(none)"),
            uncertain: None,
            pending: None,
        }
    }

    /// The same writer, noting each appended entry's person for the per-subject map.
    pub(super) fn with_pending(mut self, pending: Arc<super::subjects::Pending>) -> Writer {
        self.pending = Some(pending);
        self
    }

    /// The same writer, appending through `appender` what changes nothing but the log.
    pub(super) fn with_appender(mut self, appender: Option<Appender>) -> Writer {
        self.appender = appender;
        self
    }
}

/// Times the writer lets the requests that are just finishing queue their entries before it
/// writes a batch, as long as each time brought more: the requests the last commit answered
/// come back with their next entries a moment later, and one transaction for all of them costs
/// one `fsync` instead of several.
const GATHER_ROUNDS: usize = 4;

/// Takes what waits in the queue into `batch`, up to [`MAX_BATCH`].
async fn gather(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    for round in 0..=GATHER_ROUNDS {
        let before = batch.len();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() >= MAX_BATCH
            || round == GATHER_ROUNDS
            || (round > 0 && batch.len() == before)
        {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Runs the writer until the queue is closed and drained.
pub(super) async fn run(
    mut w: Writer,
    mut rx: mpsc::Receiver<Job>,
    stop: Arc<tokio::sync::Notify>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        if w.availability.is_down() {
            if stopping {
                refuse_all(&mut rx, &w.availability).await;
                break;
            }
            refuse_waiting(&mut rx, &w.availability);
            if w.resume().await {
                // Refusals counted while the outage entry was being written: recorded at once,
                // in one more entry (the writer is up now, so no more are counted).
                if w.availability.unrecorded_total() > 0 {
                    w.resume().await;
                }
                continue;
            }
            // Until the next try, every entry that still reaches the queue is refused at once.
            let next = tokio::time::sleep(RETRY);
            tokio::pin!(next);
            loop {
                tokio::select! {
                    () = &mut next => break,
                    j = rx.recv() => match j {
                        Some(j) => refuse(j, &w.availability),
                        None => { stopping = true; break; }
                    },
                    () = stop.notified() => { rx.close(); stopping = true; break; }
                }
            }
            continue;
        }
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
        gather(&mut rx, &mut batch).await;
        let m = crate::metrics::metrics();
        m.log_queue
            .set(i64::try_from(rx.len() + batch.len()).unwrap_or(i64::MAX));
        w.availability.writing(true);
        w.write_batch(std::mem::take(&mut batch)).await;
        w.availability.writing(false);
        m.log_queue.set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
        // Refusals counted while this batch stalled, or just as an outage ended: recorded now.
        if !w.availability.is_down() && w.availability.unrecorded_total() > 0 {
            w.resume().await;
        }
    }
    let left = w.availability.unrecorded_total();
    if left > 0 {
        tracing::error!(
            refusals = left,
            "the log writer stopped during an outage: these refusals could not be recorded, and no log-outage entry says so; the next start does not know them"
        );
    }
}

/// Refuses an entry the writer could not write; a refusal is counted for the outage entry.
fn refuse(job: Job, availability: &Availability) {
    availability.count_unwritten(&job.entry);
    let _ = job.reply.send(Err(LogError::Unavailable));
}

/// Refuses what is queued now.
fn refuse_waiting(rx: &mut mpsc::Receiver<Job>, availability: &Availability) {
    while let Ok(job) = rx.try_recv() {
        refuse(job, availability);
    }
}

/// Refuses everything until the queue is closed and empty (stopping while down).
async fn refuse_all(rx: &mut mpsc::Receiver<Job>, availability: &Availability) {
    rx.close();
    while let Some(job) = rx.recv().await {
        refuse(job, availability);
    }
}

impl Writer {
    async fn write_batch(&mut self, jobs: Vec<Job>) {
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
        if let Some((job, _)) = ready.last() {
            self.policy_version.clone_from(&job.entry.policy_version);
        }
        let started = std::time::Instant::now();
        let m = crate::metrics::metrics();
        match self.commit_bounded(&mut ready).await {
            Ok((next, done)) => {
                m.committed(ready.len(), started.elapsed().as_secs_f64());
                self.state = next;
                // The register in memory follows what was committed, before anyone is answered.
                let mut mirrored = true;
                for ((job, _), d) in ready.iter().zip(&done) {
                    if let (Some(c), true) = (&job.change, d.2) {
                        mirrored &= self.register.apply(c);
                    }
                }
                if !mirrored {
                    self.reload_register().await;
                }
                for ((job, _), (seq, leaf, applied)) in ready.into_iter().zip(done) {
                    if let Some(p) = &self.pending {
                        p.push(seq, job.entry.data_subject.clone(), leaf);
                    }
                    let _ = job.reply.send(Ok(Appended {
                        seq,
                        leaf_hash: leaf,
                        applied,
                        entry: job.entry,
                    }));
                }
            }
            Err(f) => {
                self.failed(f, ready.len());
                for (job, _) in ready {
                    refuse(job, &self.availability);
                }
            }
        }
    }

    /// Takes the writer down after a failed batch.
    fn failed(&mut self, f: Failure, entries: usize) {
        let fault = f.error.fault();
        crate::metrics::metrics().commit_failed();
        if self.availability.is_down() {
            // A try to resume during an outage (four a second): said once, when it began.
            tracing::debug!(error = %f.error, fault = fault.as_str(), "the log writer is still down");
        } else {
            tracing::error!(
                error = %f.error,
                fault = fault.as_str(),
                entries,
                commit_sent = f.attempt.is_some(),
                "disclosure log batch failed: nothing of it is answered, and nothing is disclosed until the log is written again"
            );
        }
        self.availability.go_down(fault, self.clock.now());
        if f.attempt.is_some() {
            self.uncertain = f.attempt;
        }
    }

    /// One batch within [`COMMIT_LIMIT`]; a batch given up is closed with its connection and
    /// its outcome read later, like any failed `COMMIT`.
    async fn commit_bounded(
        &mut self,
        ready: &mut [(Job, String)],
    ) -> Result<(TreeState, Vec<(i64, Hash, bool)>), Failure> {
        let mut attempt = None;
        let r = tokio::time::timeout(
            COMMIT_LIMIT,
            commit(
                Sinks {
                    db: &self.db,
                    reader: &self.reader,
                    appender: self.appender.as_ref(),
                    register: &self.register,
                },
                &self.state,
                ready,
                &self.faults,
                &mut attempt,
            ),
        )
        .await;
        match r {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(error)) => Err(Failure { error, attempt }),
            Err(_) => Err(Failure {
                error: LogError::TimedOut,
                attempt,
            }),
        }
    }

    /// One try to resume: read the durable head on a fresh connection, settle a batch whose
    /// `COMMIT` was not confirmed, and write the `log-outage` entry. True once it is durable.
    async fn resume(&mut self) -> bool {
        let head = match tokio::time::timeout(HEAD_LIMIT, self.reader.log_head()).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                self.availability.still_down(e.fault());
                return false;
            }
            Err(_) => {
                self.availability.still_down(Fault::Timeout);
                return false;
            }
        };
        if let Some(a) = self.uncertain.take()
            && let Err(e) = self.settle(&a, &head).await
        {
            self.availability.still_down(e.fault());
            self.uncertain = Some(a);
            return false;
        }
        if !self.state.is_at(&head) {
            match TreeState::load(&self.reader, &head).await {
                Ok(s) => self.state = s,
                Err(e) => {
                    tracing::error!(error = %e, "the log writer cannot read the durable tree");
                    self.availability.still_down(e.fault());
                    return false;
                }
            }
        }
        // A batch whose outcome was unknown may have changed the register.
        if let Err(e) = self.register.reload(&self.reader).await {
            self.availability.still_down(e.fault());
            return false;
        }
        let outage = self.availability.outage(self.clock.now());
        let mut entry = LogEntry::new(Start {
            id: new_id(),
            at: self.clock.now(),
            trace_id: &uuid::Uuid::new_v4().to_string(),
            kind: Kind::LogOutage,
            partner: "(gateway)".into(),
            policy_version: &self.policy_version,
        });
        entry.outcome = super::entry::Outcome::Answered;
        entry.log_outage = Some(outage.clone());
        let text = match entry.canonical() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "the log-outage entry could not be serialised");
                return false;
            }
        };
        let (reply, _) = oneshot::channel();
        let mut ready = vec![(
            Job {
                entry,
                change: None,
                reply,
            },
            text,
        )];
        match self.commit_bounded(&mut ready).await {
            Ok((next, done)) => {
                self.state = next;
                let seq = done.first().map_or(0, |d| d.0);
                self.availability.resumed(&outage);
                tracing::warn!(
                    seq,
                    from = outage.from,
                    fault = outage.cause.as_str(),
                    unrecorded = outage
                        .unrecorded_refusals
                        .iter()
                        .map(|u| u.count)
                        .sum::<u64>(),
                    committed_unanswered = outage.committed_unanswered.len(),
                    "the disclosure log is written again; the outage is recorded in the log"
                );
                true
            }
            Err(mut f) => {
                if let Some(a) = f.attempt.as_mut() {
                    a.outage = Some(outage);
                }
                self.failed(f, 1);
                false
            }
        }
    }

    /// Reads the register again; while it cannot, it stays marked stale and every disclosure
    /// decided from it is refused (see [`Register::still_current`]).
    async fn reload_register(&self) {
        if let Err(e) = self.register.reload(&self.reader).await {
            tracing::error!(error = %e, "the case register could not be read again; disclosures are refused until it is");
        }
    }

    /// Decides from the durable log whether an unconfirmed batch was committed.
    async fn settle(&mut self, a: &Attempt, head: &HeadRow) -> Result<(), LogError> {
        let upto = a.from + i64::try_from(a.leaves.len()).unwrap_or(i64::MAX);
        let stored = if head.size >= upto {
            self.reader.leaf_hashes(a.from, upto).await?
        } else {
            Vec::new()
        };
        let written = stored.len() == a.leaves.len()
            && stored.iter().zip(&a.leaves).all(|((_, s), l)| s == l);
        if written {
            tracing::warn!(
                first = a.from + 1,
                last = upto,
                "a log batch whose COMMIT was not confirmed is in the log: its requests were refused, and the log-outage entry lists it"
            );
            match &a.outage {
                // The outage entry itself: what it counted is recorded.
                Some(o) => self.availability.resumed(o),
                None => self.availability.committed_unanswered(a.from + 1..=upto),
            }
        }
        Ok(())
    }
}

/// Each entry's place in a batch: (seq, leaf hash, whether its change was made).
type Placed = Vec<(i64, Hash, bool)>;

/// Where a batch goes: the writer's connection, the shared pool (fresh reads), the SQLite
/// appender if there is one, and the register in memory.
struct Sinks<'a> {
    db: &'a Db,
    reader: &'a Db,
    appender: Option<&'a Appender>,
    register: &'a Register,
}

/// One transaction: lock the head, apply the changes, link and hash, write, commit. On any
/// error nothing of the batch is written (the connection is closed and the database rolls the
/// transaction back), except that a failed `COMMIT` may have happened after all: `attempt` is
/// then set, and the durable head decides. A batch that changes nothing but the log goes to the
/// SQLite appender when there is one (see [`crate::store::appender`]); when the head moved
/// under it, the general path takes the batch.
async fn commit(
    sinks: Sinks<'_>,
    state: &TreeState,
    ready: &mut [(Job, String)],
    faults: &Faults,
    attempt: &mut Option<Attempt>,
) -> Result<(TreeState, Placed), LogError> {
    let Sinks {
        db,
        reader,
        appender,
        register,
    } = sinks;
    faults.hit(Point::Begin)?;
    // Only a batch with nothing to refuse: an entry marked refused here could not be unmarked
    // if the general path had to take the batch after all.
    if let Some(appender) = appender
        && !register.is_stale()
        && ready
            .iter()
            .all(|(j, _)| j.change.is_none() && decided_on_current(register, &j.entry))
    {
        let mut st = state.clone();
        let (rows, done) = rows_of(&mut st, ready, vec![true; ready.len()])?;
        faults.hit(Point::Append)?;
        let abort = faults.hit(Point::BeforeCommit).err();
        if abort.is_none() {
            *attempt = Some(Attempt {
                from: state.size,
                leaves: done.iter().map(|d| d.1).collect(),
                outage: None,
            });
        }
        let expected = HeadRow {
            size: state.size,
            chain_hash: state.chain,
            root: None,
        };
        match appender.append(&expected, rows, abort.is_some()).await {
            Ok(()) => {
                faults.hit(Point::LostAck)?;
                return Ok((st, done));
            }
            Err(AppendError::HeadMoved) => {
                // Another writer appended: nothing was written; the general path reads the
                // tree and the register anew. The entries' texts are rebuilt there.
                *attempt = None;
                for (job, text) in ready.iter_mut() {
                    *text = job
                        .entry
                        .canonical()
                        .map_err(|e| LogError::Entry(e.to_string()))?;
                }
            }
            Err(AppendError::Aborted) => {
                return Err(abort.map_or(LogError::Unavailable, LogError::Store));
            }
            Err(e) => return Err(LogError::Store(e.into())),
        }
    }
    let mut tx = db.begin().await?;
    let head = tx.lock_head().await?;
    // Another instance may have appended since our last batch: then read the tree's edge anew
    // (through the shared pool: the writer's one connection holds this transaction).
    let mut st = if state.is_at(&head) {
        state.clone()
    } else {
        // Its changes too: the register in memory follows them (failing the batch if it
        // cannot, so that nothing is decided from a view that missed them).
        follow(register, reader, state.size, head.size).await?;
        TreeState::load(reader, &head).await?
    };
    if register.is_stale() {
        register.reload(reader).await?;
    }
    let mut applied = Vec::with_capacity(ready.len());
    // What the changes before each entry in this batch changed: a disclosure after them in
    // the log was decided on the case before them, and must not say otherwise.
    let mut touched = Touched::default();
    for (job, _) in ready.iter() {
        applied.push(match &job.change {
            Some(c) => {
                let ok = tx.apply(c).await?;
                if ok {
                    touched.note(c);
                }
                ok
            }
            // A disclosure decided from the register in memory: still what it was then?
            None => !touched.names(&job.entry) && decided_on_current(register, &job.entry),
        });
    }
    mark_refused(ready, &applied)?;
    let from = st.size;
    let (rows, done) = rows_of(&mut st, ready, applied)?;
    faults.hit(Point::Append)?;
    tx.append_rows(&rows.as_rows()).await?;
    faults.hit(Point::BeforeCommit)?;
    *attempt = Some(Attempt {
        from,
        leaves: done.iter().map(|d| d.1).collect(),
        outage: None,
    });
    tx.commit().await?;
    // A commit that happened but was reported as failed (a connection lost on the way back).
    faults.hit(Point::LostAck)?;
    Ok((st, done))
}

/// The entries whose change did not happen, or whose case changed under their decision, say so.
fn mark_refused(ready: &mut [(Job, String)], applied: &[bool]) -> Result<(), LogError> {
    for ((job, text), ok) in ready.iter_mut().zip(applied) {
        if !ok {
            job.entry.refuse(
                job.change
                    .as_ref()
                    .map_or(STALE_DECISION, Change::conflict_problem),
            );
            *text = job
                .entry
                .canonical()
                .map_err(|e| LogError::Entry(e.to_string()))?;
        }
    }
    Ok(())
}

/// Links and hashes the batch from `st` (which it advances) into the rows to write, and each
/// entry's place: (seq, leaf hash, applied).
fn rows_of(
    st: &mut TreeState,
    ready: &mut [(Job, String)],
    applied: Vec<bool>,
) -> Result<(OwnedRows, Placed), LogError> {
    let mut leaves = Vec::with_capacity(ready.len());
    let mut records: Vec<RecordRow> = Vec::with_capacity(ready.len());
    let mut products: Vec<ProductRow> = Vec::new();
    let mut nodes: Vec<NodeRow> = Vec::new();
    let mut subjects: Vec<SubjectRow> = Vec::new();
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
        // The entry's place in the per-subject map, in the same transaction as the entry (the
        // person as this entry names it; the map itself is indexed from it in memory).
        if let Some(p) = &job.entry.data_subject {
            subjects.push(SubjectRow {
                key: hex::encode(super::subjects::key_of(p)),
                seq,
            });
        }
        let ix = job.entry.index(seq, std::mem::take(text));
        records.push(ix.record);
        products.extend(ix.products);
        done.push((seq, leaf, ok));
    }
    if overflow {
        return Err(LogError::Corrupt("tree index out of range".into()));
    }
    let head = HeadRow {
        size: st.size,
        chain_hash: st.chain,
        root: Some(st.frontier.root()),
    };
    Ok((
        OwnedRows {
            leaves,
            records,
            products,
            nodes,
            subjects,
            head,
        },
        done,
    ))
}

/// The cases the changes so far in a batch changed (all of them, after a change of many).
#[derive(Default)]
struct Touched {
    cases: std::collections::HashSet<String>,
    all: bool,
}

impl Touched {
    fn note(&mut self, c: &Change) {
        match c {
            Change::CreateCase { case, .. } | Change::UpdateCase { case, .. } => {
                self.cases.insert(case.id.clone());
            }
            Change::RemoveExpired(_) | Change::Rekey(_) | Change::Reseal(_) => self.all = true,
            Change::PutRecords(_)
            | Change::InsertDraft(_)
            | Change::ApproveDraft { .. }
            | Change::ActivateDraft { .. }
            | Change::Bootstrap(_) => {}
        }
    }

    /// Whether `entry` records a decision about a case changed before it in the batch.
    fn names(&self, entry: &LogEntry) -> bool {
        entry.decision.is_some()
            && entry
                .case_id
                .as_ref()
                .is_some_and(|id| self.all || self.cases.contains(id))
    }
}

/// Beyond this many entries of another instance, the register is read whole rather than
/// followed entry by entry.
const FOLLOW_AT_MOST: i64 = 10_000;

/// What another instance's entries `after+1..=upto` changed in the case register, as the view
/// must follow it: the cases they changed and the people they deposited for, or everything.
#[derive(Debug, Default, PartialEq, Eq)]
struct Followed {
    cases: BTreeSet<String>,
    subjects: BTreeSet<String>,
    /// Read the register whole: a retention run, a key step, an entry whose content is gone or
    /// that does not say what it changed.
    whole: bool,
}

impl Followed {
    fn of(names: &[EntryNames], expected: i64) -> Followed {
        let mut f = Followed {
            whole: i64::try_from(names.len()).ok() != Some(expected),
            ..Followed::default()
        };
        for n in names {
            let answered = n.outcome.parse::<Outcome>().ok() == Some(Outcome::Answered);
            match n.kind.parse::<Kind>() {
                Ok(Kind::CaseChange) => match &n.case_id {
                    Some(id) => {
                        f.cases.insert(id.clone());
                    }
                    None => f.whole |= answered,
                },
                Ok(Kind::Deposit) => match &n.subject_pseudonym {
                    Some(p) => {
                        f.subjects.insert(p.clone());
                    }
                    None => f.whole |= answered,
                },
                // These change rows the view cannot name one by one.
                Ok(Kind::Retention | Kind::Keys) | Err(_) => f.whole = true,
                Ok(_) => {}
            }
        }
        f
    }
}

/// Brings the register in memory up to another instance's entries after `after` up to `upto`:
/// only the cases they changed and the people they deposited for are read again, unless
/// something else may have changed (then the register is read whole).
async fn follow(register: &Register, reader: &Db, after: i64, upto: i64) -> Result<(), LogError> {
    if !register.is_stale() && upto - after <= FOLLOW_AT_MOST {
        let f = Followed::of(
            &reader.entry_names_between(after, upto).await?,
            upto - after,
        );
        if !f.whole && register.refresh(reader, &f.cases, &f.subjects).await? {
            crate::metrics::metrics()
                .register_reads
                .get_or_create(&crate::metrics::ReasonLabel { reason: "followed" })
                .inc();
            return Ok(());
        }
    }
    // Counted there as read whole.
    Ok(register.reload(reader).await?)
}

/// The problem of a disclosure whose case changed while it was decided.
const STALE_DECISION: &str = "case-conflict";

/// Whether an entry's decision rests on the case as it is now (an entry that records no
/// decision rests on nothing of it).
fn decided_on_current(register: &Register, entry: &LogEntry) -> bool {
    let (Some(d), Some(case)) = (&entry.decision, &entry.case_id) else {
        return true;
    };
    register.still_current(case, d.case_version)
}

impl LogError {
    /// The class of the failure, for the outage entry and metrics.
    pub fn fault(&self) -> Fault {
        match self {
            LogError::Store(e) => e.fault(),
            LogError::TimedOut => Fault::Timeout,
            _ => Fault::Other,
        }
    }
}

#[cfg(test)]
/// The error an injected fault raises: what a full disk looks like to the writer.
pub(super) fn injected() -> crate::store::StoreError {
    crate::store::StoreError::Database(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::StorageFull,
        "injected fault",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_after_a_change_of_its_case_in_the_same_batch_is_not_current() {
        use crate::log::entry::{DecisionInputs, Start};
        let mut e = LogEntry::new(Start {
            id: "disc-1".into(),
            at: 1_800_000_000,
            trace_id: "t",
            kind: Kind::Disclosure,
            partner: "rn".into(),
            policy_version: "v",
        });
        e.case_id = Some("case-1".into());
        e.decision = Some(DecisionInputs {
            case_version: 3,
            case_status: policy::CaseStatus::Opgenomen,
            relation: policy::Relation::IsRegisseur,
            satisfied_by: "regisseur".into(),
            sources: std::collections::BTreeMap::new(),
        });
        let mut t = Touched::default();
        assert!(!t.names(&e));
        t.note(&Change::ApproveDraft {
            id: "draft-1".into(),
            partner: "oov".into(),
            staff: "pa.1".into(),
            at: 1_800_000_000,
        });
        assert!(!t.names(&e), "a draft changes no case");
        t.note(&Change::Rekey(crate::store::Rekey::default()));
        assert!(t.names(&e), "a re-key changes every case");
        e.decision = None;
        assert!(!t.names(&e), "an entry without a decision rests on no case");
    }
    use super::super::availability::Point;
    use super::super::entry::{Kind, LogEntry, Outcome, Start};
    use super::super::{Log, LogError, LogKeys, checkpoint::LogKey};
    use crate::store::Db;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[test]
    fn another_instances_entries_name_what_the_register_reads_again_or_make_it_read_whole() {
        use super::{EntryNames, Followed};
        let n = |seq: i64, kind: &str, outcome: &str, case: Option<&str>, subject: Option<&str>| {
            EntryNames {
                seq,
                kind: kind.into(),
                outcome: outcome.into(),
                case_id: case.map(str::to_owned),
                subject_pseudonym: subject.map(str::to_owned),
            }
        };
        let names = [
            n(1, "disclosure", "answered", Some("c1"), Some("p1")),
            n(2, "case-change", "answered", Some("c2"), Some("p2")),
            n(3, "deposit", "answered", None, Some("p3")),
            // A refused create names no case and changed nothing.
            n(4, "case-change", "refused", None, None),
            n(5, "policy", "answered", None, None),
        ];
        let f = Followed::of(&names, 5);
        assert!(!f.whole);
        assert_eq!(f.cases, BTreeSet::from(["c2".to_owned()]));
        assert_eq!(f.subjects, BTreeSet::from(["p3".to_owned()]));
        // An entry whose content is gone (retention) hides what it changed.
        assert!(Followed::of(&names, 6).whole);
        for whole in [
            n(6, "retention", "answered", None, None),
            n(6, "keys", "answered", None, None),
            n(6, "a-kind-of-a-later-version", "answered", None, None),
            n(6, "deposit", "answered", None, None),
            n(6, "case-change", "answered", None, None),
        ] {
            let mut more = names.to_vec();
            more.push(whole.clone());
            assert!(Followed::of(&more, 6).whole, "{whole:?}");
        }
    }

    async fn open() -> (Db, Log) {
        let dir = std::env::temp_dir().join(format!("gw-writer-faults-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::connect(&format!(
            "sqlite://{}/{}.db",
            dir.display(),
            uuid::Uuid::new_v4().simple()
        ))
        .await
        .unwrap();
        db.migrate().await.unwrap();
        let keys = LogKeys {
            current: LogKey::from_seed("t/disclosures", &[1; 32]).unwrap(),
            retired: vec![],
        };
        let clock = Arc::new(crate::clock::FixedClock::new(crate::testkit::T0));
        let log = Log::open(db.clone(), keys, "t/disclosures".into(), clock)
            .await
            .unwrap();
        (db, log)
    }

    fn entry(n: usize, refused: bool) -> LogEntry {
        let mut e = LogEntry::new(Start {
            id: format!("disc-{n}"),
            at: crate::testkit::T0,
            trace_id: "t-unit-0001",
            kind: Kind::Check,
            partner: "politie".into(),
            policy_version: "v",
        });
        if refused {
            e.refuse("purpose-relation");
        } else {
            e.outcome = Outcome::Answered;
        }
        e
    }

    /// What a requester was told: seq, leaf hash, entry id.
    type Answered = (i64, [u8; 32], String);

    /// Appends `n` entries from `tasks` concurrent requesters while the writer fails at the
    /// planned hits, then lets it recover; checks the invariants of issue 39.
    async fn run(n: usize, tasks: usize, fail_at: BTreeSet<usize>) {
        let (db, log) = open().await;
        let log = Arc::new(log);
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        log.faults().set(move |_: Point| {
            let i = counter.fetch_add(1, Ordering::SeqCst);
            fail_at.contains(&i)
        });
        let answers: Arc<Mutex<Vec<Answered>>> = Arc::default();
        let refused_unwritten = Arc::new(AtomicUsize::new(0));
        let mut all = Vec::new();
        for t in 0..tasks {
            let (log, answers, lost) = (log.clone(), answers.clone(), refused_unwritten.clone());
            all.push(tokio::spawn(async move {
                for k in (t..n).step_by(tasks) {
                    let refused = k % 3 == 0;
                    match log.append(entry(k, refused)).await {
                        Ok(a) => answers
                            .lock()
                            .unwrap()
                            .push((a.seq, a.leaf_hash, a.entry.id)),
                        Err(LogError::Unavailable) if refused => {
                            lost.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(LogError::Unavailable) => {}
                        Err(e) => panic!("{e}"),
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        for t in all {
            t.await.unwrap();
        }
        // No more faults: the writer resumes by itself.
        log.faults().set(|_| false);
        let t0 = std::time::Instant::now();
        let mut flush = n;
        while log.availability().is_down() || log.availability().unrecorded_total() > 0 {
            assert!(t0.elapsed().as_secs() < 10, "the writer did not resume");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            // A write after the outage records counts made as it ended.
            if !log.availability().is_down() {
                flush += 1;
                let _ = log.append(entry(flush, false)).await;
            }
        }
        let stored = db.entries(0, 1_000_000).await.unwrap();
        let by_seq: HashMap<i64, &crate::store::StoredEntry> =
            stored.iter().map(|e| (e.leaf.seq, e)).collect();
        // Every acknowledged entry is durable with that seq and leaf hash; no seq twice.
        let answers = std::mem::take(&mut *answers.lock().unwrap());
        let mut seqs = BTreeSet::new();
        for (seq, leaf, id) in answers.iter() {
            assert!(seqs.insert(*seq), "seq {seq} answered twice");
            let e = by_seq
                .get(seq)
                .unwrap_or_else(|| panic!("seq {seq} is not in the log"));
            assert_eq!(&e.leaf.leaf_hash, leaf, "seq {seq}");
            assert_eq!(&e.record.as_ref().unwrap().id, id, "seq {seq}");
        }
        // Every refusal is in the log: one by one, or counted in an outage entry.
        let mut counted = 0u64;
        let mut committed_unanswered = BTreeSet::new();
        for e in &stored {
            let entry = LogEntry::parse(e.leaf.seq, &e.record.as_ref().unwrap().entry).unwrap();
            if let Some(o) = entry.log_outage {
                counted += o.unrecorded_refusals.iter().map(|u| u.count).sum::<u64>();
                committed_unanswered.extend(o.committed_unanswered);
            }
        }
        assert_eq!(
            counted,
            u64::try_from(refused_unwritten.load(Ordering::SeqCst)).unwrap()
        );
        // An entry the writer could not confirm is either answered or named as unanswered.
        for seq in &committed_unanswered {
            assert!(
                !seqs.contains(seq),
                "seq {seq} answered and listed unanswered"
            );
        }
        let ids: BTreeMap<&str, i64> = stored
            .iter()
            .map(|e| (e.record.as_ref().unwrap().id.as_str(), e.leaf.seq))
            .collect();
        assert_eq!(ids.len(), stored.len(), "an entry written twice");
        let keys = log.key_set().unwrap();
        let report = super::super::verify::verify(&db, &keys, |_| {})
            .await
            .unwrap();
        assert_eq!(report.first_bad, None);
        assert_eq!(
            report.entries,
            i64::try_from(stored.len()).unwrap(),
            "audit verify reads every entry"
        );
        log.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_commit_acknowledgement_is_found_and_named() {
        // The second batch's COMMIT succeeds but its answer is lost: its requests are refused,
        // and the outage entry names the entries that are in the log all the same.
        let (db, log) = open().await;
        log.append(entry(0, false)).await.unwrap();
        let mut once = true;
        log.faults().set(move |p| {
            let fail = once && p == Point::LostAck;
            once &= !fail;
            fail
        });
        assert!(matches!(
            log.append(entry(1, false)).await,
            Err(LogError::Unavailable)
        ));
        let t0 = std::time::Instant::now();
        while log.availability().is_down() {
            assert!(t0.elapsed().as_secs() < 10);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let a = log.append(entry(2, false)).await.unwrap();
        assert_eq!(
            a.seq, 4,
            "seq 2 is the unconfirmed entry, 3 the outage entry"
        );
        let outage = db.entries(2, 1).await.unwrap();
        let outage = LogEntry::parse(3, &outage[0].record.as_ref().unwrap().entry).unwrap();
        assert_eq!(outage.kind, Kind::LogOutage);
        assert_eq!(outage.log_outage.unwrap().committed_unanswered, vec![2]);
        log.shutdown().await;
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn no_acknowledged_entry_is_lost_and_no_refusal_unaccounted_for(
            fail_at in proptest::collection::btree_set(0usize..120, 0..12),
            tasks in 1usize..6,
        ) {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(run(60, tasks, fail_at));
        }
    }
}
