//! The disclosure log's rows. The log (`crate::log`) computes every hash and derives every
//! column; this module only writes and reads what it is handed, inside the transaction that
//! holds the log head's lock.

use super::{Db, Hash32, StoreError, Tx, hash32, on_pool, on_tx};

/// The log head: size, last chain hash, tree root (the one row of the log that changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadRow {
    /// Entries in the log.
    pub size: i64,
    /// Chain hash of the last entry (zeros for an empty log).
    pub chain_hash: Hash32,
    /// Merkle tree root at `size`; `None` until a log migrated from before the stored tree has
    /// been built.
    pub root: Option<Hash32>,
}

/// The tamper evidence of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafRow {
    /// Sequence number (1-based; the Merkle leaf index is `seq - 1`).
    pub seq: i64,
    /// `SHA-256(0x00 || entry)`.
    pub leaf_hash: Hash32,
    /// `SHA-256(previous chain hash || leaf hash)`.
    pub chain_hash: Hash32,
}

/// What an entry names that can change the case register: its kind, outcome, case and subject.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EntryNames {
    /// The entry's sequence number.
    pub seq: i64,
    /// Its kind, as stored (`crate::log::entry::Kind::as_str`).
    pub kind: String,
    /// Its outcome, as stored.
    pub outcome: String,
    /// The case it names, if any.
    pub case_id: Option<String>,
    /// The person it is about (pseudonym), if any.
    pub subject_pseudonym: Option<String>,
}

/// One entry's content: the canonical entry and the columns searches filter on, each derived
/// from the entry (by `crate::log::entry::LogEntry::index`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    /// Sequence number.
    pub seq: i64,
    /// Canonical JSON, exactly as hashed.
    pub entry: String,
    /// Entry id.
    pub id: String,
    /// When (epoch seconds).
    pub at: i64,
    /// Transaction id.
    pub trace_id: String,
    /// Kind.
    pub kind: String,
    /// Requesting partner.
    pub partner: String,
    /// Staff id.
    pub staff_id: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// Purpose.
    pub purpose: Option<String>,
    /// Case.
    pub case_id: Option<String>,
    /// Subject pseudonym.
    pub subject_pseudonym: Option<String>,
    /// Covenant version.
    pub policy_version: String,
    /// Outcome.
    pub outcome: String,
    /// Problem type of a refusal.
    pub problem: Option<String>,
}

/// A product an entry names, with the partner that owns it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct ProductRow {
    /// Sequence number.
    pub seq: i64,
    /// Product id.
    pub product: String,
    /// Owning partner.
    pub owner: String,
}

/// A stored interior node of the Merkle tree: the root of the complete subtree of `2^height`
/// leaves starting at leaf `idx * 2^height` (heights 8, 16, 24, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRow {
    /// Height (a multiple of 8).
    pub height: i64,
    /// Index at that height.
    pub idx: i64,
    /// The node hash.
    pub hash: Hash32,
}

/// An entry's place in the per-subject map: the person's key (hex) and the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRow {
    /// The person's map key, in hex.
    pub key: String,
    /// The entry's sequence number.
    pub seq: i64,
}

/// What one batch of the log writes, in one go ([`Tx::append_rows`]).
#[derive(Debug, Clone, Copy)]
pub struct AppendRows<'a> {
    /// The entries' leaves.
    pub leaves: &'a [LeafRow],
    /// Their content and columns.
    pub records: &'a [RecordRow],
    /// The products they name.
    pub products: &'a [ProductRow],
    /// The tree nodes they complete.
    pub nodes: &'a [NodeRow],
    /// Their places in the per-subject map (those about a person).
    pub subjects: &'a [SubjectRow],
    /// The head after them.
    pub head: &'a HeadRow,
}

/// An entry as stored: its hashes, and its content unless that is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The hashes.
    pub leaf: LeafRow,
    /// The content and columns.
    pub record: Option<RecordRow>,
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: i64,
    /// Tree root.
    pub root: Hash32,
    /// The signed note.
    pub note: String,
    /// When it was made (epoch seconds).
    pub at: i64,
}

