-- Projects served in turn (docs/RULES.md, "Projects served in turn"; catalog_domain::turns). Every
-- claim takes a turn number from claim_turns and records it as the turn its project and its
-- catalog were last served at; the next claim takes, among the jobs the order rule lets start, the
-- one whose project was served longest ago, then whose catalog was (never served: first). The
-- tables are written by the claim itself, in its statement, so every process sees the same turns.
CREATE SEQUENCE claim_turns;

-- One row per project ever served. The claim bumps `version` only if it is still the one its
-- snapshot saw (as for catalog_claims, migration 0006): two processes claiming in one project at
-- once cannot both act on a stale turn or a stale count of the project's running catalogs (the
-- cap); the loser claims nothing and tries again.
CREATE TABLE project_turns (
    project_id BIGINT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    served     BIGINT NOT NULL
);

-- A catalog's turn lives next to its claim version: the claim already writes that row.
ALTER TABLE catalog_claims ADD COLUMN served BIGINT NOT NULL DEFAULT 0;
