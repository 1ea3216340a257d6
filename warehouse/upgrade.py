"""Upgrade a pre-lake DuckDB warehouse file into a lake: every row copied, counts and integrity checked.

The file itself is never changed: a copy of it is brought to file version 4 (the last before the lake),
then every table is copied into the (empty) lake in one write session.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from newsflow.errors import WarehouseError
from newsflow.warehouse.integrity import integrity_check
from newsflow.warehouse.lakehouse import Warehouse
from newsflow.warehouse.schema import migrate, transaction
from newsflow.warehouse.search import index_unindexed

#: Tables copied from a version-4 file, in an order that keeps references resolvable (fixed names).
TABLES = (
    "feeds", "runs", "polls", "articles", "raw_pages", "backfill_chunks", "minhash_signatures", "lsh_bands",
    "stories", "story_terms", "term_stats", "story_decisions",
)  # fmt: skip
_LEGACY = "newsflow.warehouse.legacy_migrations"
_LAST_FILE_VERSION = 4


@dataclass(frozen=True)
class UpgradeReport:
    """Row counts per table in the file and in the lake, and each side's integrity problems."""

    file_counts: dict[str, int]
    lake_counts: dict[str, int]
    file_problems: list[str]
    lake_problems: list[str]

    @property
    def ok(self) -> bool:
        """Every row copied and no problem the file did not already have."""
        return self.file_counts == self.lake_counts and set(self.lake_problems) <= set(self.file_problems)


def upgrade_file(old: Path, warehouse: Warehouse) -> UpgradeReport:
    """Copy every row of the DuckDB warehouse file ``old`` into ``warehouse`` (which must hold no
    articles yet).

    Raises:
        WarehouseError: ``old`` is not a newsflow DuckDB file, or the lake already has articles.
    """
    if not old.is_file():
        raise WarehouseError(f"no warehouse file at {old}")
    with tempfile.TemporaryDirectory(prefix="newsflow-upgrade-") as scratch:
        copy = Path(scratch) / "old.duckdb"
        shutil.copyfile(old, copy)
        wal = old.with_name(old.name + ".wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
        file_counts, file_problems = _prepare(copy, old)
        with warehouse.write():  # creates and migrates the lake
            pass
        with warehouse.maintenance() as con:  # the write lock; ATTACH/DETACH must be outside a transaction
            stored = con.execute("SELECT count(*) FROM articles").fetchall()[0][0]
            if stored:
                raise WarehouseError(
                    f"the lake at {warehouse.spec.describe()} already holds {stored} articles: "
                    "upgrade into a new, empty lake (another --db)"
                )
            con.execute(f"ATTACH '{copy}' AS legacy (READ_ONLY)")  # our own temp path
            try:
                with transaction(con):  # rolled back before the DETACH, which an aborted one refuses
                    for table in TABLES:
                        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM legacy.main.{table}")
                    index_unindexed(con)
            finally:
                con.execute("DETACH legacy")
        with warehouse.read() as con:
            lake_counts = _counts(con)
            lake_problems = integrity_check(con)
    return UpgradeReport(file_counts, lake_counts, file_problems, lake_problems)


def _prepare(copy: Path, old: Path) -> tuple[dict[str, int], list[str]]:
    try:
        con = duckdb.connect(str(copy))
    except duckdb.Error as exc:
        raise WarehouseError(f"{old} is not a DuckDB warehouse file: {exc}") from exc
    try:
        migrate(con, upto=_LAST_FILE_VERSION, package=_LEGACY)
        return _counts(con), integrity_check(con)
    finally:
        con.close()


def _counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in TABLES}