/// A witness's cosignature of a checkpoint, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredCosignature {
    /// The size of the checkpoint it cosigns.
    pub size: i64,
    /// The witness's name.
    pub witness: String,
    /// The signature line, as the witness sent it (`— name base64`).
    pub line: String,
    /// The witness's timestamp (epoch seconds).
    pub cosigned_at: i64,
    /// When the gateway received it (its clock, epoch seconds).
    pub received_at: i64,
}

/// Entries a partner's officer may see: its own requests, and those that named its products.
fn visible<DB: sqlx::Database>(q: &mut sqlx::QueryBuilder<DB>, partner: Option<&str>)
where
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    if let Some(partner) = partner {
        q.push(" AND (r.partner = ")
            .push_bind(partner.to_owned())
            .push(" OR EXISTS (SELECT 1 FROM log_products p WHERE p.seq = r.seq AND p.owner = ")
            .push_bind(partner.to_owned())
            .push("))");
    }
}

/// One count of the overview.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OverviewRow {
    /// Week number (Monday-based, from 5 January 1970).
    pub week: i64,
    /// Entry kind.
    pub kind: String,
    /// Requesting partner.
    pub partner: String,
    /// Purpose, if the request named one.
    pub purpose: Option<String>,
    /// Outcome.
    pub outcome: String,
    /// Refusal type, if refused.
    pub problem: Option<String>,
    /// Entries.
    pub n: i64,
}

/// What a privacy officer searches the log for. All conditions are combined with AND.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// The subject, by its pseudonyms under every key in use (empty: any subject).
    pub subjects: Vec<String>,
    /// Requesting partner.
    pub partner: Option<String>,
    /// Staff id.
    pub staff_id: Option<String>,
    /// Purpose.
    pub purpose: Option<String>,
    /// Case id.
    pub case_id: Option<String>,
    /// A product the entry names.
    pub product: Option<String>,
    /// Outcome.
    pub outcome: Option<String>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<&'static str>,
    /// From (epoch seconds, inclusive).
    pub from: Option<i64>,
    /// To (epoch seconds, exclusive).
    pub to: Option<i64>,
    /// Only entries of this partner or about this partner's products (privacy officers of a
    /// partner); `None` for all.
    pub visible_to: Option<String>,
    /// Paging: entries after this sequence number.
    pub after_seq: i64,
    /// Page size.
    pub limit: i64,
}

#[derive(sqlx::FromRow)]
struct HeadDto {
    size: i64,
    chain_hash: Vec<u8>,
    root: Option<Vec<u8>>,
}

