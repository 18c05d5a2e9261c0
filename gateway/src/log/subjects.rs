//! The verifiable per-subject index (issue 28): which entries of the log are about one person,
//! committed in every checkpoint so that a person's report can be proven **complete**, not only
//! correct.
//!
//! Each entry about a person (its `data_subject`, a pseudonym under the log's own key) extends
//! that person's chain: `head' = SHA-256(0x02 ‖ head ‖ seq (8 bytes, big-endian) ‖ leaf hash)`
//! from 32 zero bytes, with a count. The map holds one leaf per person, keyed by
//! `SHA-256("ipga-r subject map v1\n" ‖ pseudonym)`: `key ‖ count (8 bytes) ‖ head`, sorted by
//! key, in an RFC 6962 Merkle tree. Its size and root are an extension line of the checkpoint
//! (`ipga-r/subjects <size> <root>`), signed by the log key and cosigned by the witnesses.
//!
//! A report proves: the person's leaf is in the map at that checkpoint (an inclusion proof), the
//! listed entries' sequence numbers and leaf hashes rebuild exactly its chain and count (so none
//! is left out), and each entry is in the log (an inclusion proof against the same checkpoint).
//! A person with no entries gets the two neighbouring leaves whose keys enclose theirs. The map
//! is sorted and derived from the log: `audit verify` rebuilds it from the entries and compares
//! every checkpoint's root, which is what lets an absence proof stand.

use super::merkle::{Hash, inclusion_proof, leaf_hash, root, verify_inclusion};
use crate::store::{Db, StoreError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The prefix of a checkpoint's extension line that commits the map.
pub const EXTENSION: &str = "ipga-r/subjects";

/// The map key of a pseudonym.
pub fn key_of(pseudonym: &str) -> Hash {
    let mut h = Sha256::new();
    h.update(b"ipga-r subject map v1\n");
    h.update(pseudonym.as_bytes());
    h.finalize().into()
}

/// One step of a person's chain: the entry `seq` with leaf hash `leaf` after `head`.
pub fn chain_step(head: &Hash, seq: u64, leaf: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x02]);
    h.update(head);
    h.update(seq.to_be_bytes());
    h.update(leaf);
    h.finalize().into()
}

/// A person's leaf in the map: how many entries, the chain over them, the last one's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Chain {
    /// Entries about the person.
    pub count: u64,
    /// The chain's head.
    pub head: Hash,
    /// The last entry's sequence number (not committed: what keeps an update idempotent).
    pub last: u64,
}

impl Chain {
    /// The chain of the entries `(seq, leaf hash)`, in order.
    pub fn of(entries: &[(u64, Hash)]) -> Chain {
        let mut c = Chain::default();
        for (seq, leaf) in entries {
            c.push(*seq, leaf);
        }
        c
    }

    /// Adds entry `seq`; an entry at or before the last one is already in (no change).
    pub fn push(&mut self, seq: u64, leaf: &Hash) -> bool {
        if self.count > 0 && seq <= self.last {
            return false;
        }
        self.head = chain_step(&self.head, seq, leaf);
        self.count += 1;
        self.last = seq;
        true
    }
}

/// The data of a map leaf.
fn leaf_data(key: &Hash, chain: &Chain) -> Vec<u8> {
    let mut d = Vec::with_capacity(72);
    d.extend_from_slice(key);
    d.extend_from_slice(&chain.count.to_be_bytes());
    d.extend_from_slice(&chain.head);
    d
}

/// The map at one size of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectMap {
    /// By key.
    pub chains: BTreeMap<Hash, Chain>,
}

/// The map's commitment in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapHead {
    /// Leaves (people).
    pub size: u64,
    /// Root.
    pub root: Hash,
}

impl MapHead {
    /// The checkpoint's extension line.
    pub fn line(&self) -> String {
        use base64::Engine;
        format!(
            "{EXTENSION} {} {}",
            self.size,
            base64::engine::general_purpose::STANDARD.encode(self.root)
        )
    }

