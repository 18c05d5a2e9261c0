//! `gateway audit verify`: recomputes every leaf hash, the hash chain, every stored tree node,
//! the log head (size, chain, root) and every checkpoint's tree head and signature, and checks
//! that every searchable column and side-table row equals its derivation from the entry. Names
//! the first bad entry. Works on the database or on an export (`gateway audit export`), whose
//! embedded proofs it checks too.

use super::checkpoint::KeySet;
use super::entry::{Kind, LogEntry, RemovedRange};
use super::merkle::{Frontier, Hash, leaf_hash, verify_inclusion};
use super::{GENESIS, chain_hash, tree};
use crate::store::{
    Db, NodeRow, ProductRow, RecordRow, StoreError, StoredCheckpoint, TombstoneRow,
};
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries read.
    pub entries: i64,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// Stored tree nodes checked.
    pub nodes: usize,
    /// Inclusion proofs checked (exports only).
    pub proofs: usize,
    /// Entries whose content a retention run removed (their hashes verified all the same).
    pub removed: i64,
    /// Those entries as ranges, with the rule that removed them.
    pub removed_ranges: Vec<RemovedRange>,
    /// The first problem: sequence number and what is wrong.
    pub first_bad: Option<(i64, String)>,
    /// Entries of an export that no signed checkpoint covers (first, last), when accepted.
    pub unproven: Option<(i64, i64)>,
}

/// An entry's content as verification meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content<'a> {
    /// The canonical entry.
    Present(&'a str),
    /// Removed under this retention rule (a tombstone says so).
    Removed(&'a str),
    /// Not there, and nothing says why: tampering.
    Missing,
}

/// Adds `seq` under `rule` to ranges kept in order, extending the last one when it continues it.
fn extend_ranges(ranges: &mut Vec<RemovedRange>, first: i64, last: i64, rule: &str) {
    if let Some(r) = ranges.last_mut()
        && r.last + 1 == first
        && r.rule == rule
    {
        r.last = last;
        return;
    }
    ranges.push(RemovedRange {
        first,
        last,
        rule: rule.to_owned(),
    });
}

/// What `audit verify` holds the log's own steps to, for one stored covenant version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionFacts {
    /// The retention periods by rule (`deposits`, `cases` or a `[[retention.log]]` id), in days.
    pub periods: HashMap<String, u32>,
    /// The witnesses it names, by name, sorted.
    pub witnesses: Vec<String>,
}

/// Every stored covenant version's facts, by version hash: what every retention step and
/// every start is held to.
pub type StoredVersions = HashMap<String, VersionFacts>;

/// What one covenant says about retention and witnesses.
pub fn facts_of(c: &policy::covenant::Covenant) -> VersionFacts {
    let r = &c.retention;
    let mut periods: HashMap<String, u32> = r
        .log
        .iter()
        .map(|l| (l.id.clone(), l.period.days))
        .collect();
    if let Some(p) = &r.deposits {
        periods.insert("deposits".into(), p.days);
    }
    if let Some(p) = &r.cases {
        periods.insert("cases".into(), p.days);
    }
    let mut witnesses: Vec<String> = c
        .witnessing
        .witnesses
        .iter()
        .map(|w| w.name.clone())
        .collect();
    witnesses.sort();
    VersionFacts { periods, witnesses }
}

/// What is wrong with a start (a `start` or `witness-override` entry) against the witnesses
/// of the version it names (issue 37): a start that asked other witnesses than the version's,
/// or an override that left out witnesses the version named.
fn start_against(versions: &StoredVersions, seq: i64, e: &LogEntry) -> Option<String> {
    let version = &e.policy_version;
    let Some(facts) = versions.get(version) else {
        return Some(format!(
            "start entry {seq} was taken under covenant version {version}, whose text is not stored: its witnesses cannot be checked"
        ));
    };
    let named = &facts.witnesses;
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    match (e.kind, &e.start, &e.witness_override) {
        (Kind::Start, Some(s), _) => {
            let asked = sorted(&s.witnesses);
            if asked != *named {
                Some(format!(
                    "start entry {seq} asked the witnesses [{}], but covenant version {version} names [{}]",
                    asked.join(", "),
                    named.join(", ")
                ))
            } else if !s.unreachable.iter().all(|u| named.contains(u))
                || (!named.is_empty() && s.unreachable.len() >= named.len())
            {
                Some(format!(
                    "start entry {seq} says it had the witnesses' word, but lists [{}] as unreachable",
                    s.unreachable.join(", ")
                ))
            } else {
                None
            }
        }
        (Kind::WitnessOverride, _, Some(o)) => {
            let left_out = sorted(&o.unreachable);
            (left_out != *named).then(|| {
                format!(
                    "witness-override entry {seq} started without the witnesses [{}], but covenant version {version} names [{}]",
                    left_out.join(", "),
                    named.join(", ")
                )
            })
        }
        _ => Some(format!(
            "entry {seq} is a {} entry without what a start records",
            e.kind.as_str()
        )),
    }
}

