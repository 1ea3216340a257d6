"""The feed registry and its polling state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import duckdb

from newsflow.records import FeedSchedule, FeedSpec, FeedState, PollResult, PollStatus
from newsflow.warehouse.articles import affected


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


def save_validators(con: duckdb.DuckDBPyConnection, polls: Iterable[PollResult]) -> None:
    """Store each poll's ETag / Last-Modified on its feed (after the poll's entries are stored)."""
    for poll in polls:
        con.execute(
            "UPDATE feeds SET etag = ?, last_modified = ? WHERE url = ?",
            [poll.etag, poll.last_modified, poll.feed_url],
        )


def update_feed_states(
    con: duckdb.DuckDBPyConnection, polls: Iterable[PollResult], schedules: Mapping[str, FeedSchedule]
) -> None:
    """Record each poll's outcome on its feed: validators after every response that had them, the error
    streak, and when to poll next (``schedules`` by feed URL)."""
    for poll in polls:
        ok = poll.status is not PollStatus.ERROR
        plan = schedules.get(poll.feed_url)
        con.execute(
            """
            UPDATE feeds SET
                etag = CASE WHEN $ok THEN $etag ELSE etag END,
                last_modified = CASE WHEN $ok THEN $last_modified ELSE last_modified END,
                title = coalesce($title, title),
                last_polled_at = $at,
                last_success_at = CASE WHEN $ok THEN $at ELSE last_success_at END,
                last_status = $status,
                last_error = CASE WHEN $ok THEN NULL ELSE $error END,
                error_streak = CASE WHEN $ok THEN 0 ELSE error_streak + 1 END,
                next_poll_at = coalesce($next_at, next_poll_at),
                poll_interval_s = coalesce($interval, poll_interval_s),
                paused = coalesce($paused, paused),
                paused_reason = CASE WHEN $paused THEN $paused_reason ELSE paused_reason END
            WHERE url = $url
            """,
            {
                "ok": ok,
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
                "url": poll.feed_url,
            },
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
