-- Storage key rotation: which key of the ring sealed each row (`st-…`, the key's id; NULL: sealed
-- before ids were recorded, by the key current then), so that a re-seal knows what is left to
-- move and `gateway keys status` can say which key seals how many rows. A deposit keeps the
-- SHA-256 its deposit entry recorded (NULL: that of its sealed bytes, never re-sealed), so that
-- disclosures still name the deposit they opened after the bytes were sealed again.
ALTER TABLE records ADD COLUMN sealed_key TEXT;
ALTER TABLE records ADD COLUMN deposit_sha256 BLOB;
ALTER TABLE cases ADD COLUMN sealed_key TEXT;
CREATE INDEX records_sealed_key ON records (sealed_key);
CREATE INDEX cases_sealed_key ON cases (sealed_key);
-- The log's key steps, found at start without reading the log (only these rows are indexed).
CREATE INDEX log_records_keys ON log_records (seq) WHERE kind = 'keys';