/// What is wrong with a retention step against the periods of the version it names (issue 37):
/// a rule that version does not have, another period than the version's, or a cut-off later
/// than the step's time less the period (something younger than its period went).
fn retention_against(
    versions: &StoredVersions,
    seq: i64,
    version: &str,
    at: i64,
    step: &super::entry::RetentionStep,
) -> Option<String> {
    let Some(rules) = versions.get(version).map(|f| &f.periods) else {
        return Some(format!(
            "retention entry {seq} was taken under covenant version {version}, whose text is not stored: its periods cannot be checked"
        ));
    };
    step.rules.iter().find_map(|r| match rules.get(&r.rule) {
        None => Some(format!(
            "retention entry {seq} applied rule {}, which covenant version {version} does not have",
            r.rule
        )),
        Some(days) if *days != r.days => Some(format!(
            "retention entry {seq} applied rule {} with {} days, but covenant version {version} says {days}",
            r.rule, r.days
        )),
        Some(days) if r.before > at.saturating_sub(i64::from(*days) * 86_400) => Some(format!(
            "retention entry {seq} removed under rule {} what was younger than its {days} days",
            r.rule
        )),
        Some(_) => None,
    })
}

/// The per-subject map against the entries (issue 28): every entry about a person up to the
/// last checkpoint that commits the map is in its stored rows under that person's key, no row
/// names an entry about someone else, and every checkpoint's map head is the one the rows give.
/// Rows of entries whose content retention removed cannot be checked against it and are taken
/// as they are.
fn subject_map_check(
    pass: &mut Pass<'_>,
    rows: &[(String, i64, Hash)],
    checkpoints: &[StoredCheckpoint],
) {
    use super::subjects::{Chain, MapHead, SubjectMap};
    let committed: Vec<(i64, MapHead)> = checkpoints
        .iter()
        .filter_map(|c| Some((c.size, MapHead::in_note(&c.note)?)))
        .collect();
    let Some(indexed_to) = committed.iter().map(|(s, _)| *s).max() else {
        return;
    };
    let stored: HashMap<i64, &str> = rows.iter().map(|(k, s, _)| (*s, k.as_str())).collect();
    let derived: HashMap<i64, Hash> = pass.subjects.iter().copied().collect();
    for (seq, key) in &pass.subjects {
        if *seq > indexed_to {
            break;
        }
        if stored.get(seq).copied() != Some(hex::encode(key).as_str()) {
            pass.bad(
                *seq,
                format!("entry {seq} is about a person, but the per-subject map (log_subject_entries) does not have it under that person: a row was removed or changed, and the person's report would leave the entry out"),
            );
            return;
        }
    }
    // A row must name the entry's own person, unless retention removed the entry's content.
    let removed = |seq: i64| {
        let ranges = &pass.report.removed_ranges;
        let i = ranges.partition_point(|r| r.last < seq);
        ranges.get(i).is_some_and(|r| r.first <= seq)
    };
    if let Some((_, seq, _)) = rows.iter().find(|(k, s, _)| {
        derived.get(s).map(hex::encode).as_deref() != Some(k.as_str()) && !removed(*s)
    }) {
        pass.bad(
            *seq,
            format!("the per-subject map names entry {seq} for another person than the entry's, or for an entry about nobody"),
        );
        return;
    }
    let mut map = SubjectMap::default();
    let mut rows = rows.iter().peekable();
    for (size, head) in &committed {
        while let Some((k, seq, leaf)) = rows.next_if(|(_, s, _)| s <= size) {
            if let Some(key) = parse_hash(k) {
                map.chains
                    .entry(key)
                    .or_insert_with(Chain::default)
                    .push(u64::try_from(*seq).unwrap_or(0), leaf);
            }
        }
        if map.head() != *head {
            pass.bad(
                *size,
                format!("the checkpoint at size {size} commits a per-subject map that the log's entries do not give"),
            );
            return;
        }
    }
}

/// Verification in one pass over the entries, in sequence order.
pub struct Pass<'a> {
    keys: &'a KeySet,
    checkpoints: Vec<StoredCheckpoint>,
    next_checkpoint: usize,
    roots: BTreeMap<i64, Hash>,
    expected: i64,
    prev: Hash,
    frontier: Frontier,
    /// Stored tree nodes not yet met, by (height, index); `None` when not checked (exports).
    nodes: Option<HashMap<(u32, u64), Hash>>,
    report: Report,
    /// Embedded proofs waiting for their checkpoint's size to be reached.
    pending_proofs: Vec<(i64, Hash, i64, Vec<Hash>)>,
    /// The ranges retention entries say they removed.
    listed: Vec<RemovedRange>,
    /// The covenant's history as the log shows it.
    covenant: CovenantHistory,
    /// The stored versions' retention periods and witnesses, when the database has them (not
    /// for exports).
    versions: Option<StoredVersions>,
    /// Per entry about a person (content present): its map key, by sequence number.
    subjects: Vec<(i64, Hash)>,
}

/// The covenant versions the log made active, replayed in order (issue 37): every entry was
/// decided under the version in force, or the one it replaced (a request in flight at an
/// activation, or an instance that had not yet followed it, finishes under that one). An
/// entry under a version no `bootstrap` or `activate` step made active was served under a
/// covenant the log does not show.
#[derive(Debug, Default)]
struct CovenantHistory {
    in_force: Option<String>,
    replaced: Option<String>,
}

/// The few fields of an entry the covenant history needs, read without the rest.
#[derive(serde::Deserialize)]
struct VersionFields {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    policy_version: String,
    #[serde(default)]
    policy_change: Option<ActivationFields>,
}

