"""The rules as stored (every version of the file's text) and the record of what filters dropped."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from newsflow.warehouse.arrow import registered


@dataclass(frozen=True)
class StoredRules:
    """One version of the rules file."""

    version: int
    text: str
    source: str | None
    set_at: datetime


@dataclass(frozen=True)
class FilteredRow:
    """An entry or article a filter dropped."""

    article_id: str
    rule: str
    stage: str
    feed_url: str | None
    url: str | None
    title: str | None
    published_at: datetime | None


def current_rules(con: duckdb.DuckDBPyConnection) -> StoredRules | None:
    """The rules in force (the highest version), or None when none were ever set."""
    row = con.execute(
        "SELECT version, text, source, set_at FROM rule_sets ORDER BY version DESC LIMIT 1"
    ).fetchone()
    return StoredRules(*row) if row else None


def save_rules(con: duckdb.DuckDBPyConnection, text: str, source: str | None, now: datetime) -> int:
    """Store ``text`` as the next version (in a write session: the write lock keeps versions unique)."""
    (version,) = con.execute("SELECT coalesce(max(version), 0) + 1 FROM rule_sets").fetchone() or (1,)
    con.execute("INSERT INTO rule_sets VALUES (?, ?, ?, ?)", [version, text, source, now])
    return int(version)


def filtered_ids(con: duckdb.DuckDBPyConnection, article_ids: Collection[str], version: int) -> set[str]:
    """Those of ``article_ids`` already dropped under rules ``version``."""
    if not article_ids:
        return set()
    rows = con.execute(
        "SELECT DISTINCT article_id FROM filtered WHERE rules_version = $version"
        " AND article_id IN (SELECT unnest($ids::VARCHAR[]))",
        {"version": version, "ids": list(article_ids)},
    ).fetchall()
    return {row[0] for row in rows}


def record_filtered(
    con: duckdb.DuckDBPyConnection,
    rows: Sequence[FilteredRow],
    version: int,
    run_id: str | None,
    now: datetime,
) -> int:
    """Record what filters dropped, each (article, rules version) once; returns how many rows are new."""
    fresh = {row.article_id: row for row in rows}
    for known in filtered_ids(con, list(fresh), version):
        del fresh[known]
    if not fresh:
        return 0
    table = pa.Table.from_pylist(
        [
            {"article_id": r.article_id, "rules_version": version, "rule": r.rule, "stage": r.stage,
             "feed_url": r.feed_url, "url": r.url, "title": r.title, "published_at": r.published_at,
             "run_id": run_id, "filtered_at": now}
            for r in fresh.values()
        ],
        schema=_FILTERED,
    )  # fmt: skip
    with registered(con, "new_filtered", table):
        con.execute(f"INSERT INTO filtered ({', '.join(_FILTERED.names)}) SELECT * FROM new_filtered")
    return len(fresh)


def filtered_by_rule(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], int]:
    """Everything filters ever dropped, by (rule, stage)."""
    rows = con.execute("SELECT rule, stage, count(*) FROM filtered GROUP BY ALL").fetchall()
    return {(rule, stage): int(n) for rule, stage, n in rows}


_FILTERED = pa.schema(
    [
        ("article_id", pa.string()), ("rules_version", pa.int32()), ("rule", pa.string()),
        ("stage", pa.string()), ("feed_url", pa.string()), ("url", pa.string()), ("title", pa.string()),
        ("published_at", pa.timestamp("us", "UTC")), ("run_id", pa.string()),
        ("filtered_at", pa.timestamp("us", "UTC")),
    ]
)  # fmt: skip


#: What ``newsflow rules test`` reads of each stored article.
SUBJECT_COLUMNS = (
    "feed_url", "title", "url", "canonical_url", "site", "author", "tags", "summary", "published_at", "text",
    "language", "word_count",
)  # fmt: skip


def stored_subjects(con: duckdb.DuckDBPyConnection, since: datetime | None) -> Iterator[dict[str, Any]]:
    """Every stored article (published since ``since``, else first seen since), streamed in batches."""
    cursor = con.execute(
        f"SELECT {', '.join(SUBJECT_COLUMNS)} FROM articles"
        " WHERE $since IS NULL OR coalesce(published_at, first_seen_at) >= $since",
        {"since": since},
    )
    while batch := cursor.fetchmany(1000):
        yield from (dict(zip(SUBJECT_COLUMNS, row, strict=True)) for row in batch)
