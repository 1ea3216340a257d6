"""newsflow: a self-hosted news ingestion warehouse (Prefect + feedparser + trafilatura + DuckLake).

This module is the package's public face for notebooks (:func:`connect`), so it sits above every floor;
the ground's modules (records, settings, errors, clock, text, progress, feedlist) are beside it.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

__version__ = version("newsflow")


def connect(db: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection with the warehouse attached as ``lake`` (and selected), for notebooks:

        import newsflow
        con = newsflow.connect()          # NEWSFLOW_DB / NEWSFLOW_WAREHOUSE, or the default lake
        con.sql("SELECT site, count(*) FROM articles GROUP BY 1").show()

    It reads a snapshot per query and never blocks a run; close it when done.
    """
    from newsflow.settings import load_settings
    from newsflow.warehouse.lakehouse import Warehouse

    settings = load_settings(db=Path(db) if db is not None else None)
    return Warehouse.open(settings).connect()
