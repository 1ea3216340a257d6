-- Rules (filters, watches, alerts) as `newsflow rules set` stored them: the file's text as given, every
-- version kept, the highest in force. Key: version.
CREATE TABLE rule_sets (
    version     INTEGER NOT NULL,
    text        VARCHAR NOT NULL,
    source      VARCHAR,           -- the file it was set from
    set_at      TIMESTAMPTZ NOT NULL
);

-- Entries and articles a filter dropped: an entry dropped before its page was fetched (stage 'entry'), an
-- article dropped after extraction (stage 'text'); neither is in `articles`. An entry dropped under one
-- rules version is not looked at again until the rules change. Key: (article_id, rules_version).
CREATE TABLE filtered (
    article_id     VARCHAR NOT NULL,
    rules_version  INTEGER NOT NULL,
    rule           VARCHAR NOT NULL,  -- the filter's name, or '(no keep rule)'
    stage          VARCHAR NOT NULL,  -- entry | text
    feed_url       VARCHAR,
    url            VARCHAR,
    title          VARCHAR,
    published_at   TIMESTAMPTZ,
    run_id         VARCHAR,
    filtered_at    TIMESTAMPTZ NOT NULL
);
