-- Feeds and their polling state. One row per feed URL.
CREATE TABLE feeds (
    url             VARCHAR PRIMARY KEY,
    name            VARCHAR,
    tags            VARCHAR[] NOT NULL DEFAULT [],
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
    paused          BOOLEAN NOT NULL DEFAULT false
);

-- One row per flow run.
CREATE TABLE runs (
    run_id       VARCHAR PRIMARY KEY,
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

-- One row per feed poll.
CREATE TABLE polls (
    poll_id        VARCHAR PRIMARY KEY,
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
CREATE TABLE articles (
    article_id       VARCHAR PRIMARY KEY,
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
    tags             VARCHAR[] NOT NULL DEFAULT [],
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

-- The fetched HTML, zstd-compressed, so articles can be re-extracted without the network.
CREATE TABLE raw_pages (
    article_id   VARCHAR PRIMARY KEY,
    url          VARCHAR NOT NULL,
    http_status  INTEGER,
    content_type VARCHAR,
    fetched_at   TIMESTAMPTZ,
    size_bytes   INTEGER NOT NULL,
    html_zstd    BLOB NOT NULL
);
