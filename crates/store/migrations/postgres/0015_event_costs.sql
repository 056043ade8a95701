-- Job events at the cost of a few rows, not of the runner's time (measured in docs/PERFORMANCE.md,
-- "Sustained load": with the events of 0014, PostgreSQL applied 0.55 of the reference where it
-- applied 0.90 without their triggers; `pg_stat_user_functions` put most of the difference in
-- the two functions below).
--
-- 1. The update trigger paired each old row with its new one by a join of the two transition
--    tables. The planner knows nothing of their size and guesses one row each, so it chose a
--    nested loop: a batch finishing 200 jobs compared 40,000 pairs (7 ms of a 9 ms statement).
--    Grouping both sides by id pairs them in one pass whatever the plan.
--
-- 2. The sequencer found the events without an id through a partial index (`id IS NULL`) whose
--    entries outlive the update that gives the id: until a vacuum, every run walked every event
--    sequenced since (129,000 entries, 20 ms a run, five runs a second). It now looks only above a
--    low-water mark `low_pos` under which every event is known to have its id, and the index goes.
--    The mark moves in two steps, on the database's own record of running transactions: a run
--    notes the highest position handed out so far (`pending_pos`) and the next transaction id to
--    be assigned (`pending_xmax`); a later run whose snapshot shows every transaction below
--    `pending_xmax` ended has, in its update, seen every event at or below `pending_pos` that
--    will ever commit (an event's transaction has its id before the event takes its position:
--    events are written by triggers on `jobs`, after the job row), so the mark moves there. A
--    transaction that stays open holds the mark below its events; one that rolls back leaves a
--    gap the mark passes once it has ended.

CREATE OR REPLACE FUNCTION job_events_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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

DROP INDEX job_events_unsequenced;

-- Starts at 0: the first run after this migration looks at every event once.
ALTER TABLE job_event_ids
    ADD COLUMN low_pos BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN pending_pos BIGINT,
    ADD COLUMN pending_xmax xid8;

CREATE OR REPLACE FUNCTION catalogd_sequence_events(wait BOOLEAN) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    state job_event_ids%ROWTYPE;
    before_update pg_snapshot;
    given BIGINT;
BEGIN
    IF wait THEN
        PERFORM pg_advisory_xact_lock(7161132861623268467); -- "catevnts" in ASCII
    ELSIF NOT pg_try_advisory_xact_lock(7161132861623268467) THEN
        -- Another process sequencing now does this run's work too: answer what is given so far.
        SELECT last_id INTO state.last_id FROM job_event_ids;
        RETURN state.last_id;
    END IF;
    SELECT * INTO state FROM job_event_ids;
    -- Taken before the update's own snapshot: a transaction this one shows ended, the update sees.
    before_update := pg_current_snapshot();
    -- Materialized: the planner would otherwise look for `id IS NULL` in the index on ids, where
    -- every event ever written has left an entry. Planned at each run with the mark's value (a
    -- cached generic plan would guess a third of the table above any mark).
    EXECUTE 'WITH recent AS MATERIALIZED (SELECT pos, id FROM job_events WHERE pos > $1),
                  due AS (SELECT pos, row_number() OVER (ORDER BY pos) AS n FROM recent WHERE id IS NULL)
             UPDATE job_events e SET id = $2 + due.n FROM due WHERE e.pos = due.pos'
        USING state.low_pos, state.last_id;
    GET DIAGNOSTICS given = ROW_COUNT;
    IF state.pending_xmax IS NOT NULL AND pg_snapshot_xmin(before_update) >= state.pending_xmax THEN
        state.low_pos := state.pending_pos;
        state.pending_xmax := NULL;
    END IF;
    IF state.pending_xmax IS NULL THEN
        -- The position first, then the transaction ids: every position handed out by now belongs
        -- to a transaction whose id is below the snapshot's xmax.
        state.pending_pos := COALESCE(pg_sequence_last_value(pg_get_serial_sequence('job_events', 'pos')),
                                      state.low_pos);
        state.pending_xmax := pg_snapshot_xmax(pg_current_snapshot());
    END IF;
    UPDATE job_event_ids SET last_id = state.last_id + given, low_pos = state.low_pos,
                             pending_pos = state.pending_pos, pending_xmax = state.pending_xmax;
    RETURN state.last_id + given;
END $$;