#[derive(serde::Deserialize)]
struct ActivationFields {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

impl<'a> Pass<'a> {
    /// Starts a pass; `checkpoints` by size. `nodes`: the stored tree nodes to check, if any.
    pub fn new(
        keys: &'a KeySet,
        checkpoints: Vec<StoredCheckpoint>,
        nodes: Option<Vec<NodeRow>>,
    ) -> Self {
        Pass {
            keys,
            checkpoints,
            next_checkpoint: 0,
            roots: BTreeMap::new(),
            expected: 1,
            prev: GENESIS,
            frontier: Frontier::default(),
            nodes: nodes.map(|n| {
                n.into_iter()
                    .map(|r| {
                        (
                            (
                                u32::try_from(r.height).unwrap_or(u32::MAX),
                                u64::try_from(r.idx).unwrap_or(u64::MAX),
                            ),
                            r.hash,
                        )
                    })
                    .collect()
            }),
            report: Report {
                entries: 0,
                checkpoints: 0,
                nodes: 0,
                proofs: 0,
                removed: 0,
                removed_ranges: Vec::new(),
                first_bad: None,
                unproven: None,
            },
            pending_proofs: Vec::new(),
            listed: Vec::new(),
            covenant: CovenantHistory::default(),
            versions: None,
            subjects: Vec::new(),
        }
    }

    /// Holds every retention step and start to the version it was taken under.
    pub fn with_versions(mut self, versions: StoredVersions) -> Self {
        self.versions = Some(versions);
        self
    }

    /// Replays the covenant's history over one (verified) entry.
    fn covenant_step(&mut self, seq: i64, text: &str) {
        let Ok(e) = serde_json::from_str::<VersionFields>(text) else {
            return;
        };
        let h = &self.covenant;
        if let Some(now) = &h.in_force
            && e.policy_version != *now
            && h.replaced.as_deref() != Some(e.policy_version.as_str())
        {
            let why = format!(
                "entry {seq} was decided under covenant version {}, which the log never made active (in force: {now}): the gateway served a version switched outside the log",
                e.policy_version
            );
            self.bad(seq, why);
        }
        let activated = e.kind == "policy"
            && e.outcome == "answered"
            && e.policy_change
                .as_ref()
                .is_some_and(|p| matches!(p.action.as_deref(), Some("activate" | "bootstrap")));
        if let Some(v) = e
            .policy_change
            .and_then(|p| p.version)
            .filter(|_| activated)
        {
            let h = &mut self.covenant;
            h.replaced = h.in_force.replace(v);
        }
    }

    fn bad(&mut self, seq: i64, why: String) {
        if self.report.first_bad.is_none() {
            self.report.first_bad = Some((seq, why));
        }
    }

