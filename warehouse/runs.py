"""Run and poll logs: one row per flow run, one per feed poll."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import duckdb

from newsflow.records import PollResult


def start_run(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    flow: str,
    flow_run_id: str | None,
    parameters: Mapping[str, Any],
    now: datetime,
) -> None:
    """Open a run row with status 'running'."""
    con.execute(
        "INSERT INTO runs (run_id, flow, flow_run_id, started_at, status, parameters)"
        " SELECT $id, $flow, $flow_run_id, $now, 'running', $parameters"
        " WHERE NOT EXISTS (SELECT 1 FROM runs WHERE run_id = $id)",
        {
            "id": run_id,
            "flow": flow,
            "flow_run_id": flow_run_id,
            "now": now,
            "parameters": json.dumps(parameters, default=str),
        },
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
        (
            str(uuid.uuid4()),
            run_id,
            p.feed_url,
            p.started_at,
            p.duration_ms,
            p.status.value,
            p.http_status,
            p.error_kind,
            p.error_message,
            p.bozo,
            p.bozo_reason,
            len(p.entries),
            new_entries.get(p.feed_url, 0),
            p.bytes_received,
            p.retry_after,
        )
        for p in polls
    ]
    if rows:
        con.executemany("INSERT INTO polls VALUES (" + ", ".join(["?"] * 15) + ")", rows)
