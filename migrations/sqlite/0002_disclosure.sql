-- Store-backed sources: a partner's records for one of its products about one subject, sealed
-- with age to the gateway's storage key.
CREATE TABLE records (
    product     TEXT NOT NULL,
    subject_ref TEXT NOT NULL,
    owner       TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (subject_ref, product)
) STRICT;

-- The disclosure record: one row per answered or refused request, written (committed) before the
-- answer leaves. `entry` holds the canonical JSON of the whole record: what the tamper-evident
-- log hashes. The other columns are for searching.
CREATE TABLE disclosures (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    at                INTEGER NOT NULL,
    transaction_id    TEXT NOT NULL,
    kind              TEXT NOT NULL,
    partner           TEXT NOT NULL,
    staff_id          TEXT,
    role              TEXT,
    purpose           TEXT,
    case_id           TEXT,
    subject_pseudonym TEXT,
    policy_version    TEXT NOT NULL,
    ciphertext_sha256 TEXT,
    outcome           TEXT NOT NULL,
    problem           TEXT,
    entry             TEXT NOT NULL
) STRICT;

CREATE INDEX disclosures_subject ON disclosures (subject_pseudonym);
CREATE INDEX disclosures_at ON disclosures (at);
CREATE INDEX disclosures_partner ON disclosures (partner, at);