    /// The map head a checkpoint note commits (its extension line), if it commits one.
    pub fn in_note(note: &str) -> Option<MapHead> {
        let body = note.split("\n\n").next()?;
        let lines: Vec<String> = body.lines().skip(3).map(str::to_owned).collect();
        MapHead::from_lines(&lines)
    }

    /// Reads the extension line from a checkpoint's extension lines, if it has one.
    pub fn from_lines(lines: &[String]) -> Option<MapHead> {
        use base64::Engine;
        lines.iter().find_map(|l| {
            let rest = l.strip_prefix(EXTENSION)?.strip_prefix(' ')?;
            let (size, root) = rest.split_once(' ')?;
            let size = super::checkpoint::canonical_decimal(size)?;
            let root: Hash = base64::engine::general_purpose::STANDARD
                .decode(root)
                .ok()?
                .try_into()
                .ok()?;
            Some(MapHead { size, root })
        })
    }
}

impl SubjectMap {
    /// Adds entry `seq` (leaf hash `leaf`) about `pseudonym`.
    pub fn add(&mut self, pseudonym: &str, seq: u64, leaf: &Hash) -> bool {
        self.chains
            .entry(key_of(pseudonym))
            .or_default()
            .push(seq, leaf)
    }

    fn leaves(&self) -> Vec<Hash> {
        self.chains
            .iter()
            .map(|(k, c)| leaf_hash(&leaf_data(k, c)))
            .collect()
    }

    /// The map's size and root.
    pub fn head(&self) -> MapHead {
        MapHead {
            size: u64::try_from(self.chains.len()).unwrap_or(u64::MAX),
            root: root(&self.leaves()),
        }
    }

    /// What proves the leaf of `key`, or its absence.
    pub fn prove(&self, key: &Hash) -> MapProof {
        let leaves = self.leaves();
        let at = |i: usize| -> Option<Neighbour> {
            let (k, c) = self.chains.iter().nth(i)?;
            Some(Neighbour {
                index: u64::try_from(i).ok()?,
                key: *k,
                count: c.count,
                head: c.head,
                proof: inclusion_proof(&leaves, i),
            })
        };
        let position = self.chains.keys().position(|k| k >= key);
        match position {
            Some(i) if self.chains.keys().nth(i) == Some(key) => MapProof {
                found: at(i),
                below: None,
                above: None,
            },
            Some(i) => MapProof {
                found: None,
                below: i.checked_sub(1).and_then(at),
                above: at(i),
            },
            None => MapProof {
                found: None,
                below: self.chains.len().checked_sub(1).and_then(at),
                above: None,
            },
        }
    }
}

/// Rows read per query when the map is loaded.
const LOAD_PAGE: i64 = 20_000;

/// The map as far as it was indexed from the log: entries up to `applied`.
#[derive(Debug, Clone, Default)]
pub struct Indexed {
    /// The log size indexed.
    pub applied: i64,
    /// The map at that size.
    pub map: SubjectMap,
}

impl Indexed {
    /// The map's stored rows up to entry `upto`.
    pub async fn load(db: &Db, upto: i64) -> Result<Indexed, StoreError> {
        let mut out = Indexed::default();
        let mut after = 0;
        loop {
            let page = db.subject_entries_page(after, upto, LOAD_PAGE).await?;
            let Some(last) = page.last().map(|(_, seq, _)| *seq) else {
                break;
            };
            for (key, seq, leaf) in page {
                let key = super::merkle::parse_hash(&key).ok_or_else(|| {
                    StoreError::Corrupt("a subject map key is not 32 bytes of hex".into())
                })?;
                out.map
                    .chains
                    .entry(key)
                    .or_default()
                    .push(u64::try_from(seq).unwrap_or(0), &leaf);
                out.applied = out.applied.max(seq);
            }
            after = last;
            // Beside requests, not ahead of them.
            tokio::task::yield_now().await;
        }
        Ok(out)
    }