    /// One entry: its sequence number, its content and stored hashes.
    pub fn entry(&mut self, seq: i64, content: Content<'_>, stored_leaf: Hash, stored_chain: Hash) {
        if seq != self.expected {
            let e = self.expected;
            self.bad(
                e,
                format!("entry {e} is missing: the log jumps to {seq} (an entry was removed)"),
            );
            self.expected = seq;
        }
        let leaf = match content {
            Content::Present(text) => {
                let leaf = leaf_hash(text.as_bytes());
                if stored_leaf != leaf {
                    self.bad(
                        seq,
                        format!(
                            "entry {seq} was changed: its content does not match its leaf hash"
                        ),
                    );
                } else {
                    if text.contains(r#""kind":"retention""#) {
                        self.retention_listing(seq, text);
                    }
                    if text.contains(r#""kind":"start""#)
                        || text.contains(r#""kind":"witness-override""#)
                    {
                        self.start_listing(seq, text);
                    }
                    self.covenant_step(seq, text);
                    if let Some(p) = super::subjects::about(text) {
                        self.subjects.push((seq, super::subjects::key_of(&p)));
                    }
                }
                leaf
            }
            Content::Removed(rule) => {
                // The hash cannot be recomputed; the chain, the tree and the checkpoints still
                // check it, and the retention entry that removed the content must list it.
                self.report.removed += 1;
                extend_ranges(&mut self.report.removed_ranges, seq, seq, rule);
                stored_leaf
            }
            Content::Missing => {
                self.bad(
                    seq,
                    format!("entry {seq}'s content was removed, and no retention run removed it"),
                );
                stored_leaf
            }
        };
        let link = chain_hash(&self.prev, &leaf);
        if stored_chain != link {
            self.bad(seq, format!("entry {seq} does not follow entry {}: the chain is broken (reordered, inserted or changed)", seq - 1));
        }
        self.prev = stored_chain;
        let mut node_problem = None;
        let nodes = &mut self.nodes;
        let report = &mut self.report;
        self.frontier.push_with(leaf, |h, k, x| {
            if !tree::is_stored_height(h) {
                return;
            }
            let Some(stored) = nodes.as_mut() else { return };
            report.nodes += 1;
            match stored.remove(&(h, k)) {
                Some(s) if s == *x => {}
                Some(_) => {
                    node_problem.get_or_insert(format!("the stored tree node at height {h}, index {k} was changed (it covers entries up to {seq})"));
                }
                None => {
                    node_problem.get_or_insert(format!("the stored tree node at height {h}, index {k} is missing (it covers entries up to {seq})"));
                }
            }
        });
        if let Some(p) = node_problem {
            self.bad(seq, p);
        }
        self.report.entries += 1;
        self.expected += 1;
        while let Some(c) = self.checkpoints.get(self.next_checkpoint).cloned() {
            if u64::try_from(c.size).ok() != Some(self.frontier.size()) {
                break;
            }
            self.checkpoint(&c);
            self.next_checkpoint += 1;
        }
    }

    /// Holds a (verified) start to the witnesses of the version in force.
    fn start_listing(&mut self, seq: i64, text: &str) {
        let Ok(e) = LogEntry::parse(seq, text) else {
            return;
        };
        if !matches!(e.kind, Kind::Start | Kind::WitnessOverride) {
            return;
        }
        if let Some(why) = self
            .versions
            .as_ref()
            .and_then(|v| start_against(v, seq, &e))
        {
            self.bad(seq, why);
        }
    }

    /// Collects what a (verified) retention entry says it removed: only entries before it.
    fn retention_listing(&mut self, seq: i64, text: &str) {
        let Ok(e) = LogEntry::parse(seq, text) else {
            return;
        };
        if e.kind != Kind::Retention {
            return;
        }
        if let (Some(versions), Some(step)) = (&self.versions, &e.retention) {
            let why = retention_against(versions, seq, &e.policy_version, e.at, step);
            if let Some(why) = why {
                self.bad(seq, why);
            }
        }
        for r in e.retention.map(|r| r.log).unwrap_or_default() {
            if r.first > r.last || r.first < 1 || r.last >= seq {
                self.bad(
                    seq,
                    format!(
                        "retention entry {seq} lists entries {}..={}, which are not entries before it",
                        r.first, r.last
                    ),
                );
                continue;
            }
            self.listed.push(r);
        }
    }

    /// Checks an entry's stored columns and side-table rows against their derivation from the
    /// entry (database only).
    pub fn columns(&mut self, seq: i64, stored: &RecordRow, products: &[ProductRow]) {
        let entry = match LogEntry::parse(seq, &stored.entry) {
            Ok(e) => e,
            Err(e) => {
                self.bad(seq, e.to_string());
                return;
            }
        };
        let derived = entry.index(seq, stored.entry.clone());
        if let Some(col) = differing_column(&derived.record, stored) {
            self.bad(
                seq,
                format!("entry {seq}'s stored column `{col}` does not match the entry (changed outside the gateway)"),
            );
        }
        let mut stored_products = products.to_vec();
        stored_products.sort();
        let mut want = derived.products;
        want.sort();
        if stored_products != want {
            self.bad(
                seq,
                format!("entry {seq}'s products in log_products do not match the entry (changed, added or removed outside the gateway)"),
            );
        }
    }

    fn checkpoint(&mut self, c: &StoredCheckpoint) {
        self.report.checkpoints += 1;
        let recomputed = self.frontier.root();
        self.roots.insert(c.size, recomputed);
        let size = c.size;
        let problem = match self.keys.verify(&c.note) {
            Err(e) => Some(format!("checkpoint at size {size}: {e}")),
            Ok((n, _)) if i64::try_from(n.size).ok() != Some(size) => {
                Some(format!("checkpoint at size {size} says size {}", n.size))
            }
            Ok((n, _)) if n.root != recomputed || c.root != recomputed => Some(format!(
                "checkpoint at size {size} does not match the entries: an entry up to {size} was changed, removed, reordered or inserted"
            )),
            Ok(_) => None,
        };
        if let Some(p) = problem {
            self.bad(size, p);
        }
    }

    /// Checks an embedded inclusion proof of entry `seq` (with leaf hash `leaf`) against the
    /// checkpoint of `size`.
    pub fn proof(&mut self, seq: i64, leaf: &Hash, size: i64, proof: &[Hash]) {
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
        let ok = match (u64::try_from(seq - 1), u64::try_from(size)) {
            (Ok(i), Ok(n)) => verify_inclusion(leaf, i, n, proof, &root),
            _ => false,
        };
        if !ok {
            self.bad(
                seq,
                format!("entry {seq}'s inclusion proof does not verify against checkpoint {size}"),
            );
        }
    }

    /// What was found removed against what the retention entries say they removed.
    fn check_removals(&mut self) {
        let mut listed = std::mem::take(&mut self.listed);
        listed.sort();
        let mut want: Vec<RemovedRange> = Vec::new();
        for r in listed {
            if want.last().is_some_and(|w| r.first <= w.last) {
                self.bad(
                    r.first,
                    format!(
                        "entry {} is listed as removed by two retention entries",
                        r.first
                    ),
                );
                continue;
            }
            extend_ranges(&mut want, r.first, r.last, &r.rule);
        }
        let found = &self.report.removed_ranges;
        let show = |r: Option<&RemovedRange>| {
            r.map_or_else(
                || "nothing".to_owned(),
                |r| format!("entries {}..={} under rule {}", r.first, r.last, r.rule),
            )
        };
        let first_difference = (0..want.len().max(found.len()))
            .map(|i| (want.get(i), found.get(i)))
            .find(|(w, f)| w != f);
        if let Some((w, f)) = first_difference {
            let seq = [w, f]
                .into_iter()
                .flatten()
                .map(|r| r.first)
                .min()
                .unwrap_or(0);
            let why = format!(
                "removed content does not match the retention entries: the log shows {} removed where the retention entries list {}",
                show(f),
                show(w)
            );
            self.bad(seq, why);
        }
    }

    /// Ends the pass against the recorded log head.
    pub fn finish(mut self, head_size: i64, head_chain: &Hash, head_root: Option<&Hash>) -> Report {
        self.check_removals();
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
            .map(|c| c.size)
            .collect();
        for size in unreached {
            self.report.checkpoints += 1;
            self.bad(size, format!("checkpoint at size {size} covers entries that are not in the log (entries removed)"));
        }
        if let Some(left) = self.nodes.as_ref().and_then(|n| n.keys().min().copied()) {
            self.bad(
                self.report.entries,
                format!("the stored tree has a node at height {}, index {} that covers entries not in the log", left.0, left.1),
            );
        }
        let found = self.report.entries;
        if head_size != found {
            self.bad(
                found.min(head_size) + 1,
                format!("the log head counts {head_size} entries but {found} were found"),
            );
        } else if found > 0 && *head_chain != self.prev {
            self.bad(
                found,
                "the log head's chain hash does not match the last entry".into(),
            );
        } else if head_root.is_some_and(|r| *r != self.frontier.root()) {
            self.bad(
                found,
                "the log head's tree root does not match the entries".into(),
            );
        }
        self.report
    }
}

fn differing_column(a: &RecordRow, b: &RecordRow) -> Option<&'static str> {
    let checks: [(&'static str, bool); 15] = [
        ("seq", a.seq == b.seq),
        ("entry", a.entry == b.entry),
        ("id", a.id == b.id),
        ("at", a.at == b.at),
        ("trace_id", a.trace_id == b.trace_id),
        ("kind", a.kind == b.kind),
        ("partner", a.partner == b.partner),
        ("staff_id", a.staff_id == b.staff_id),
        ("role", a.role == b.role),
        ("purpose", a.purpose == b.purpose),
        ("case_id", a.case_id == b.case_id),
        (
            "subject_pseudonym",
            a.subject_pseudonym == b.subject_pseudonym,
        ),
        ("policy_version", a.policy_version == b.policy_version),
        ("outcome", a.outcome == b.outcome),
        ("problem", a.problem == b.problem),
    ];
    checks.into_iter().find(|(_, same)| !same).map(|(c, _)| c)
}

/// Which stored checkpoints which witnesses cosigned, checked against their keys.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WitnessReport {
    /// Per cosigned checkpoint: its size and the witnesses whose cosignature verifies.
    pub checkpoints: Vec<WitnessedCheckpoint>,
    /// How many of them reach the quorum.
    pub quorum_met: usize,
    /// The quorum asked for.
    pub quorum: usize,
    /// Cosignatures that do not verify, or of a checkpoint the log does not have: tampering.
    pub bad: Vec<String>,
}

/// One checkpoint's witnesses.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WitnessedCheckpoint {
    /// Tree size.
    pub size: i64,
    /// Witnesses (by name) with a valid cosignature, and its timestamp.
    pub by: Vec<(String, u64)>,
}

impl WitnessReport {
    /// The largest checkpoint cosigned by a quorum.
    pub fn latest_witnessed(&self) -> Option<&WitnessedCheckpoint> {
        self.checkpoints
            .iter()
            .rev()
            .find(|c| c.by.len() >= self.quorum)
    }
}

/// Checks every stored cosignature against the witnesses' keys and the checkpoint it cosigns.
/// Cosignatures of witnesses not among `verifiers` are ignored (not the caller's witnesses).
pub async fn witnesses(
    db: &Db,
    verifiers: &[crate::log::cosign::CosignVerifier],
    quorum: usize,
) -> Result<WitnessReport, StoreError> {
    let notes: HashMap<i64, String> = db
        .checkpoints()
        .await?
        .into_iter()
        .map(|c| (c.size, c.note))
        .collect();
    let mut report = WitnessReport {
        quorum,
        ..WitnessReport::default()
    };
    let mut by_size: std::collections::BTreeMap<i64, Vec<(String, u64)>> = Default::default();
    for c in db.cosignatures(None).await? {
        let Some(v) = verifiers.iter().find(|v| v.name() == c.witness) else {
            continue;
        };
        let Some(note) = notes.get(&c.size) else {
            report.bad.push(format!(
                "a cosignature by {} of size {}, but the log has no checkpoint of that size",
                c.witness, c.size
            ));
            continue;
        };
        match v.verify(&format!("{note}{}", c.line)) {
            Ok(Some(ts)) => by_size.entry(c.size).or_default().push((c.witness, ts)),
            _ => report.bad.push(format!(
                "the cosignature by {} of the checkpoint of size {} does not verify",
                c.witness, c.size
            )),
        }
    }
    report.checkpoints = by_size
        .into_iter()
        .map(|(size, by)| WitnessedCheckpoint { size, by })
        .collect();
    report.quorum_met = report
        .checkpoints
        .iter()
        .filter(|c| c.by.len() >= quorum)
        .count();
    Ok(report)
}

/// Receipts that partners kept, held against the log.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReceiptReport {
    /// Receipts read.
    pub checked: usize,
    /// Each receipt that does not hold: its name and why.
    pub bad: Vec<String>,
}

