-- The runner claims the oldest due job. With only (status, start_at) to go by, finding the oldest
-- queued job meant reading every queued job, or walking the finished ones in id order: each claim
-- slowed down as the backlog or the history grew (100 ms at 1,000,000 finished jobs on SQLite,
-- holding the write lock all along). In (status, id) order the oldest job of a status is the
-- first entry of its range.
CREATE INDEX jobs_queue ON jobs (status, id);
