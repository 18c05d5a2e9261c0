//! `gateway audit verify`: recomputes every leaf hash, the hash chain, the log head and every
//! checkpoint's tree head and signature, and names the first bad sequence number. Works on the
//! database or on an export (`gateway audit export`), whose embedded proofs it checks too.

use super::checkpoint::NoteVerifier;
use super::merkle::{Frontier, Hash, leaf_hash, verify_inclusion};
use super::{GENESIS, chain_hash, parse_hash};
use crate::store::{Store, StoreError};
use std::io::BufRead;

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries read.
    pub entries: i64,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// Inclusion proofs checked (exports only).
    pub proofs: usize,
    /// The first problem: sequence number and what is wrong.
    pub first_bad: Option<(i64, String)>,
}

/// Verification in one pass over the entries, in sequence order.
pub struct Pass<'a> {
    verifier: &'a NoteVerifier,
    checkpoints: Vec<(i64, String, String)>,
    next_checkpoint: usize,
    roots: std::collections::BTreeMap<i64, Hash>,
    expected: i64,
    prev: Hash,
    frontier: Frontier,
    report: Report,
    /// Embedded proofs waiting for their checkpoint's size to be reached.
    pending_proofs: Vec<(i64, String, i64, Vec<Hash>)>,
}

impl<'a> Pass<'a> {
    /// Starts a pass; `checkpoints` are (size, root hex, note), by size.
    pub fn new(verifier: &'a NoteVerifier, checkpoints: Vec<(i64, String, String)>) -> Self {
        Pass {
            verifier,
            checkpoints,
            next_checkpoint: 0,
            roots: Default::default(),
            expected: 1,
            prev: GENESIS,
            frontier: Frontier::default(),
            report: Report {
                entries: 0,
                checkpoints: 0,
                proofs: 0,
                first_bad: None,
            },
            pending_proofs: Vec::new(),
        }
    }

    fn bad(&mut self, seq: i64, why: String) {
        if self.report.first_bad.is_none() {
            self.report.first_bad = Some((seq, why));
        }
    }

    /// One entry: its sequence number, canonical bytes and stored hashes.
    pub fn entry(
        &mut self,
        seq: i64,
        entry: &str,
        stored_leaf: Option<&str>,
        stored_chain: Option<&str>,
    ) {
        if seq != self.expected {
            let e = self.expected;
            self.bad(
                e,
                format!("entry {e} is missing: the log jumps to {seq} (an entry was removed)"),
            );
            self.expected = seq;
        }
        let leaf = leaf_hash(entry.as_bytes());
        if stored_leaf.and_then(parse_hash) != Some(leaf) {
            self.bad(
                seq,
                format!("entry {seq} was changed: its content does not match its leaf hash"),
            );
        }
        let link = chain_hash(&self.prev, &leaf);
        let stored_chain = stored_chain.and_then(parse_hash);
        if stored_chain != Some(link) {
            self.bad(seq, format!("entry {seq} does not follow entry {}: the chain is broken (reordered, inserted or changed)", seq - 1));
        }
        self.prev = stored_chain.unwrap_or(link);
        self.frontier.push(leaf);
        self.report.entries += 1;
        self.expected += 1;
        while let Some((size, root, note)) = self.checkpoints.get(self.next_checkpoint).cloned() {
            if size as u64 != self.frontier.size() {
                break;
            }
            self.checkpoint(size, &root, &note);
            self.next_checkpoint += 1;
        }
    }

    fn checkpoint(&mut self, size: i64, root: &str, note: &str) {
        self.report.checkpoints += 1;
        let recomputed = self.frontier.root();
        self.roots.insert(size, recomputed);
        let problem = match self.verifier.verify(note) {
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
            self.bad(size, p);
        }
    }

    /// Checks an embedded inclusion proof of entry `seq` against the checkpoint of `size`.
    pub fn proof(&mut self, seq: i64, entry: &str, size: i64, proof: &[Hash]) {
        self.report.proofs += 1;
        let Some(root) = self.roots.get(&size).copied() else {
            self.bad(
                seq,
                format!(
                    "entry {seq}'s proof names checkpoint {size}, which the export does not verify"
                ),
            );
            return;
        };
        if !verify_inclusion(
            &leaf_hash(entry.as_bytes()),
            (seq - 1) as u64,
            size as u64,
            proof,
            &root,
        ) {
            self.bad(
                seq,
                format!("entry {seq}'s inclusion proof does not verify against checkpoint {size}"),
            );
        }
    }

