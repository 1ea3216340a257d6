"""Backfill progress: one row per chunk (a day, by default) of a backfill's window."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa

from newsflow.warehouse.arrow import registered


def ensure_chunks(
    con: duckdb.DuckDBPyConnection,
    backfill_id: str,
    chunks: Sequence[tuple[date, date]],
    parameters: Mapping[str, Any],
    now: datetime,
) -> None:
    """Record the chunks of a backfill as pending unless they are recorded already."""
    if not chunks:
        return
    rows = pa.table(
        {"chunk_start": [start for start, _ in chunks], "chunk_end": [end for _, end in chunks]},
        schema=pa.schema([("chunk_start", pa.date32()), ("chunk_end", pa.date32())]),
    )
    with registered(con, "new_chunks", rows):
        con.execute(
            "INSERT INTO backfill_chunks"
            " (backfill_id, chunk_start, chunk_end, status, parameters, updated_at)"
            " SELECT $id, n.chunk_start, n.chunk_end, 'pending', $parameters, $now FROM new_chunks n"
            " WHERE n.chunk_start NOT IN (SELECT chunk_start FROM backfill_chunks WHERE backfill_id = $id)",
            {"id": backfill_id, "parameters": json.dumps(parameters, default=str), "now": now},
        )


def done_chunks(con: duckdb.DuckDBPyConnection, backfill_id: str) -> set[date]:
    """Start dates of the chunks of this backfill that are finished."""
    rows = con.execute(
        "SELECT chunk_start FROM backfill_chunks WHERE backfill_id = ? AND status = 'done'", [backfill_id]
    ).fetchall()
    return {row[0] for row in rows}


def finish_chunk(
    con: duckdb.DuckDBPyConnection,
    backfill_id: str,
    chunk_start: date,
    *,
    entries: int,
    articles: int,
    now: datetime,
) -> None:
    """Mark a chunk done with what it found and stored."""
    con.execute(
        "UPDATE backfill_chunks SET status = 'done', entries = ?, articles = ?, updated_at = ?"
        " WHERE backfill_id = ? AND chunk_start = ?",
        [entries, articles, now, backfill_id, chunk_start],
    )
