"""The feed registry and its polling state."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import duckdb

from newsflow.records import FeedSpec, FeedState, PollResult, PollStatus


def add_feeds(con: duckdb.DuckDBPyConnection, feeds: Iterable[FeedSpec], now: datetime) -> int:
    """Register feeds; an already registered URL keeps its state but takes a new name/tags if given.
    Returns how many URLs were new."""
    new = 0
    for feed in feeds:
        rows = con.execute("SELECT 1 FROM feeds WHERE url = ?", [feed.url]).fetchall()
        if not rows:
            con.execute(
                "INSERT INTO feeds (url, name, tags, added_at) VALUES (?, ?, ?, ?)",
                [feed.url, feed.name, list(feed.tags), now],
            )
            new += 1
        elif feed.name or feed.tags:
            con.execute(
                "UPDATE feeds SET name = coalesce(?, name),"
                " tags = CASE WHEN len(?) > 0 THEN ? ELSE tags END WHERE url = ?",
                [feed.name, list(feed.tags), list(feed.tags), feed.url],
            )
    return new


def remove_feed(con: duckdb.DuckDBPyConnection, url: str) -> bool:
    """Unregister a feed (its articles and poll history stay). Returns whether it was registered."""
    rows = con.execute("DELETE FROM feeds WHERE url = ? RETURNING url", [url]).fetchall()
    return bool(rows)


def feed_states(con: duckdb.DuckDBPyConnection, urls: list[str] | None = None) -> list[FeedState]:
    """Registered, unpaused feeds (all, or those of ``urls``) with their validators, in URL order."""
    sql = "SELECT url, name, etag, last_modified FROM feeds WHERE NOT paused"
    params: list[Any] = []
    if urls is not None:
        sql += " AND list_contains(?, url)"
        params.append(urls)
    rows = con.execute(sql + " ORDER BY url", params).fetchall()
    return [FeedState(url=r[0], name=r[1], etag=r[2], last_modified=r[3]) for r in rows]


def list_feeds(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every registered feed with its state, for display."""
    cursor = con.execute(
        "SELECT url, name, tags, title, last_status, last_success_at, error_streak, next_poll_at,"
        " paused, last_error FROM feeds ORDER BY url"
    )
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def update_feed_states(con: duckdb.DuckDBPyConnection, polls: Iterable[PollResult]) -> None:
    """Record each poll's outcome on its feed: validators after every response that had them."""
    for poll in polls:
        ok = poll.status is not PollStatus.ERROR
        con.execute(
            """
            UPDATE feeds SET
                etag = CASE WHEN ? THEN ? ELSE etag END,
                last_modified = CASE WHEN ? THEN ? ELSE last_modified END,
                title = coalesce(?, title),
                last_polled_at = ?,
                last_success_at = CASE WHEN ? THEN ? ELSE last_success_at END,
                last_status = ?,
                last_error = CASE WHEN ? THEN NULL ELSE ? END,
                error_streak = CASE WHEN ? THEN 0 ELSE error_streak + 1 END
            WHERE url = ?
            """,
            [
                ok,
                poll.etag,
                ok,
                poll.last_modified,
                poll.feed_title,
                poll.started_at,
                ok,
                poll.started_at,
                poll.status.value,
                ok,
                poll.error_message,
                ok,
                poll.feed_url,
            ],
        )
