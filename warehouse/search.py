"""Full-text search: BM25 over each article's title and text, with the index inside the lake.

DuckDB's ``fts`` extension builds its index with ``PRAGMA create_fts_index``: tables plus macros, rebuilt
whole, in one DuckDB database. DuckLake can hold neither its macros nor its NULL-typed columns (tried: the
commit fails), and a rebuild per ingest would grow with the warehouse. So newsflow keeps the same inverted
index as lake tables, written by the store step in the same transaction as the articles (never stale, on
every catalog and machine), and ranks with fts's own pieces: its Porter ``stem`` and its BM25 (k1 1.2,
b 0.75, idf ``ln((N - df + 0.5) / (df + 0.5) + 1)``).

- ``search_docs (article_id, length)``: one row per indexed article, its length in words.
- ``search_terms (article_id, term, tf)``: one row per distinct stemmed word of an article.

Words are runs of ``a-z0-9`` after lower-casing and stripping accents; nothing is a stopword (common words
get a near-zero idf instead).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from newsflow.query import SearchQuery, words_of
from newsflow.warehouse.arrow import registered

#: What the index reads of an article: its id, title and text.
IndexedText = tuple[str, str | None, str | None]
_INDEXED_SCHEMA = pa.schema([("article_id", pa.string()), ("title", pa.string()), ("text", pa.string())])

K1 = 1.2
B = 0.75
SNIPPET_WORDS = 30


@dataclass(frozen=True)
class SearchHit:
    """One ranked article, with its story and a snippet as (text, matched) pieces."""

    score: float
    article_id: str
    published_at: datetime | None
    site: str | None
    title: str | None
    url: str | None
    story_id: str | None
    story_outlets: list[str] = field(default_factory=list)
    duplicate_of: str | None = None
    snippet: list[tuple[str, bool]] = field(default_factory=list)


def folded(table: str) -> str:
    """SQL of an article's title and text as the index reads them: lower case, accents stripped."""
    return f"lower(strip_accents(coalesce({table}.title, '') || ' ' || coalesce({table}.text, '')))"


def index_articles(con: duckdb.DuckDBPyConnection, articles: Sequence[IndexedText], *, replace: bool) -> None:
    """Index these stored articles, given their (article id, title, text) as stored; the caller's write
    transaction makes it atomic with them. The texts come from the caller (the batch in memory), so
    indexing a batch reads nothing of the lake.

    ``replace``: the articles may be indexed already (re-extracted ones), so their rows are deleted first.
    Without it (new articles) nothing is deleted: that delete reads the article ids of the whole index
    (they are hashes, so no file's statistics rule it out), 0.12 s per batch at 100,000 articles."""
    if not articles:
        return
    source = pa.table(
        {
            "article_id": [a[0] for a in articles],
            "title": [a[1] for a in articles],
            "text": [a[2] for a in articles],
        },
        schema=_INDEXED_SCHEMA,
    )
    with registered(con, "index_source", source):
        _index_terms(con, "index_source")
    ids = {"ids": [a[0] for a in articles]}
    for table in ("search_terms", "search_docs") if replace else ():  # fixed names
        con.execute(f"DELETE FROM {table} WHERE article_id IN (SELECT unnest($ids::VARCHAR[]))", ids)
    _insert_index_terms(con)


