-- Payloads move out of the jobs row. SQLite rewrites a whole row on UPDATE, overflow pages
-- included, so a 10,000-id payload inside `jobs` was rewritten by every claim and checkpoint; and
-- columns stored after it could only be read by walking its overflow chain. A row of its own is
-- written once at enqueue, read once per claim, and deleted when the job ends.
CREATE TABLE job_payloads (
    job_id  INTEGER PRIMARY KEY,
    payload TEXT    NOT NULL
);
INSERT INTO job_payloads (job_id, payload) SELECT id, payload FROM jobs WHERE payload IS NOT NULL;
ALTER TABLE jobs DROP COLUMN payload;
