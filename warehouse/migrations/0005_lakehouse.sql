-- The warehouse as a DuckLake: the schema of file versions 1-4 (warehouse/legacy_migrations/) in one step.
-- DuckLake has no PRIMARY KEY, UNIQUE or list defaults: the keys named below are kept unique by newsflow's
-- writers, which hold the lake's write lock and insert only rows whose key is not stored yet
-- (warehouse/lakehouse.py); integrity_check counts any breach.

-- Feeds and their polling state. Key: url.
CREATE TABLE feeds (
    url             VARCHAR NOT NULL,
    name            VARCHAR,
    tags            VARCHAR[] NOT NULL,
    title           VARCHAR,
    added_at        TIMESTAMPTZ NOT NULL,
    etag            VARCHAR,
    last_modified   VARCHAR,
    last_polled_at  TIMESTAMPTZ,
    last_success_at TIMESTAMPTZ,
    last_status     VARCHAR,
    last_error      VARCHAR,
    error_streak    INTEGER NOT NULL DEFAULT 0,
    next_poll_at    TIMESTAMPTZ,
    paused          BOOLEAN NOT NULL DEFAULT false,
    poll_interval_s INTEGER,
    paused_reason   VARCHAR
);

-- One row per flow run. Key: run_id.
CREATE TABLE runs (
    run_id       VARCHAR NOT NULL,
    flow         VARCHAR NOT NULL,
    flow_run_id  VARCHAR,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    status       VARCHAR NOT NULL,
    parameters   JSON,
    counts       JSON,
    timings      JSON,
    error        VARCHAR
);

-- One row per feed poll. Key: poll_id.
CREATE TABLE polls (
    poll_id        VARCHAR NOT NULL,
    run_id         VARCHAR NOT NULL,
    feed_url       VARCHAR NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    duration_ms    INTEGER NOT NULL,
    status         VARCHAR NOT NULL,
    http_status    INTEGER,
    error_kind     VARCHAR,
    error_message  VARCHAR,
    bozo           BOOLEAN NOT NULL,
    bozo_reason    VARCHAR,
    entries_seen   INTEGER NOT NULL,
    new_entries    INTEGER NOT NULL,
    bytes_received BIGINT NOT NULL,
    retry_after    DOUBLE
);

-- One row per distinct feed entry (stable id from guid + link). Duplicates are rows too, marked.
-- Key: article_id.
CREATE TABLE articles (
    article_id       VARCHAR NOT NULL,
    feed_url         VARCHAR,
    guid             VARCHAR,
    guid_key         VARCHAR,
    url              VARCHAR,
    canonical_url    VARCHAR,
    final_url        VARCHAR,
    title            VARCHAR,
    author           VARCHAR,
    published_at     TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ,
    date_clamped     BOOLEAN NOT NULL DEFAULT false,
    site             VARCHAR,
    language         VARCHAR,
    text             VARCHAR NOT NULL,
    word_count       INTEGER NOT NULL,
    summary          VARCHAR,
    tags             VARCHAR[] NOT NULL,
    content_source   VARCHAR NOT NULL,
    fetch_error      VARCHAR,
    extraction_error VARCHAR,
    http_status      INTEGER,
    content_hash     VARCHAR,
    duplicate_of     VARCHAR,
    dup_reason       VARCHAR,
    dup_score        DOUBLE,
    story_id         VARCHAR,
    external_id      VARCHAR,
    first_seen_at    TIMESTAMPTZ NOT NULL,
    fetched_at       TIMESTAMPTZ,
    run_id           VARCHAR
);

-- The fetched HTML, zstd-compressed, so articles can be re-extracted without the network. Key: article_id.
CREATE TABLE raw_pages (
    article_id   VARCHAR NOT NULL,
    url          VARCHAR NOT NULL,
    http_status  INTEGER,
    content_type VARCHAR,
    fetched_at   TIMESTAMPTZ,
    size_bytes   INTEGER NOT NULL,
    html_zstd    BLOB NOT NULL
);

-- Backfills: one row per chunk of a backfill's window. Key: (backfill_id, chunk_start).
CREATE TABLE backfill_chunks (
    backfill_id  VARCHAR NOT NULL,
    chunk_start  DATE NOT NULL,
    chunk_end    DATE NOT NULL,
    status       VARCHAR NOT NULL,
    parameters   JSON NOT NULL,
    entries      INTEGER,
    articles     INTEGER,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Near-duplicates: one MinHash signature (128 little-endian uint32) per article, its root (the first copy)
-- and time; its 64 LSH band keys. Key: article_id.
CREATE TABLE minhash_signatures (
    article_id VARCHAR NOT NULL,
    signature  BLOB NOT NULL,
    root       VARCHAR NOT NULL,
    article_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE lsh_bands (
    band       SMALLINT NOT NULL,
    bucket     BIGINT NOT NULL,
    article_id VARCHAR NOT NULL,
    article_at TIMESTAMPTZ NOT NULL
);

-- Stories: grouping state. Key: story_id. Centroids (summed member vectors, pruned) in story_terms.
CREATE TABLE stories (
    story_id            VARCHAR NOT NULL,
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
    weight   DOUBLE NOT NULL,
    last_at  TIMESTAMPTZ NOT NULL
);

-- Document frequencies of terms over every grouped article; the row with term '' counts the articles.
-- Key: term.
CREATE TABLE term_stats (
    term VARCHAR NOT NULL,
    df   BIGINT NOT NULL
);

-- Why each article is in its story: one row per article (the latest decision). Key: article_id.
CREATE TABLE story_decisions (
    article_id        VARCHAR NOT NULL,
    story_id          VARCHAR NOT NULL,
    reason            VARCHAR NOT NULL,
    score             DOUBLE NOT NULL,
    term_similarity   DOUBLE,
    entity_similarity DOUBLE,
    days_apart        DOUBLE,
    best_other        VARCHAR,
    shared_terms      VARCHAR[] NOT NULL,
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
