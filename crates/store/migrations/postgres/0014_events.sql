-- Job events (an outbox) and webhooks; semantics in docs/EVENTS.md.
--
-- Every job change the API reports (created, started, progress at each checkpoint, completed,
-- failed, cancelled) is a row of `job_events`, written by the triggers below in the transaction of
-- the change, whoever writes the job (a writer of any process, a runner, a cancel). The triggers are
-- statement-level with transition tables: a statement that changes 200 jobs (a group commit, a
-- batch) adds its 200 events in one INSERT ... SELECT.
--
-- An event keeps what changes about its job (status, counts, times); what never changes (kind,
-- catalog, description, reference) is read from the job, which lives exactly as long as its events
-- (a job's delete deletes them).
--
-- The public id: concurrent transactions take `pos` values in one order and commit in another, so
-- a reader that resumed after the highest `pos` it saw could skip an event committed late. `id` is
-- therefore given after commit, by `catalogd_sequence_events()`, to the committed events that have
-- none, in `pos` order, one run at a time (an advisory lock), each run seeing every id the runs
-- before it gave: ids grow in the order events become readable, readers read only events with an
-- id, and a reader resuming after an id never misses one.
CREATE TABLE job_events (
    pos             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              BIGINT UNIQUE,
    project_id      BIGINT NOT NULL,
    job_id          BIGINT NOT NULL,
    type            TEXT   NOT NULL,
    status          TEXT   NOT NULL,
    total_count     BIGINT NOT NULL,
    completed_count BIGINT NOT NULL,
    failed_count    BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT,
    expires_at      BIGINT
);
CREATE INDEX job_events_by_project ON job_events (project_id, id) WHERE id IS NOT NULL;
CREATE INDEX job_events_by_job ON job_events (job_id, pos);
CREATE INDEX job_events_unsequenced ON job_events (pos) WHERE id IS NULL;

-- The last id the sequencer gave (one row, written only by the sequencer, never per job).
CREATE TABLE job_event_ids (
    one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    last_id BIGINT  NOT NULL
);
INSERT INTO job_event_ids (last_id) VALUES (0);

CREATE FUNCTION job_events_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_events (project_id, job_id, type, status, total_count, completed_count, failed_count,
                            updated_at, started_at, finished_at, expires_at)
    SELECT project_id, id, 'job.created', status, total_count, completed_count, failed_count,
           updated_at, started_at, finished_at, expires_at
    FROM inserted ORDER BY id;
    RETURN NULL;
END $$;
CREATE TRIGGER job_events_insert AFTER INSERT ON jobs
REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION job_events_insert();

-- A job that starts and ends in one statement (a batch's followers) gets both events, the
-- started one as it was when it started.
CREATE FUNCTION job_events_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_events (project_id, job_id, type, status, total_count, completed_count, failed_count,
                            updated_at, started_at, finished_at, expires_at)
    SELECT n.project_id, n.id, e.type,
           CASE WHEN e.ord = 1 THEN 'running' ELSE n.status END, n.total_count,
           CASE WHEN e.ord = 1 THEN o.completed_count ELSE n.completed_count END,
           CASE WHEN e.ord = 1 THEN o.failed_count ELSE n.failed_count END,
           n.updated_at, n.started_at,
           CASE WHEN e.ord = 1 THEN o.finished_at ELSE n.finished_at END,
           CASE WHEN e.ord = 1 THEN o.expires_at ELSE n.expires_at END
    FROM changed_old o JOIN changed_new n ON n.id = o.id
    CROSS JOIN LATERAL (VALUES
        (1, CASE WHEN o.started_at IS NULL AND n.started_at IS NOT NULL THEN 'job.started' END),
        (2, CASE WHEN n.status IN ('completed', 'failed', 'cancelled') AND o.status <> n.status
                 THEN 'job.' || n.status
                 WHEN n.status = 'running' AND o.status = 'running'
                      AND (o.completed_count <> n.completed_count OR o.failed_count <> n.failed_count)
                 THEN 'job.progress' END)
    ) AS e(ord, type)
    WHERE e.type IS NOT NULL
    ORDER BY n.id, e.ord;
    RETURN NULL;
END $$;
CREATE TRIGGER job_events_update AFTER UPDATE ON jobs
REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
FOR EACH STATEMENT EXECUTE FUNCTION job_events_update();

-- Pruned with the job (the purge, a project's delete).
CREATE FUNCTION job_events_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_events WHERE job_id IN (SELECT id FROM deleted);
    RETURN NULL;
END $$;
CREATE TRIGGER job_events_delete AFTER DELETE ON jobs
REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION job_events_delete();

-- Gives ids to the committed events that have none; answers the highest id given so far. The lock
-- (waited for, or with `wait` false only tried: the periodic poll of a process that finds it taken
-- leaves the work to its holder) is taken before the statement that reads, so that statement's snapshot sees every id an earlier
-- run gave (READ COMMITTED: each statement of a volatile function takes a fresh snapshot).
CREATE FUNCTION catalogd_sequence_events(wait BOOLEAN) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    last BIGINT;
    given BIGINT;
BEGIN
    IF wait THEN
        PERFORM pg_advisory_xact_lock(7161132861623268467); -- "catevnts" in ASCII
    ELSIF NOT pg_try_advisory_xact_lock(7161132861623268467) THEN
        -- Another process sequencing now does this run's work too: answer what is given so far.
        SELECT last_id INTO last FROM job_event_ids;
        RETURN last;
    END IF;
    SELECT last_id INTO last FROM job_event_ids;
    WITH due AS (
        SELECT pos, row_number() OVER (ORDER BY pos) AS n FROM job_events WHERE id IS NULL
    )
    UPDATE job_events e SET id = last + due.n FROM due WHERE e.pos = due.pos;
    GET DIAGNOSTICS given = ROW_COUNT;
    IF given > 0 THEN
        UPDATE job_event_ids SET last_id = last + given;
    END IF;
    RETURN last + given;
END $$;

-- Webhooks: `events` is a comma-separated list of event types; `cursor` is the highest event id
-- already turned into deliveries (events before the webhook's creation are not sent).
CREATE TABLE webhooks (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    url         TEXT   NOT NULL,
    events      TEXT   NOT NULL,
    description TEXT,
    secret      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    cursor      BIGINT NOT NULL
);
CREATE INDEX webhooks_by_project ON webhooks (project_id, id);

-- One row per (webhook, event): attempts, the latest answer, and when to try next. A sender holds a
-- delivery while it sends it (`lease_expires_at`), so another process does not send it meanwhile;
-- a sender killed mid-send lets the lease run out, and the delivery is sent again.
CREATE TABLE webhook_deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         BIGINT NOT NULL REFERENCES job_events(id) ON DELETE CASCADE,
    status           TEXT   NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    response_code    BIGINT,
    last_error       TEXT,
    last_attempt_at  BIGINT,
    next_attempt_at  BIGINT,
    lease_expires_at BIGINT,
    created_at       BIGINT NOT NULL,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
