-- Payloads move out of the jobs row (as on SQLite, where it matters most): the jobs row that every
-- checkpoint updates stays small, and the schema stays the same on both backends.
CREATE TABLE job_payloads (
    job_id  BIGINT PRIMARY KEY,
    payload TEXT   NOT NULL
);
-- Written once and read once per claim: stored out of line uncompressed, sparing the CPU that
-- compressing 100s of KB per request would cost.
ALTER TABLE job_payloads ALTER COLUMN payload SET STORAGE EXTERNAL;
INSERT INTO job_payloads (job_id, payload) SELECT id, payload FROM jobs WHERE payload IS NOT NULL;
ALTER TABLE jobs DROP COLUMN payload;
