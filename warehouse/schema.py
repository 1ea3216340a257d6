"""Numbered migrations (``warehouse/migrations/NNNN_name.sql``), applied in order and recorded in the
``schema_migrations`` table of the warehouse itself."""

from __future__ import annotations

from importlib import resources

import duckdb

from newsflow.errors import WarehouseError


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped with newsflow, in order."""
    found = []
    for item in resources.files("newsflow.warehouse.migrations").iterdir():
        if item.name.endswith(".sql"):
            number, _, rest = item.name.partition("_")
            found.append((int(number), rest.removesuffix(".sql"), item.read_text()))
    return sorted(found)


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    """Versions already applied to this warehouse."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    return {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}


def migrate(con: duckdb.DuckDBPyConnection, upto: int | None = None) -> list[int]:
    """Apply pending migrations (up to version ``upto``, default all), each in its own transaction.
    Returns the versions applied."""
    done = applied_versions(con)
    newest_known = max((v for v, _, _ in migrations()), default=0)
    if done and max(done) > newest_known:
        raise WarehouseError(
            f"warehouse schema version {max(done)} is newer than this newsflow's ({newest_known}): "
            "upgrade newsflow"
        )
    applied = []
    for version, name, sql in migrations():
        if version in done or (upto is not None and version > upto):
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in _statements(sql):
                con.execute(statement)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
        except duckdb.Error:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        applied.append(version)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a migration file on ';' at line ends (migrations hold no semicolons inside literals)."""
    return [s.strip() for s in sql.split(";\n") if s.strip() and not _only_comments(s)]


def _only_comments(chunk: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in chunk.splitlines())
