"""Run and poll logs: one row per flow run, one per feed poll; and what a run added, for its report."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from newsflow.records import PollResult, RunStory, StoryLink
from newsflow.warehouse.arrow import registered

#: The error of a run row closed as 'crashed'.
CRASHED = "the run stopped without closing its row (its process or machine died); a later run took its lock"


def start_run(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    flow: str,
    flow_run_id: str | None,
    parameters: Mapping[str, Any],
    now: datetime,
    run_lock: str | None = None,
) -> None:
    """Open a run row with status 'running'.

    With ``run_lock`` (the run lock the caller holds), earlier rows of that lock still 'running' are closed
    as 'crashed': their runs cannot be alive, or the caller would not hold the lock.
    """
    values = {"id": run_id, "now": now, "lock": run_lock}
    row = {
        **values,
        "flow": flow,
        "flow_run_id": flow_run_id,
        "parameters": json.dumps(parameters, default=str),
    }
    if run_lock is not None:
        con.execute(
            "UPDATE runs SET status = 'crashed', finished_at = $now, error = $error"
            " WHERE status = 'running' AND run_lock = $lock AND run_id <> $id",
            {**values, "error": CRASHED},
        )
    con.execute(
        "INSERT INTO runs (run_id, flow, flow_run_id, started_at, status, parameters, run_lock)"
        " SELECT $id, $flow, $flow_run_id, $now, 'running', $parameters, $lock"
        " WHERE NOT EXISTS (SELECT 1 FROM runs WHERE run_id = $id)",
        row,
    )


def finish_run(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    status: str,
    counts: Mapping[str, Any],
    timings: Mapping[str, float],
    error: str | None,
    now: datetime,
) -> None:
    """Close a run row with its final status, counts and stage timings."""
    con.execute(
        "UPDATE runs SET finished_at = ?, status = ?, counts = ?, timings = ?, error = ? WHERE run_id = ?",
        [now, status, json.dumps(counts), json.dumps(timings), error, run_id],
    )


def record_polls(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    polls: list[PollResult],
    new_entries: Mapping[str, int],
) -> None:
    """One row per poll, with how many of its entries were new."""
    rows = [
        {
            "poll_id": str(uuid.uuid4()), "run_id": run_id, "feed_url": p.feed_url,
            "started_at": p.started_at, "duration_ms": p.duration_ms, "status": p.status.value,
            "http_status": p.http_status, "error_kind": p.error_kind, "error_message": p.error_message,
            "bozo": p.bozo, "bozo_reason": p.bozo_reason, "entries_seen": len(p.entries),
            "new_entries": new_entries.get(p.feed_url, 0), "bytes_received": p.bytes_received,
            "retry_after": p.retry_after,
        }
        for p in polls
    ]  # fmt: skip
    if rows:
        with registered(con, "new_polls", pa.Table.from_pylist(rows, schema=_POLLS)):
            con.execute(f"INSERT INTO polls ({', '.join(_POLLS.names)}) SELECT * FROM new_polls")


_POLLS = pa.schema(
    [
        ("poll_id", pa.string()), ("run_id", pa.string()), ("feed_url", pa.string()),
        ("started_at", pa.timestamp("us", "UTC")), ("duration_ms", pa.int32()), ("status", pa.string()),
        ("http_status", pa.int32()), ("error_kind", pa.string()), ("error_message", pa.string()),
        ("bozo", pa.bool_()), ("bozo_reason", pa.string()), ("entries_seen", pa.int32()),
        ("new_entries", pa.int32()), ("bytes_received", pa.int64()), ("retry_after", pa.float64()),
    ]
)  # fmt: skip


def run_stories(
    con: duckdb.DuckDBPyConnection, run_id: str, *, limit: int = 5, links: int = 5
) -> list[RunStory]:
    """The ``limit`` biggest stories (most articles, then outlets) that got articles in run ``run_id``,
    each with ``links`` of its distinct member URLs: the run's own articles first, each group in time
    order."""
    rows = con.execute(
        """
        WITH touched AS (
            SELECT story_id, count(*) AS run_articles FROM articles
            WHERE run_id = $run_id AND story_id IS NOT NULL
            GROUP BY story_id
        )
        SELECT s.story_id, s.headline, count(*) AS articles, count(DISTINCT a.site) AS outlets,
               any_value(t.run_articles) AS run_articles
        FROM touched t
        JOIN stories s USING (story_id)
        JOIN articles a ON a.story_id = t.story_id
        GROUP BY s.story_id, s.headline
        ORDER BY articles DESC, outlets DESC, run_articles DESC, s.story_id
        LIMIT $limit
        """,
        {"run_id": run_id, "limit": limit},
    ).fetchall()
    if not rows:
        return []
    members = con.execute(
        """
        WITH distinct_urls AS (
            SELECT story_id, url, title, site, run_id IS NOT DISTINCT FROM $run_id AS in_run,
                   coalesce(published_at, first_seen_at) AS published, article_id
            FROM articles
            WHERE list_contains($story_ids, story_id) AND url IS NOT NULL
            QUALIFY row_number() OVER (
                PARTITION BY story_id, url ORDER BY (duplicate_of IS NOT NULL), published, article_id
            ) = 1
        ),
        numbered AS (
            SELECT story_id, title, url, site,
                   row_number() OVER (PARTITION BY story_id ORDER BY in_run DESC, published, article_id) AS n,
                   count(*) OVER (PARTITION BY story_id) AS total
            FROM distinct_urls
        )
        SELECT story_id, title, url, site, total FROM numbered WHERE n <= $links ORDER BY story_id, n
        """,
        {"run_id": run_id, "story_ids": [row[0] for row in rows], "links": links},
    ).fetchall()
    by_story: dict[str, list[StoryLink]] = {}
    totals: dict[str, int] = {}
    for story_id, title, url, site, total in members:
        by_story.setdefault(story_id, []).append(StoryLink(title, url, site))
        totals[story_id] = total
    return [
        RunStory(story_id, headline, articles, outlets, in_run, tuple(by_story.get(story_id, ())),
                 totals.get(story_id, 0))
        for story_id, headline, articles, outlets, in_run in rows
    ]  # fmt: skip