/// Checks each receipt (`(name, signed note)`): signed by one of the log's keys, for this log's
/// `origin`, and naming an entry the log holds at that seq with that leaf hash. A receipt the
/// log does not hold is a partner's proof that an answered entry went missing.
pub async fn receipts(
    db: &Db,
    keys: &KeySet,
    origin: &str,
    notes: &[(String, String)],
) -> Result<ReceiptReport, StoreError> {
    let size = db.log_head().await?.size;
    let mut report = ReceiptReport::default();
    for (name, note) in notes {
        report.checked += 1;
        let r = match super::receipt::Receipt::verify(note, keys) {
            Ok(r) => r,
            Err(e) => {
                report
                    .bad
                    .push(format!("{name}: not a receipt of this log's keys: {e}"));
                continue;
            }
        };
        if r.origin != origin {
            report.bad.push(format!(
                "{name}: a receipt of another log (`{}`, this is `{origin}`)",
                r.origin
            ));
            continue;
        }
        let seq = i64::try_from(r.seq).unwrap_or(i64::MAX);
        if seq < 1 || seq > size {
            report.bad.push(format!(
                "{name}: entry {seq} was promised, and the log has {size} entries: an answered entry is missing"
            ));
            continue;
        }
        match db.leaf_hashes(seq - 1, seq).await?.first() {
            Some((_, h)) if *h == r.leaf => {}
            Some(_) => report.bad.push(format!(
                "{name}: entry {seq} in the log is not the entry the receipt promised (another leaf hash): the log was rewritten at {seq}"
            )),
            None => report.bad.push(format!(
                "{name}: entry {seq} has no leaf in the log: an answered entry is missing"
            )),
        }
    }
    Ok(report)
}

