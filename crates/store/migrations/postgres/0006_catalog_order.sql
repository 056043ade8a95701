-- Jobs of one catalog take effect one at a time, in the order they became due (DESIGN §3, the
-- order rule in catalog_domain::order). The claim no longer takes the oldest due job of any
-- catalog: it visits the catalogs that have work, once each, and takes each one's next job.
--
-- A job becomes due when it is accepted (created_at, from the database's clock since this
-- migration), or at its start_at if that is later: GREATEST(created_at, start_at), the same
-- expression the claim uses. jobs_waiting holds the jobs not yet started, per catalog in that
-- order: its first entry per catalog is the catalog's next job, and stepping from one catalog to
-- the next is one index probe.
CREATE INDEX jobs_waiting ON jobs (project_id, catalog_id, GREATEST(created_at, start_at), id)
    WHERE status IN ('queued', 'scheduled');
-- A job that has started holds its catalog until it ends, also while it waits to be resumed
-- (released at shutdown, lease lost, retry backoff): at most one row per catalog.
CREATE INDEX jobs_holding ON jobs (project_id, catalog_id) WHERE status IN ('running', 'queued') AND started_at IS NOT NULL;
-- jobs_scheduled (migration 0004) stays: the claim's first try looks at the oldest due scheduled
-- job, as at the oldest queued one (jobs_queue).

-- Several processes claim at once, each statement on its own snapshot: two of them could each see
-- a different job as a catalog's next (one job committed late with an earlier due time) and
-- start both. Every claim therefore also bumps its catalog's row here, on the condition that the
-- version is still the one its snapshot saw; the loser of a race finds the row changed and claims
-- nothing (ON CONFLICT DO UPDATE checks the latest row version, not the snapshot's).
CREATE TABLE catalog_claims (
    catalog_id BIGINT PRIMARY KEY,
    version    BIGINT NOT NULL
);

-- Attempts that count toward the runner's max_attempts are `attempt - releases`: a claim bumps
-- `attempt` (the fencing token), and a graceful release at shutdown gives its attempt back.
ALTER TABLE jobs ADD COLUMN releases BIGINT NOT NULL DEFAULT 0;
-- What the last failed attempt ran into (transient errors are retried after a backoff); part of
-- the failure reason when the runner gives up.
ALTER TABLE jobs ADD COLUMN last_error TEXT;
