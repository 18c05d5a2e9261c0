-- Retention: an expired entry's content (log_records, log_products) may leave the log while its
-- hashes (log_leaves, the tree, every checkpoint) stay, so that the remaining entries and every
-- proof still verify. A tombstone names the removed range and the covenant rule; the retention
-- entry that removed it lists the same range, and `gateway audit verify` checks one against the
-- other. Content is only deletable under a tombstone, and never comes back under one.

CREATE TABLE log_tombstones (
    first_seq  INTEGER PRIMARY KEY,
    last_seq   INTEGER NOT NULL,
    rule       TEXT NOT NULL,
    removed_at INTEGER NOT NULL,
    CHECK (first_seq <= last_seq)
) STRICT;

CREATE TRIGGER log_tombstones_append_only_u BEFORE UPDATE ON log_tombstones
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_tombstones_append_only_d BEFORE DELETE ON log_tombstones
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;

-- The tombstone covering a sequence number is the one with the largest first_seq at or below it
-- (an index lookup, not a scan).
DROP TRIGGER log_records_append_only_d;
CREATE TRIGGER log_records_append_only_d BEFORE DELETE ON log_records
WHEN COALESCE((SELECT last_seq >= OLD.seq FROM log_tombstones WHERE first_seq <= OLD.seq
               ORDER BY first_seq DESC LIMIT 1), 0) = 0
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only: only retention removes content, under a tombstone'); END;
DROP TRIGGER log_products_append_only_d;
CREATE TRIGGER log_products_append_only_d BEFORE DELETE ON log_products
WHEN COALESCE((SELECT last_seq >= OLD.seq FROM log_tombstones WHERE first_seq <= OLD.seq
               ORDER BY first_seq DESC LIMIT 1), 0) = 0
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only: only retention removes content, under a tombstone'); END;
CREATE TRIGGER log_records_removed_stays_removed BEFORE INSERT ON log_records
WHEN COALESCE((SELECT last_seq >= NEW.seq FROM log_tombstones WHERE first_seq <= NEW.seq
               ORDER BY first_seq DESC LIMIT 1), 0) = 1
BEGIN SELECT RAISE(ABORT, 'this entry was removed under a retention rule: its content cannot come back'); END;
