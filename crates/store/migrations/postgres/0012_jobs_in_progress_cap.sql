-- Klaviyo's cap on jobs in progress (contracts/klaviyo.md, "Limits": at most 500 per project),
-- enforced by the job insert itself. A job inserted with flag 2 (`bulk::FLAG_IN_PROGRESS_CAP`)
-- is refused when its project already has 500 jobs scheduled, queued or running.
--
-- Several processes insert jobs at once, each in its own transaction: a plain count would let
-- two of them see 499 and both insert. So a capped insert first takes a transaction-scoped
-- advisory lock of its project (class 0x4b4c, "KL"), held until its transaction ends, and only
-- then counts: the function is VOLATILE, so under READ COMMITTED the count takes a snapshot of
-- its own, after the lock, and sees every capped insert that committed before. Rows processed
-- earlier by the same statement (a batch of the group-commit writer) are counted too. Jobs
-- without the flag take no lock and never wait.
--
-- The error's SQLSTATE is catalogd's own, CD500 (class CD is none of PostgreSQL's): the store
-- maps it to `StoreError::TooManyJobsInProgress` (error.rs, `is_in_progress_cap`).
-- The 500 is catalog_domain::klaviyo::MAX_JOBS_IN_PROGRESS; the store's tests fill a project to
-- that constant and fail if the two ever differ.
CREATE FUNCTION catalogd_jobs_in_progress_cap() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(19276, (NEW.project_id % 2147483647)::int);
    IF (SELECT COUNT(*) FROM (SELECT 1 FROM jobs
                              WHERE project_id = NEW.project_id AND status IN ('scheduled', 'queued', 'running')
                              LIMIT 500) AS in_progress) >= 500 THEN
        RAISE EXCEPTION 'project % has 500 jobs in progress', NEW.project_id USING ERRCODE = 'CD500';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER jobs_in_progress_cap BEFORE INSERT ON jobs
FOR EACH ROW WHEN ((NEW.flags & 2) <> 0) EXECUTE FUNCTION catalogd_jobs_in_progress_cap();