    /// Indexes the entries after what it has, up to `size`, storing their rows: those this
    /// instance's writer appended from `pending` (the person as the appended entry named it),
    /// the rest (another instance's, or what `pending` let go) read from the log.
    pub async fn advance(
        &mut self,
        db: &Db,
        size: i64,
        pending: &Pending,
    ) -> Result<(), StoreError> {
        if size <= self.applied {
            return Ok(());
        }
        // The rows first, the map after: a failed write leaves the map as it was, so that the
        // next try indexes the same entries again (from the log; rows already there stay).
        // Those the writer appended have their rows already (written with the entry); those
        // read from the log get theirs here (a repeat is ignored).
        let mut found = Vec::new();
        let mut read = Vec::new();
        let mut at = self.applied;
        for (seq, subject, leaf) in pending.take_upto(size) {
            if seq <= at {
                continue;
            }
            if seq > at + 1 {
                read.extend(read_between(db, at, seq - 1).await?);
            }
            if let Some(pseudonym) = subject {
                found.push((key_of(&pseudonym), seq, leaf));
            }
            at = seq;
        }
        if at < size {
            read.extend(read_between(db, at, size).await?);
        }
        let rows: Vec<(String, i64)> = read
            .iter()
            .map(|(k, seq, _)| (hex::encode(k), *seq))
            .collect();
        db.put_subject_entries(&rows).await?;
        found.extend(read);
        found.sort_by_key(|(_, seq, _)| *seq);
        for (key, seq, leaf) in found {
            self.map
                .chains
                .entry(key)
                .or_default()
                .push(u64::try_from(seq).unwrap_or(0), &leaf);
        }
        self.applied = size;
        Ok(())
    }
}

/// The entries `after+1..=upto` about a person, read from the log: the person as each entry
/// names it (covered by its leaf hash), not the column. Read in pages, so that a long stretch
/// (after a start, or another instance's minute) never holds more than a few megabytes of
/// entries at once.
async fn read_between(
    db: &Db,
    after: i64,
    upto: i64,
) -> Result<Vec<(Hash, i64, Hash)>, StoreError> {
    const PAGE: i64 = 5_000;
    let mut found = Vec::new();
    let mut from = after;
    while from < upto {
        let to = from.saturating_add(PAGE).min(upto);
        for (seq, entry, leaf) in db.subjects_between(from, to).await? {
            if let Some(pseudonym) = about(&entry) {
                found.push((key_of(&pseudonym), seq, leaf));
            }
        }
        from = to;
    }
    Ok(found)
}

/// Entries this instance's writer appended and the map has not indexed yet, in order: (seq,
/// the person the entry names, its leaf hash). At most [`PENDING_AT_MOST`]: older ones are let
/// go and indexed from the log instead (before the map is loaded, nobody takes them).
#[derive(Debug, Default)]
pub struct Pending(std::sync::Mutex<std::collections::VecDeque<(i64, Option<String>, Hash)>>);

/// Entries [`Pending`] holds at most (about 6 MB; a dozen seconds of a busy gateway, while the
/// map is still loading or checkpoints are off).
pub const PENDING_AT_MOST: usize = 50_000;

impl Pending {
    /// Notes an appended entry (the writer calls it in sequence order, after the commit).
    pub fn push(&self, seq: i64, subject: Option<String>, leaf: Hash) {
        let mut q = self.lock();
        if q.len() >= PENDING_AT_MOST {
            q.pop_front();
        }
        q.push_back((seq, subject, leaf));
    }

