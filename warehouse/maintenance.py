"""Housekeeping statements: retention of raw pages and checkpoints."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb

from newsflow.warehouse.connection import connect
from newsflow.warehouse.schema import migrate

#: Tables whose row counts the checkpoint reports (fixed names, safe to interpolate).
REPORTED_TABLES = ("feeds", "polls", "articles", "raw_pages", "runs")


def prune_raw_pages(con: duckdb.DuckDBPyConnection, fetched_before: datetime) -> int:
    """Delete raw pages fetched before ``fetched_before``; returns how many."""
    rows = con.execute(
        "DELETE FROM raw_pages WHERE fetched_at < ? RETURNING article_id", [fetched_before]
    ).fetchall()
    return len(rows)


def checkpoint(path: Path, lock_timeout: float) -> dict[str, int]:
    """CHECKPOINT the file (outside any transaction, as DuckDB requires) and count the main tables."""
    con = connect(path, lock_timeout=lock_timeout)
    try:
        migrate(con)
        con.execute("CHECKPOINT")
        return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in REPORTED_TABLES}
    finally:
        con.close()
