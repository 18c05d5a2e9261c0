-- The disclosure log in append-only parts; see migrations/sqlite/0006_log_core.sql for the
-- layout. The same tables and guards. On PostgreSQL, give the gateway's role only what it
-- needs (docs/audit.md): SELECT and INSERT on the log's tables, UPDATE on log_tree_head.

CREATE TABLE log_leaves (
    seq        BIGINT PRIMARY KEY,
    leaf_hash  BYTEA NOT NULL,
    chain_hash BYTEA NOT NULL
);

CREATE TABLE log_records (
    seq               BIGINT PRIMARY KEY REFERENCES log_leaves (seq),
    entry             TEXT NOT NULL,
    id                TEXT NOT NULL UNIQUE,
    at                BIGINT NOT NULL,
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
);

CREATE INDEX log_records_subject ON log_records (subject_pseudonym);
CREATE INDEX log_records_at ON log_records (at);
CREATE INDEX log_records_partner ON log_records (partner, at);

CREATE TABLE log_products (
    seq     BIGINT NOT NULL REFERENCES log_records (seq),
    product TEXT NOT NULL,
    owner   TEXT NOT NULL,
    PRIMARY KEY (seq, product)
);

CREATE INDEX log_products_product ON log_products (product, seq);
CREATE INDEX log_products_owner ON log_products (owner, seq);

CREATE TABLE log_nodes (
    height BIGINT NOT NULL,
    idx    BIGINT NOT NULL,
    hash   BYTEA NOT NULL,
    PRIMARY KEY (height, idx)
);

CREATE TABLE log_tree_head (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    size       BIGINT NOT NULL,
    chain_hash BYTEA NOT NULL,
    root       BYTEA
);

CREATE TABLE log_checkpoints (
    size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    at   BIGINT NOT NULL
);

INSERT INTO log_leaves (seq, leaf_hash, chain_hash)
    SELECT seq, decode(leaf_hash, 'hex'), decode(chain_hash, 'hex') FROM disclosures ORDER BY seq;
INSERT INTO log_records (seq, entry, id, at, trace_id, kind, partner, staff_id, role, purpose,
                         case_id, subject_pseudonym, policy_version, outcome, problem)
    SELECT seq, entry, id, at, transaction_id, kind, partner, staff_id, role, purpose, case_id,
           subject_pseudonym, policy_version, outcome, problem
    FROM disclosures ORDER BY seq;
INSERT INTO log_products (seq, product, owner)
    SELECT d.seq, p.key,
           COALESCE(p.value ->> 'owner',
                    CASE WHEN strpos(p.key, '.') > 0 THEN substr(p.key, 1, strpos(p.key, '.') - 1) ELSE '' END)
    FROM disclosures d, jsonb_each(d.entry::jsonb -> 'products') p;
INSERT INTO log_tree_head (id, size, chain_hash, root)
    SELECT 1, size, decode(chain_hash, 'hex'), NULL FROM log_head;
INSERT INTO log_checkpoints (size, root, note, at)
    SELECT size, decode(root, 'hex'), note, at FROM checkpoints;

DROP TABLE disclosures;
DROP TABLE log_head;
DROP TABLE checkpoints;

CREATE FUNCTION log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the disclosure log is append-only (% on %)', TG_OP, TG_TABLE_NAME;
END;
$$;

CREATE FUNCTION log_head_only_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.size < OLD.size OR NEW.id <> OLD.id OR (OLD.root IS NOT NULL AND NEW.root IS NULL) THEN
        RAISE EXCEPTION 'the disclosure log is append-only: its head only grows';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER log_leaves_append_only BEFORE UPDATE OR DELETE ON log_leaves
    FOR EACH ROW EXECUTE FUNCTION log_append_only();
CREATE TRIGGER log_records_append_only BEFORE UPDATE OR DELETE ON log_records
    FOR EACH ROW EXECUTE FUNCTION log_append_only();
CREATE TRIGGER log_products_append_only BEFORE UPDATE OR DELETE ON log_products
    FOR EACH ROW EXECUTE FUNCTION log_append_only();
CREATE TRIGGER log_nodes_append_only BEFORE UPDATE OR DELETE ON log_nodes
    FOR EACH ROW EXECUTE FUNCTION log_append_only();
CREATE TRIGGER log_checkpoints_append_only BEFORE UPDATE OR DELETE ON log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION log_append_only();
CREATE TRIGGER log_tree_head_append_only BEFORE DELETE ON log_tree_head
    FOR EACH ROW EXECUTE FUNCTION log_append_only();
CREATE TRIGGER log_tree_head_only_grows BEFORE UPDATE ON log_tree_head
    FOR EACH ROW EXECUTE FUNCTION log_head_only_grows();
CREATE TRIGGER log_tables_no_truncate BEFORE TRUNCATE ON log_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION log_append_only();
CREATE TRIGGER log_records_no_truncate BEFORE TRUNCATE ON log_records
    FOR EACH STATEMENT EXECUTE FUNCTION log_append_only();
CREATE TRIGGER log_products_no_truncate BEFORE TRUNCATE ON log_products
    FOR EACH STATEMENT EXECUTE FUNCTION log_append_only();
CREATE TRIGGER log_nodes_no_truncate BEFORE TRUNCATE ON log_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION log_append_only();
CREATE TRIGGER log_checkpoints_no_truncate BEFORE TRUNCATE ON log_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION log_append_only();