    /// Takes the noted entries up to `size`, in order.
    pub fn take_upto(&self, size: i64) -> Vec<(i64, Option<String>, Hash)> {
        let mut q = self.lock();
        let n = q.partition_point(|(seq, _, _)| *seq <= size);
        q.drain(..n).collect()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(i64, Option<String>, Hash)>> {
        // Pushes and drains only: a poisoned queue is still a queue.
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// The person an entry is about (its `data_subject`), read without the rest.
pub fn about(entry: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct About {
        #[serde(default)]
        data_subject: Option<String>,
    }
    serde_json::from_str::<About>(entry).ok()?.data_subject
}

/// The map's head over the entries up to `size`, indexing what the stored rows lack.
pub async fn head_at(db: &Db, size: i64) -> Result<MapHead, StoreError> {
    Ok(map_at(db, size).await?.head())
}

/// The map over the entries up to `size`, from the stored rows and the log.
pub async fn map_at(db: &Db, size: i64) -> Result<SubjectMap, StoreError> {
    let mut i = Indexed::load(db, size).await?;
    i.advance(db, size, &Pending::default()).await?;
    Ok(i.map)
}

/// A map leaf with its place and inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Neighbour {
    /// Its index among the sorted leaves.
    pub index: u64,
    /// Its key.
    #[serde(with = "hexes::one")]
    pub key: Hash,
    /// Its count.
    pub count: u64,
    /// Its chain head.
    #[serde(with = "hexes::one")]
    pub head: Hash,
    /// Its inclusion proof in the map.
    #[serde(with = "hexes")]
    pub proof: Vec<Hash>,
}

/// The leaf of a key, or the leaves that enclose where it would be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MapProof {
    /// The key's own leaf.
    pub found: Option<Neighbour>,
    /// Absent: the leaf just below the key (none if the key is below every leaf).
    pub below: Option<Neighbour>,
    /// Absent: the leaf just above the key (none if the key is above every leaf).
    pub above: Option<Neighbour>,
}

/// Why a map proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapProofError {
    /// A leaf's inclusion proof does not reach the root.
    #[error("the map leaf at index {0} is not in the map the checkpoint commits")]
    NotIncluded(u64),
    /// The found leaf has another key.
    #[error("the map leaf shown is another person's")]
    OtherKey,
    /// The neighbours do not enclose the key, or are not adjacent.
    #[error("the leaves shown do not enclose this person's place in the map: no proof of absence")]
    NotEnclosing,
}

impl MapProof {
    /// Checks the proof for `key` against the map head: the person's chain (count, head), or
    /// `None` for a proven absence.
    pub fn verify(&self, key: &Hash, map: &MapHead) -> Result<Option<Chain>, MapProofError> {
        let included = |n: &Neighbour| {
            let leaf = leaf_hash(&leaf_data(
                &n.key,
                &Chain {
                    count: n.count,
                    head: n.head,
                    last: 0,
                },
            ));
            if verify_inclusion(&leaf, n.index, map.size, &n.proof, &map.root) {
                Ok(())
            } else {
                Err(MapProofError::NotIncluded(n.index))
            }
        };
        if let Some(f) = &self.found {
            included(f)?;
            if f.key != *key {
                return Err(MapProofError::OtherKey);
            }
            return Ok(Some(Chain {
                count: f.count,
                head: f.head,
                last: 0,
            }));
        }
        for n in self.below.iter().chain(&self.above) {
            included(n)?;
        }
        let encloses = match (&self.below, &self.above) {
            (None, None) => map.size == 0,
            (Some(b), None) => b.key < *key && b.index.checked_add(1) == Some(map.size),
            (None, Some(a)) => *key < a.key && a.index == 0,
            (Some(b), Some(a)) => {
                b.key < *key && *key < a.key && b.index.checked_add(1) == Some(a.index)
            }
        };
        if encloses {
            Ok(None)
        } else {
            Err(MapProofError::NotEnclosing)
        }
    }
}

