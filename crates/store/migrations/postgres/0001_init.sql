-- catalogd schema, PostgreSQL. Times are epoch milliseconds (BIGINT). Ids compare bytewise
-- (COLLATE "C") so keyset pages order the same as on SQLite and comparisons stay cheap.

CREATE TABLE projects (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key        TEXT   NOT NULL UNIQUE,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    token_hash TEXT   NOT NULL UNIQUE,
    prefix     TEXT   NOT NULL,
    name       TEXT,
    scopes     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_by_project ON api_keys (project_id, id);

CREATE TABLE catalogs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE UNIQUE INDEX catalogs_live_name ON catalogs (project_id, name) WHERE deleted_at IS NULL;

CREATE TABLE items (
    catalog_id BIGINT NOT NULL,
    item_id    TEXT COLLATE "C" NOT NULL,
    fields     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (catalog_id, item_id)
);

CREATE TABLE categories (
    catalog_id  BIGINT NOT NULL,
    category_id TEXT COLLATE "C" NOT NULL,
    external_id TEXT,
    name        TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (catalog_id, category_id)
);

CREATE TABLE category_items (
    catalog_id  BIGINT NOT NULL,
    category_id TEXT COLLATE "C" NOT NULL,
    item_id     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (catalog_id, category_id, item_id)
);
CREATE INDEX category_items_by_item ON category_items (catalog_id, item_id);

CREATE TABLE jobs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id       BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    catalog_id       BIGINT,
    catalog_name     TEXT COLLATE "C",
    kind             TEXT   NOT NULL,
    status           TEXT   NOT NULL,
    total_count      BIGINT NOT NULL,
    completed_count  BIGINT NOT NULL DEFAULT 0,
    failed_count     BIGINT NOT NULL DEFAULT 0,
    cursor           BIGINT NOT NULL DEFAULT 0,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    flags            BIGINT NOT NULL DEFAULT 0,
    payload          TEXT,
    description      TEXT,
    reference_id     TEXT,
    idempotency_key  TEXT,
    request_hash     TEXT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    attempt          BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    start_at         BIGINT,
    started_at       BIGINT,
    finished_at      BIGINT,
    expires_at       BIGINT,
    failure_reason   TEXT
);
CREATE INDEX jobs_by_project ON jobs (project_id, id DESC);
CREATE INDEX jobs_by_project_status ON jobs (project_id, status);
CREATE INDEX jobs_claim ON jobs (status, start_at);
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (project_id, idempotency_key);

CREATE TABLE job_errors (
    job_id     BIGINT NOT NULL,
    item_index BIGINT NOT NULL,
    item_id    TEXT,
    code       TEXT   NOT NULL,
    title      TEXT   NOT NULL,
    detail     TEXT   NOT NULL,
    pointer    TEXT,
    PRIMARY KEY (job_id, item_index)
);

-- GCRA state shared by every node: one theoretical arrival time per quota key.
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    tat DOUBLE PRECISION
);

-- Wake runners on other nodes at commit: a job became due (inserted or released to the queue),
-- or finished (for long polls waiting on it).
CREATE FUNCTION catalogd_job_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'queued' OR NEW.status = 'scheduled' THEN
        PERFORM pg_notify('catalogd_jobs', NEW.id::text);
    ELSIF NEW.status IN ('completed', 'failed', 'cancelled') THEN
        PERFORM pg_notify('catalogd_jobs_done', NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION catalogd_job_notify();
CREATE TRIGGER jobs_notify_status AFTER UPDATE OF status ON jobs FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION catalogd_job_notify();
