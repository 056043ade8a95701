-- catalogd schema, SQLite. Times are epoch milliseconds (INTEGER).

CREATE TABLE projects (
    id         INTEGER PRIMARY KEY,
    key        TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    token_hash TEXT    NOT NULL UNIQUE,
    prefix     TEXT    NOT NULL,
    name       TEXT,
    scopes     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX api_keys_by_project ON api_keys (project_id, id);

-- A deleted catalog keeps its row (deleted_at set) until its catalog_delete job has removed its
-- items, so the name is free again at once while pending jobs still see it is gone.
CREATE TABLE catalogs (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    description TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    deleted_at  INTEGER
);
CREATE UNIQUE INDEX catalogs_live_name ON catalogs (project_id, name) WHERE deleted_at IS NULL;

-- WITHOUT ROWID clusters rows by (catalog_id, item_id): a sorted chunk of ids touches few pages.
CREATE TABLE items (
    catalog_id INTEGER NOT NULL,
    item_id    TEXT    NOT NULL,
    fields     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (catalog_id, item_id)
) WITHOUT ROWID;

CREATE TABLE categories (
    catalog_id  INTEGER NOT NULL,
    category_id TEXT    NOT NULL,
    external_id TEXT,
    name        TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (catalog_id, category_id)
) WITHOUT ROWID;

CREATE TABLE category_items (
    catalog_id  INTEGER NOT NULL,
    category_id TEXT    NOT NULL,
    item_id     TEXT    NOT NULL,
    PRIMARY KEY (catalog_id, category_id, item_id)
) WITHOUT ROWID;
CREATE INDEX category_items_by_item ON category_items (catalog_id, item_id);

-- AUTOINCREMENT: job ids keep increasing even after the newest jobs are purged.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id       INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    catalog_id       INTEGER,
    catalog_name     TEXT,
    kind             TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    total_count      INTEGER NOT NULL,
    completed_count  INTEGER NOT NULL DEFAULT 0,
    failed_count     INTEGER NOT NULL DEFAULT 0,
    cursor           INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    flags            INTEGER NOT NULL DEFAULT 0,
    payload          TEXT,
    description      TEXT,
    reference_id     TEXT,
    idempotency_key  TEXT,
    request_hash     TEXT,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    attempt          INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    start_at         INTEGER,
    started_at       INTEGER,
    finished_at      INTEGER,
    expires_at       INTEGER,
    failure_reason   TEXT
);
CREATE INDEX jobs_by_project ON jobs (project_id, id DESC);
CREATE INDEX jobs_by_project_status ON jobs (project_id, status);
CREATE INDEX jobs_claim ON jobs (status, start_at);
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (project_id, idempotency_key);

CREATE TABLE job_errors (
    job_id     INTEGER NOT NULL,
    item_index INTEGER NOT NULL,
    item_id    TEXT,
    code       TEXT    NOT NULL,
    title      TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    pointer    TEXT,
    PRIMARY KEY (job_id, item_index)
) WITHOUT ROWID;

-- Kept for schema parity with PostgreSQL; on SQLite quotas live in process (see rate.rs).
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    tat REAL
);
