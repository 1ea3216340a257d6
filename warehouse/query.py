"""Ad-hoc SQL for ``newsflow sql``: read-only and sandboxed unless the user opts in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb

from newsflow.errors import NotFoundError, QueryError
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
    with query_errors():
        cursor = con.execute(sql, parameters or {})
        columns = [d[0] for d in cursor.description] if cursor.description else []
        rows = cursor.fetchall() if columns else []
        return QueryResult(columns, rows)


@contextmanager
def query_errors() -> Iterator[None]:
    """DuckDB's errors of a user's query as one :class:`QueryError` that says what was refused and why."""
    try:
        yield
    except duckdb.PermissionException as exc:
        raise QueryError(f"refused: {exc} (queries are sandboxed; see newsflow sql --unsafe)") from exc
    except duckdb.Error as exc:
        message = str(exc)
        if "read-only" in message:
            raise QueryError(
                f"refused: queries are read-only ({message}); see `newsflow sql --unsafe`"
            ) from exc
        raise QueryError(message) from exc


#: Fewest characters of an id prefix (as git asks for a few of a hash).
MIN_PREFIX = 4
#: What can be looked up by id: table -> (id column, what the user calls it).
_LOOKUPS = {"stories": ("story_id", "story"), "articles": ("article_id", "article")}


def unique_id(con: duckdb.DuckDBPyConnection, table: str, prefix: str) -> str:
    """The one id of ``table`` (``stories`` or ``articles``) that equals or starts with ``prefix``.

    Raises:
        NotFoundError: none matches, the prefix is shorter than 4 characters, or several match (the
            message lists some of them).
    """
    column, kind = _LOOKUPS[table]
    prefix = prefix.strip()
    if con.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", [prefix]).fetchone():
        return prefix
    if len(prefix) < MIN_PREFIX:
        raise NotFoundError(f"no {kind} {prefix!r}: give the whole id or at least {MIN_PREFIX} characters")
    rows = con.execute(
        f"SELECT DISTINCT {column} FROM {table} WHERE starts_with({column}, ?) ORDER BY 1 LIMIT 6", [prefix]
    ).fetchall()
    matches = [str(row[0]) for row in rows]
    if not matches:
        raise NotFoundError(f"no {kind} {prefix!r}")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise NotFoundError(f"{kind} id prefix {prefix!r} is ambiguous: {shown}; give more characters")
    return matches[0]
