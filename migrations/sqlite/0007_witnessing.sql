-- Cosignatures of the log's checkpoints by the covenant's witnesses (C2SP cosignature/v1):
-- the first one each witness gave for each checkpoint size, as the signature line it sent.
-- Append-only like the log: a cosignature is evidence.
CREATE TABLE log_cosignatures (
    size INTEGER NOT NULL,
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    cosigned_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (size, witness)
);
CREATE TRIGGER log_cosignatures_append_only_u BEFORE UPDATE ON log_cosignatures
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
CREATE TRIGGER log_cosignatures_append_only_d BEFORE DELETE ON log_cosignatures
BEGIN SELECT RAISE(ABORT, 'the disclosure log is append-only'); END;
