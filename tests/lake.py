"""Warehouse sessions for tests, by path: the same door (Warehouse) the code uses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from newsflow.settings import load_settings
from newsflow.warehouse.lakehouse import Warehouse


def warehouse(db: Path, **overrides: object) -> Warehouse:
    """The warehouse whose SQLite catalog is ``db``."""
    return Warehouse.open(load_settings(db=db, **overrides))


@contextmanager
def writer(db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write session (migrated, one transaction) on the lake at ``db``."""
    with warehouse(db).write() as con:
        yield con


@contextmanager
def reader(db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A separate read-only connection to the lake at ``db`` (what a notebook holds)."""
    con = warehouse(db).connect()
    try:
        yield con
    finally:
        con.close()
