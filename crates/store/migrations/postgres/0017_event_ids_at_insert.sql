-- Event ids given at insert, as on SQLite, instead of after commit by a sequencer (docs/EVENTS.md,
-- "Ids").
--
-- Why: the sequencer's update of every event was the largest single cost of the job events under
-- load: each update wrote a new version of the row and an entry in each of its four indexes
-- (about 19 µs an event, three events a small job; a quarter of the database's time under the
-- sustained load of docs/PERFORMANCE.md).
--
-- What keeps a reader from skipping a late commit: the id comes from `job_event_id` at insert, so
-- a transaction may commit after another whose ids are higher. Readers therefore read only up to a
-- horizon below which every event has committed or rolled back. Each statement that writes events
-- (a statement on `jobs`) first holds, until its transaction ends, a shared advisory lock keyed by
-- the sequence's last value as it reads it before taking its ids: every id it takes is above that
-- key. `catalogd_event_horizon()` reads the sequence's last value, then the lock table: the
-- horizon is that value, or the lowest key still held if lower. A writer not yet in the lock table
-- then takes its ids after the value was read, so above it; one that has ended has committed or
-- rolled back (a lock is released after its transaction's end is visible to new snapshots), and
-- the read that follows, in a statement of its own, sees it. Only this database's event writers
-- count: advisory locks belong to a database, and these keys are negative (-1 - value), which no
-- other lock of catalogd uses. A transaction held open holds the horizon below its events, and
-- the events committed after it wait with them.
--
-- The sequence keeps one value per call (CACHE 1): with a cache, a session would hand out ids from
-- a block taken earlier, below the value another writer keyed its lock on.

-- No event writer is in flight while the last ids are given the old way: each holds the table's
-- ROW EXCLUSIVE lock until it ends, which this waits for.
LOCK TABLE job_events IN EXCLUSIVE MODE;
SELECT catalogd_sequence_events(true);

CREATE SEQUENCE job_event_id AS BIGINT CACHE 1;
-- Called: the next id is above the last value, which the writers' keys rely on.
SELECT setval('job_event_id', GREATEST((SELECT COALESCE(MAX(id), 0) FROM job_events), 1), true);
ALTER TABLE job_events ALTER COLUMN id SET DEFAULT nextval('job_event_id');
ALTER SEQUENCE job_event_id OWNED BY job_events.id;

-- `pos`, the insert order the sequencer numbered events by, goes with it: the id is that order
-- now, and each event writes one index entry fewer. `id` (unique, never NULL) is the table's key;
-- dropping the column drops its primary key and `job_events_by_job`, rebuilt on the id.
ALTER TABLE job_events ALTER COLUMN id SET NOT NULL;
ALTER TABLE job_events DROP COLUMN pos;
CREATE INDEX job_events_by_job ON job_events (job_id, id);

DROP FUNCTION catalogd_sequence_events(BOOLEAN);
DROP TABLE job_event_ids;

-- Held by every statement that may write events, before it takes ids (see above): a statement
-- trigger that fires before the statement's rows change, so before the triggers of migrations
-- 0014 and 0015 write its events at its end. An UPDATE that writes none (a lease renewal) holds
-- it too: the lock costs less than finding out.
CREATE FUNCTION catalogd_hold_event_ids() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(-1 - last_value) FROM job_event_id;
    RETURN NULL;
END $$;
CREATE TRIGGER job_events_hold_ids_insert BEFORE INSERT ON jobs
FOR EACH STATEMENT EXECUTE FUNCTION catalogd_hold_event_ids();
CREATE TRIGGER job_events_hold_ids_update BEFORE UPDATE ON jobs
FOR EACH STATEMENT EXECUTE FUNCTION catalogd_hold_event_ids();

-- The events' writers' keys in this database (negative bigint advisory locks: `classid` holds the
-- high half, `objid` the low one), as the values they were taken at.
CREATE VIEW catalogd_event_writers AS
SELECT -1 - ((classid::bigint - 4294967296) * 4294967296 + objid::bigint) AS below
FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 1 AND classid::bigint >= 2147483648
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database());

-- Every event with an id at most this has committed or rolled back. Two statements, in this
-- order (see above); the caller reads the events in a statement after this one.
CREATE FUNCTION catalogd_event_horizon() RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    given  BIGINT;
    oldest BIGINT;
BEGIN
    SELECT last_value INTO given FROM job_event_id;
    SELECT MIN(below) INTO oldest FROM catalogd_event_writers;
    RETURN LEAST(given, oldest);
END $$;

-- The last id given, once every writer that may still commit an event at or below it has ended:
-- waits for each such writer's lock (exclusively, which a writer that starts now never asks for:
-- its key is at least this value). Every event committed before the call has an id at most this,
-- and every event at most this is readable once it returns.
CREATE FUNCTION catalogd_latest_event_id() RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    given BIGINT;
    key   BIGINT;
BEGIN
    SELECT last_value INTO given FROM job_event_id;
    FOR key IN SELECT DISTINCT below FROM catalogd_event_writers WHERE below < given ORDER BY below LOOP
        PERFORM pg_advisory_xact_lock(-1 - key);
    END LOOP;
    RETURN given;
END $$;
