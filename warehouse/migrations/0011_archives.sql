-- Backfills from the web archives (CC-NEWS, the Wayback Machine, Common Crawl's index).
-- Where an archived article came from, so a row can be traced back: the archive, the WARC file (with the
-- offset and length of its record) or the Wayback replay URL, and when it was captured.
ALTER TABLE articles ADD COLUMN capture_archive VARCHAR;
ALTER TABLE articles ADD COLUMN capture_uri VARCHAR;
ALTER TABLE articles ADD COLUMN capture_offset BIGINT;
ALTER TABLE articles ADD COLUMN capture_length BIGINT;
ALTER TABLE articles ADD COLUMN captured_at TIMESTAMPTZ;

-- How far each unit of an archive backfill got: a WARC file (resumed at a byte offset), a site's CDX query
-- (resumed at its resume key), a crawl's index for a site (resumed at an index page). The row is updated in
-- the same transaction as the articles it counts, so a killed run resumes exactly where its last commit
-- left off. Key: (backfill_id, archive, unit).
CREATE TABLE archive_units (
    backfill_id      VARCHAR NOT NULL,
    archive          VARCHAR NOT NULL,
    unit             VARCHAR NOT NULL,
    status           VARCHAR NOT NULL,  -- pending, done, failed
    resume_at        VARCHAR,           -- where the next run goes on; NULL: from the start
    records_read     BIGINT NOT NULL,
    records_kept     BIGINT NOT NULL,
    articles_stored  BIGINT NOT NULL,
    bytes_read       BIGINT,
    attempts         INTEGER NOT NULL,
    error            VARCHAR,
    updated_at       TIMESTAMPTZ NOT NULL
);
