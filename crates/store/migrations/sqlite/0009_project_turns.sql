-- Projects served in turn (docs/RULES.md, "Projects served in turn"; catalog_domain::turns). Every
-- claim takes the next turn number (one more than the largest so far) and records it as the turn
-- its project and its catalog were last served at; the next claim takes, among the jobs the order
-- rule lets start, the one whose project was served longest ago, then whose catalog was (never
-- served: first). One process owns the file and claims under the write lock, so no version is
-- needed (PostgreSQL has one).
CREATE TABLE project_turns (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    served     INTEGER NOT NULL
);
-- The largest turn so far, in one seek.
CREATE INDEX project_turns_served ON project_turns (served);

-- No foreign key: a claim must never fail on a job whose catalog row is already gone. The row
-- goes with its catalog instead.
CREATE TABLE catalog_turns (
    catalog_id INTEGER PRIMARY KEY,
    served     INTEGER NOT NULL
);
CREATE TRIGGER catalog_turns_gone AFTER DELETE ON catalogs
BEGIN
    DELETE FROM catalog_turns WHERE catalog_id = OLD.id;
END;