    /// Ends the pass against the recorded log head.
    pub fn finish(mut self, head_size: i64, head_chain: &str) -> Report {
        for (seq, _, size, _) in std::mem::take(&mut self.pending_proofs) {
            self.bad(
                seq,
                format!(
                    "entry {seq}'s proof names checkpoint {size}, which the export does not verify"
                ),
            );
        }
        let unreached: Vec<i64> = self
            .checkpoints
            .iter()
            .skip(self.next_checkpoint)
            .map(|(size, _, _)| *size)
            .collect();
        for size in unreached {
            self.report.checkpoints += 1;
            self.bad(size, format!("checkpoint at size {size} covers entries that are not in the log (entries removed)"));
        }
        let found = self.report.entries;
        if head_size != found {
            self.bad(
                found.min(head_size) + 1,
                format!("the log head counts {head_size} entries but {found} were found"),
            );
        } else if found > 0 && parse_hash(head_chain) != Some(self.prev) {
            self.bad(
                found,
                "the log head's chain hash does not match the last entry".into(),
            );
        }
        self.report
    }
}

/// Verifies the whole log in `store`; checkpoints must be signed by `verifier`'s key.
pub async fn verify<S: Store>(store: &S, verifier: &NoteVerifier) -> Result<Report, StoreError> {
    let mut pass = Pass::new(verifier, store.checkpoints().await?);
    let mut after = 0i64;
    loop {
        let page = store.disclosures(after, 20_000).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (seq, row) in &page {
            pass.entry(
                *seq,
                &row.entry,
                row.leaf_hash.as_deref(),
                row.chain_hash.as_deref(),
            );
        }
    }
    let (head_size, head_chain) = store.log_head().await?;
    Ok(pass.finish(head_size, &head_chain))
}

/// A line of an export.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ExportLine {
    /// First line.
    Header {
        /// Log origin.
        origin: String,
        /// Entries in the log when exported.
        head_size: i64,
        /// Its last chain hash.
        head_chain: String,
    },
    /// A signed checkpoint (all come before the entries).
    Checkpoint {
        /// Tree size.
        size: i64,
        /// Tree head, hex.
        root: String,
        /// The signed note.
        note: String,
    },
    /// One entry, with its inclusion proof against the latest checkpoint that covers it.
    Entry {
        /// Sequence number.
        seq: i64,
        /// Canonical JSON, exactly as hashed.
        entry: String,
        /// Leaf hash, hex.
        leaf_hash: Option<String>,
        /// Chain hash, hex.
        chain_hash: Option<String>,
        /// Size of the checkpoint the proof is against.
        proof_size: Option<i64>,
        /// Inclusion proof, hex, bottom-up.
        proof: Vec<String>,
    },
}

/// Verifies an export file.
pub fn verify_export(reader: impl BufRead, verifier: &NoteVerifier) -> Result<Report, String> {
    let mut lines = reader.lines();
    let first = lines
        .next()
        .ok_or("the export is empty")?
        .map_err(|e| e.to_string())?;
    let ExportLine::Header {
        head_size,
        head_chain,
        ..
    } = serde_json::from_str(&first).map_err(|e| format!("line 1: {e}"))?
    else {
        return Err("line 1 is not the export header".into());
    };
    let mut checkpoints = Vec::new();
    let mut pass: Option<Pass<'_>> = None;
    for (n, line) in lines.enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        match serde_json::from_str::<ExportLine>(&line)
            .map_err(|e| format!("line {}: {e}", n + 2))?
        {
            ExportLine::Checkpoint { size, root, note } if pass.is_none() => {
                checkpoints.push((size, root, note))
            }
            ExportLine::Checkpoint { .. } => {
                return Err(format!(
                    "line {}: checkpoints come before the entries",
                    n + 2
                ));
            }
            ExportLine::Header { .. } => return Err(format!("line {}: a second header", n + 2)),
            ExportLine::Entry {
                seq,
                entry,
                leaf_hash,
                chain_hash,
                proof_size,
                proof,
            } => {
                let p = pass
                    .get_or_insert_with(|| Pass::new(verifier, std::mem::take(&mut checkpoints)));
                p.entry(seq, &entry, leaf_hash.as_deref(), chain_hash.as_deref());
                if let Some(size) = proof_size.filter(|s| *s >= seq) {
                    let hashes: Option<Vec<Hash>> = proof.iter().map(|h| parse_hash(h)).collect();
                    match hashes {
                        Some(h) => {
                            // The checkpoint is only known once its size is reached: check later.
                            p.pending_proofs.push((seq, entry, size, h));
                        }
                        None => p.bad(seq, format!("entry {seq}'s proof is not hex")),
                    }
                }
                let ready: Vec<_> = p
                    .pending_proofs
                    .iter()
                    .filter(|(_, _, s, _)| p.roots.contains_key(s))
                    .cloned()
                    .collect();
                p.pending_proofs
                    .retain(|(_, _, s, _)| !p.roots.contains_key(s));
                for (seq, entry, size, h) in ready {
                    p.proof(seq, &entry, size, &h);
                }
            }
        }
    }
    let pass = pass.unwrap_or_else(|| Pass::new(verifier, checkpoints));
    Ok(pass.finish(head_size, &head_chain))
}
