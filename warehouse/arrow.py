"""Arrow tables registered under a fixed name for set-based SQL: one statement per batch, never one per
row (an UPDATE per row of a DuckLake table costs a snapshot's worth of work each)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """``table`` is queryable as ``name`` for the duration of the ``with`` block."""
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)
