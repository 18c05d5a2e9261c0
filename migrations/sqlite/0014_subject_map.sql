-- The verifiable per-subject map (issue 28): which log entries are about which person, by the
-- person's map key (SHA-256 of the pseudonym, in hex), written when a checkpoint commits the map.
-- Append-only like the log: retention removes an entry's content, never its place here, so that a
-- person's report still proves the removed entry was there.
CREATE TABLE log_subject_entries (
    subject_key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (subject_key, seq)
);
CREATE INDEX log_subject_entries_seq ON log_subject_entries (seq);
CREATE TRIGGER log_subject_entries_append_only_u BEFORE UPDATE ON log_subject_entries
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_subject_entries_append_only_d BEFORE DELETE ON log_subject_entries
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
