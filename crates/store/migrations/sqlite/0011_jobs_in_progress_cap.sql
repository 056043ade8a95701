-- Klaviyo's cap on jobs in progress (contracts/klaviyo.md, "Limits": at most 500 per project),
-- enforced by the job insert itself. A job inserted with flag 2 (`bulk::FLAG_IN_PROGRESS_CAP`)
-- is refused when its project already has 500 jobs scheduled, queued or running: counted in the
-- insert's own transaction, which on SQLite holds the database's one write lock (BEGIN
-- IMMEDIATE), so no other insert runs between the count and the row; rows written earlier by the
-- same statement are counted too. RAISE(ABORT) fails the insert with SQLITE_CONSTRAINT_TRIGGER
-- (extended code 1811), the only trigger of the schema that raises: the store maps that code to
-- `StoreError::TooManyJobsInProgress` (error.rs, `is_in_progress_cap`).
-- The 500 is catalog_domain::klaviyo::MAX_JOBS_IN_PROGRESS; the store's tests fill a project to
-- that constant and fail if the two ever differ.
CREATE TRIGGER jobs_in_progress_cap BEFORE INSERT ON jobs
WHEN (NEW.flags & 2) != 0
BEGIN
    SELECT RAISE(ABORT, 'catalogd: the project has 500 jobs in progress')
    WHERE (SELECT COUNT(*) FROM (SELECT 1 FROM jobs
                                 WHERE project_id = NEW.project_id AND status IN ('scheduled', 'queued', 'running')
                                 LIMIT 500)) >= 500;
END;
