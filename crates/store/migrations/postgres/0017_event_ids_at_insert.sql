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
-- (the triggers below) first holds, until its transaction ends, a shared advisory lock keyed by
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

DROP FUNCTION catalogd_sequence_events(BOOLEAN);
DROP TABLE job_event_ids;

-- Held by every statement that writes events, before it takes ids (see above).
CREATE FUNCTION catalogd_hold_event_ids() RETURNS void LANGUAGE sql VOLATILE AS $$
    SELECT pg_advisory_xact_lock_shared(-1 - last_value) FROM job_event_id
$$;

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

CREATE OR REPLACE FUNCTION job_events_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM catalogd_hold_event_ids();
    INSERT INTO job_events (project_id, job_id, type, status, total_count, completed_count, failed_count,
                            updated_at, started_at, finished_at, expires_at)
    SELECT project_id, id, 'job.created', status, total_count, completed_count, failed_count,
           updated_at, started_at, finished_at, expires_at
    FROM inserted ORDER BY id;
    RETURN NULL;
END $$;

-- As in migration 0015, with the lock first. It fires for every UPDATE of jobs (a statement-level
-- trigger cannot name columns), a lease renewal too: the lock costs less than finding out whether
-- the statement writes an event.
CREATE OR REPLACE FUNCTION job_events_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM catalogd_hold_event_ids();
    INSERT INTO job_events (project_id, job_id, type, status, total_count, completed_count, failed_count,
                            updated_at, started_at, finished_at, expires_at)
    SELECT c.project_id, c.id, e.type,
           CASE WHEN e.ord = 1 THEN 'running' ELSE c.status END, c.total_count,
           CASE WHEN e.ord = 1 THEN c.old_completed ELSE c.completed_count END,
           CASE WHEN e.ord = 1 THEN c.old_failed ELSE c.failed_count END,
           c.updated_at, c.started_at,
           CASE WHEN e.ord = 1 THEN c.old_finished ELSE c.finished_at END,
           CASE WHEN e.ord = 1 THEN c.old_expires ELSE c.expires_at END
    FROM (
        -- Each id is once in each table: every aggregate below reads exactly one row.
        SELECT id,
               max(project_id) FILTER (WHERE side = 1) AS project_id,
               max(status) FILTER (WHERE side = 1) AS status,
               max(status) FILTER (WHERE side = 0) AS old_status,
               max(total_count) FILTER (WHERE side = 1) AS total_count,
               max(completed_count) FILTER (WHERE side = 1) AS completed_count,
               max(completed_count) FILTER (WHERE side = 0) AS old_completed,
               max(failed_count) FILTER (WHERE side = 1) AS failed_count,
               max(failed_count) FILTER (WHERE side = 0) AS old_failed,
               max(updated_at) FILTER (WHERE side = 1) AS updated_at,
               max(started_at) FILTER (WHERE side = 1) AS started_at,
               bool_or(started_at IS NULL) FILTER (WHERE side = 0) AS old_unstarted,
               max(finished_at) FILTER (WHERE side = 1) AS finished_at,
               max(finished_at) FILTER (WHERE side = 0) AS old_finished,
               max(expires_at) FILTER (WHERE side = 1) AS expires_at,
               max(expires_at) FILTER (WHERE side = 0) AS old_expires
        FROM (
            SELECT 0 AS side, id, project_id, status, total_count, completed_count, failed_count,
                   updated_at, started_at, finished_at, expires_at
            FROM changed_old
            UNION ALL
            SELECT 1, id, project_id, status, total_count, completed_count, failed_count,
                   updated_at, started_at, finished_at, expires_at
            FROM changed_new
        ) AS side_by_side
        GROUP BY id
    ) AS c
    CROSS JOIN LATERAL (VALUES
        (1, CASE WHEN c.old_unstarted AND c.started_at IS NOT NULL THEN 'job.started' END),
        (2, CASE WHEN c.status IN ('completed', 'failed', 'cancelled') AND c.old_status <> c.status
                 THEN 'job.' || c.status
                 WHEN c.status = 'running' AND c.old_status = 'running'
                      AND (c.old_completed <> c.completed_count OR c.old_failed <> c.failed_count)
                 THEN 'job.progress' END)
    ) AS e(ord, type)
    WHERE e.type IS NOT NULL
    ORDER BY c.id, e.ord;
    RETURN NULL;
END $$;
