-- The owner index of log_products was never used by any query (visibility looks a row up by
-- seq, which the primary key serves); every entry names up to seven products, so each index on
-- these rows is paid up to seven times per append. It goes.
DROP INDEX log_products_owner;
