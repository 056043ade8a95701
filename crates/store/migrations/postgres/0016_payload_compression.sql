-- Job payloads compressed with lz4 instead of pglz (measured in docs/PERFORMANCE.md, "Store"):
-- a 10,000-id delete's payload (170 KB of JSON) took 1.1 ms to compress with pglz and 0.27 ms
-- with lz4, paid by every accepted request, for 23% more bytes stored (4.4 MB against 3.6 MB per
-- hundred such payloads). Reading one back costs about the same either way. Payloads stored
-- before keep their compression; PostgreSQL reads both.
--
-- lz4 is optional in a PostgreSQL build (the packages of Debian, PGDG and the official images
-- have it) and the setting exists since PostgreSQL 14: without either, payloads stay on pglz.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'ALTER TABLE job_payloads ALTER COLUMN payload SET COMPRESSION lz4';
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not in this PostgreSQL build: job payloads stay compressed with pglz';
END $$;
