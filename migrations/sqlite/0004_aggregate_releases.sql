-- Aggregate answers are frozen per period (calendar quarter): the first answer for a view in a
-- period is stored and every later request in that period gets the same figures, so that two
-- answers never differ by one person's change.
CREATE TABLE aggregate_releases (
    view        TEXT NOT NULL,
    period      TEXT NOT NULL,
    body        TEXT NOT NULL,
    released_at INTEGER NOT NULL,
    PRIMARY KEY (view, period)
) STRICT;
