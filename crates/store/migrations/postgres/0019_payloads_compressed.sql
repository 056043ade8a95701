-- Job payloads are compressed (docs/PERFORMANCE.md, "Store").
--
-- Migration 0002 stored them out of line uncompressed (`STORAGE EXTERNAL`), to spare the CPU of
-- compressing hundreds of KB per request; migration 0016 then chose lz4 as their compression, but
-- a column stored EXTERNAL is never compressed, so that choice changed nothing. With lz4 the
-- trade is the other way round: measured in psql, 50 payloads of a 10,000-id delete (170 KB of
-- JSON each) took 20–27 ms to insert compressed against 27–38 ms uncompressed, read back in the
-- same time, and took 4.3 MB against 17 MB (41 KB a payload): a quarter of the WAL and of the
-- TOAST rows per request. A small job's payload (under 2 KB) stays in its row either way.
--
-- Only where 0016 could choose lz4: pglz costs about four times as much CPU per payload.
-- Payloads stored before stay as they are; PostgreSQL reads both.
DO $$
DECLARE
    compression "char";
BEGIN
    -- `attcompression` exists since PostgreSQL 14, as the choice of 0016 does.
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'SELECT attcompression FROM pg_attribute
                 WHERE attrelid = ''job_payloads''::regclass AND attname = ''payload''' INTO compression;
        IF compression = 'l' THEN
            ALTER TABLE job_payloads ALTER COLUMN payload SET STORAGE EXTENDED;
        END IF;
    END IF;
END $$;
