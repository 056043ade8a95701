-- A large payload (64 KiB or more) is stored in parts of at most 1 MiB: the first in
-- job_payloads, the others here, numbered from 1. Written on SQLite only, where a payload bound
-- whole is copied twice more by SQLite itself while it is inserted (10 MB request, 20 MB more);
-- PostgreSQL receives a payload in one message and keeps no copy in the server process. Both
-- backends have the table so that payloads are read with the same SQL.
CREATE TABLE job_payload_parts (
    job_id  INTEGER NOT NULL,
    part    INTEGER NOT NULL,
    payload TEXT    NOT NULL,
    PRIMARY KEY (job_id, part)
);
