-- The covenant as a versioned object. Every draft is kept with its exact text and the key
-- material it was resolved with, so any version can be rebuilt, compared and activated again
-- (a rollback is a new draft of an earlier text and goes through the same four-eyes path).
CREATE TABLE policy_drafts (
    id                TEXT PRIMARY KEY,
    version           TEXT NOT NULL,
    source            TEXT NOT NULL,
    key_material      TEXT NOT NULL,
    kind              TEXT NOT NULL,
    base_version      TEXT,
    author_partner    TEXT NOT NULL,
    author_staff      TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    approved_partner  TEXT,
    approved_staff    TEXT,
    approved_at       BIGINT,
    activated_partner TEXT,
    activated_staff   TEXT,
    activated_at      BIGINT,
    status            TEXT NOT NULL
);

CREATE INDEX policy_drafts_activated ON policy_drafts (activated_at);

-- Which draft is active: one row, changed only by a compare-and-set on the active draft, so two
-- administrators (or two gateway instances) can never both win an activation.
CREATE TABLE policy_state (
    singleton    INTEGER PRIMARY KEY CHECK (singleton = 1),
    active_draft TEXT NOT NULL REFERENCES policy_drafts (id),
    generation   BIGINT NOT NULL
);
