-- Site boilerplate (newsflow/stories/boilerplate.py): per site, how many original articles (not copies)
-- printed each line of at least 3 words, by the line's folded hash. A line its site has printed in another
-- original article is left out of the text story vectors are counted from. Maintenance drops lines seen
-- once and not for 90 days (SITE_LINE_DAYS), so the table holds recurring lines plus a window.
CREATE TABLE site_lines (
    site       VARCHAR NOT NULL,
    line_hash  BIGINT NOT NULL,
    articles   INTEGER NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL
);
