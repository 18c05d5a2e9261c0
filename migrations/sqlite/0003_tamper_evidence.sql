-- Tamper evidence: every disclosure record is leaf `seq - 1` of an RFC 6962 Merkle tree
-- (leaf_hash = SHA-256(0x00 || entry)) and a link of a hash chain
-- (chain_hash = SHA-256(previous chain_hash || leaf_hash), starting from 32 zero bytes).
-- Sequence numbers are assigned by the writer under the lock on `log_head`, never by the
-- database, so that the log stays gap-free even with several gateway instances.
ALTER TABLE disclosures ADD COLUMN leaf_hash TEXT;
ALTER TABLE disclosures ADD COLUMN chain_hash TEXT;

CREATE TABLE log_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    size       INTEGER NOT NULL,
    chain_hash TEXT NOT NULL
) STRICT;
INSERT INTO log_head (id, size, chain_hash)
    SELECT 1, COALESCE(MAX(seq), 0), '0000000000000000000000000000000000000000000000000000000000000000' FROM disclosures;

-- Signed checkpoints (C2SP tlog-checkpoint notes); one per tree size, never two.
CREATE TABLE checkpoints (
    size INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    at   INTEGER NOT NULL
) STRICT;