def _index_terms(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """The temp table ``index_terms`` (article_id, term, tf) of the articles in relation ``source`` (a
    fixed name: id, title, text): each text is split and stemmed once."""
    with_stemmer(con)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE index_terms AS
        SELECT article_id, stem(word, 'porter') AS term, count(*)::INTEGER AS tf
        FROM (SELECT article_id, unnest(regexp_split_to_array({folded(source)}, '[^a-z0-9]+')) AS word
              FROM {source})
        WHERE word <> ''
        GROUP BY ALL
        """
    )


def _insert_index_terms(con: duckdb.DuckDBPyConnection) -> None:
    """Add ``index_terms`` to the index (an article's length is the sum of its term counts), then drop it.

    Dropped on success only: after a failed statement the caller's transaction is aborted and refuses
    every statement (a DROP there would replace the real error), and its rollback drops the table."""
    con.execute("INSERT INTO search_terms SELECT article_id, term, tf FROM index_terms")
    con.execute("INSERT INTO search_docs SELECT article_id, sum(tf)::INTEGER FROM index_terms GROUP BY 1")
    con.execute("DROP TABLE index_terms")


def with_stemmer(con: duckdb.DuckDBPyConnection) -> None:
    """LOAD the ``fts`` extension (its ``stem``) into this connection's DuckDB: once per process costs
    ~30 ms, again ~0.5 ms. Loaded here rather than at attach, so connections that never index or search
    (``newsflow sql``, notebooks) do not pay for it."""
    from newsflow.warehouse.lakehouse import load_extensions

    load_extensions(con, ("fts",))


def index_unindexed(con: duckdb.DuckDBPyConnection) -> int:
    """Index the stored articles not in the index yet (a lake from before search, an upgraded file), in
    one pass over the lake; returns how many."""
    con.execute(
        "CREATE OR REPLACE TEMP VIEW index_backlog AS"
        " SELECT article_id, title, text FROM articles ANTI JOIN search_docs USING (article_id)"
    )
    _index_terms(con, "index_backlog")
    con.execute("DROP VIEW index_backlog")  # on success only, as in _insert_index_terms
    indexed = int(con.execute("SELECT count(DISTINCT article_id) FROM index_terms").fetchall()[0][0])
    _insert_index_terms(con)
    return indexed


def search(
    con: duckdb.DuckDBPyConnection,
    query: SearchQuery,
    *,
    since: datetime | None = None,
    site: str | None = None,
    story_id: str | None = None,
    limit: int = 20,
) -> list[SearchHit]:
    """Articles holding every required word, phrase as written and no excluded word, best BM25 first.

    ``since`` compares publication time (else first seen); ``site`` matches the site (any case) or a
    subdomain of it.
    """
    with_stemmer(con)
    filters, values = _filters(query, since, site, story_id)
    rows = con.execute(
        f"""
        WITH q AS (SELECT DISTINCT stem(unnest($words::VARCHAR[]), 'porter') AS term),
        stats AS (SELECT count(*) AS n, avg(length) AS avgdl FROM search_docs),
        df AS (SELECT term, count(*) AS df FROM search_terms WHERE term IN (SELECT term FROM q)
               GROUP BY term),
        scored AS (
            SELECT t.article_id, count(*) AS matched,
                   sum(ln((stats.n - df.df + 0.5) / (df.df + 0.5) + 1) * t.tf * ({K1} + 1)
                       / (t.tf + {K1} * (1 - {B} + {B} * d.length / stats.avgdl))) AS score
            FROM search_terms t JOIN df USING (term) JOIN search_docs d USING (article_id), stats
            GROUP BY t.article_id
        )
        SELECT s.score, a.article_id, a.published_at, a.site, a.title, a.url, a.story_id,
               o.sites, a.duplicate_of, a.text
        FROM scored s JOIN articles a USING (article_id)
        LEFT JOIN story_overview o ON o.story_id = a.story_id
        WHERE s.matched = (SELECT count(*) FROM q) {filters}
        ORDER BY s.score DESC, a.article_id
        LIMIT $limit
        """,
        {"words": list(query.required), "limit": limit, **values},
    ).fetchall()
    stems = _stems(con, [row[9] or "" for row in rows], query.required)
    return [
        SearchHit(float(score), article_id, published, site_, title, url, story, list(sites or []),
                  duplicate_of, snippet(text or title or "", stems))
        for score, article_id, published, site_, title, url, story, sites, duplicate_of, text in rows
    ]  # fmt: skip


def matching_articles(
    con: duckdb.DuckDBPyConnection, query: SearchQuery, article_ids: Sequence[str] | None = None
) -> set[str]:
    """The articles (of ``article_ids``, else all) that :func:`search` would find for ``query``: every
    word, every phrase, no excluded word; in the index as this session sees it (a store step's own
    articles included)."""
    if article_ids is not None and not article_ids:
        return set()
    with_stemmer(con)
    filters, values = _filters(query, None, None, None)
    among = "AND article_id IN (SELECT unnest($ids::VARCHAR[]))" if article_ids is not None else ""
    rows = con.execute(
        f"""
        WITH q AS (SELECT DISTINCT stem(unnest($words::VARCHAR[]), 'porter') AS term),
        found AS (
            SELECT article_id FROM search_terms WHERE term IN (SELECT term FROM q) {among}
            GROUP BY article_id HAVING count(*) = (SELECT count(*) FROM q)
        )
        SELECT a.article_id FROM found JOIN articles a USING (article_id) WHERE true {filters}
        """,
        {
            "words": list(query.required),
            **({"ids": list(article_ids)} if article_ids is not None else {}),
            **values,
        },
    ).fetchall()
    return {row[0] for row in rows}


def _filters(
    query: SearchQuery, since: datetime | None, site: str | None, story_id: str | None
) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    values: dict[str, Any] = {}
    if since is not None:
        clauses.append("coalesce(a.published_at, a.first_seen_at) >= $since")
        values["since"] = since
    if site:
        clauses.append("(lower(a.site) = $site OR ends_with(lower(a.site), '.' || $site))")
        values["site"] = site.lower()
    if story_id:
        clauses.append("a.story_id = $story")
        values["story"] = story_id
    for number, phrase in enumerate(query.phrases):
        # the phrase's words in order, anything but letters and digits between them
        pattern = r"\b" + r"[^a-z0-9]+".join(re.escape(w) for w in words_of(phrase)) + r"\b"
        clauses.append(f"regexp_matches({folded('a')}, $phrase{number})")
        values[f"phrase{number}"] = pattern
    if query.excluded:
        clauses.append(
            "a.article_id NOT IN (SELECT article_id FROM search_terms"
            " WHERE term IN (SELECT stem(unnest($excluded::VARCHAR[]), 'porter')))"
        )
        values["excluded"] = list(query.excluded)
    return "".join(f" AND {c}" for c in clauses), values


def _stems(con: duckdb.DuckDBPyConnection, texts: list[str], required: Sequence[str]) -> set[str]:
    """The words of ``texts`` whose stem is a query word's stem (what the snippet marks)."""
    words = sorted({w for text in texts for w in words_of(text)})
    if not words:
        return set()
    rows = con.execute(
        "SELECT w FROM unnest($words::VARCHAR[]) t(w)"
        " WHERE stem(w, 'porter') IN (SELECT stem(unnest($required::VARCHAR[]), 'porter'))",
        {"words": words, "required": list(required)},
    ).fetchall()
    return {row[0] for row in rows}


def snippet(text: str, matched: set[str], width: int = SNIPPET_WORDS) -> list[tuple[str, bool]]:
    """The ``width``-word window of ``text`` with the most matched words, as (piece, matched) pieces."""
    tokens = text.split()
    if not tokens:
        return []
    hits = [any(w in matched for w in words_of(token)) for token in tokens]
    best = max(range(max(1, len(tokens) - width + 1)), key=lambda i: (sum(hits[i : i + width]), -i))
    window = range(best, min(len(tokens), best + width))
    pieces = [("… ", False)] if best > 0 else []
    for index in window:
        pieces += [(tokens[index], hits[index]), (" ", False)]
    pieces[-1] = (" …", False) if window.stop < len(tokens) else ("", False)
    return [piece for piece in pieces if piece[0]]


def marked(pieces: list[tuple[str, bool]], before: str = "**", after: str = "**") -> str:
    """A snippet as one string, matched words wrapped in ``before``/``after``."""
    return "".join(f"{before}{text}{after}" if hit else text for text, hit in pieces)
