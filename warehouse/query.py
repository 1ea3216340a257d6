"""Ad-hoc SQL for ``newsflow sql``: read-only and sandboxed unless the user opts in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from newsflow.errors import QueryError
from newsflow.warehouse.connection import connect

#: A read-only connection that also cannot reach files, other databases or extensions.
SANDBOX: dict[str, Any] = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "lock_configuration": True,
}


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
    path: Path,
    sql: str,
    parameters: dict[str, Any] | None = None,
    *,
    unsafe: bool = False,
    lock_timeout: float = 30.0,
) -> QueryResult:
    """Run ``sql`` with named ``$parameters`` bound.

    By default the connection is read-only and sandboxed (no file access, ATTACH, COPY or extensions).
    ``unsafe`` opens it read-write with external access, for trusted users.

    Raises:
        QueryError: the statement is invalid, refused or failed; the message says which.
    """
    if unsafe:
        con = connect(path, lock_timeout=lock_timeout)
    else:
        con = connect(path, read_only=True, lock_timeout=lock_timeout, config=SANDBOX)
    try:
        cursor = con.execute(sql, parameters or {})
        columns = [d[0] for d in cursor.description] if cursor.description else []
        rows = cursor.fetchall() if columns else []
        return QueryResult(columns, rows)
    except duckdb.PermissionException as exc:
        raise QueryError(f"refused: {exc} (newsflow sql is sandboxed; see --unsafe)") from exc
    except duckdb.Error as exc:
        message = str(exc)
        if "read-only mode" in message:
            raise QueryError(f"refused: newsflow sql is read-only ({message}); see --unsafe") from exc
        raise QueryError(message) from exc
    finally:
        con.close()
