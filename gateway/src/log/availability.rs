//! Whether the log can be written now, and what an outage has cost so far: shared by the writer
//! (which takes it down and brings it back), the requests (refused at once while it is down or
//! stalled), readiness and metrics.

use super::entry::{Kind, LogEntry, LogOutage, Outcome, UnrecordedRefusals};
use crate::store::{Fault, StoreError};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A batch in the writer's hands longer than this means the writer cannot commit now: entries
/// are refused at once instead of waiting behind it, and readiness says so.
pub const STALL_MS: u64 = 2_000;

/// Most distinct (kind, problem) pairs counted; problem types are the gateway's own, so this is
/// never reached unless something is wrong, and then the rest is counted under `(other)`.
const MAX_COUNTED: usize = 256;

/// The writer's availability.
#[derive(Debug, Default)]
pub struct Availability {
    /// Process uptime (ms) when the writer went down; 0 while it is up.
    down_since: AtomicU64,
    /// Process uptime (ms) when the batch being written was taken; 0 when none is.
    writing_since: AtomicU64,
    outage: Mutex<Outage>,
}

#[derive(Debug, Default)]
struct Outage {
    /// Wall-clock time of the first failure (0: none).
    from: i64,
    cause: Option<Fault>,
    /// Whether the only trouble so far is a stalled batch.
    stalled_only: bool,
    unrecorded: BTreeMap<(Kind, String), u64>,
    committed_unanswered: Vec<i64>,
}

/// Why an entry is refused before it reaches the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The last write failed and the writer has not written since.
    Down(Fault),
    /// The batch being written has taken longer than [`STALL_MS`].
    Stalled,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::Down(fault) => write!(
                f,
                "the log writer's last batch failed ({}) and none has committed since",
                fault.as_str()
            ),
            Unavailable::Stalled => write!(
                f,
                "the log writer has been writing one batch for more than {} ms",
                STALL_MS
            ),
        }
    }
}

fn lock(m: &Mutex<Outage>) -> std::sync::MutexGuard<'_, Outage> {
    // A panic while holding it cannot leave the counts half-updated in a way that matters more
    // than losing them: go on with what is there.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Availability {
    /// Why entries are refused now, if they are. Every request asks: while the writer is up
    /// and not stalled, two atomic loads and no lock.
    pub fn unavailable(&self) -> Option<Unavailable> {
        if !self.is_down() && !self.stalled() {
            return None;
        }
        let o = lock(&self.outage);
        self.unavailable_locked(&o)
    }

    fn stalled(&self) -> bool {
        let since = self.writing_since.load(Ordering::Acquire);
        since > 0 && crate::metrics::uptime_ms().saturating_sub(since) > STALL_MS
    }

    fn unavailable_locked(&self, o: &Outage) -> Option<Unavailable> {
        if self.is_down() {
            return Some(Unavailable::Down(o.cause.unwrap_or(Fault::Other)));
        }
        self.stalled().then_some(Unavailable::Stalled)
    }

    /// Whether `e` must be refused before it reaches the writer; if so, and it records a
    /// refusal, it is counted. Checked and counted under one lock, so that nothing is counted
    /// into an outage the writer has already closed.
    pub(super) fn refuse_now(&self, e: &LogEntry) -> bool {
        let mut o = lock(&self.outage);
        if self.unavailable_locked(&o).is_none() {
            return false;
        }
        count(&mut o, e);
        true
    }

    /// Whether the writer is down.
    pub fn is_down(&self) -> bool {
        self.down_since.load(Ordering::Acquire) > 0
    }

    /// Marks a batch in the writer's hands (or none).
    pub(super) fn writing(&self, busy: bool) {
        let v = if busy { crate::metrics::uptime_ms() } else { 0 };
        self.writing_since.store(v, Ordering::Release);
    }

    /// A write failed at wall-clock time `now`.
    pub(super) fn go_down(&self, fault: Fault, now: i64) {
        {
            let mut o = lock(&self.outage);
            if o.from == 0 {
                o.from = now;
            }
            // The first fault is the outage's cause (a stall that came first is the lesser
            // name for it); later tries only say it goes on.
            if o.cause
                .is_none_or(|c| c == Fault::Timeout && o.stalled_only)
            {
                o.cause = Some(fault);
            }
            o.stalled_only = false;
        }
        if self.down_since.load(Ordering::Acquire) == 0 {
            self.down_since
                .store(crate::metrics::uptime_ms(), Ordering::Release);
            crate::metrics::metrics().log_outages.inc();
        }
        crate::metrics::metrics().log_writer_available.set(0);
    }

    /// A try to resume failed again with `fault` (said in the operational log only: the
    /// outage's cause stays its first fault).
    pub(super) fn still_down(&self, fault: Fault) {
        tracing::debug!(fault = fault.as_str(), "the log writer is still down");
    }

    /// Counts an entry of a failed batch, if it records a refusal.
    pub(super) fn count_unwritten(&self, e: &LogEntry) {
        count(&mut lock(&self.outage), e);
    }

    /// Entries found committed although their batch was reported failed.
    pub(super) fn committed_unanswered(&self, seqs: std::ops::RangeInclusive<i64>) {
        lock(&self.outage).committed_unanswered.extend(seqs);
    }

    /// The outage entry's content as of `now`.
    pub(super) fn outage(&self, now: i64) -> LogOutage {
        let o = lock(&self.outage);
        LogOutage {
            from: if o.from == 0 { now } else { o.from },
            cause: o.cause.unwrap_or(Fault::Other),
            unrecorded_refusals: o
                .unrecorded
                .iter()
                .map(|((kind, problem), count)| UnrecordedRefusals {
                    kind: *kind,
                    problem: problem.clone(),
                    count: *count,
                })
                .collect(),
            committed_unanswered: o.committed_unanswered.clone(),
        }
    }

    /// `written` is durable: what it reports is off the books, and the writer is up.
    pub(super) fn resumed(&self, written: &LogOutage) {
        let mut o = lock(&self.outage);
        {
            for u in &written.unrecorded_refusals {
                let key = (u.kind, u.problem.clone());
                if let Some(n) = o.unrecorded.get_mut(&key) {
                    *n = n.saturating_sub(u.count);
                    if *n == 0 {
                        o.unrecorded.remove(&key);
                    }
                }
            }
            o.committed_unanswered
                .retain(|s| !written.committed_unanswered.contains(s));
            o.from = 0;
            o.cause = None;
            o.stalled_only = false;
        }
        // Under the lock: a refusal is counted either before this (and is in the map still, for
        // the next outage entry) or refused no more.
        self.down_since.store(0, Ordering::Release);
        drop(o);
        crate::metrics::metrics().log_writer_available.set(1);
    }

    /// Refusals counted and not yet recorded in an outage entry.
    pub fn unrecorded_total(&self) -> u64 {
        lock(&self.outage).unrecorded.values().sum()
    }
}

