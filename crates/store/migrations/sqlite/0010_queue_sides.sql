-- The queue's counts in rows per catalog and side, as on PostgreSQL (see its 0010 for why there):
-- here side 0 is what job inserts added, side 1 what every later change took away (negative
-- counts), and a catalog's queue is the sum of its rows. One writer at a time holds SQLite's
-- database, so nothing here waits on a row and one side for the inserts is enough; the shape is
-- shared so that both backends read the queue alike.
-- A change that leaves a catalog without work deletes its rows at once, as before.
DROP TRIGGER queue_inputs_insert;
DROP TRIGGER queue_inputs_update;
DROP TRIGGER queue_inputs_delete;

ALTER TABLE queue_inputs RENAME TO queue_inputs_one_row;
CREATE TABLE queue_inputs (
    project_id INTEGER NOT NULL,
    catalog_id INTEGER NOT NULL,
    side       INTEGER NOT NULL,
    jobs       INTEGER NOT NULL,
    inputs     INTEGER NOT NULL,
    PRIMARY KEY (project_id, catalog_id, side)
) WITHOUT ROWID;
INSERT INTO queue_inputs (project_id, catalog_id, side, jobs, inputs)
SELECT project_id, catalog_id, 0, jobs, inputs FROM queue_inputs_one_row;
DROP TABLE queue_inputs_one_row;

CREATE TRIGGER queue_inputs_insert AFTER INSERT ON jobs
WHEN NEW.status IN ('queued', 'scheduled', 'running')
BEGIN
    INSERT INTO queue_inputs (project_id, catalog_id, side, jobs, inputs)
    VALUES (NEW.project_id, COALESCE(NEW.catalog_id, 0), 0, 1,
            MAX(NEW.total_count - NEW.completed_count - NEW.failed_count, 0))
    ON CONFLICT (project_id, catalog_id, side) DO UPDATE
    SET jobs = jobs + excluded.jobs, inputs = inputs + excluded.inputs;
END;

CREATE TRIGGER queue_inputs_update AFTER UPDATE OF status, total_count, completed_count, failed_count ON jobs
WHEN (OLD.status IN ('queued', 'scheduled', 'running')) <> (NEW.status IN ('queued', 'scheduled', 'running'))
  OR (NEW.status IN ('queued', 'scheduled', 'running')
      AND OLD.total_count - OLD.completed_count - OLD.failed_count
          <> NEW.total_count - NEW.completed_count - NEW.failed_count)
BEGIN
    INSERT INTO queue_inputs (project_id, catalog_id, side, jobs, inputs)
    VALUES (NEW.project_id, COALESCE(NEW.catalog_id, 0), 1,
            (NEW.status IN ('queued', 'scheduled', 'running')) - (OLD.status IN ('queued', 'scheduled', 'running')),
            (CASE WHEN NEW.status IN ('queued', 'scheduled', 'running')
                  THEN MAX(NEW.total_count - NEW.completed_count - NEW.failed_count, 0) ELSE 0 END)
            - (CASE WHEN OLD.status IN ('queued', 'scheduled', 'running')
                    THEN MAX(OLD.total_count - OLD.completed_count - OLD.failed_count, 0) ELSE 0 END))
    ON CONFLICT (project_id, catalog_id, side) DO UPDATE
    SET jobs = jobs + excluded.jobs, inputs = inputs + excluded.inputs;
    DELETE FROM queue_inputs
    WHERE project_id = NEW.project_id AND catalog_id = COALESCE(NEW.catalog_id, 0)
      AND (SELECT SUM(jobs) FROM queue_inputs
           WHERE project_id = NEW.project_id AND catalog_id = COALESCE(NEW.catalog_id, 0)) <= 0;
END;

CREATE TRIGGER queue_inputs_delete AFTER DELETE ON jobs
WHEN OLD.status IN ('queued', 'scheduled', 'running')
BEGIN
    INSERT INTO queue_inputs (project_id, catalog_id, side, jobs, inputs)
    VALUES (OLD.project_id, COALESCE(OLD.catalog_id, 0), 1, -1,
            -MAX(OLD.total_count - OLD.completed_count - OLD.failed_count, 0))
    ON CONFLICT (project_id, catalog_id, side) DO UPDATE
    SET jobs = jobs + excluded.jobs, inputs = inputs + excluded.inputs;
    DELETE FROM queue_inputs
    WHERE project_id = OLD.project_id AND catalog_id = COALESCE(OLD.catalog_id, 0)
      AND (SELECT SUM(jobs) FROM queue_inputs
           WHERE project_id = OLD.project_id AND catalog_id = COALESCE(OLD.catalog_id, 0)) <= 0;
END;
