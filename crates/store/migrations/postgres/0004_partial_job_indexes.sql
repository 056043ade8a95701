-- Every job insert writes into each index the new row belongs to, and under load that is a page
-- written per index per commit. Two of them served rows that most jobs are not: the due-scheduled
-- lookup (only scheduled jobs) and the idempotency key (only jobs created with one). Each now holds
-- only those rows, so a plain queued job enters neither. The runner's claim and the idempotency
-- lookup read them as before (their conditions imply each index's).
DROP INDEX jobs_claim;
CREATE INDEX jobs_scheduled ON jobs (status, start_at) WHERE status = 'scheduled';
DROP INDEX jobs_idempotency;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (project_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
