-- The bounded queue (docs/RULES.md, "Queue bounds"): how many jobs and inputs each catalog has
-- unfinished (queued, scheduled or running; a running job counts its inputs not yet applied,
-- total - completed - failed). The job writer reads these rows once per group-commit batch to
-- refuse a request that would pass a limit; summing the jobs table per request would cost a scan
-- of the queue on the accept path.
--
-- Triggers keep the rows in the transaction of every job insert, status change, checkpoint and
-- delete, whoever writes the job (a writer of any process, a catalog delete, a runner, the purge),
-- so the counts cannot drift from the jobs table. One row per catalog rather than per project: the
-- runner's checkpoints of different catalogs of one project then never wait on one row's lock.
-- catalog_id 0 stands for a job without a catalog. A row whose catalog has nothing unfinished is
-- deleted, so the table holds only the catalogs with work and the global sum stays cheap.
CREATE TABLE queue_inputs (
    project_id BIGINT NOT NULL,
    catalog_id BIGINT NOT NULL,
    jobs       BIGINT NOT NULL,
    inputs     BIGINT NOT NULL,
    PRIMARY KEY (project_id, catalog_id)
);

INSERT INTO queue_inputs (project_id, catalog_id, jobs, inputs)
SELECT project_id, COALESCE(catalog_id, 0), COUNT(*), SUM(GREATEST(total_count - completed_count - failed_count, 0))
FROM jobs WHERE status IN ('queued', 'scheduled', 'running')
GROUP BY project_id, COALESCE(catalog_id, 0);

-- A group commit inserts many jobs in one statement: one upsert per catalog of the statement,
-- not one per job.
CREATE FUNCTION queue_inputs_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_inputs (project_id, catalog_id, jobs, inputs)
    SELECT project_id, COALESCE(catalog_id, 0), COUNT(*),
           SUM(GREATEST(total_count - completed_count - failed_count, 0))
    FROM inserted WHERE status IN ('queued', 'scheduled', 'running')
    GROUP BY project_id, COALESCE(catalog_id, 0)
    -- A fixed order, so two statements upserting the same rows never deadlock.
    ORDER BY 1, 2
    ON CONFLICT (project_id, catalog_id) DO UPDATE
    SET jobs = queue_inputs.jobs + excluded.jobs, inputs = queue_inputs.inputs + excluded.inputs;
    RETURN NULL;
END $$;

CREATE TRIGGER queue_inputs_insert AFTER INSERT ON jobs
REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION queue_inputs_insert();

-- A job's share of the queue: (jobs, inputs) it counts for.
CREATE FUNCTION queue_inputs_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_jobs   BIGINT := 0;
    old_inputs BIGINT := 0;
    new_jobs   BIGINT := 0;
    new_inputs BIGINT := 0;
    job        jobs;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status IN ('queued', 'scheduled', 'running') THEN
        old_jobs := 1;
        old_inputs := GREATEST(OLD.total_count - OLD.completed_count - OLD.failed_count, 0);
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.status IN ('queued', 'scheduled', 'running') THEN
        new_jobs := 1;
        new_inputs := GREATEST(NEW.total_count - NEW.completed_count - NEW.failed_count, 0);
    END IF;
    IF TG_OP = 'DELETE' THEN job := OLD; ELSE job := NEW; END IF;
    INSERT INTO queue_inputs (project_id, catalog_id, jobs, inputs)
    VALUES (job.project_id, COALESCE(job.catalog_id, 0), new_jobs - old_jobs, new_inputs - old_inputs)
    ON CONFLICT (project_id, catalog_id) DO UPDATE
    SET jobs = queue_inputs.jobs + excluded.jobs, inputs = queue_inputs.inputs + excluded.inputs;
    IF new_jobs < old_jobs THEN
        DELETE FROM queue_inputs
        WHERE project_id = job.project_id AND catalog_id = COALESCE(job.catalog_id, 0) AND jobs <= 0;
    END IF;
    RETURN NULL;
END $$;

-- Fires only when a job's share of the queue changes (a lease renewal does not).
CREATE TRIGGER queue_inputs_update AFTER UPDATE OF status, total_count, completed_count, failed_count ON jobs
FOR EACH ROW
WHEN ((OLD.status IN ('queued', 'scheduled', 'running')) IS DISTINCT FROM (NEW.status IN ('queued', 'scheduled', 'running'))
      OR (NEW.status IN ('queued', 'scheduled', 'running')
          AND OLD.total_count - OLD.completed_count - OLD.failed_count
              <> NEW.total_count - NEW.completed_count - NEW.failed_count))
EXECUTE FUNCTION queue_inputs_change();

CREATE TRIGGER queue_inputs_delete AFTER DELETE ON jobs
FOR EACH ROW WHEN (OLD.status IN ('queued', 'scheduled', 'running'))
EXECUTE FUNCTION queue_inputs_change();
