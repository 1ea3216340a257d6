-- Near-duplicates: one MinHash signature (128 little-endian uint32) per article long enough to have one,
-- and its 64 LSH band keys; articles sharing a (band, bucket) are candidates, found by one hash join.
CREATE TABLE minhash_signatures (
    article_id VARCHAR PRIMARY KEY,
    signature  BLOB NOT NULL
);
CREATE TABLE lsh_bands (
    band       SMALLINT NOT NULL,
    bucket     BIGINT NOT NULL,
    article_id VARCHAR NOT NULL
);

-- Stories: grouping state. One row per story; its centroid (summed member vectors, pruned) in story_terms.
CREATE TABLE stories (
    story_id            VARCHAR PRIMARY KEY,
    headline            VARCHAR,
    headline_article_id VARCHAR,
    first_at            TIMESTAMPTZ NOT NULL,
    last_at             TIMESTAMPTZ NOT NULL,
    article_count       INTEGER NOT NULL,
    sites               VARCHAR[] NOT NULL,
    join_score_sum      DOUBLE NOT NULL,
    term_norm           DOUBLE NOT NULL,
    entity_norm         DOUBLE NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE TABLE story_terms (
    story_id VARCHAR NOT NULL,
    kind     VARCHAR NOT NULL,
    term     VARCHAR NOT NULL,
    weight   DOUBLE NOT NULL
);

-- Document frequencies of terms over every grouped article; the row with term '' counts the articles.
CREATE TABLE term_stats (
    term VARCHAR PRIMARY KEY,
    df   BIGINT NOT NULL
);

-- Why each article is in its story: one row per article (the latest decision; regroup replaces it).
CREATE TABLE story_decisions (
    article_id        VARCHAR PRIMARY KEY,
    story_id          VARCHAR NOT NULL,
    reason            VARCHAR NOT NULL,
    score             DOUBLE NOT NULL,
    term_similarity   DOUBLE,
    entity_similarity DOUBLE,
    days_apart        DOUBLE,
    best_other        VARCHAR,
    shared_terms      VARCHAR[] NOT NULL DEFAULT [],
    decided_at        TIMESTAMPTZ NOT NULL
);

-- Stories as people read them: members counted from the articles table.
CREATE VIEW story_overview AS
SELECT
    s.story_id,
    s.headline,
    min(coalesce(a.published_at, a.first_seen_at)) AS first_at,
    max(coalesce(a.published_at, a.first_seen_at)) AS last_at,
    count(*) AS articles,
    count(*) FILTER (WHERE a.duplicate_of IS NULL) AS originals,
    count(DISTINCT a.site) AS outlets,
    list_sort(list(DISTINCT a.site) FILTER (WHERE a.site IS NOT NULL)) AS sites
FROM stories s
JOIN articles a ON a.story_id = s.story_id
GROUP BY s.story_id, s.headline;
