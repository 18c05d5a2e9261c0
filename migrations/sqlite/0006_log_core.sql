-- The disclosure log in append-only parts, each written in the append transaction:
--
--   log_leaves    seq, leaf hash and chain hash: the tamper evidence, never changed or removed;
--   log_records   the canonical entry and the columns searches filter on, every column derived
--                 from the entry by one function and checked by `gateway audit verify`;
--   log_products  the products an entry names, with their owners (derived the same way);
--   log_nodes     the Merkle tree's interior nodes at heights 8, 16, 24, ... (one per complete
--                 subtree of 256^k leaves: the bottom rows of C2SP tlog-tiles' tiles above
--                 level 0, whose own hashes are the leaf hashes), so that a proof or a restart
--                 reads O(log n) rows;
--   log_tree_head size, last chain hash and root, the one row that changes (it only grows);
--   log_checkpoints signed tree heads, one per size.
--
-- Triggers refuse UPDATE and DELETE on every part (the head only grows), so that not even the
-- gateway's own connection can rewrite history. The content (log_records, log_products) is
-- apart from the hashes so that retention can later remove an expired entry's content through
-- one narrow, logged path while its hashes stay.

CREATE TABLE log_leaves (
    seq        INTEGER PRIMARY KEY,
    leaf_hash  BLOB NOT NULL,
    chain_hash BLOB NOT NULL
) STRICT;

CREATE TABLE log_records (
    seq               INTEGER PRIMARY KEY REFERENCES log_leaves (seq),
    entry             TEXT NOT NULL,
    id                TEXT NOT NULL UNIQUE,
    at                INTEGER NOT NULL,
    trace_id          TEXT NOT NULL,
    kind              TEXT NOT NULL,
    partner           TEXT NOT NULL,
    staff_id          TEXT,
    role              TEXT,
    purpose           TEXT,
    case_id           TEXT,
    subject_pseudonym TEXT,
    policy_version    TEXT NOT NULL,
    outcome           TEXT NOT NULL,
    problem           TEXT
) STRICT;

CREATE INDEX log_records_subject ON log_records (subject_pseudonym);
CREATE INDEX log_records_at ON log_records (at);
CREATE INDEX log_records_partner ON log_records (partner, at);

CREATE TABLE log_products (
    seq     INTEGER NOT NULL REFERENCES log_records (seq),
    product TEXT NOT NULL,
    owner   TEXT NOT NULL,
    PRIMARY KEY (seq, product)
) STRICT;

CREATE INDEX log_products_product ON log_products (product, seq);
CREATE INDEX log_products_owner ON log_products (owner, seq);

CREATE TABLE log_nodes (
    height INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hash   BLOB NOT NULL,
    PRIMARY KEY (height, idx)
) STRICT;

CREATE TABLE log_tree_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    size       INTEGER NOT NULL,
    chain_hash BLOB NOT NULL,
    -- NULL until the tree of a log from before this migration has been built (at start-up).
    root       BLOB
) STRICT;

CREATE TABLE log_checkpoints (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    at   INTEGER NOT NULL
) STRICT;

-- What the log held before: the same entries, the same hashes.
INSERT INTO log_leaves (seq, leaf_hash, chain_hash)
    SELECT seq, unhex(leaf_hash), unhex(chain_hash) FROM disclosures ORDER BY seq;
INSERT INTO log_records (seq, entry, id, at, trace_id, kind, partner, staff_id, role, purpose,
                         case_id, subject_pseudonym, policy_version, outcome, problem)
    SELECT seq, entry, id, at, transaction_id, kind, partner, staff_id, role, purpose, case_id,
           subject_pseudonym, policy_version, outcome, problem
    FROM disclosures ORDER BY seq;
-- Entries written before products named their owner: the owner is the product id's prefix.
INSERT INTO log_products (seq, product, owner)
    SELECT d.seq, p.key,
           COALESCE(json_extract(p.value, '$.owner'),
                    CASE WHEN instr(p.key, '.') > 0 THEN substr(p.key, 1, instr(p.key, '.') - 1) ELSE '' END)
    FROM disclosures d, json_each(d.entry, '$.products') p;
INSERT INTO log_tree_head (id, size, chain_hash, root)
    SELECT 1, size, unhex(chain_hash), NULL FROM log_head;
INSERT INTO log_checkpoints (size, root, note, at)
    SELECT size, unhex(root), note, at FROM checkpoints;

DROP TABLE disclosures;
DROP TABLE log_head;
DROP TABLE checkpoints;

CREATE TRIGGER log_leaves_append_only_u BEFORE UPDATE ON log_leaves
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_leaves_append_only_d BEFORE DELETE ON log_leaves
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_records_append_only_u BEFORE UPDATE ON log_records
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_records_append_only_d BEFORE DELETE ON log_records
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_products_append_only_u BEFORE UPDATE ON log_products
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_products_append_only_d BEFORE DELETE ON log_products
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_nodes_append_only_u BEFORE UPDATE ON log_nodes
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_nodes_append_only_d BEFORE DELETE ON log_nodes
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_checkpoints_append_only_u BEFORE UPDATE ON log_checkpoints
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_checkpoints_append_only_d BEFORE DELETE ON log_checkpoints
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_tree_head_only_grows BEFORE UPDATE ON log_tree_head
WHEN NEW.size < OLD.size OR NEW.id <> OLD.id OR (OLD.root IS NOT NULL AND NEW.root IS NULL)
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only: its head only grows'); END;
CREATE TRIGGER log_tree_head_append_only_d BEFORE DELETE ON log_tree_head
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
