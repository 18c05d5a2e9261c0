-- The products of an entry, clustered by (seq, product): one B-tree for the rows themselves and
-- one index for the product filter, instead of a rowid table, its primary-key index and two
-- secondary indexes. Every entry names up to seven products, so these rows were most of the
-- B-tree inserts of an append. Visibility (an owner's officer) looks a row up by seq, which the
-- primary key serves; the owner index was never used by any query, and goes.

CREATE TABLE log_products_clustered (
    seq     INTEGER NOT NULL REFERENCES log_records (seq),
    product TEXT NOT NULL,
    owner   TEXT NOT NULL,
    PRIMARY KEY (seq, product)
) STRICT, WITHOUT ROWID;

INSERT INTO log_products_clustered (seq, product, owner)
    SELECT seq, product, owner FROM log_products ORDER BY seq, product;

-- Dropping a table drops its triggers and indexes and fires no DELETE trigger.
DROP TABLE log_products;
ALTER TABLE log_products_clustered RENAME TO log_products;

CREATE INDEX log_products_product ON log_products (product, seq);

CREATE TRIGGER log_products_append_only_u BEFORE UPDATE ON log_products
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_products_append_only_d BEFORE DELETE ON log_products
WHEN COALESCE((SELECT last_seq >= OLD.seq FROM log_tombstones WHERE first_seq <= OLD.seq
               ORDER BY first_seq DESC LIMIT 1), 0) = 0
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only: only retention removes content, under a tombstone'); END;