/// A person's report proven complete up to a checkpoint (issue 28): the signed and cosigned
/// checkpoint, and per pseudonym of the person its map proof and every entry its chain holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SubjectProof {
    /// The checkpoint note, with the witnesses' cosignature lines.
    pub checkpoint: String,
    /// Per pseudonym.
    pub subjects: Vec<ProvenSubject>,
    /// What the proof cannot cover, as the log records it: the pseudonym keys retired before it
    /// was made (entries about the person under them can no longer be found), each with the
    /// sequence number of the `keys` entry that retired it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_covered: Vec<RetiredKey>,
}

/// A pseudonym key the log says was retired: a person's entries made under it can no longer be
/// found by BSN, so no proof covers them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetiredKey {
    /// The key's id.
    pub key: String,
    /// The `keys` entry that retired it.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
}

/// One pseudonym's part of a proof.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProvenSubject {
    /// The pseudonym (under the log's pseudonym key; never a BSN).
    pub pseudonym: String,
    /// Its leaf in the map, or the two that prove it has none.
    pub map: MapProof,
    /// Its entries, in order.
    pub entries: Vec<ProvenEntry>,
}

/// One entry of a proof.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProvenEntry {
    /// Sequence number.
    pub seq: u64,
    /// Its leaf hash.
    #[serde(with = "hexes::one")]
    pub leaf_hash: Hash,
    /// The canonical entry; none where retention removed its content.
    pub entry: Option<String>,
    /// Its inclusion proof against the checkpoint.
    #[serde(with = "hexes")]
    pub proof: Vec<Hash>,
}

/// What a proof proves, checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Proven {
    /// The checkpoint's size.
    pub size: u64,
    /// The witnesses whose cosignature verified.
    pub witnesses: Vec<String>,
    /// Entries about the person up to it (each pseudonym's, together).
    pub entries: u64,
    /// Of which retention removed the content.
    pub removed: u64,
    /// Their sequence numbers.
    pub seqs: Vec<u64>,
    /// What the proof says it cannot cover (retired pseudonym keys).
    pub not_covered: Vec<RetiredKey>,
}

/// Checks a proof offline: the checkpoint against the log's keys and `quorum` of the witnesses,
/// then per pseudonym its map proof, its chain rebuilt from the listed entries, and each entry's
/// inclusion (and, where its content is there, its leaf hash and its subject).
pub fn verify_proof(
    p: &SubjectProof,
    keys: &super::checkpoint::KeySet,
    witnesses: &[super::cosign::CosignVerifier],
    quorum: usize,
) -> Result<Proven, String> {
    let (cp, _) = keys
        .verify(&p.checkpoint)
        .map_err(|e| format!("the checkpoint: {e}"))?;
    let cosigned: Vec<String> = super::cosign::witnessed(&p.checkpoint, witnesses)
        .map_err(|e| format!("the cosignatures: {e}"))?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    if cosigned.len() < quorum {
        return Err(format!(
            "the checkpoint is cosigned by {} of the witnesses given, fewer than the quorum {quorum}",
            cosigned.len()
        ));
    }
    let map = MapHead::from_lines(&cp.extensions).ok_or(
        "the checkpoint commits no per-subject map (it predates it, or was not made by the gateway)",
    )?;
    let mut out = Proven {
        size: cp.size,
        witnesses: cosigned,
        entries: 0,
        removed: 0,
        seqs: Vec::new(),
        not_covered: p.not_covered.clone(),
    };
    for s in &p.subjects {
        let key = key_of(&s.pseudonym);
        let chain = s
            .map
            .verify(&key, &map)
            .map_err(|e| format!("pseudonym {}: {e}", s.pseudonym))?
            .unwrap_or_default();
        let listed: Vec<(u64, Hash)> = s.entries.iter().map(|e| (e.seq, e.leaf_hash)).collect();
        let rebuilt = Chain::of(&listed);
        if rebuilt.count != chain.count || rebuilt.head != chain.head {
            return Err(format!(
                "pseudonym {}: the map says {} entries, and the {} listed do not rebuild its chain: an entry about the person is left out, added or changed",
                s.pseudonym,
                chain.count,
                listed.len()
            ));
        }
        for e in &s.entries {
            let index = e
                .seq
                .checked_sub(1)
                .ok_or("an entry with sequence number 0: the log has none")?;
            if !verify_inclusion(&e.leaf_hash, index, cp.size, &e.proof, &cp.root) {
                return Err(format!(
                    "entry {} is not in the log the checkpoint signs",
                    e.seq
                ));
            }
            match &e.entry {
                Some(text) => {
                    if leaf_hash(text.as_bytes()) != e.leaf_hash {
                        return Err(format!("entry {}'s content is not its leaf", e.seq));
                    }
                    let about: Option<String> = serde_json::from_str::<serde_json::Value>(text)
                        .ok()
                        .and_then(|v| v.get("data_subject")?.as_str().map(str::to_owned));
                    if about.as_deref() != Some(s.pseudonym.as_str()) {
                        return Err(format!(
                            "entry {} is not about pseudonym {}",
                            e.seq, s.pseudonym
                        ));
                    }
                }
                None => out.removed += 1,
            }
            out.seqs.push(e.seq);
        }
        out.entries = out.entries.saturating_add(chain.count);
    }
    out.seqs.sort_unstable();
    Ok(out)
}

