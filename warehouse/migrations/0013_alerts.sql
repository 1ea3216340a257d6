-- Alerts: decided in the transaction that stores the articles (or polls) that set them off, so each is
-- decided once however many runs, workers or machines store at once. alert_id is derived from what it is
-- about (watch and story, watch and article, alert and feed episode): the write lock and a check of the
-- id keep it unique (DuckLake has no UNIQUE). Key: alert_id.
CREATE TABLE alerts (
    alert_id     VARCHAR NOT NULL,
    event        VARCHAR NOT NULL,   -- newsflow.story.threshold | newsflow.story.follow_up |
                                     -- newsflow.article.match | newsflow.feed.failing
    rule         VARCHAR NOT NULL,   -- the watch's or alert's name
    story_id     VARCHAR,
    article_id   VARCHAR,
    feed_url     VARCHAR,
    outlets      INTEGER,            -- distinct outlets of the story when decided
    payload      VARCHAR NOT NULL,   -- the JSON body every delivery sends, byte for byte
    run_id       VARCHAR,
    created_at   TIMESTAMPTZ NOT NULL
);

-- One row per alert and place it goes (the rule's webhook, each of its Apprise URLs by position): sent
-- after the commit, retried with backoff by later runs until the receiver acknowledges it, never sent
-- again once delivered. A sender claims a row (claimed_until) before sending, so two runs at once do not
-- both send it. Key: (alert_id, target).
CREATE TABLE alert_deliveries (
    alert_id         VARCHAR NOT NULL,
    target           VARCHAR NOT NULL,   -- webhook | notify:0, notify:1, ...
    state            VARCHAR NOT NULL,   -- pending | delivered
    attempts         INTEGER NOT NULL,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    claimed_until    TIMESTAMPTZ,
    last_error       VARCHAR,
    delivered_at     TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL
);
