-- A job's project is no longer checked by a foreign key (docs/PERFORMANCE.md, "Accepting small jobs").
--
-- Why: the check ran once per inserted job, a query of its own that share-locked the project's
-- row (`FOR KEY SHARE`): 0.26 ms of a 1.1 ms group commit of 24 small jobs in auto_explain, the
-- largest of the insert's triggers. It guarded nothing the inserts do not already guard: every
-- job names a catalog of its project, found in the same statement (the job writer, `enqueue.rs`,
-- share-locks it and checks it is alive) or transaction (a catalog's delete or emptying,
-- `catalogs.rs`, `facade_support.rs`), and a catalog's row is inserted only for a project that
-- exists. Nor did its cascade do anything: catalogd never deletes a project.
ALTER TABLE jobs DROP CONSTRAINT jobs_project_id_fkey;