/// A report against its checked proof, both ways: every disclosure it lists is one of the
/// person's proven entries, and every proven entry it must list (answered, its data reaching a
/// recipient, outside the purposes it says it left out) is in it.
pub fn check_report(
    proof: &SubjectProof,
    proven: &Proven,
    listed: &[u64],
    left_out: &[String],
) -> Result<(), String> {
    if let Some(s) = listed.iter().find(|s| !proven.seqs.contains(s)) {
        return Err(format!(
            "the report lists entry {s}, which is not among the person's proven entries"
        ));
    }
    let must = proof.subjects.iter().flat_map(|s| &s.entries).filter(|e| {
        e.entry
            .as_deref()
            .and_then(|t| super::entry::LogEntry::parse(i64::try_from(e.seq).unwrap_or(0), t).ok())
            .is_some_and(|x| {
                x.kind.reaches_recipient()
                    && x.outcome.answered()
                    && !x
                        .processing_activity
                        .as_ref()
                        .is_some_and(|u| left_out.contains(u))
            })
    });
    for e in must {
        if !listed.contains(&e.seq) {
            return Err(format!(
                "entry {}, data about the person that reached a recipient, is missing from the report",
                e.seq
            ));
        }
    }
    Ok(())
}

/// Hashes as hex strings: a list, or `one`.
mod hexes {
    use super::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub mod one {
        use super::Hash;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &Hash, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&hex::encode(v))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
            crate::log::merkle::parse_hash(&String::deserialize(d)?)
                .ok_or_else(|| serde::de::Error::custom("a 32-byte hex hash"))
        }
    }

    pub fn serialize<S: Serializer>(v: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|h| {
                crate::log::merkle::parse_hash(&h)
                    .ok_or_else(|| serde::de::Error::custom("a 32-byte hex hash"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map_of(people: &[(&str, &[u64])]) -> SubjectMap {
        let mut m = SubjectMap::default();
        for (p, seqs) in people {
            for s in *seqs {
                m.add(p, *s, &leaf_hash(&s.to_be_bytes()));
            }
        }
        m
    }

    #[test]
    fn membership_and_absence_verify_and_a_proof_for_another_map_does_not() {
        let m = map_of(&[("a", &[1, 4]), ("b", &[2]), ("c", &[3, 5, 6])]);
        let head = m.head();
        for p in ["a", "b", "c"] {
            let k = key_of(p);
            let chain = m.prove(&k).verify(&k, &head).unwrap().unwrap();
            assert_eq!(chain.count, m.chains[&k].count);
        }
        let nobody = key_of("nobody");
        assert_eq!(m.prove(&nobody).verify(&nobody, &head), Ok(None));
        // One more entry about b: the old proofs do not hold against the new map.
        let mut grown = m.clone();
        grown.add("b", 7, &leaf_hash(&7u64.to_be_bytes()));
        let kb = key_of("b");
        assert!(m.prove(&kb).verify(&kb, &grown.head()).is_err());
        // Nobody present can be proven absent: their two neighbours are not adjacent leaves,
        // and any other two leaves do not enclose their key.
        let keys: Vec<Hash> = m.chains.keys().copied().collect();
        let found = |k: &Hash| m.prove(k).found.unwrap();
        let middle = keys[1];
        let forged = MapProof {
            found: None,
            below: Some(found(&keys[0])),
            above: Some(found(&keys[2])),
        };
        assert_eq!(
            forged.verify(&middle, &head),
            Err(MapProofError::NotEnclosing)
        );
        let forged = MapProof {
            found: None,
            below: Some(found(&keys[1])),
            above: Some(found(&keys[2])),
        };
        assert_eq!(
            forged.verify(&keys[0], &head),
            Err(MapProofError::NotEnclosing)
        );
        let ka = key_of("a");
        // An empty map proves everyone absent.
        let empty = SubjectMap::default();
        assert_eq!(empty.prove(&ka).verify(&ka, &empty.head()), Ok(None));
    }

    #[test]
    fn an_entry_left_out_changes_the_chain() {
        let all = [(1, [1; 32]), (5, [5; 32]), (9, [9; 32])];
        let full = Chain::of(&all);
        let short = Chain::of(&[all[0], all[2]]);
        assert_ne!(full.head, short.head);
        assert_eq!(full.count, 3);
        // Adding an entry twice changes nothing.
        let mut again = full;
        assert!(!again.push(5, &[5; 32]));
        assert_eq!(again, full);
    }

    #[test]
    fn pending_entries_are_taken_in_order_and_the_oldest_let_go_beyond_the_bound() {
        let p = Pending::default();
        for seq in 1..=i64::try_from(PENDING_AT_MOST).unwrap() + 2 {
            p.push(seq, (seq % 2 == 0).then(|| "p".to_owned()), [0; 32]);
        }
        let first = p.take_upto(10);
        // The two oldest were let go (the map reads them from the log instead).
        assert_eq!(
            first.iter().map(|e| e.0).collect::<Vec<_>>(),
            (3..=10).collect::<Vec<_>>()
        );
        assert_eq!(p.take_upto(10).len(), 0);
        assert_eq!(p.take_upto(i64::MAX).len(), PENDING_AT_MOST - 8);
    }

    #[test]
    fn the_extension_line_round_trips() {
        let h = map_of(&[("a", &[1])]).head();
        assert_eq!(MapHead::from_lines(&[h.line()]), Some(h));
        assert_eq!(MapHead::from_lines(&["other 1 AAAA".into()]), None);
    }

    proptest! {
        /// Every person's proof verifies and yields their chain; every absent key's proof says
        /// absent; nobody present can be proven absent.
        #[test]
        fn proofs_hold_for_every_key(people in proptest::collection::btree_map("[a-z]{1,4}", proptest::collection::btree_set(1u64..200, 1..5), 0..12), probe in "[a-z]{1,4}") {
            let mut m = SubjectMap::default();
            for (p, seqs) in &people {
                for s in seqs {
                    m.add(p, *s, &leaf_hash(&s.to_be_bytes()));
                }
            }
            let head = m.head();
            for (p, seqs) in &people {
                let k = key_of(p);
                let c = m.prove(&k).verify(&k, &head).unwrap().unwrap();
                prop_assert_eq!(c.count, seqs.len() as u64);
            }
            let k = key_of(&probe);
            let got = m.prove(&k).verify(&k, &head).unwrap();
            prop_assert_eq!(got.is_some(), people.contains_key(&probe));
        }
    }
}
