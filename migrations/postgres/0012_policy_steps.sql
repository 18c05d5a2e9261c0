-- The log's policy steps, found without reading the log: the gateway serves only the covenant
-- version the log last activated (only these rows are indexed).
CREATE INDEX log_records_policy ON log_records (seq) WHERE kind = 'policy';
