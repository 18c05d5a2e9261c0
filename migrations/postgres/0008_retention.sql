-- Retention: an expired entry's content (log_records, log_products) may leave the log while its
-- hashes (log_leaves, the tree, every checkpoint) stay, so that the remaining entries and every
-- proof still verify. A tombstone names the removed range and the covenant rule; the retention
-- entry that removed it lists the same range, and `gateway audit verify` checks one against the
-- other. Content is only deletable under a tombstone, and never comes back under one.

CREATE TABLE log_tombstones (
    first_seq  BIGINT PRIMARY KEY,
    last_seq   BIGINT NOT NULL,
    rule       TEXT NOT NULL,
    removed_at BIGINT NOT NULL,
    CHECK (first_seq <= last_seq)
);
CREATE TRIGGER log_tombstones_append_only BEFORE UPDATE OR DELETE ON log_tombstones
    FOR EACH ROW EXECUTE FUNCTION log_append_only();
CREATE TRIGGER log_tombstones_no_truncate BEFORE TRUNCATE ON log_tombstones
    FOR EACH STATEMENT EXECUTE FUNCTION log_append_only();

-- The tombstone covering a sequence number is the one with the largest first_seq at or below it.
CREATE FUNCTION log_tombstoned(s BIGINT) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT COALESCE((SELECT last_seq >= s FROM log_tombstones WHERE first_seq <= s
                     ORDER BY first_seq DESC LIMIT 1), false)
$$;

CREATE FUNCTION log_content_removable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND log_tombstoned(OLD.seq) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the disclosure log is append-only: only retention removes content, under a tombstone (% on %)', TG_OP, TG_TABLE_NAME;
END;
$$;

CREATE FUNCTION log_removed_stays_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF log_tombstoned(NEW.seq) THEN
        RAISE EXCEPTION 'this entry was removed under a retention rule: its content cannot come back';
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER log_records_append_only ON log_records;
CREATE TRIGGER log_records_append_only BEFORE UPDATE OR DELETE ON log_records
    FOR EACH ROW EXECUTE FUNCTION log_content_removable();
DROP TRIGGER log_products_append_only ON log_products;
CREATE TRIGGER log_products_append_only BEFORE UPDATE OR DELETE ON log_products
    FOR EACH ROW EXECUTE FUNCTION log_content_removable();
CREATE TRIGGER log_records_removed_stays_removed BEFORE INSERT ON log_records
    FOR EACH ROW EXECUTE FUNCTION log_removed_stays_removed();
