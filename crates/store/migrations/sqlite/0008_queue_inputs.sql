-- The bounded queue (docs/RULES.md, "Queue bounds"): how many jobs and inputs each catalog has
-- unfinished (queued, scheduled or running; a running job counts its inputs not yet applied,
-- total - completed - failed). The job writer reads these rows once per group-commit batch to
-- refuse a request that would pass a limit; summing the jobs table per request would cost a scan
-- of the queue on the accept path.
--
-- Triggers keep the rows in the transaction of every job insert, status change, checkpoint and
-- delete, whoever writes the job (the writer, a catalog delete, the runner, the purge), so the
-- counts cannot drift from the jobs table. One row per catalog rather than per project: the
-- runner's checkpoints of different catalogs of one project then never wait on one row's lock.
-- catalog_id 0 stands for a job without a catalog. A row whose catalog has nothing unfinished is
-- deleted, so the table holds only the catalogs with work and the global sum stays cheap.
CREATE TABLE queue_inputs (
    project_id INTEGER NOT NULL,
    catalog_id INTEGER NOT NULL,
    jobs       INTEGER NOT NULL,
    inputs     INTEGER NOT NULL,
    PRIMARY KEY (project_id, catalog_id)
) WITHOUT ROWID;

INSERT INTO queue_inputs (project_id, catalog_id, jobs, inputs)
SELECT project_id, COALESCE(catalog_id, 0), COUNT(*), SUM(MAX(total_count - completed_count - failed_count, 0))
FROM jobs WHERE status IN ('queued', 'scheduled', 'running')
GROUP BY project_id, COALESCE(catalog_id, 0);

CREATE TRIGGER queue_inputs_insert AFTER INSERT ON jobs
WHEN NEW.status IN ('queued', 'scheduled', 'running')
BEGIN
    INSERT INTO queue_inputs (project_id, catalog_id, jobs, inputs)
    VALUES (NEW.project_id, COALESCE(NEW.catalog_id, 0), 1,
            MAX(NEW.total_count - NEW.completed_count - NEW.failed_count, 0))
    ON CONFLICT (project_id, catalog_id) DO UPDATE
    SET jobs = jobs + excluded.jobs, inputs = inputs + excluded.inputs;
END;

-- Fires only when a job's share of the queue changes (a lease renewal does not).
CREATE TRIGGER queue_inputs_update AFTER UPDATE OF status, total_count, completed_count, failed_count ON jobs
WHEN (OLD.status IN ('queued', 'scheduled', 'running')) <> (NEW.status IN ('queued', 'scheduled', 'running'))
  OR (NEW.status IN ('queued', 'scheduled', 'running')
      AND OLD.total_count - OLD.completed_count - OLD.failed_count
          <> NEW.total_count - NEW.completed_count - NEW.failed_count)
BEGIN
    INSERT INTO queue_inputs (project_id, catalog_id, jobs, inputs)
    VALUES (NEW.project_id, COALESCE(NEW.catalog_id, 0),
            (NEW.status IN ('queued', 'scheduled', 'running')) - (OLD.status IN ('queued', 'scheduled', 'running')),
            (CASE WHEN NEW.status IN ('queued', 'scheduled', 'running')
                  THEN MAX(NEW.total_count - NEW.completed_count - NEW.failed_count, 0) ELSE 0 END)
            - (CASE WHEN OLD.status IN ('queued', 'scheduled', 'running')
                    THEN MAX(OLD.total_count - OLD.completed_count - OLD.failed_count, 0) ELSE 0 END))
    ON CONFLICT (project_id, catalog_id) DO UPDATE
    SET jobs = jobs + excluded.jobs, inputs = inputs + excluded.inputs;
    DELETE FROM queue_inputs
    WHERE project_id = NEW.project_id AND catalog_id = COALESCE(NEW.catalog_id, 0) AND jobs <= 0;
END;

CREATE TRIGGER queue_inputs_delete AFTER DELETE ON jobs
WHEN OLD.status IN ('queued', 'scheduled', 'running')
BEGIN
    UPDATE queue_inputs
    SET jobs = jobs - 1, inputs = inputs - MAX(OLD.total_count - OLD.completed_count - OLD.failed_count, 0)
    WHERE project_id = OLD.project_id AND catalog_id = COALESCE(OLD.catalog_id, 0);
    DELETE FROM queue_inputs
    WHERE project_id = OLD.project_id AND catalog_id = COALESCE(OLD.catalog_id, 0) AND jobs <= 0;
END;
