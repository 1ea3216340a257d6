"""The story listings the CLI and the web page show: stories, one story's overview and members. Grouping's
own state is :mod:`newsflow.warehouse.grouping`'s."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import duckdb

# ---- listings -------------------------------------------------------------------------------------------


def list_stories(
    con: duckdb.DuckDBPyConnection, *, since: datetime | None, min_outlets: int, limit: int
) -> list[dict[str, Any]]:
    """Stories active since ``since`` with at least ``min_outlets`` outlets, biggest first."""
    cursor = con.execute(
        """
        SELECT story_id, articles, outlets, first_at, last_at, headline, sites
        FROM story_overview
        WHERE ($since IS NULL OR last_at >= $since) AND outlets >= $min_outlets
        ORDER BY articles DESC, outlets DESC, last_at DESC, story_id
        LIMIT $limit
        """,
        {"since": since, "min_outlets": min_outlets, "limit": limit},
    )
    return _dicts(cursor)


def recent_stories(
    con: duckdb.DuckDBPyConnection, *, limit: int, article_ids: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """The stories that changed last (a new member, a new headline), newest first, with ``updated_at``;
    with ``article_ids`` only the stories of those articles."""
    among = ""
    if article_ids is not None:
        among = (
            "WHERE o.story_id IN (SELECT story_id FROM articles WHERE article_id IN (SELECT unnest($ids)))"
        )
    cursor = con.execute(
        f"""
        SELECT o.story_id, o.articles, o.outlets, o.first_at, o.last_at, o.headline, o.sites, s.updated_at
        FROM story_overview o JOIN stories s USING (story_id) {among}
        ORDER BY s.updated_at DESC, o.story_id
        LIMIT $limit
        """,
        {"limit": limit, **({"ids": list(article_ids)} if article_ids is not None else {})},
    )
    return _dicts(cursor)


def newest_story(con: duckdb.DuckDBPyConnection) -> tuple[int, datetime | None]:
    """How many stories there are and the time of the latest article of any (None when there are none)."""
    count, newest = con.execute("SELECT count(*), max(last_at) FROM story_overview").fetchall()[0]
    return int(count), newest


def story_overview(con: duckdb.DuckDBPyConnection, story_id: str) -> dict[str, Any] | None:
    """One story's row of the ``story_overview`` view, or None."""
    rows = _dicts(con.execute("SELECT * FROM story_overview WHERE story_id = ?", [story_id]))
    return rows[0] if rows else None


def story_members(con: duckdb.DuckDBPyConnection, story_id: str) -> list[dict[str, Any]]:
    """A story's articles in time order, with their duplicate marks and grouping decisions."""
    return members_of(con, [story_id]).get(story_id, [])


def members_of(con: duckdb.DuckDBPyConnection, story_ids: Collection[str]) -> dict[str, list[dict[str, Any]]]:
    """Each story's articles in time order (as :func:`story_members`), for many stories in one query."""
    cursor = con.execute(
        """
        SELECT a.story_id, a.article_id, a.site, coalesce(a.published_at, a.first_seen_at) AS published,
               a.published_at IS NOT NULL AS dated, a.title, a.url, a.duplicate_of, a.dup_reason, a.dup_score,
               d.reason, d.score, d.best_other, d.term_similarity, d.entity_similarity, d.days_apart,
               d.shared_terms, d.member_similarity
        FROM articles a LEFT JOIN story_decisions d USING (article_id)
        WHERE a.story_id IN (SELECT unnest($ids::VARCHAR[]))
        ORDER BY a.story_id, published, a.first_seen_at, a.article_id
        """,
        {"ids": list(story_ids)},
    )
    members: dict[str, list[dict[str, Any]]] = {}
    for row in _dicts(cursor):
        members.setdefault(row.pop("story_id"), []).append(row)
    return members


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
