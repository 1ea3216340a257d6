"""Numbered migrations (``warehouse/migrations/NNNN_name.sql``), applied in order by write sessions and
recorded in the ``schema_migrations`` table of the lake itself.

Versions 1-4 shaped the pre-lake DuckDB file (``warehouse/legacy_migrations/``, used only to bring an old
file up to date before :mod:`newsflow.warehouse.upgrade` copies it); version 5 creates the lake with the
schema they had reached, and records 1-4 as folded into it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import resources

import duckdb

from newsflow.errors import WarehouseError

#: The first lake migration: a new lake records the file versions before it as folded in.
LAKE_BASELINE = 5


def migrations(package: str = "newsflow.warehouse.migrations") -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped in ``package``, in order."""
    found = []
    for item in resources.files(package).iterdir():
        if item.name.endswith(".sql"):
            number, _, rest = item.name.partition("_")
            found.append((int(number), rest.removesuffix(".sql"), item.read_text()))
    return sorted(found)


_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
)


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    """Versions already applied to this warehouse (none before the first migration committed)."""
    present = con.execute(
        "SELECT count(*) FROM duckdb_tables()"
        " WHERE database_name = current_database() AND table_name = 'schema_migrations'"
    ).fetchall()
    if not present[0][0]:
        return set()
    return {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}


def missing_versions(done: set[int], package: str = "newsflow.warehouse.migrations") -> list[int]:
    """Shipped versions not in ``done`` (a warehouse's :func:`applied_versions`; one last written by an
    older newsflow): a reader would miss their tables and columns."""
    return [version for version in _shipped_versions(package) if version not in done]


@functools.cache
def _shipped_versions(package: str) -> tuple[int, ...]:
    return tuple(version for version, _, _ in migrations(package))


def migrate(
    con: duckdb.DuckDBPyConnection, upto: int | None = None, package: str = "newsflow.warehouse.migrations"
) -> list[int]:
    """Apply pending migrations of ``package`` (up to version ``upto``, default all), all in one
    transaction: a lake is upgraded whole or not at all, and a new lake costs one commit, not one per
    migration. Returns the versions applied.

    Raises:
        WarehouseError: the warehouse was written by a newer newsflow.
    """
    done = applied_versions(con)
    shipped = migrations(package)
    newest_known = max((v for v, _, _ in shipped), default=0)
    if done and max(done) > newest_known:
        raise WarehouseError(
            f"warehouse schema version {max(done)} is newer than this newsflow's ({newest_known}): "
            "upgrade newsflow"
        )
    pending = [(v, n, sql) for v, n, sql in shipped if v not in done and (upto is None or v <= upto)]
    if not pending:
        return []
    # In the same transaction: a run killed mid-migration leaves no bookkeeping table behind, so readers
    # never take a half-made lake for a made one.
    with transaction(con):
        con.execute(_BOOKKEEPING)
        for version, name, sql in pending:
            for statement in _statements(sql):
                con.execute(statement)
            folded = range(1, version) if version == LAKE_BASELINE and not done else ()
            for old in folded:
                con.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, now())",
                    [old, f"folded into {version}_{name}"],
                )
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    return [version for version, _, _ in pending]


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The body in one transaction: committed when it ends, rolled back on any error. The rollback comes
    first, before any other statement: an aborted transaction refuses every statement but ROLLBACK, and
    the body's error is the one raised (a failed COMMIT leaves no transaction to roll back)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _statements(sql: str) -> list[str]:
    """Split a migration file on ';' at line ends (migrations hold no semicolons inside literals)."""
    return [s.strip() for s in sql.split(";\n") if s.strip() and not _only_comments(s)]


def _only_comments(chunk: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in chunk.splitlines())
