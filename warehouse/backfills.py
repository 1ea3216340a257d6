"""Backfill progress: one row per chunk (a day, by default) of a backfill's window, and one per unit of an
archive backfill (a WARC file, a site's CDX query, a crawl's index for a site)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa

from newsflow.records import Archive, Checkpoint, UnitStatus
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


# ------------------------------------------------------------------------------------ archive backfills


@dataclass(frozen=True)
class UnitState:
    """A unit of an archive backfill as stored: its status and where the next run goes on."""

    status: UnitStatus
    resume_at: str | None
    attempts: int


def ensure_units(
    con: duckdb.DuckDBPyConnection, backfill_id: str, archive: Archive, units: Sequence[str], now: datetime
) -> dict[str, UnitState]:
    """Record ``units`` of a backfill as pending unless recorded already; returns the state of each."""
    if units:
        rows = pa.table({"unit": pa.array(list(dict.fromkeys(units)), pa.string())})
        with registered(con, "new_units", rows):
            con.execute(
                "INSERT INTO archive_units (backfill_id, archive, unit, status, records_read, records_kept,"
                " articles_stored, attempts, updated_at)"
                " SELECT $id, $archive, n.unit, 'pending', 0, 0, 0, 0, $now FROM new_units n"
                " WHERE n.unit NOT IN"
                " (SELECT unit FROM archive_units WHERE backfill_id = $id AND archive = $archive)",
                {"id": backfill_id, "archive": archive.value, "now": now},
            )
    return unit_states(con, backfill_id, archive)


def unit_states(con: duckdb.DuckDBPyConnection, backfill_id: str, archive: Archive) -> dict[str, UnitState]:
    """Every recorded unit of one archive of a backfill, by unit."""
    rows = con.execute(
        "SELECT unit, status, resume_at, attempts FROM archive_units WHERE backfill_id = ? AND archive = ?",
        [backfill_id, archive.value],
    ).fetchall()
    return {
        unit: UnitState(UnitStatus(status), resume_at, attempts) for unit, status, resume_at, attempts in rows
    }


def save_checkpoints(
    con: duckdb.DuckDBPyConnection, checkpoints: Sequence[tuple[Checkpoint, int]], now: datetime
) -> None:
    """Add each checkpoint's counts and its number of articles stored to its unit, and move the unit on
    (in the caller's transaction, the one that stores those articles). A failed unit counts one more
    attempt."""
    for point, stored in checkpoints:
        con.execute(
            "UPDATE archive_units SET status = $status, resume_at = coalesce($resume_at, resume_at),"
            " records_read = records_read + $read, records_kept = records_kept + $kept,"
            " articles_stored = articles_stored + $stored, bytes_read = coalesce($bytes, bytes_read),"
            " attempts = attempts + $failed, error = $error, updated_at = $now"
            " WHERE backfill_id = $id AND archive = $archive AND unit = $unit",
            {
                "status": point.status.value,
                "resume_at": point.resume_at,
                "read": point.records_read,
                "kept": point.records_kept,
                "stored": stored,
                "bytes": point.bytes_read,
                "failed": int(point.status is UnitStatus.FAILED),
                "error": point.error,
                "now": now,
                "id": point.backfill_id,
                "archive": point.archive.value,
                "unit": point.unit,
            },
        )
