"""The warehouse's figures for monitoring (``/metrics``): read in one snapshot, at scrape time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from newsflow.warehouse.feeds import feed_status, list_feeds
from newsflow.warehouse.rules import filtered_by_rule


@dataclass(frozen=True)
class RunFigures:
    """One (flow, status) of the runs table: how many, their total seconds, the latest finish."""

    count: int
    seconds: float
    last_finished_at: datetime | None


@dataclass(frozen=True)
class WarehouseFigures:
    feeds_by_state: dict[str, int]
    polls_by_status: dict[str, int]
    poll_failures_by_reason: dict[str, int]
    articles: int
    copies: int
    stories: int
    runs: dict[tuple[str, str], RunFigures] = field(default_factory=dict)
    filtered: dict[tuple[str, str], int] = field(default_factory=dict)  # (rule, stage) -> entries dropped


def warehouse_figures(con: duckdb.DuckDBPyConnection) -> WarehouseFigures:
    """Feeds by state (``new``/``ok``/``failing``/``paused``), polls by status, failed polls by reason,
    articles (and how many are copies), stories, runs by flow and status, and what filters dropped."""
    states = Counter(feed_status(f) for f in list_feeds(con))
    polls = dict(con.execute("SELECT status, count(*) FROM polls GROUP BY status").fetchall())
    failures = dict(
        con.execute(
            "SELECT coalesce(error_kind, 'unknown'), count(*) FROM polls WHERE status = 'error' GROUP BY 1"
        ).fetchall()
    )
    articles, copies = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE duplicate_of IS NOT NULL) FROM articles"
    ).fetchall()[0]
    stories = con.execute("SELECT count(*) FROM stories").fetchall()[0][0]
    runs = {
        (flow, status): RunFigures(int(count), float(seconds or 0.0), last)
        for flow, status, count, seconds, last in con.execute(
            "SELECT flow, status, count(*), sum(epoch(finished_at) - epoch(started_at)), max(finished_at)"
            " FROM runs GROUP BY flow, status"
        ).fetchall()
    }
    return WarehouseFigures(
        dict(states), polls, failures, int(articles), int(copies), int(stories), runs, filtered_by_rule(con)
    )
