"""Housekeeping of the lake: retention of raw pages, and DuckLake's own upkeep.

DuckLake never deletes a data file by itself: every commit adds files (or inlines small ones in the
catalog) and old snapshots keep old files alive for time travel. :func:`compact` flushes inlined rows to
Parquet, rewrites files that have deleted rows, merges small adjacent files, expires snapshots older than
the retention, then deletes the files no remaining snapshot needs, and orphans: files under the data path
that no commit ever referenced (a writer killed, or its store gone, between upload and commit), once older
than a grace period, since a younger one may belong to a write in progress on another machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from newsflow.warehouse.articles import affected
from newsflow.warehouse.lakehouse import LAKE

#: Tables whose row counts maintenance reports (fixed names, safe to interpolate).
REPORTED_TABLES = ("feeds", "polls", "articles", "raw_pages", "runs", "stories")


@dataclass(frozen=True)
class CompactionReport:
    """Data files and snapshots before and after :func:`compact`, and the files deleted."""

    files_before: int
    files_after: int
    snapshots_before: int
    snapshots_after: int
    files_deleted: int
    orphans_deleted: int


def prune_raw_pages(con: duckdb.DuckDBPyConnection, fetched_before: datetime) -> int:
    """Delete raw pages fetched before ``fetched_before``; returns how many."""
    return affected(con, "DELETE FROM raw_pages WHERE fetched_at < ?", [fetched_before])


#: Lines printed by one article only and not seen again for this many days are forgotten (site_lines).
SITE_LINE_DAYS = 90


def prune_site_lines(con: duckdb.DuckDBPyConnection, now: datetime) -> int:
    """Forget site lines seen in one article only, last more than ``SITE_LINE_DAYS`` ago; returns how many."""
    return affected(
        con,
        "DELETE FROM site_lines WHERE articles < 2 AND last_seen < ?",
        [now - timedelta(days=SITE_LINE_DAYS)],
    )


def data_files(con: duckdb.DuckDBPyConnection) -> int:
    """Parquet data and delete files the current snapshot uses."""
    rows = con.execute(
        f"SELECT count(*) FROM __ducklake_metadata_{LAKE}.ducklake_data_file WHERE end_snapshot IS NULL"
    ).fetchall()
    deletes = con.execute(
        f"SELECT count(*) FROM __ducklake_metadata_{LAKE}.ducklake_delete_file WHERE end_snapshot IS NULL"
    ).fetchall()
    return int(rows[0][0]) + int(deletes[0][0])


def snapshots(con: duckdb.DuckDBPyConnection) -> int:
    """Snapshots kept (each is a version time travel can reach)."""
    return int(con.execute(f"SELECT count(*) FROM {LAKE}.snapshots()").fetchall()[0][0])


def compact(
    con: duckdb.DuckDBPyConnection, expire_before: datetime, orphan_before: datetime
) -> CompactionReport:
    """Flush inlined rows, rewrite files with deleted rows, merge small files, expire snapshots older than
    ``expire_before``, delete files no snapshot references and orphans last written before
    ``orphan_before``. ``con`` must be outside a transaction."""
    files_before, snaps_before = data_files(con), snapshots(con)
    con.execute("CALL ducklake_flush_inlined_data(?)", [LAKE]).fetchall()
    # Tables updated in place (term statistics, stories, runs) gain a delete file per commit, and a file
    # with deletes is never merged: rewrite those first, or their file count grows with every batch.
    con.execute("CALL ducklake_rewrite_data_files(?, delete_threshold => 0)", [LAKE]).fetchall()
    con.execute("CALL ducklake_merge_adjacent_files(?)", [LAKE]).fetchall()
    con.execute("CALL ducklake_expire_snapshots(?, older_than => ?)", [LAKE, expire_before]).fetchall()
    deleted = con.execute("CALL ducklake_cleanup_old_files(?, cleanup_all => true)", [LAKE]).fetchall()
    orphans = con.execute(
        "CALL ducklake_delete_orphaned_files(?, older_than => ?)", [LAKE, orphan_before]
    ).fetchall()
    return CompactionReport(
        files_before, data_files(con), snaps_before, snapshots(con), len(deleted), len(orphans)
    )


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of the main tables."""
    return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in REPORTED_TABLES}
