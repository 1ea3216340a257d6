"""Alerts in the warehouse: what a watch's stories look like now, the alerts outbox and its deliveries.

Deciding happens in the store step's transaction (under the write lock): :func:`watched_stories` reads the
stories a batch touched, the caller decides, :func:`add_alerts` inserts the alerts whose ids are not stored
yet, with one pending delivery per target. Delivering happens after the commit: :func:`claim_due` marks
due deliveries as taken for a while (one sender each), :func:`finish_delivery` records the outcome.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from newsflow.query import SearchQuery
from newsflow.warehouse.arrow import registered
from newsflow.warehouse.search import matching_articles


@dataclass(frozen=True)
class WatchedStory:
    """A story as a watch sees it: its outlets now, its articles (newest first), and the members that
    match the watch's query."""

    story_id: str
    headline: str | None
    sites: list[str]
    articles: list[dict[str, Any]]  # site, title, url, published_at, article_id
    matching: set[str]


@dataclass(frozen=True)
class NewAlert:
    """An alert decided by a watch or a feed-health rule."""

    alert_id: str
    event: str
    rule: str
    payload: dict[str, Any]
    targets: tuple[str, ...]
    story_id: str | None = None
    article_id: str | None = None
    feed_url: str | None = None
    outlets: int | None = None


@dataclass(frozen=True)
class DueDelivery:
    """A delivery to make: the alert's rule and event, the target, the body, how many tries so far."""

    alert_id: str
    target: str
    rule: str
    event: str
    payload: str
    attempts: int


def watched_stories(
    con: duckdb.DuckDBPyConnection, story_ids: Collection[str], query: SearchQuery
) -> list[WatchedStory]:
    """The stories of ``story_ids`` with at least one article matching ``query``."""
    if not story_ids:
        return []
    rows = con.execute(
        "SELECT s.story_id, s.headline, a.article_id, a.site, a.title, a.url, a.published_at"
        " FROM stories s JOIN articles a USING (story_id)"
        " WHERE s.story_id IN (SELECT unnest($ids::VARCHAR[]))"
        " ORDER BY s.story_id, coalesce(a.published_at, a.first_seen_at) DESC, a.article_id",
        {"ids": list(story_ids)},
    ).fetchall()
    matching = matching_articles(con, query, [row[2] for row in rows])
    by_story: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_story.setdefault(row[0], []).append(row)
    stories = []
    for story_id, members in sorted(by_story.items()):
        hits = {m[2] for m in members if m[2] in matching}
        if not hits:
            continue
        articles = [
            {"article_id": m[2], "site": m[3], "title": m[4], "url": m[5], "published_at": m[6]}
            for m in members
        ]
        sites = sorted({m[3] for m in members if m[3]})
        stories.append(WatchedStory(story_id, members[0][1], sites, articles, hits))
    return stories


def alerted_outlets(con: duckdb.DuckDBPyConnection, rule: str, story_ids: Collection[str]) -> dict[str, int]:
    """For each of ``story_ids`` alerted by ``rule`` already, the most outlets an alert of it reported."""
    if not story_ids:
        return {}
    rows = con.execute(
        "SELECT story_id, max(outlets) FROM alerts WHERE rule = $rule"
        " AND story_id IN (SELECT unnest($ids::VARCHAR[])) GROUP BY story_id",
        {"rule": rule, "ids": list(story_ids)},
    ).fetchall()
    return {story: int(outlets or 0) for story, outlets in rows}


