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

CREATE TABLE catalog_turns (
    catalog_id INTEGER PRIMARY KEY REFERENCES catalogs(id) ON DELETE CASCADE,
    served     INTEGER NOT NULL
);
