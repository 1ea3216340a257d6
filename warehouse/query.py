"""Ad-hoc SQL for ``newsflow sql``: read-only and sandboxed unless the user opts in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb

from newsflow.errors import QueryError
from newsflow.warehouse.lakehouse import Warehouse


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of one query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def parse_parameter(value: str) -> Any:
    """A ``-p`` value: JSON when it parses as a number, boolean or null, else the string itself."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, int | float | bool) or parsed is None else value


def run_query(
    warehouse: Warehouse, sql: str, parameters: dict[str, Any] | None = None, *, unsafe: bool = False
) -> QueryResult:
    """Run ``sql`` with named ``$parameters`` bound.

    By default on a read-only, sandboxed connection (the lake attached read-only; no file access, ATTACH,
    COPY or extensions). ``unsafe`` runs it in a write session (the write lock, one transaction) with
    external access, for trusted users.

    Raises:
        QueryError: the statement is invalid, refused or failed; the message says which.
    """
    if unsafe:
        with warehouse.write() as con:
            return _run(con, sql, parameters)
    con = warehouse.connect(sandbox=True)
    try:
        return _run(con, sql, parameters)
    finally:
        con.close()


def _run(con: duckdb.DuckDBPyConnection, sql: str, parameters: dict[str, Any] | None) -> QueryResult:
    try:
        cursor = con.execute(sql, parameters or {})
        columns = [d[0] for d in cursor.description] if cursor.description else []
        rows = cursor.fetchall() if columns else []
        return QueryResult(columns, rows)
    except duckdb.PermissionException as exc:
        raise QueryError(f"refused: {exc} (newsflow sql is sandboxed; see --unsafe)") from exc
    except duckdb.Error as exc:
        message = str(exc)
        if "read-only mode" in message or "read-only" in message:
            raise QueryError(f"refused: newsflow sql is read-only ({message}); see --unsafe") from exc
        raise QueryError(message) from exc
