"""The feed registry and its polling state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from newsflow.records import FeedSchedule, FeedSpec, FeedState, PollResult, PollStatus
from newsflow.warehouse.arrow import registered
from newsflow.warehouse.articles import affected

_NEW_FEEDS = pa.schema(
    [
        ("url", pa.string()),
        ("name", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("added_at", pa.timestamp("us", "UTC")),
    ]
)


def add_feeds(con: duckdb.DuckDBPyConnection, feeds: Iterable[FeedSpec], now: datetime) -> int:
    """Register feeds; an already registered URL keeps its state but takes a new name/tags if given.
    Returns how many URLs were new. (A URL listed twice counts once, with its first name and tags.)"""
    unique = {feed.url: feed for feed in reversed(list(feeds))}
    table = pa.Table.from_pylist(
        [{"url": f.url, "name": f.name, "tags": list(f.tags), "added_at": now} for f in unique.values()],
        schema=_NEW_FEEDS,
    )
    with registered(con, "new_feeds", table):
        con.execute(
            "UPDATE feeds SET name = coalesce(n.name, feeds.name),"
            " tags = CASE WHEN len(n.tags) > 0 THEN n.tags ELSE feeds.tags END"
            " FROM new_feeds n WHERE feeds.url = n.url AND (n.name IS NOT NULL OR len(n.tags) > 0)"
        )
        return affected(
            con,
            "INSERT INTO feeds (url, name, tags, added_at) SELECT url, name, tags, added_at FROM new_feeds"
            " WHERE url NOT IN (SELECT url FROM feeds)",
        )


def remove_feed(con: duckdb.DuckDBPyConnection, url: str) -> bool:
    """Unregister a feed (its articles and poll history stay). Returns whether it was registered."""
    return affected(con, "DELETE FROM feeds WHERE url = ?", [url]) > 0


def feed_states(
    con: duckdb.DuckDBPyConnection, urls: list[str] | None = None, due_at: datetime | None = None
) -> list[FeedState]:
    """Registered, unpaused feeds (all, or those of ``urls``; only those due at ``due_at`` if given) with
    their validators and polling rhythm, in URL order."""
    sql = "SELECT url, name, etag, last_modified, poll_interval_s, error_streak FROM feeds WHERE NOT paused"
    params: list[Any] = []
    if urls is not None:
        sql += " AND list_contains(?, url)"
        params.append(urls)
    if due_at is not None:
        sql += " AND (next_poll_at IS NULL OR next_poll_at <= ?)"
        params.append(due_at)
    rows = con.execute(sql + " ORDER BY url", params).fetchall()
    return [FeedState(*row) for row in rows]


def resume_feed(con: duckdb.DuckDBPyConnection, url: str) -> bool:
    """Unpause a feed and make it due now. Returns whether it is registered."""
    sql = (
        "UPDATE feeds SET paused = false, paused_reason = NULL, error_streak = 0, next_poll_at = NULL"
        " WHERE url = ?"
    )
    return affected(con, sql, [url]) > 0


def list_feeds(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every registered feed with its state, for display."""
    cursor = con.execute(
        "SELECT url, name, tags, title, last_status, last_success_at, error_streak, next_poll_at,"
        " poll_interval_s, paused_reason,"
        " paused, last_error FROM feeds ORDER BY url"
    )
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


_VALIDATORS = pa.schema([("url", pa.string()), ("etag", pa.string()), ("last_modified", pa.string())])


def save_validators(con: duckdb.DuckDBPyConnection, polls: Iterable[PollResult]) -> None:
    """Store each poll's ETag / Last-Modified on its feed (after the poll's entries are stored)."""
    rows = [{"url": p.feed_url, "etag": p.etag, "last_modified": p.last_modified} for p in polls]
    with registered(con, "validators", pa.Table.from_pylist(rows, schema=_VALIDATORS)):
        con.execute(
            "UPDATE feeds SET etag = v.etag, last_modified = v.last_modified FROM validators v"
            " WHERE feeds.url = v.url"
        )


_POLL_STATES = pa.schema(
    [
        ("url", pa.string()), ("ok", pa.bool_()), ("etag", pa.string()), ("last_modified", pa.string()),
        ("title", pa.string()), ("at", pa.timestamp("us", "UTC")), ("status", pa.string()),
        ("error", pa.string()), ("next_at", pa.timestamp("us", "UTC")), ("interval", pa.int32()),
        ("paused", pa.bool_()), ("paused_reason", pa.string()),
    ]
)  # fmt: skip


def update_feed_states(
    con: duckdb.DuckDBPyConnection, polls: Iterable[PollResult], schedules: Mapping[str, FeedSchedule]
) -> None:
    """Record each poll's outcome on its feed: validators after every response that had them, the error
    streak, and when to poll next (``schedules`` by feed URL). One statement for all the polls."""
    rows = []
    for poll in polls:
        plan = schedules.get(poll.feed_url)
        rows.append(
            {
                "url": poll.feed_url,
                "ok": poll.status is not PollStatus.ERROR,
                "etag": poll.etag,
                "last_modified": poll.last_modified,
                "title": poll.feed_title,
                "at": poll.started_at,
                "status": poll.status.value,
                "error": poll.error_message,
                "next_at": plan.next_poll_at if plan else None,
                "interval": plan.poll_interval_s if plan else None,
                "paused": plan.paused if plan else None,
                "paused_reason": plan.paused_reason if plan else None,
            }
        )
    with registered(con, "poll_states", pa.Table.from_pylist(rows, schema=_POLL_STATES)):
        con.execute(
            """
            UPDATE feeds SET
                etag = CASE WHEN p.ok THEN p.etag ELSE feeds.etag END,
                last_modified = CASE WHEN p.ok THEN p.last_modified ELSE feeds.last_modified END,
                title = coalesce(p.title, feeds.title),
                last_polled_at = p.at,
                last_success_at = CASE WHEN p.ok THEN p.at ELSE feeds.last_success_at END,
                last_status = p.status,
                last_error = CASE WHEN p.ok THEN NULL ELSE p.error END,
                error_streak = CASE WHEN p.ok THEN 0 ELSE feeds.error_streak + 1 END,
                next_poll_at = coalesce(p.next_at, feeds.next_poll_at),
                poll_interval_s = coalesce(p.interval, feeds.poll_interval_s),
                paused = coalesce(p.paused, feeds.paused),
                paused_reason = CASE WHEN p.paused THEN p.paused_reason ELSE feeds.paused_reason END
            FROM poll_states p
            WHERE feeds.url = p.url
            """
        )


def feed_status(feed: Mapping[str, Any]) -> str:
    """Where a feed stands, in one word: ``new``, ``ok``, ``failing`` or ``paused``."""
    if feed["paused"]:
        return "paused"
    if feed["last_status"] is None:
        return "new"
    return "failing" if feed["error_streak"] else "ok"


def feed_state(feed: Mapping[str, Any]) -> str:
    """:func:`feed_status`, with the reason when paused: ``paused (10 failed polls in a row, ...)``."""
    status = feed_status(feed)
    return f"paused ({feed['paused_reason']})" if status == "paused" and feed["paused_reason"] else status
