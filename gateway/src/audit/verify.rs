//! `gateway audit verify`: recomputes every leaf hash, the hash chain, the log head and every
//! checkpoint's tree head and signature, and names the first bad sequence number.

use super::checkpoint::NoteVerifier;
use super::merkle::{Frontier, leaf_hash};
use super::{GENESIS, chain_hash, parse_hash};
use crate::store::{Store, StoreError};

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries read.
    pub entries: i64,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// The first problem: sequence number and what is wrong.
    pub first_bad: Option<(i64, String)>,
}

/// Verifies the whole log in `store`; checkpoints must be signed by `verifier`'s key.
pub async fn verify<S: Store>(store: &S, verifier: &NoteVerifier) -> Result<Report, StoreError> {
    let checkpoints = store.checkpoints().await?;
    let mut pending = checkpoints.iter().peekable();
    let mut report = Report {
        entries: 0,
        checkpoints: 0,
        first_bad: None,
    };
    let mut expected = 1i64;
    let mut prev = GENESIS;
    let mut frontier = Frontier::default();
    let mut after = 0i64;
    let bad = |report: &mut Report, seq: i64, why: String| {
        if report.first_bad.is_none() {
            report.first_bad = Some((seq, why));
        }
    };
    loop {
        let page = store.disclosures(after, 20_000).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (seq, row) in &page {
            if *seq != expected {
                bad(
                    &mut report,
                    expected,
                    format!(
                        "entry {expected} is missing: the log jumps to {seq} (an entry was removed)"
                    ),
                );
                expected = *seq;
            }
            let leaf = leaf_hash(row.entry.as_bytes());
            if row.leaf_hash.as_deref().and_then(parse_hash) != Some(leaf) {
                bad(
                    &mut report,
                    *seq,
                    format!("entry {seq} was changed: its content does not match its leaf hash"),
                );
            }
            let link = chain_hash(&prev, &leaf);
            if row.chain_hash.as_deref().and_then(parse_hash) != Some(link) {
                bad(
                    &mut report,
                    *seq,
                    format!(
                        "entry {seq} does not follow entry {}: the chain is broken (reordered, inserted or changed)",
                        seq - 1
                    ),
                );
            }
            prev = row
                .chain_hash
                .as_deref()
                .and_then(parse_hash)
                .unwrap_or(link);
            frontier.push(leaf);
            report.entries += 1;
            expected += 1;
            while let Some((size, root, note)) = pending.peek() {
                if *size as u64 != frontier.size() {
                    break;
                }
                check_checkpoint(&mut report, verifier, *size, root, note, &frontier);
                pending.next();
            }
        }
    }
    for (size, _, _) in pending {
        report.checkpoints += 1;
        bad(
            &mut report,
            *size,
            format!(
                "checkpoint at size {size} covers entries that are not in the log (entries removed)"
            ),
        );
    }
    let (head_size, head_chain) = store.log_head().await?;
    let found = report.entries;
    if head_size != found {
        bad(
            &mut report,
            found.min(head_size) + 1,
            format!("the log head counts {head_size} entries but {found} were found"),
        );
    } else if parse_hash(&head_chain) != Some(prev) && found > 0 {
        bad(
            &mut report,
            found,
            "the log head's chain hash does not match the last entry".into(),
        );
    }
    Ok(report)
}

fn check_checkpoint(
    report: &mut Report,
    verifier: &NoteVerifier,
    size: i64,
    root: &str,
    note: &str,
    frontier: &Frontier,
) {
    report.checkpoints += 1;
    if report.first_bad.is_some() {
        return;
    }
    let recomputed = frontier.root();
    let problem = match verifier.verify(note) {
        Err(e) => Some(format!("checkpoint at size {size}: {e}")),
        Ok(c) if c.size != size as u64 => {
            Some(format!("checkpoint at size {size} says size {}", c.size))
        }
        Ok(c) if c.root != recomputed || parse_hash(root) != Some(recomputed) => Some(format!(
            "checkpoint at size {size} does not match the entries: an entry up to {size} was changed, removed, reordered or inserted"
        )),
        Ok(_) => None,
    };
    if let Some(p) = problem {
        report.first_bad = Some((size, p));
    }
}
