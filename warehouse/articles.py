"""Articles and raw pages: key look-ups for dedupe, and batched idempotent inserts via Arrow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import duckdb
import pyarrow as pa

from newsflow.records import Article, DuplicateMark, StoredKeys

_TS = pa.timestamp("us", tz="UTC")

ARTICLE_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("feed_url", pa.string()),
        ("guid", pa.string()),
        ("guid_key", pa.string()),
        ("url", pa.string()),
        ("canonical_url", pa.string()),
        ("final_url", pa.string()),
        ("title", pa.string()),
        ("author", pa.string()),
        ("published_at", _TS),
        ("updated_at", _TS),
        ("date_clamped", pa.bool_()),
        ("site", pa.string()),
        ("language", pa.string()),
        ("text", pa.string()),
        ("word_count", pa.int32()),
        ("summary", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("content_source", pa.string()),
        ("fetch_error", pa.string()),
        ("extraction_error", pa.string()),
        ("http_status", pa.int32()),
        ("content_hash", pa.string()),
        ("duplicate_of", pa.string()),
        ("dup_reason", pa.string()),
        ("dup_score", pa.float64()),
        ("story_id", pa.string()),
        ("external_id", pa.string()),
        ("first_seen_at", _TS),
        ("fetched_at", _TS),
        ("run_id", pa.string()),
    ]
)
_ARTICLE_COLUMNS = ", ".join(ARTICLE_SCHEMA.names)

RAW_PAGE_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("url", pa.string()),
        ("http_status", pa.int32()),
        ("content_type", pa.string()),
        ("fetched_at", _TS),
        ("size_bytes", pa.int32()),
        ("html_zstd", pa.binary()),
    ]
)


def existing_ids(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> set[str]:
    """The subset of ``ids`` already stored."""
    if not ids:
        return set()
    rows = con.execute(
        "SELECT article_id FROM articles WHERE list_contains(?, article_id)", [list(ids)]
    ).fetchall()
    return {r[0] for r in rows}


def matching_keys(
    con: duckdb.DuckDBPyConnection,
    *,
    guid_keys: Sequence[str] = (),
    urls: Sequence[str] = (),
    content_hashes: Sequence[str] = (),
) -> list[StoredKeys]:
    """Stored articles sharing a guid key, a URL (entry or canonical) or a content hash with the inputs,
    oldest first."""
    rows = con.execute(
        """
        SELECT article_id, coalesce(duplicate_of, article_id), guid_key, url, canonical_url, content_hash
        FROM articles
        WHERE list_contains($guids, guid_key)
           OR list_contains($urls, url) OR list_contains($urls, canonical_url)
           OR list_contains($hashes, content_hash)
        ORDER BY first_seen_at, article_id
        """,
        {"guids": list(guid_keys), "urls": list(urls), "hashes": list(content_hashes)},
    ).fetchall()
    return [StoredKeys(*row) for row in rows]


def insert_articles(
    con: duckdb.DuckDBPyConnection,
    articles: Sequence[Article],
    marks: Mapping[str, DuplicateMark],
    *,
    run_id: str | None,
    now: datetime,
) -> int:
    """Insert articles (and raw pages) whose id is not stored yet. Returns the number inserted."""
    if not articles:
        return 0
    before = _count(con, "articles")
    rows = [_article_row(a, marks.get(a.article_id), run_id, now) for a in articles]
    batch = pa.Table.from_pylist(rows, schema=ARTICLE_SCHEMA)
    con.register("article_batch", batch)
    try:
        con.execute(
            f"INSERT INTO articles ({_ARTICLE_COLUMNS}) SELECT {_ARTICLE_COLUMNS} FROM article_batch"
            " ON CONFLICT DO NOTHING"
        )
    finally:
        con.unregister("article_batch")
    pages = [
        {
            "article_id": a.article_id,
            "url": a.final_url or a.url or "",
            "http_status": a.http_status,
            "content_type": a.content_type,
            "fetched_at": a.fetched_at,
            "size_bytes": len(a.raw_html_zstd or b""),
            "html_zstd": a.raw_html_zstd,
        }
        for a in articles
        if a.raw_html_zstd
    ]
    if pages:
        con.register("page_batch", pa.Table.from_pylist(pages, schema=RAW_PAGE_SCHEMA))
        try:
            con.execute("INSERT INTO raw_pages SELECT * FROM page_batch ON CONFLICT DO NOTHING")
        finally:
            con.unregister("page_batch")
    return _count(con, "articles") - before


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()  # table is a fixed name
    return int(rows[0][0])


def _article_row(
    article: Article, mark: DuplicateMark | None, run_id: str | None, now: datetime
) -> dict[str, object]:
    return {
        "article_id": article.article_id,
        "feed_url": article.feed_url,
        "guid": article.guid,
        "guid_key": article.guid_key,
        "url": article.url,
        "canonical_url": article.canonical_url,
        "final_url": article.final_url,
        "title": article.title,
        "author": article.author,
        "published_at": article.published_at,
        "updated_at": article.updated_at,
        "date_clamped": article.date_clamped,
        "site": article.site,
        "language": article.language,
        "text": article.text,
        "word_count": article.word_count,
        "summary": article.summary,
        "tags": list(article.tags),
        "content_source": article.content_source.value,
        "fetch_error": article.fetch_error,
        "extraction_error": article.extraction_error,
        "http_status": article.http_status,
        "content_hash": article.content_hash,
        "duplicate_of": mark.of if mark else None,
        "dup_reason": mark.reason if mark else None,
        "dup_score": mark.score if mark else None,
        "story_id": None,
        "external_id": None,
        "first_seen_at": now,
        "fetched_at": article.fetched_at,
        "run_id": run_id,
    }
