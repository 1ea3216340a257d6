"""Integrity checks of a warehouse: what must hold however the last run ended, a killed one included.

    problems = integrity_check(con)   # [] when the warehouse is sound
    files = lake_files(con, orphan_before)   # every file the catalog references present? orphans?

Each check is one query counting the rows that break a rule; a full read of every table comes first, so
DuckDB reads every data file (and verifies a DuckDB file's block checksums) on the way. :func:`lake_files`
compares the catalog's file list with a listing of the data path (a folder or an ``s3://`` prefix).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from newsflow.warehouse.lakehouse import LAKE

_META = f"__ducklake_metadata_{LAKE}"

#: Every data and delete file the catalog references (the current snapshot's and those older snapshots
#: still reach), as full paths: a relative path hangs off its table's, the table's off its schema's, the
#: schema's off the lake's data path.
_REFERENCED = f"""
    WITH root AS (SELECT value AS path FROM {_META}.ducklake_metadata WHERE key = 'data_path'),
    schemas AS (
        SELECT DISTINCT schema_id,
               CASE WHEN path_is_relative THEN (SELECT path FROM root) || path ELSE path END AS path
        FROM {_META}.ducklake_schema),
    tables AS (
        SELECT DISTINCT t.table_id, CASE WHEN t.path_is_relative THEN s.path || t.path ELSE t.path END AS path
        FROM {_META}.ducklake_table t JOIN schemas s USING (schema_id)),
    files AS (
        SELECT table_id, path, path_is_relative FROM {_META}.ducklake_data_file
        UNION ALL
        SELECT table_id, path, path_is_relative FROM {_META}.ducklake_delete_file)
    SELECT DISTINCT CASE WHEN f.path_is_relative THEN t.path || f.path ELSE f.path END
    FROM files f JOIN tables t USING (table_id)"""


@dataclass(frozen=True)
class LakeFiles:
    """The lake's data files: how many the catalog references, which of them are missing from the data
    path, and which files under it nothing references (orphans: left by a write that never committed)."""

    referenced: int
    missing: list[str]
    orphans: list[str]


def lake_files(con: duckdb.DuckDBPyConnection, orphan_before: datetime) -> LakeFiles:
    """List the data path and compare it with the catalog; orphans count only when last written before
    ``orphan_before`` (a younger unreferenced file may be a write in progress on another machine).

    ``con`` must have the lake attached writable (DuckLake's orphan listing needs it) and be outside a
    transaction.

    Raises:
        duckdb.Error: the catalog or the data path cannot be read.
    """
    referenced = [row[0] for row in con.execute(_REFERENCED).fetchall()]
    root = con.execute(f"SELECT value FROM {_META}.ducklake_metadata WHERE key = 'data_path'").fetchall()
    present = {row[0] for row in con.execute("SELECT file FROM glob(?)", [root[0][0] + "**"]).fetchall()}
    orphans = con.execute(
        "CALL ducklake_delete_orphaned_files(?, dry_run => true, older_than => ?)", [LAKE, orphan_before]
    ).fetchall()
    return LakeFiles(
        len(referenced),
        sorted(path for path in referenced if path not in present),
        sorted(r[0] for r in orphans),
    )


#: Tables read in full (fixed names, never user input).
TABLES = (
    "schema_migrations", "feeds", "runs", "polls", "articles", "raw_pages", "backfill_chunks", "stories",
    "story_terms", "term_stats", "story_decisions", "minhash_signatures", "lsh_bands", "archive_units",
    "rule_sets", "filtered",
)  # fmt: skip

#: Rule -> query counting the rows that break it.
CHECKS: dict[str, str] = {
    "duplicate article_id": "SELECT count(*) - count(DISTINCT article_id) FROM articles",
    "duplicate raw page": "SELECT count(*) - count(DISTINCT article_id) FROM raw_pages",
    "duplicate poll_id": "SELECT count(*) - count(DISTINCT poll_id) FROM polls",
    "duplicate run_id": "SELECT count(*) - count(DISTINCT run_id) FROM runs",
    "duplicate feed url": "SELECT count(*) - count(DISTINCT url) FROM feeds",
    "duplicate story_id": "SELECT count(*) - count(DISTINCT story_id) FROM stories",
    "duplicate story decision": "SELECT count(*) - count(DISTINCT article_id) FROM story_decisions",
    "duplicate signature": "SELECT count(*) - count(DISTINCT article_id) FROM minhash_signatures",
    "duplicate term_stats term": "SELECT count(*) - count(DISTINCT term) FROM term_stats",
    "duplicate backfill chunk": """
        SELECT count(*) - count(DISTINCT (backfill_id, chunk_start)) FROM backfill_chunks""",
    "duplicate archive unit": """
        SELECT count(*) - count(DISTINCT (backfill_id, archive, unit)) FROM archive_units""",
    "duplicate rules version": "SELECT count(*) - count(DISTINCT version) FROM rule_sets",
    "duplicate filtered entry": """
        SELECT count(*) - count(DISTINCT (article_id, rules_version)) FROM filtered""",
    "article in a story that does not exist": """
        SELECT count(*) FROM articles a
        WHERE a.story_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM stories s WHERE s.story_id = a.story_id)""",
    "duplicate_of points at no stored article": """
        SELECT count(*) FROM articles a
        WHERE a.duplicate_of IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM articles o WHERE o.article_id = a.duplicate_of)""",
    "article marked a duplicate of itself": "SELECT count(*) FROM articles WHERE duplicate_of = article_id",
    "duplicate_of without dup_reason": """
        SELECT count(*) FROM articles WHERE (duplicate_of IS NULL) <> (dup_reason IS NULL)""",
    "raw page without its article": """
        SELECT count(*) FROM raw_pages p
        WHERE NOT EXISTS (SELECT 1 FROM articles a WHERE a.article_id = p.article_id)""",
    "article extracted from a page without its raw page": """
        SELECT count(*) FROM articles a
        WHERE a.content_source = 'page'
          AND NOT EXISTS (SELECT 1 FROM raw_pages p WHERE p.article_id = a.article_id)""",
    "word_count does not match text": """
        SELECT count(*) FROM articles WHERE word_count < 0 OR (text = '' AND word_count <> 0)""",
    "article of an unknown run": """
        SELECT count(*) FROM articles a
        WHERE a.run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = a.run_id)""",
    "poll of an unknown run": """
        SELECT count(*) FROM polls p WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = p.run_id)""",
    "migrations not contiguous from 1": """
        SELECT count(*) FROM (SELECT version, row_number() OVER (ORDER BY version) AS n
                              FROM schema_migrations) WHERE version <> n""",
}


#: Tables that a pre-lake warehouse file (checked before ``newsflow migrate --from`` copies it) lacks.
NEWER_TABLES = ("archive_units", "rule_sets", "filtered")


def integrity_check(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every broken rule as ``"<rule>: <n> rows"``; an empty list means the warehouse is sound.

    Raises:
        duckdb.Error: a table cannot be read (a corrupt block fails its checksum here).
    """
    present = {
        row[0]
        for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    for table in TABLES:
        if table in present:
            con.execute(f"SELECT count(*), sum(hash(t)) FROM {table} AS t").fetchall()  # fixed name
    problems = []
    for rule, sql in CHECKS.items():
        if any(table in sql and table not in present for table in NEWER_TABLES):
            continue  # a pre-lake file being upgraded has no such table yet
        (count,) = con.execute(sql).fetchone() or (0,)
        if count:
            problems.append(f"{rule}: {count} rows")
    return problems