/// Entries read per page.
const PAGE: i64 = 20_000;

/// Verifies the whole log in the database; checkpoints must be signed by a key of `keys`.
/// `progress` is called after each page with the entries read so far.
pub async fn verify(
    db: &Db,
    keys: &KeySet,
    progress: impl FnMut(i64),
) -> Result<Report, StoreError> {
    verify_with(db, keys, None, progress).await
}

/// [`verify`], holding every retention step and start to `versions` (the stored versions'
/// periods and witnesses) when given.
pub async fn verify_with(
    db: &Db,
    keys: &KeySet,
    versions: Option<StoredVersions>,
    mut progress: impl FnMut(i64),
) -> Result<Report, StoreError> {
    let mut pass = Pass::new(keys, db.checkpoints().await?, Some(db.all_nodes().await?));
    if let Some(v) = versions {
        pass = pass.with_versions(v);
    }
    let tombstones = db.tombstones().await?;
    let mut stones = tombstones.iter().peekable();
    let mut after = 0i64;
    loop {
        let page = db.entries(after, PAGE).await?;
        let Some(last) = page.last().map(|e| e.leaf.seq) else {
            break;
        };
        let products = db.products_between(after, last).await?;
        let mut by_seq: HashMap<i64, Vec<ProductRow>> = HashMap::new();
        for p in products {
            by_seq.entry(p.seq).or_default().push(p);
        }
        for e in &page {
            let seq = e.leaf.seq;
            while stones.next_if(|t| t.last_seq < seq).is_some() {}
            let stone: Option<&TombstoneRow> =
                stones.peek().copied().filter(|t| t.first_seq <= seq);
            let content = match (&e.record, stone) {
                (Some(r), None) => Content::Present(&r.entry),
                (Some(r), Some(t)) => {
                    pass.bad(seq, format!("entry {seq} was removed under retention rule {}, but its content is back", t.rule));
                    Content::Present(&r.entry)
                }
                (None, Some(t)) => Content::Removed(&t.rule),
                (None, None) => Content::Missing,
            };
            pass.entry(seq, content, e.leaf.leaf_hash, e.leaf.chain_hash);
            let products = by_seq.remove(&seq).unwrap_or_default();
            match &e.record {
                Some(r) => pass.columns(seq, r, &products),
                None if !products.is_empty() => pass.bad(
                    seq,
                    format!("entry {seq} has products in log_products but no content"),
                ),
                None => {}
            }
        }
        // Side-table rows of entries this page does not have (an inserted row).
        if let Some(seq) = by_seq.keys().min() {
            pass.bad(
                *seq,
                format!("log_products names entry {seq}, which has no content"),
            );
        }
        after = last;
        progress(pass.report.entries);
    }
    let rows = db.subject_entries(None, i64::MAX).await?;
    let stored_checkpoints = db.checkpoints().await?;
    subject_map_check(&mut pass, &rows, &stored_checkpoints);
    if let Some(seq) = db.orphan_records().await?.first() {
        pass.bad(
            *seq,
            format!("log_records has content for entry {seq}, which the log does not have"),
        );
    }
    let head = db.log_head().await?;
    if let Some(t) = tombstones.iter().find(|t| t.last_seq > head.size) {
        pass.bad(
            t.first_seq,
            format!(
                "a tombstone covers entries {}..={}, beyond the log's {} entries",
                t.first_seq, t.last_seq, head.size
            ),
        );
    }
    Ok(pass.finish(head.size, &head.chain_hash, head.root.as_ref()))
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
        /// Its last chain hash, hex.
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
        /// Canonical JSON, exactly as hashed; absent when the entry's content is not in the log.
        #[serde(default)]
        entry: Option<String>,
        /// When a retention run removed the content: the rule (a retention entry in the same
        /// file must list it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removed: Option<String>,
        /// Leaf hash, hex.
        leaf_hash: String,
        /// Chain hash, hex.
        chain_hash: String,
        /// Size of the checkpoint the proof is against.
        proof_size: Option<i64>,
        /// Inclusion proof, hex, bottom-up.
        proof: Vec<String>,
    },
}

