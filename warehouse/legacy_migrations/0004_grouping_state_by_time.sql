-- Grouping state carries the time it is looked up by, and is rewritten in time order, so that DuckDB's
-- zone maps skip row groups outside a batch's window: the cost of a batch then depends on the stories
-- and signatures near its dates, not on the size of the history.
-- story_terms.last_at: the story's last_at (kept in step by every save of the story).
-- lsh_bands.article_at: the article's time (published, else first seen); near-duplicates are looked for within
-- a window around it.
CREATE TABLE story_terms_by_time (
    story_id VARCHAR NOT NULL,
    kind     VARCHAR NOT NULL,
    term     VARCHAR NOT NULL,
    weight   DOUBLE NOT NULL,
    last_at  TIMESTAMPTZ NOT NULL
);
INSERT INTO story_terms_by_time
SELECT t.story_id, t.kind, t.term, t.weight, s.last_at
FROM story_terms t JOIN stories s USING (story_id)
ORDER BY s.last_at, t.story_id;
DROP TABLE story_terms;
ALTER TABLE story_terms_by_time RENAME TO story_terms;

CREATE TABLE lsh_bands_by_time (
    band       SMALLINT NOT NULL,
    bucket     BIGINT NOT NULL,
    article_id VARCHAR NOT NULL,
    article_at TIMESTAMPTZ NOT NULL
);
INSERT INTO lsh_bands_by_time
SELECT l.band, l.bucket, l.article_id, coalesce(a.published_at, a.first_seen_at, TIMESTAMPTZ '1970-01-01')
FROM lsh_bands l LEFT JOIN articles a USING (article_id)
ORDER BY 4, l.article_id;
DROP TABLE lsh_bands;
ALTER TABLE lsh_bands_by_time RENAME TO lsh_bands;

-- minhash_signatures.root: the first copy the article belongs to (itself if none), fixed when stored, so
-- the candidate query needs no join with articles; .article_at as in lsh_bands.
CREATE TABLE minhash_signatures_by_time (
    article_id VARCHAR PRIMARY KEY,
    signature  BLOB NOT NULL,
    root       VARCHAR NOT NULL,
    article_at TIMESTAMPTZ NOT NULL
);
INSERT INTO minhash_signatures_by_time
SELECT s.article_id, s.signature, coalesce(a.duplicate_of, s.article_id),
       coalesce(a.published_at, a.first_seen_at, TIMESTAMPTZ '1970-01-01')
FROM minhash_signatures s LEFT JOIN articles a USING (article_id)
ORDER BY 4, s.article_id;
DROP TABLE minhash_signatures;
ALTER TABLE minhash_signatures_by_time RENAME TO minhash_signatures;
