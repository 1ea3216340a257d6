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
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from newsflow.errors import SearchQueryError

K1 = 1.2
B = 0.75
SNIPPET_WORDS = 30

#: The words of an article, one per row: (article_id, word). Reads the registered ``index_ids`` ids.
_WORDS = (
    "SELECT article_id, unnest(regexp_split_to_array("
    " lower(strip_accents(coalesce(title, '') || ' ' || coalesce(text, ''))), '[^a-z0-9]+')) AS word"
    " FROM articles WHERE article_id IN (SELECT id FROM index_ids)"
)


@dataclass(frozen=True)
class SearchQuery:
    """What to look for: every word (stemmed in SQL), every phrase as written, no excluded word."""

    words: tuple[str, ...]
    phrases: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @property
    def required(self) -> tuple[str, ...]:
        """Words an article must contain: the loose words and every phrase's words."""
        return tuple(dict.fromkeys([*self.words, *(w for p in self.phrases for w in words_of(p))]))


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


def words_of(text: str) -> list[str]:
    """The index's words of ``text`` (lower case, no accents, ``a-z0-9`` runs), as the index splits them."""
    import unicodedata

    folded = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    return [w for w in re.split(r"[^a-z0-9]+", folded) if w]


def parse_query(text: str) -> SearchQuery:
    """``anthropic amazon "web services" -aws``: words (all required), quoted phrases, ``-word`` excluded.

    Raises:
        SearchQueryError: unbalanced quotes, or nothing to search for.
    """
    try:
        parts = shlex.split(text, posix=True)
    except ValueError as exc:
        raise SearchQueryError(f"search query {text!r}: {exc} (close the quoted phrase)") from exc
    words, phrases, excluded = [], [], []
    for part, quoted in zip(parts, _quoted_flags(text, len(parts)), strict=True):
        if quoted and len(words_of(part)) > 1:
            phrases.append(part)
        elif part.startswith("-") and not quoted and words_of(part[1:]):
            excluded.extend(words_of(part[1:]))
        else:
            words.extend(words_of(part))
    query = SearchQuery(tuple(dict.fromkeys(words)), tuple(phrases), tuple(dict.fromkeys(excluded)))
    if not query.required:
        raise SearchQueryError(f"search query {text!r} has no words to look for (letters or digits)")
    return query


def _quoted_flags(text: str, count: int) -> list[bool]:
    """Whether each shlex part was written in quotes (shlex drops them)."""
    lexer = shlex.shlex(text, posix=False)
    lexer.whitespace_split = True
    flags = [token[:1] in "\"'" for token in lexer]
    return (flags + [False] * count)[:count]


def index_articles(con: duckdb.DuckDBPyConnection, article_ids: Sequence[str]) -> None:
    """(Re-)index these stored articles; the caller's write transaction makes it atomic with them."""
    if not article_ids:
        return
    con.execute(
        "CREATE OR REPLACE TEMP TABLE index_ids AS SELECT unnest($ids::VARCHAR[]) AS id",
        {"ids": list(article_ids)},
    )
    try:
        con.execute("DELETE FROM search_terms WHERE article_id IN (SELECT id FROM index_ids)")
        con.execute("DELETE FROM search_docs WHERE article_id IN (SELECT id FROM index_ids)")
        con.execute(
            "INSERT INTO search_terms SELECT article_id, stem(word, 'porter') AS term, count(*)::INTEGER"
            f" FROM ({_WORDS}) WHERE word <> '' GROUP BY ALL"
        )
        con.execute(
            "INSERT INTO search_docs SELECT article_id, count(word)::INTEGER"
            f" FROM ({_WORDS}) WHERE word <> '' GROUP BY ALL"
        )
    finally:
        con.execute("DROP TABLE IF EXISTS index_ids")


def index_unindexed(con: duckdb.DuckDBPyConnection) -> int:
    """Index the stored articles not in the index yet (a lake from before search, an upgraded file);
    returns how many."""
    rows = con.execute("SELECT article_id FROM articles ANTI JOIN search_docs USING (article_id)").fetchall()
    index_articles(con, [row[0] for row in rows])
    return len(rows)


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
        clauses.append(
            f"regexp_matches(lower(strip_accents(coalesce(a.title, '') || ' ' || coalesce(a.text, ''))),"
            f" $phrase{number})"
        )
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
    tokens = re.findall(r"\S+", text)
    if not tokens:
        return []
    hits = [any(w in matched for w in words_of(token)) for token in tokens]
    best = max(range(max(1, len(tokens) - width + 1)), key=lambda i: (sum(hits[i : i + width]), -i))
    pieces: list[tuple[str, bool]] = []
    if best > 0:
        pieces.append(("… ", False))
    for index in range(best, min(len(tokens), best + width)):
        separator = " " if index < min(len(tokens), best + width) - 1 else ""
        pieces.append((tokens[index], hits[index]))
        if separator:
            pieces.append((separator, False))
    if best + width < len(tokens):
        pieces.append((" …", False))
    return pieces


def marked(pieces: list[tuple[str, bool]], before: str = "**", after: str = "**") -> str:
    """A snippet as one string, matched words wrapped in ``before``/``after``."""
    return "".join(f"{before}{text}{after}" if hit else text for text, hit in pieces)