pub use super::merkle::parse_hash;

/// Verifies an export file (untrusted input: every line is checked, nothing is assumed). An
/// entry that no signed checkpoint in the file covers is unproven: a failure unless
/// `accept_unproven` (then the report names them).
pub fn verify_export(
    reader: impl BufRead,
    keys: &KeySet,
    accept_unproven: bool,
) -> Result<Report, String> {
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
    let head_chain = parse_hash(&head_chain).ok_or("line 1: the head's chain hash is not hex")?;
    let mut checkpoints = Vec::new();
    let mut pass: Option<Pass<'_>> = None;
    for (n, line) in lines.enumerate() {
        let at = n + 2;
        let line = line.map_err(|e| e.to_string())?;
        match serde_json::from_str::<ExportLine>(&line).map_err(|e| format!("line {at}: {e}"))? {
            ExportLine::Checkpoint { size, root, note } if pass.is_none() => {
                let root = parse_hash(&root).ok_or(format!("line {at}: root is not hex"))?;
                checkpoints.push(StoredCheckpoint {
                    size,
                    root,
                    note,
                    at: 0,
                });
            }
            ExportLine::Checkpoint { .. } => {
                return Err(format!("line {at}: checkpoints come before the entries"));
            }
            ExportLine::Header { .. } => return Err(format!("line {at}: a second header")),
            ExportLine::Entry {
                seq,
                entry,
                removed,
                leaf_hash,
                chain_hash,
                proof_size,
                proof,
            } => {
                let leaf =
                    parse_hash(&leaf_hash).ok_or(format!("line {at}: leaf hash is not hex"))?;
                let chain =
                    parse_hash(&chain_hash).ok_or(format!("line {at}: chain hash is not hex"))?;
                let p = pass
                    .get_or_insert_with(|| Pass::new(keys, std::mem::take(&mut checkpoints), None));
                let content = match (entry.as_deref(), removed.as_deref()) {
                    (Some(text), _) => Content::Present(text),
                    (None, Some(rule)) => Content::Removed(rule),
                    (None, None) => Content::Missing,
                };
                p.entry(seq, content, leaf, chain);
                if let Some(size) = proof_size.filter(|s| *s >= seq) {
                    let proven = entry
                        .as_deref()
                        .map_or(leaf, |e| super::merkle::leaf_hash(e.as_bytes()));
                    match proof
                        .iter()
                        .map(|h| parse_hash(h))
                        .collect::<Option<Vec<_>>>()
                    {
                        // The checkpoint is only known once its size is reached: check later.
                        Some(h) => p.pending_proofs.push((seq, proven, size, h)),
                        None => p.bad(seq, format!("entry {seq}'s proof is not hex")),
                    }
                }
                let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut p.pending_proofs)
                    .into_iter()
                    .partition(|(_, _, s, _)| p.roots.contains_key(s));
                p.pending_proofs = waiting;
                for (seq, leaf, size, h) in ready {
                    p.proof(seq, &leaf, size, &h);
                }
            }
        }
    }
    let mut pass = pass.unwrap_or_else(|| Pass::new(keys, checkpoints, None));
    let proven = pass.roots.keys().max().copied().unwrap_or(0);
    let found = pass.report.entries;
    if found > proven {
        pass.report.unproven = Some((proven + 1, found));
        if !accept_unproven {
            pass.bad(
                proven + 1,
                format!(
                    "entries {}..={found} are in no signed checkpoint of the export, so nothing proves them: export again (an export signs a checkpoint over every entry), or pass --accept-unproven to check the rest",
                    proven + 1
                ),
            );
        }
    }
    Ok(pass.finish(head_size, &head_chain, None))
}

#[cfg(test)]
mod covenant_history_tests {
    use super::*;
    use crate::log::checkpoint::{LogKey, NoteVerifier};

