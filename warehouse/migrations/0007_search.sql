-- The full-text index (warehouse/search.py): written by the store step with its articles. Articles stored
-- before this version are indexed right after it is applied.
CREATE TABLE search_docs (
    article_id VARCHAR NOT NULL,
    length     INTEGER NOT NULL
);

CREATE TABLE search_terms (
    article_id VARCHAR NOT NULL,
    term       VARCHAR NOT NULL,
    tf         INTEGER NOT NULL
);
