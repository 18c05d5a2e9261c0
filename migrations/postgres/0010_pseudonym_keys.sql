-- Pseudonym key rotation: which key of the ring made each case's subject pseudonym (`ps-…`;
-- NULL: made before ids were recorded), so that a re-key knows what is left to move.
ALTER TABLE cases ADD COLUMN pseudonym_key TEXT;
CREATE INDEX cases_pseudonym_key ON cases (pseudonym_key);