    fn entry(kind: &str, version: &str, activates: Option<(&str, &str)>) -> String {
        let change = activates.map_or(String::new(), |(action, v)| {
            format!(r#","policy_change":{{"action":"{action}","version":"{v}"}}"#)
        });
        format!(r#"{{"kind":"{kind}","outcome":"answered","policy_version":"{version}"{change}}}"#)
    }

    fn entry_of(kind: &str, version: &str) -> LogEntry {
        LogEntry::new(crate::log::entry::Start {
            id: "gw-1".into(),
            at: 1_800_000_000,
            trace_id: "t",
            kind: kind.parse().unwrap(),
            partner: "gateway".into(),
            policy_version: version,
        })
    }

    /// Issue 37: `audit verify` replays the covenant's history; an entry decided under a
    /// version the log never made active is named.
    #[test]
    fn an_entry_under_a_version_the_log_never_activated_is_named() {
        let key = LogKey::from_seed("log.example", &[3; 32]).unwrap();
        let keys = KeySet::new(vec![NoteVerifier::from_vkey(&key.vkey()).unwrap()]).unwrap();
        let run = |texts: &[String]| {
            let mut pass = Pass::new(&keys, Vec::new(), None);
            let mut prev = GENESIS;
            for (i, t) in texts.iter().enumerate() {
                let leaf = leaf_hash(t.as_bytes());
                prev = chain_hash(&prev, &leaf);
                pass.entry(
                    i64::try_from(i).unwrap() + 1,
                    Content::Present(t),
                    leaf,
                    prev,
                );
            }
            pass.finish(i64::try_from(texts.len()).unwrap(), &prev, None)
                .first_bad
        };
        let mut log = vec![
            entry("policy", "v1", Some(("bootstrap", "v1"))),
            entry("disclosure", "v1", None),
            entry("policy", "v1", Some(("activate", "v2"))),
            // In flight at the activation: the version it replaced.
            entry("disclosure", "v1", None),
            entry("disclosure", "v2", None),
        ];
        assert_eq!(run(&log), None);
        log.push(entry("disclosure", "v-forged", None));
        let bad = run(&log).unwrap();
        assert_eq!(bad.0, 6);
        assert!(bad.1.contains("v-forged"), "{}", bad.1);
        // Nor, two activations on, the version two back.
        log.pop();
        log.push(entry("policy", "v2", Some(("activate", "v3"))));
        log.push(entry("disclosure", "v1", None));
        assert_eq!(run(&log).map(|b| b.0), Some(7));
    }

    #[test]
    fn a_start_is_held_to_the_witnesses_of_its_version() {
        use crate::log::entry::{StartCheck, WitnessOverride};
        let named = |w: &[&str]| VersionFacts {
            periods: HashMap::new(),
            witnesses: w.iter().map(|s| (*s).to_owned()).collect(),
        };
        let versions: StoredVersions = [
            ("v1".to_owned(), named(&["bz", "om"])),
            ("v0".to_owned(), named(&[])),
        ]
        .into_iter()
        .collect();
        let start = |v: &str, asked: &[&str], unreachable: &[&str]| {
            let mut e = entry_of("start", v);
            e.start = Some(StartCheck {
                witnesses: asked.iter().map(|s| (*s).to_owned()).collect(),
                unreachable: unreachable.iter().map(|s| (*s).to_owned()).collect(),
            });
            e
        };
        let over = |v: &str, left_out: &[&str]| {
            let mut e = entry_of("witness-override", v);
            e.witness_override = Some(WitnessOverride {
                reason: "test".into(),
                unreachable: left_out.iter().map(|s| (*s).to_owned()).collect(),
            });
            e
        };
        for ok in [
            start("v1", &["om", "bz"], &[]),
            start("v1", &["bz", "om"], &["om"]),
            over("v1", &["om", "bz"]),
            over("v0", &[]),
        ] {
            assert_eq!(start_against(&versions, 4, &ok), None, "{ok:?}");
        }
        for (bad, why) in [
            (start("v1", &["bz"], &[]), "names [bz, om]"),
            (start("v1", &["bz", "om"], &["bz", "om"]), "unreachable"),
            (over("v1", &[]), "started without the witnesses []"),
            (start("v0", &["bz"], &[]), "names []"),
            (start("v9", &[], &[]), "not stored"),
            (entry_of("start", "v1"), "without what a start records"),
        ] {
            let got = start_against(&versions, 4, &bad).unwrap();
            assert!(got.contains(why), "{got}");
        }
    }

    #[test]
    fn a_retention_step_is_held_to_the_periods_of_its_version() {
        use crate::log::entry::{RetentionStep, RetentionTarget, RuleApplied};
        let periods: StoredVersions = [(
            "v1".to_owned(),
            VersionFacts {
                periods: [("checks".to_owned(), 30u32), ("deposits".to_owned(), 365)]
                    .into_iter()
                    .collect(),
                witnesses: Vec::new(),
            },
        )]
        .into_iter()
        .collect();
        let at = 1_800_000_000;
        let step = |rule: &str, days: u32, before: i64| RetentionStep {
            rules: vec![RuleApplied {
                rule: rule.into(),
                target: RetentionTarget::Log,
                kinds: vec!["check".into()],
                purposes: vec![],
                days,
                ground: "art. 12".into(),
                before,
                removed: 1,
            }],
            log: vec![],
        };
        let ok = step("checks", 30, at - 30 * 86_400);
        assert_eq!(retention_against(&periods, 9, "v1", at, &ok), None);
        for (bad, why) in [
            (
                step("checks", 0, at),
                "with 0 days, but covenant version v1 says 30",
            ),
            (step("checks", 30, at), "younger than its 30 days"),
            (step("gone", 30, at - 30 * 86_400), "does not have"),
        ] {
            let got = retention_against(&periods, 9, "v1", at, &bad).unwrap();
            assert!(got.contains(why), "{got}");
        }
        assert!(
            retention_against(&periods, 9, "v2", at, &ok)
                .unwrap()
                .contains("not stored")
        );
    }
}
