-- The case register that purpose binding reads. The subject's BSN is never stored in clear:
-- `subject_pseudonym` is a keyed HMAC, `subject_sealed` the BSN encrypted with age to the
-- gateway's storage key. Times are epoch seconds; dates are ISO 8601 text.
CREATE TABLE cases (
    id                TEXT PRIMARY KEY,
    subject_ref       TEXT NOT NULL,
    subject_pseudonym TEXT NOT NULL,
    subject_sealed    BYTEA NOT NULL,
    status            TEXT NOT NULL,
    risk_group        BIGINT,
    ideology          TEXT,
    regisseur_partner TEXT,
    regisseur_staff   TEXT,
    uvo_partners      TEXT NOT NULL DEFAULT '[]',
    signal_date       TEXT,
    decision_date     TEXT,
    notification_date TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    version           BIGINT NOT NULL
);

CREATE INDEX cases_subject_pseudonym ON cases (subject_pseudonym);
CREATE INDEX cases_subject_ref ON cases (subject_ref);

-- Who changed what, when, in which role. Field names only; values stay in `cases`.
CREATE TABLE case_events (
    case_id   TEXT NOT NULL REFERENCES cases (id),
    version   BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    partner   TEXT NOT NULL,
    staff_id  TEXT NOT NULL,
    role      TEXT NOT NULL,
    action    TEXT NOT NULL,
    fields    TEXT NOT NULL,
    status    TEXT,
    PRIMARY KEY (case_id, version)
);