fn count(o: &mut Outage, e: &LogEntry) {
    if e.outcome != Outcome::Refused {
        return;
    }
    if o.from == 0 {
        // A refusal while the writer is up but stalled: the outage starts with it.
        o.from = e.at;
    }
    if o.cause.is_none() {
        o.cause = Some(Fault::Timeout);
        o.stalled_only = true;
    }
    let mut key = (e.kind, e.problem.clone().unwrap_or_else(|| "(none)".into()));
    if !o.unrecorded.contains_key(&key) && o.unrecorded.len() >= MAX_COUNTED {
        key.1 = "(other)".into();
    }
    *o.unrecorded.entry(key).or_insert(0) += 1;
    crate::metrics::metrics().log_refusals_unrecorded.inc();
}

/// Where a test may make the writer fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Before the transaction begins.
    Begin,
    /// After the changes, before the rows are written.
    Append,
    /// After the rows, before `COMMIT`.
    BeforeCommit,
    /// After a `COMMIT` that succeeded, as if its answer had been lost.
    LostAck,
}

/// A test's plan: called at every point, fails there when it returns true.
#[cfg(test)]
type Plan = Box<dyn FnMut(Point) -> bool + Send>;

/// Faults injected into the writer by the crate's own tests; nothing in a release build.
#[derive(Default)]
pub struct Faults {
    #[cfg(test)]
    plan: Mutex<Option<Plan>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Faults")
    }
}

impl Faults {
    /// Fails at `p` when the plan says so.
    #[cfg_attr(
        not(test),
        expect(clippy::unused_self, reason = "a no-op outside tests")
    )]
    pub(super) fn hit(&self, p: Point) -> Result<(), StoreError> {
        #[cfg(test)]
        if let Some(plan) = self
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
            && plan(p)
        {
            return Err(super::writer::injected());
        }
        let _ = p;
        Ok(())
    }

    /// Sets the plan: called at every point, fails there when it returns true.
    #[cfg(test)]
    pub fn set(&self, plan: impl FnMut(Point) -> bool + Send + 'static) {
        *self
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Box::new(plan));
    }
}
