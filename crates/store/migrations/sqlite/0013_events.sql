-- Job events (an outbox) and webhooks, as on PostgreSQL (see its 0011; semantics in
-- docs/EVENTS.md). One writer at a time holds SQLite's database, so events commit in the order of
-- their ids and the id is given at insert (AUTOINCREMENT: never reused after the newest is purged).
CREATE TABLE job_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      INTEGER NOT NULL,
    job_id          INTEGER NOT NULL,
    type            TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    total_count     INTEGER NOT NULL,
    completed_count INTEGER NOT NULL,
    failed_count    INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    expires_at      INTEGER
);
CREATE INDEX job_events_by_project ON job_events (project_id, id);
CREATE INDEX job_events_by_job ON job_events (job_id, id);

CREATE TRIGGER job_events_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_events (project_id, job_id, type, status, total_count, completed_count, failed_count,
                            updated_at, started_at, finished_at, expires_at)
    VALUES (NEW.project_id, NEW.id, 'job.created', NEW.status, NEW.total_count, NEW.completed_count,
            NEW.failed_count, NEW.updated_at, NEW.started_at, NEW.finished_at, NEW.expires_at);
END;

-- One trigger, two statements in order: a job that starts and ends in one statement (a batch's
-- followers) gets its started event first, as it was when it started.
CREATE TRIGGER job_events_update AFTER UPDATE OF status, completed_count, failed_count, started_at ON jobs
WHEN (OLD.started_at IS NULL AND NEW.started_at IS NOT NULL)
  OR (NEW.status IN ('completed', 'failed', 'cancelled') AND OLD.status <> NEW.status)
  OR (NEW.status = 'running' AND OLD.status = 'running'
      AND (OLD.completed_count <> NEW.completed_count OR OLD.failed_count <> NEW.failed_count))
BEGIN
    INSERT INTO job_events (project_id, job_id, type, status, total_count, completed_count, failed_count,
                            updated_at, started_at, finished_at, expires_at)
    SELECT NEW.project_id, NEW.id, 'job.started', 'running', NEW.total_count, OLD.completed_count,
           OLD.failed_count, NEW.updated_at, NEW.started_at, OLD.finished_at, OLD.expires_at
    WHERE OLD.started_at IS NULL AND NEW.started_at IS NOT NULL;
    INSERT INTO job_events (project_id, job_id, type, status, total_count, completed_count, failed_count,
                            updated_at, started_at, finished_at, expires_at)
    SELECT NEW.project_id, NEW.id,
           CASE WHEN NEW.status = 'running' THEN 'job.progress' ELSE 'job.' || NEW.status END,
           NEW.status, NEW.total_count, NEW.completed_count, NEW.failed_count, NEW.updated_at,
           NEW.started_at, NEW.finished_at, NEW.expires_at
    WHERE (NEW.status IN ('completed', 'failed', 'cancelled') AND OLD.status <> NEW.status)
       OR (NEW.status = 'running' AND OLD.status = 'running'
           AND (OLD.completed_count <> NEW.completed_count OR OLD.failed_count <> NEW.failed_count));
END;

-- Pruned with the job (the purge, a project's delete).
CREATE TRIGGER job_events_delete AFTER DELETE ON jobs
BEGIN
    DELETE FROM job_events WHERE job_id = OLD.id;
END;

CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    url         TEXT    NOT NULL,
    events      TEXT    NOT NULL,
    description TEXT,
    secret      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    cursor      INTEGER NOT NULL
);
CREATE INDEX webhooks_by_project ON webhooks (project_id, id);

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id       INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         INTEGER NOT NULL REFERENCES job_events(id) ON DELETE CASCADE,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    response_code    INTEGER,
    last_error       TEXT,
    last_attempt_at  INTEGER,
    next_attempt_at  INTEGER,
    lease_expires_at INTEGER,
    created_at       INTEGER NOT NULL,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
