-- The queue's counts in several rows per catalog (docs/RULES.md, "Queue bounds"): side 1 is what
-- every change after a job's insert took away (a checkpoint, end, cancel or delete; negative
-- counts), and the other sides what job inserts added: each process's job writer adds to a side of
-- its own (2 to 17, drawn when it starts, `enqueue::WriterSide`; set for the insert's transaction in
-- `catalogd.queue_side`), side 0 holds what was counted before this migration and what an insert
-- without a side adds. A catalog's queue is the sum of its rows.
--
-- Why: with one row per catalog, every accepted batch of jobs and every runner transaction of that
-- catalog updated the same row, so each held its lock until its commit and each waited for the
-- other's: under a load of small requests the job writer spent most of its time waiting for the
-- runner's transactions, and the runner for the writer's; two processes' writers waited for each
-- other likewise. Now a writer touches only its own side and the runner only side 1, of which it
-- holds the catalog's only writer (one job of a catalog runs at a time); a cancel or a catalog
-- delete still writes side 1, briefly.
--
-- A change no longer deletes the rows of a catalog left without work: that would lock the
-- writers' rows and wait for them again. The purge does it (`queue::prune_idle_counts`), locking
-- the rows first, so the claim's first try (which enumerates the catalogs with a positive sum)
-- meets a few idle catalogs at most between two purges.
ALTER TABLE queue_inputs ADD COLUMN side SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE queue_inputs DROP CONSTRAINT queue_inputs_pkey, ADD PRIMARY KEY (project_id, catalog_id, side);
ALTER TABLE queue_inputs ALTER COLUMN side DROP DEFAULT;

CREATE OR REPLACE FUNCTION queue_inputs_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_inputs (project_id, catalog_id, side, jobs, inputs)
    SELECT project_id, COALESCE(catalog_id, 0),
           COALESCE(NULLIF(current_setting('catalogd.queue_side', true), '')::smallint, 0), COUNT(*),
           SUM(GREATEST(total_count - completed_count - failed_count, 0))
    FROM inserted WHERE status IN ('queued', 'scheduled', 'running')
    GROUP BY project_id, COALESCE(catalog_id, 0)
    -- A fixed order, so two statements upserting the same rows never deadlock.
    ORDER BY 1, 2
    ON CONFLICT (project_id, catalog_id, side) DO UPDATE
    SET jobs = queue_inputs.jobs + excluded.jobs, inputs = queue_inputs.inputs + excluded.inputs;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION queue_inputs_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_jobs   BIGINT := 0;
    old_inputs BIGINT := 0;
    new_jobs   BIGINT := 0;
    new_inputs BIGINT := 0;
    job        jobs;
BEGIN
    IF OLD.status IN ('queued', 'scheduled', 'running') THEN
        old_jobs := 1;
        old_inputs := GREATEST(OLD.total_count - OLD.completed_count - OLD.failed_count, 0);
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.status IN ('queued', 'scheduled', 'running') THEN
        new_jobs := 1;
        new_inputs := GREATEST(NEW.total_count - NEW.completed_count - NEW.failed_count, 0);
    END IF;
    IF TG_OP = 'DELETE' THEN job := OLD; ELSE job := NEW; END IF;
    INSERT INTO queue_inputs (project_id, catalog_id, side, jobs, inputs)
    VALUES (job.project_id, COALESCE(job.catalog_id, 0), 1, new_jobs - old_jobs, new_inputs - old_inputs)
    ON CONFLICT (project_id, catalog_id, side) DO UPDATE
    SET jobs = queue_inputs.jobs + excluded.jobs, inputs = queue_inputs.inputs + excluded.inputs;
    RETURN NULL;
END $$;
