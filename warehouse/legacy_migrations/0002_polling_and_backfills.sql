-- Adaptive per-feed polling: the interval the next poll was scheduled with, and why a feed is paused.
ALTER TABLE feeds ADD COLUMN poll_interval_s INTEGER;
ALTER TABLE feeds ADD COLUMN paused_reason VARCHAR;

-- Backfills: one row per chunk of a backfill's window, so an interrupted backfill redoes only what is
-- unfinished. backfill_id is a hash of the backfill's parameters: the same request resumes.
CREATE TABLE backfill_chunks (
    backfill_id  VARCHAR NOT NULL,
    chunk_start  DATE NOT NULL,
    chunk_end    DATE NOT NULL,
    status       VARCHAR NOT NULL,
    parameters   JSON NOT NULL,
    entries      INTEGER,
    articles     INTEGER,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (backfill_id, chunk_start)
);