def failing_feeds(
    con: duckdb.DuckDBPyConnection, failures: int, urls: Collection[str]
) -> list[dict[str, Any]]:
    """Feeds of ``urls`` that failed ``failures`` polls in a row or are paused."""
    if not urls:
        return []
    cursor = con.execute(
        "SELECT url, name, title, error_streak, paused, paused_reason, last_success_at, last_error FROM feeds"
        " WHERE (error_streak >= $failures OR paused) AND url IN (SELECT unnest($urls::VARCHAR[]))"
        " ORDER BY url",
        {"failures": failures, "urls": list(urls)},
    )
    columns = [d[0] for d in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def add_alerts(
    con: duckdb.DuckDBPyConnection, alerts: Sequence[NewAlert], run_id: str | None, now: datetime
) -> list[NewAlert]:
    """Insert the alerts not stored yet (by id), each with a pending delivery per target; returns them."""
    fresh = {alert.alert_id: alert for alert in alerts}
    if not fresh:
        return []
    stored = con.execute(
        "SELECT alert_id FROM alerts WHERE alert_id IN (SELECT unnest($ids::VARCHAR[]))", {"ids": list(fresh)}
    ).fetchall()
    for (known,) in stored:
        del fresh[known]
    if not fresh:
        return []
    rows = [
        {"alert_id": a.alert_id, "event": a.event, "rule": a.rule, "story_id": a.story_id,
         "article_id": a.article_id, "feed_url": a.feed_url, "outlets": a.outlets,
         "payload": json.dumps(a.payload, ensure_ascii=False, sort_keys=True, default=str),
         "run_id": run_id, "created_at": now}
        for a in fresh.values()
    ]  # fmt: skip
    deliveries = [
        {"alert_id": a.alert_id, "target": target, "state": "pending", "attempts": 0, "next_attempt_at": now,
         "claimed_until": None, "last_error": None, "delivered_at": None, "updated_at": now}
        for a in fresh.values()
        for target in a.targets
    ]  # fmt: skip
    with registered(con, "new_alerts", pa.Table.from_pylist(rows, schema=_ALERTS)):
        con.execute(f"INSERT INTO alerts ({', '.join(_ALERTS.names)}) SELECT * FROM new_alerts")
    if deliveries:
        with registered(con, "new_deliveries", pa.Table.from_pylist(deliveries, schema=_DELIVERIES)):
            con.execute(
                f"INSERT INTO alert_deliveries ({', '.join(_DELIVERIES.names)}) SELECT * FROM new_deliveries"
            )
    return list(fresh.values())


def claim_due(
    con: duckdb.DuckDBPyConnection, now: datetime, hold: timedelta, *, retry_now: bool = False
) -> list[DueDelivery]:
    """Take the pending deliveries that are due (all pending ones with ``retry_now``) and not held by
    another sender: each is held until ``now + hold``. Call in a write session."""
    rows = con.execute(
        "SELECT d.alert_id, d.target, a.rule, a.event, a.payload, d.attempts"
        " FROM alert_deliveries d JOIN alerts a USING (alert_id)"
        " WHERE d.state = 'pending' AND (d.next_attempt_at <= $now OR $retry_now)"
        " AND (d.claimed_until IS NULL OR d.claimed_until <= $now)"
        " ORDER BY a.created_at, d.alert_id, d.target",
        {"now": now, "retry_now": retry_now},
    ).fetchall()
    if rows:
        con.execute(
            "UPDATE alert_deliveries SET claimed_until = $until, updated_at = $now"
            " WHERE state = 'pending' AND alert_id || ' ' || target IN (SELECT unnest($keys::VARCHAR[]))",
            {"until": now + hold, "now": now, "keys": [f"{r[0]} {r[1]}" for r in rows]},
        )
    return [DueDelivery(*row) for row in rows]


def finish_delivery(
    con: duckdb.DuckDBPyConnection,
    delivery: DueDelivery,
    error: str | None,
    now: datetime,
    retry_at: datetime,
) -> None:
    """Record one attempt: delivered (``error`` None), else pending again from ``retry_at``."""
    if error is None:
        con.execute(
            "UPDATE alert_deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = $now,"
            " claimed_until = NULL, last_error = NULL, updated_at = $now"
            " WHERE alert_id = $alert AND target = $target",
            {"now": now, "alert": delivery.alert_id, "target": delivery.target},
        )
        return
    con.execute(
        "UPDATE alert_deliveries SET attempts = attempts + 1, next_attempt_at = $retry, claimed_until = NULL,"
        " last_error = $error, updated_at = $now WHERE alert_id = $alert AND target = $target",
        {"now": now, "retry": retry_at, "error": error[:500], "alert": delivery.alert_id,
         "target": delivery.target},
    )  # fmt: skip


def list_alerts(con: duckdb.DuckDBPyConnection, limit: int) -> list[dict[str, Any]]:
    """The latest alerts with each delivery's state, newest first."""
    cursor = con.execute(
        "SELECT a.created_at, a.alert_id, a.event, a.rule, coalesce(a.story_id, a.feed_url) AS subject,"
        " a.outlets, d.target, d.state, d.attempts, d.next_attempt_at, d.last_error"
        " FROM alerts a LEFT JOIN alert_deliveries d USING (alert_id)"
        " WHERE a.alert_id IN (SELECT alert_id FROM alerts ORDER BY created_at DESC, alert_id LIMIT $limit)"
        " ORDER BY a.created_at DESC, a.alert_id, d.target",
        {"limit": limit},
    )
    columns = [d[0] for d in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


_ALERTS = pa.schema(
    [
        ("alert_id", pa.string()), ("event", pa.string()), ("rule", pa.string()), ("story_id", pa.string()),
        ("article_id", pa.string()), ("feed_url", pa.string()), ("outlets", pa.int32()),
        ("payload", pa.string()), ("run_id", pa.string()), ("created_at", pa.timestamp("us", "UTC")),
    ]
)  # fmt: skip
_DELIVERIES = pa.schema(
    [
        ("alert_id", pa.string()), ("target", pa.string()), ("state", pa.string()), ("attempts", pa.int32()),
        ("next_attempt_at", pa.timestamp("us", "UTC")), ("claimed_until", pa.timestamp("us", "UTC")),
        ("last_error", pa.string()), ("delivered_at", pa.timestamp("us", "UTC")),
        ("updated_at", pa.timestamp("us", "UTC")),
    ]
)  # fmt: skip
