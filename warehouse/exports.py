"""What ``newsflow export`` reads: a public table (optionally since a time) or a user's query, as a stream
of Arrow record batches, so a table of millions of rows never has to fit in memory."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa

from newsflow.errors import ConfigError
from newsflow.warehouse.query import query_errors

#: The tables people export, and the time column ``--since`` filters each on (None: no time filter).
PUBLIC_TABLES: dict[str, str | None] = {
    "articles": "coalesce(published_at, first_seen_at)",  # as `newsflow stories`: published, else first seen
    "stories": "last_at",
    "story_overview": "last_at",
    "feeds": None,
    "polls": "started_at",
    "runs": "started_at",
}
#: Rows per record batch: a few MB of articles at a time.
BATCH_ROWS = 10_000


def table_query(table: str, since: datetime | None) -> tuple[str, list[object]]:
    """The SELECT of ``table``'s rows (all, or those whose time is at or after ``since``).

    Raises:
        ConfigError: not a public table, or ``since`` given for one without a time column.
    """
    if table not in PUBLIC_TABLES:
        raise ConfigError(f"cannot export {table!r}: the public tables are {', '.join(PUBLIC_TABLES)}")
    column = PUBLIC_TABLES[table]
    if since is None:
        return f"SELECT * FROM {table}", []
    if column is None:
        raise ConfigError(f"--since does not apply to {table} (it has no time column); leave it out")
    return f"SELECT * FROM {table} WHERE {column} >= ? ORDER BY {column}", [since]


def record_batches(
    con: duckdb.DuckDBPyConnection, sql: str, parameters: list[object]
) -> pa.RecordBatchReader:
    """The result of ``sql`` as a stream of record batches of at most :data:`BATCH_ROWS` rows.

    Raises:
        QueryError: the query is invalid or refused (``con`` is the sandboxed read connection).
    """
    with query_errors():
        return con.execute(sql, parameters).to_arrow_reader(BATCH_ROWS)
