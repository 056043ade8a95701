-- What a readiness check writes while the store remembers storage trouble (see Store::readiness):
-- a row of one page's worth of bytes, inserted and deleted again in one committed transaction, so
-- the check needs a page the way a real write does and fails the way it would (full, read-only).
-- The table is always empty between two checks.
CREATE TABLE storage_probe (id INTEGER PRIMARY KEY, filler BLOB NOT NULL);