impl TryFrom<HeadDto> for HeadRow {
    type Error = StoreError;
    fn try_from(d: HeadDto) -> Result<Self, StoreError> {
        Ok(HeadRow {
            size: d.size,
            chain_hash: hash32(d.chain_hash, "the log head's chain hash")?,
            root: d
                .root
                .map(|r| hash32(r, "the log head's root"))
                .transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EntryDto {
    l_seq: i64,
    leaf_hash: Vec<u8>,
    chain_hash: Vec<u8>,
    seq: Option<i64>,
    entry: Option<String>,
    id: Option<String>,
    at: Option<i64>,
    trace_id: Option<String>,
    kind: Option<String>,
    partner: Option<String>,
    staff_id: Option<String>,
    role: Option<String>,
    purpose: Option<String>,
    case_id: Option<String>,
    subject_pseudonym: Option<String>,
    policy_version: Option<String>,
    outcome: Option<String>,
    problem: Option<String>,
}

impl TryFrom<EntryDto> for StoredEntry {
    type Error = StoreError;
    fn try_from(d: EntryDto) -> Result<Self, StoreError> {
        let leaf = LeafRow {
            seq: d.l_seq,
            leaf_hash: hash32(d.leaf_hash, "a leaf hash")?,
            chain_hash: hash32(d.chain_hash, "a chain hash")?,
        };
        let record = match (
            d.seq,
            d.entry,
            d.id,
            d.at,
            d.trace_id,
            d.kind,
            d.partner,
            d.policy_version,
            d.outcome,
        ) {
            (
                Some(seq),
                Some(entry),
                Some(id),
                Some(at),
                Some(trace_id),
                Some(kind),
                Some(partner),
                Some(policy_version),
                Some(outcome),
            ) => Some(RecordRow {
                seq,
                entry,
                id,
                at,
                trace_id,
                kind,
                partner,
                staff_id: d.staff_id,
                role: d.role,
                purpose: d.purpose,
                case_id: d.case_id,
                subject_pseudonym: d.subject_pseudonym,
                policy_version,
                outcome,
                problem: d.problem,
            }),
            _ => None,
        };
        Ok(StoredEntry { leaf, record })
    }
}

#[derive(sqlx::FromRow)]
struct CheckpointDto {
    size: i64,
    root: Vec<u8>,
    note: String,
    at: i64,
}

impl TryFrom<CheckpointDto> for StoredCheckpoint {
    type Error = StoreError;
    fn try_from(d: CheckpointDto) -> Result<Self, StoreError> {
        Ok(StoredCheckpoint {
            size: d.size,
            root: hash32(d.root, "a checkpoint's root")?,
            note: d.note,
            at: d.at,
        })
    }
}

const ENTRIES: &str = "SELECT l.seq AS l_seq, l.leaf_hash, l.chain_hash, r.* FROM log_leaves l LEFT JOIN log_records r ON r.seq = l.seq WHERE l.seq > $1 ORDER BY l.seq LIMIT $2";
/// Rows per multi-row INSERT: well under SQLite's bound-variable limit at 15 columns.
const CHUNK: usize = 256;

/// `INSERT INTO log_records … VALUES …` for `rows`, onto `qb` (either backend).
/// The column lists of the log's tables: one text for the batch statements and the appender's.
macro_rules! leaf_insert {
    () => {
        "INSERT INTO log_leaves (seq, leaf_hash, chain_hash) "
    };
}
macro_rules! record_insert {
    () => {
        "INSERT INTO log_records (seq, entry, id, at, trace_id, kind, partner, staff_id, role, purpose, case_id, subject_pseudonym, policy_version, outcome, problem) "
    };
}
macro_rules! product_insert {
    () => {
        "INSERT INTO log_products (seq, product, owner) "
    };
}
macro_rules! subject_insert {
    () => {
        "INSERT INTO log_subject_entries (subject_key, seq) "
    };
}

/// What an indexing step may write again (another instance's entries, a retry).
macro_rules! subject_conflict {
    () => {
        " ON CONFLICT (subject_key, seq) DO NOTHING"
    };
}

macro_rules! node_insert {
    () => {
        "INSERT INTO log_nodes (height, idx, hash) "
    };
}
/// One leaf.
pub(super) const INSERT_LEAF: &str = concat!(leaf_insert!(), "VALUES ($1, $2, $3)");
/// One entry's content and columns.
pub(super) const INSERT_RECORD: &str = concat!(
    record_insert!(),
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
);
/// One product an entry names.
pub(super) const INSERT_PRODUCT: &str = concat!(product_insert!(), "VALUES ($1, $2, $3)");
/// One entry's place in the per-subject map.
pub(super) const INSERT_SUBJECT: &str =
    concat!(subject_insert!(), "VALUES ($1, $2)", subject_conflict!());
/// One tree node.
pub(super) const INSERT_NODE: &str = concat!(node_insert!(), "VALUES ($1, $2, $3)");
/// The new head.
pub(super) const SET_HEAD: &str =
    "UPDATE log_tree_head SET size = $1, chain_hash = $2, root = $3 WHERE id = 1";

fn push_records<'a, DB: sqlx::Database>(qb: &mut sqlx::QueryBuilder<DB>, rows: &'a [RecordRow])
where
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    qb.push(record_insert!());
    qb.push_values(rows, |mut v, r| {
        v.push_bind(r.seq)
            .push_bind(&r.entry)
            .push_bind(&r.id)
            .push_bind(r.at)
            .push_bind(&r.trace_id)
            .push_bind(&r.kind)
            .push_bind(&r.partner)
            .push_bind(&r.staff_id)
            .push_bind(&r.role)
            .push_bind(&r.purpose)
            .push_bind(&r.case_id)
            .push_bind(&r.subject_pseudonym)
            .push_bind(&r.policy_version)
            .push_bind(&r.outcome)
            .push_bind(&r.problem);
    });
}

impl Tx {
    /// Takes the log head's lock (one writer at a time, across instances) and reads it.
    pub async fn lock_head(&mut self) -> Result<HeadRow, StoreError> {
        let dto: HeadDto = on_tx!(self, t => {
            // The update takes the write lock (SQLite) or the row lock (PostgreSQL) before the read.
            sqlx::query("UPDATE log_tree_head SET size = size WHERE id = 1")
                .execute(&mut **t)
                .await?;
            sqlx::query_as("SELECT size, chain_hash, root FROM log_tree_head WHERE id = 1")
                .fetch_one(&mut **t)
                .await
        })?;
        HeadRow::try_from(dto)
    }

    /// Writes a batch: its leaves, content, product rows and completed tree nodes, and the new
    /// head. On SQLite in one round trip to the connection's thread (one string of statements,
    /// their parameters in order); on PostgreSQL one statement per table and chunk.
    pub async fn append_rows(&mut self, b: &AppendRows<'_>) -> Result<(), StoreError> {
        let t = match &mut self.inner {
            super::TxInner::Sqlite(t) => t,
            super::TxInner::Postgres(_) => {
                self.insert_leaves(b.leaves).await?;
                self.insert_records(b.records).await?;
                self.insert_products(b.products).await?;
                self.insert_nodes(b.nodes).await?;
                self.insert_subjects(b.subjects).await?;
                return self.set_head(b.head).await;
            }
        };
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new("");
        // Chunks well under SQLite's 32,766 variables per statement.
        for chunk in b.leaves.chunks(4 * CHUNK) {
            qb.push(leaf_insert!());
            qb.push_values(chunk, |mut v, r| {
                v.push_bind(r.seq)
                    .push_bind(&r.leaf_hash[..])
                    .push_bind(&r.chain_hash[..]);
            });
            qb.push(";\n");
        }
        for chunk in b.records.chunks(4 * CHUNK) {
            push_records(&mut qb, chunk);
            qb.push(";\n");
        }
        for chunk in b.products.chunks(8 * CHUNK) {
            qb.push(product_insert!());
            qb.push_values(chunk, |mut v, r| {
                v.push_bind(r.seq).push_bind(&r.product).push_bind(&r.owner);
            });
            qb.push(";\n");
        }
        for chunk in b.nodes.chunks(4 * CHUNK) {
            qb.push(node_insert!());
            qb.push_values(chunk, |mut v, r| {
                v.push_bind(r.height)
                    .push_bind(r.idx)
                    .push_bind(&r.hash[..]);
            });
            qb.push(";\n");
        }
        for chunk in b.subjects.chunks(8 * CHUNK) {
            qb.push(subject_insert!());
            qb.push_values(chunk, |mut v, r| {
                v.push_bind(&r.key).push_bind(r.seq);
            });
            qb.push(subject_conflict!());
            qb.push(";\n");
        }
        qb.push("UPDATE log_tree_head SET size = ")
            .push_bind(b.head.size)
            .push(", chain_hash = ")
            .push_bind(&b.head.chain_hash[..])
            .push(", root = ")
            .push_bind(b.head.root.as_ref().map(|r| &r[..]))
            .push(" WHERE id = 1");
        // Only small batches' statements are kept prepared: each batch size is its own text,
        // and a prepared 512-row statement is large.
        qb.build()
            .persistent(b.leaves.len() <= 4)
            .execute(&mut **t)
            .await?;
        Ok(())
    }

    /// Writes the new head.
    pub async fn set_head(&mut self, h: &HeadRow) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query(SET_HEAD)
            .bind(h.size)
            .bind(&h.chain_hash[..])
            .bind(h.root.as_ref().map(|r| &r[..]))
            .execute(&mut **t)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Inserts leaves.
    pub async fn insert_leaves(&mut self, rows: &[LeafRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(CHUNK) {
            on_tx!(self, t => {
                let mut qb = sqlx::QueryBuilder::new(leaf_insert!());
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(r.seq)
                        .push_bind(r.leaf_hash.to_vec())
                        .push_bind(r.chain_hash.to_vec());
                });
                qb.build().execute(&mut **t).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Inserts entries' content.
    pub async fn insert_records(&mut self, rows: &[RecordRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(CHUNK) {
            on_tx!(self, t => {
                let mut qb = sqlx::QueryBuilder::new("");
                push_records(&mut qb, chunk);
                qb.build().execute(&mut **t).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Inserts the products entries name.
    pub async fn insert_products(&mut self, rows: &[ProductRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(CHUNK) {
            on_tx!(self, t => {
                let mut qb = sqlx::QueryBuilder::new(product_insert!());
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(r.seq).push_bind(&r.product).push_bind(&r.owner);
                });
                qb.build().execute(&mut **t).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Writes entries' places in the per-subject map.
    pub async fn insert_subjects(&mut self, rows: &[SubjectRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(CHUNK) {
            on_tx!(self, t => {
                let mut qb = sqlx::QueryBuilder::new(subject_insert!());
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(&r.key).push_bind(r.seq);
                });
                qb.push(subject_conflict!());
                qb.build().execute(&mut **t).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Inserts completed tree nodes.
    pub async fn insert_nodes(&mut self, rows: &[NodeRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(CHUNK) {
            on_tx!(self, t => {
                let mut qb = sqlx::QueryBuilder::new(node_insert!());
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(r.height).push_bind(r.idx).push_bind(r.hash.to_vec());
                });
                qb.build().execute(&mut **t).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }
}

fn hashes(rows: Vec<(i64, Vec<u8>)>, what: &str) -> Result<Vec<(i64, Hash32)>, StoreError> {
    rows.into_iter()
        .map(|(i, h)| Ok((i, hash32(h, what)?)))
        .collect()
}

impl Db {
    /// The log head.
    pub async fn log_head(&self) -> Result<HeadRow, StoreError> {
        let dto: HeadDto = on_pool!(self, p => sqlx::query_as("SELECT size, chain_hash, root FROM log_tree_head WHERE id = 1")
            .fetch_one(p)
            .await)?;
        HeadRow::try_from(dto)
    }

    /// Leaf hashes of entries `after + 1 ..= upto`, as (seq, hash), in order.
    pub async fn leaf_hashes(
        &self,
        after: i64,
        upto: i64,
    ) -> Result<Vec<(i64, Hash32)>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = on_pool!(self, p => sqlx::query_as(
            "SELECT seq, leaf_hash FROM log_leaves WHERE seq > $1 AND seq <= $2 ORDER BY seq",
        )
        .bind(after)
        .bind(upto)
        .fetch_all(p)
        .await)?;
        hashes(rows, "a leaf hash")
    }

    /// Entries `after + 1 ..= upto` whose searchable column names a person: (seq, canonical
    /// entry, leaf hash), in order (the caller reads the person from the entry itself).
    pub async fn subjects_between(
        &self,
        after: i64,
        upto: i64,
    ) -> Result<Vec<(i64, String, Hash32)>, StoreError> {
        let rows: Vec<(i64, String, Vec<u8>)> = on_pool!(self, p => sqlx::query_as(
            "SELECT r.seq, r.entry, l.leaf_hash FROM log_records r JOIN log_leaves l ON l.seq = r.seq \
             WHERE r.seq > $1 AND r.seq <= $2 AND r.subject_pseudonym IS NOT NULL ORDER BY r.seq",
        )
        .bind(after)
        .bind(upto)
        .fetch_all(p)
        .await)?;
        rows.into_iter()
            .map(|(seq, p, h)| Ok((seq, p, hash32(h, "a leaf hash")?)))
            .collect()
    }

    /// Records that entries are about the people with these map keys (hex); rows already there
    /// stay as they are.
    pub async fn put_subject_entries(&self, rows: &[(String, i64)]) -> Result<(), StoreError> {
        for chunk in rows.chunks(400) {
            on_pool!(self, p => {
                let mut qb = sqlx::QueryBuilder::new(subject_insert!());
                qb.push_values(chunk, |mut b, (k, seq)| {
                    b.push_bind(k).push_bind(*seq);
                });
                qb.push(subject_conflict!());
                qb.build().execute(p).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// The per-subject map's rows up to entry `upto`: (key in hex, seq, leaf hash), by seq.
    pub async fn subject_entries(
        &self,
        key: Option<&str>,
        upto: i64,
    ) -> Result<Vec<(String, i64, Hash32)>, StoreError> {
        let rows: Vec<(String, i64, Vec<u8>)> = on_pool!(self, p => sqlx::query_as(
            "SELECT s.subject_key, s.seq, l.leaf_hash FROM log_subject_entries s JOIN log_leaves l ON l.seq = s.seq \
             WHERE s.seq <= $1 AND ($2 IS NULL OR s.subject_key = $2) ORDER BY s.seq",
        )
        .bind(upto)
        .bind(key)
        .fetch_all(p)
        .await)?;
        rows.into_iter()
            .map(|(k, seq, h)| Ok((k, seq, hash32(h, "a leaf hash")?)))
            .collect()
    }

    /// What the entries `after < seq <= upto` name, in order (entries whose content a retention
    /// run removed are absent).
    pub async fn entry_names_between(
        &self,
        after: i64,
        upto: i64,
    ) -> Result<Vec<EntryNames>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT seq, kind, outcome, case_id, subject_pseudonym FROM log_records \
             WHERE seq > $1 AND seq <= $2 ORDER BY seq",
        )
        .bind(after)
        .bind(upto)
        .fetch_all(p)
        .await)?)
    }

    /// At most `limit` rows of the per-subject index with `after < seq <= upto`, in sequence
    /// order, with their leaf hashes: a page of the map's rows, so that loading the map of a long
    /// log holds neither a million rows in memory nor one read transaction open the whole time.
    pub async fn subject_entries_page(
        &self,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<(String, i64, Hash32)>, StoreError> {
        let rows: Vec<(String, i64, Vec<u8>)> = on_pool!(self, p => sqlx::query_as(
            "SELECT s.subject_key, s.seq, l.leaf_hash FROM log_subject_entries s JOIN log_leaves l ON l.seq = s.seq \
             WHERE s.seq > $1 AND s.seq <= $2 ORDER BY s.seq LIMIT $3",
        )
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(p)
        .await)?;
        rows.into_iter()
            .map(|(k, seq, h)| Ok((k, seq, hash32(h, "a leaf hash")?)))
            .collect()
    }

    /// Stored nodes at `height` with `from <= idx < to`, as (idx, hash), in order.
    pub async fn node_hashes(
        &self,
        height: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Hash32)>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = on_pool!(self, p => sqlx::query_as(
            "SELECT idx, hash FROM log_nodes WHERE height = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
        )
        .bind(height)
        .bind(from)
        .bind(to)
        .fetch_all(p)
        .await)?;
        hashes(rows, "a tree node")
    }

    /// Every stored tree node (for `audit verify`: about n/255 rows).
    pub async fn all_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let rows: Vec<(i64, i64, Vec<u8>)> = on_pool!(self, p => sqlx::query_as(
            "SELECT height, idx, hash FROM log_nodes ORDER BY height, idx",
        )
        .fetch_all(p)
        .await)?;
        rows.into_iter()
            .map(|(height, idx, h)| {
                Ok(NodeRow {
                    height,
                    idx,
                    hash: hash32(h, "a tree node")?,
                })
            })
            .collect()
    }

    /// Entries after `after`, oldest first (at most `limit`), with their content if present.
    pub async fn entries(&self, after: i64, limit: i64) -> Result<Vec<StoredEntry>, StoreError> {
        let rows: Vec<EntryDto> = on_pool!(self, p => sqlx::query_as(ENTRIES)
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await)?;
        rows.into_iter().map(StoredEntry::try_from).collect()
    }

    /// Content rows whose sequence number has no leaf (only possible if the log was tampered
    /// with below the foreign key): their sequence numbers.
    pub async fn orphan_records(&self) -> Result<Vec<i64>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_scalar(
            "SELECT r.seq FROM log_records r LEFT JOIN log_leaves l ON l.seq = r.seq WHERE l.seq IS NULL ORDER BY r.seq LIMIT 100",
        )
        .fetch_all(p)
        .await)?)
    }

    /// The products named by entries `after + 1 ..= upto`, ordered by entry and product.
    pub async fn products_between(
        &self,
        after: i64,
        upto: i64,
    ) -> Result<Vec<ProductRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT seq, product, owner FROM log_products WHERE seq > $1 AND seq <= $2 ORDER BY seq, product",
        )
        .bind(after)
        .bind(upto)
        .fetch_all(p)
        .await)?)
    }

    /// Entries matching a filter, by sequence number: (seq, canonical entry, leaf hash).
    pub async fn search(&self, f: &LogFilter) -> Result<Vec<(i64, String, Hash32)>, StoreError> {
        let rows: Vec<(i64, String, Vec<u8>)> = on_pool!(self, p => {
            let mut q = sqlx::QueryBuilder::new("SELECT r.seq, r.entry, l.leaf_hash FROM log_records r JOIN log_leaves l ON l.seq = r.seq WHERE r.seq > ");
            q.push_bind(f.after_seq);
            if !f.subjects.is_empty() {
                q.push(" AND r.subject_pseudonym IN (");
                let mut sep = q.separated(", ");
                for s in &f.subjects {
                    sep.push_bind(s.clone());
                }
                q.push(")");
            }
            for (col, v) in [
                ("r.partner", &f.partner),
                ("r.staff_id", &f.staff_id),
                ("r.purpose", &f.purpose),
                ("r.case_id", &f.case_id),
                ("r.outcome", &f.outcome),
            ] {
                if let Some(v) = v {
                    q.push(" AND ").push(col).push(" = ").push_bind(v.clone());
                }
            }
            if !f.kinds.is_empty() {
                q.push(" AND r.kind IN (");
                let mut sep = q.separated(", ");
                for k in &f.kinds {
                    sep.push_bind(*k);
                }
                q.push(")");
            }
            if let Some(product) = &f.product {
                // From the product index, in seq order (not a check of every entry scanned).
                q.push(" AND r.seq IN (SELECT p.seq FROM log_products p WHERE p.product = ")
                    .push_bind(product.clone())
                    .push(")");
            }
            if let Some(from) = f.from {
                q.push(" AND r.at >= ").push_bind(from);
            }
            if let Some(to) = f.to {
                q.push(" AND r.at < ").push_bind(to);
            }
            visible(&mut q, f.visible_to.as_deref());
            q.push(" ORDER BY r.seq LIMIT ").push_bind(f.limit);
            q.build_query_as::<(i64, String, Vec<u8>)>().fetch_all(p).await
        })?;
        rows.into_iter()
            .map(|(seq, e, h)| Ok((seq, e, hash32(h, "a leaf hash")?)))
            .collect()
    }

    /// The overview's counts: entries since `from` by week (weeks start on Monday, numbered
    /// from the Monday of 5 January 1970), kind, partner, purpose, outcome and problem.
    pub async fn overview(
        &self,
        from: i64,
        visible_to: Option<&str>,
    ) -> Result<Vec<OverviewRow>, StoreError> {
        Ok(on_pool!(self, p => {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT (r.at - 345600) / 604800 AS week, r.kind, r.partner, r.purpose, r.outcome, r.problem, COUNT(*) AS n FROM log_records r WHERE r.at >= ",
            );
            q.push_bind(from);
            visible(&mut q, visible_to);
            q.push(" GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1");
            q.build_query_as::<OverviewRow>().fetch_all(p).await
        })?)
    }

    /// The partly-unavailable answers since `from` (at most `limit`): (seq, canonical entry).
    pub async fn partly_unavailable(
        &self,
        from: i64,
        visible_to: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(on_pool!(self, p => {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT r.seq, r.entry FROM log_records r WHERE r.outcome = 'partly-unavailable' AND r.at >= ",
            );
            q.push_bind(from);
            visible(&mut q, visible_to);
            q.push(" ORDER BY r.seq LIMIT ").push_bind(limit);
            q.build_query_as::<(i64, String)>().fetch_all(p).await
        })?)
    }

    /// One entry's content by sequence number.
    pub async fn entry(&self, seq: i64) -> Result<Option<String>, StoreError> {
        Ok(
            on_pool!(self, p => sqlx::query_scalar("SELECT entry FROM log_records WHERE seq = $1")
            .bind(seq)
            .fetch_optional(p)
            .await)?,
        )
    }

    /// Stores a checkpoint unless one for that size exists; returns the stored note for the
    /// size (never two checkpoints for one size: whoever stored first wins).
    pub async fn put_checkpoint(&self, c: &StoredCheckpoint) -> Result<String, StoreError> {
        on_pool!(self, p => sqlx::query("INSERT INTO log_checkpoints (size, root, note, at) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING")
            .bind(c.size)
            .bind(&c.root[..])
            .bind(&c.note)
            .bind(c.at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(
            on_pool!(self, p => sqlx::query_scalar("SELECT note FROM log_checkpoints WHERE size = $1")
            .bind(c.size)
            .fetch_one(p)
            .await)?,
        )
    }

    /// The checkpoint of the largest size.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let dto: Option<CheckpointDto> = on_pool!(self, p => sqlx::query_as(
            "SELECT size, root, note, at FROM log_checkpoints ORDER BY size DESC LIMIT 1",
        )
        .fetch_optional(p)
        .await)?;
        dto.map(StoredCheckpoint::try_from).transpose()
    }

    /// Every stored checkpoint, by size.
    pub async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let rows: Vec<CheckpointDto> = on_pool!(self, p => sqlx::query_as(
            "SELECT size, root, note, at FROM log_checkpoints ORDER BY size",
        )
        .fetch_all(p)
        .await)?;
        rows.into_iter().map(StoredCheckpoint::try_from).collect()
    }

    /// Stores a witness's cosignature of the checkpoint of `size` unless that witness already
    /// cosigned that size (the first one is kept).
    pub async fn put_cosignature(&self, c: &StoredCosignature) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("INSERT INTO log_cosignatures (size, witness, line, cosigned_at, received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (size, witness) DO NOTHING")
            .bind(c.size)
            .bind(&c.witness)
            .bind(&c.line)
            .bind(c.cosigned_at)
            .bind(c.received_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The cosignatures of checkpoints of `size` (all sizes when `None`), by size and witness.
    pub async fn cosignatures(
        &self,
        size: Option<i64>,
    ) -> Result<Vec<StoredCosignature>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT size, witness, line, cosigned_at, received_at FROM log_cosignatures WHERE $1 IS NULL OR size = $1 ORDER BY size, witness",
        )
        .bind(size)
        .fetch_all(p)
        .await)?)
    }

    /// Each witness's newest cosignature (the largest size it cosigned).
    pub async fn latest_cosignatures(&self) -> Result<Vec<StoredCosignature>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT c.size, c.witness, c.line, c.cosigned_at, c.received_at FROM log_cosignatures c \
             JOIN (SELECT witness, MAX(size) AS size FROM log_cosignatures GROUP BY witness) m \
             ON m.witness = c.witness AND m.size = c.size ORDER BY c.witness",
        )
        .fetch_all(p)
        .await)?)
    }
}
