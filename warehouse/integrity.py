"""Integrity checks of a warehouse: what must hold however the last run ended, a killed one included.

    problems = integrity_check(con)   # [] when the warehouse is sound

Each check is one query counting the rows that break a rule; a full read of every table comes first, so
DuckDB reads every data file (and verifies a DuckDB file's block checksums) on the way.
"""

from __future__ import annotations

import duckdb

#: Tables read in full (fixed names, never user input).
TABLES = (
    "schema_migrations", "feeds", "runs", "polls", "articles", "raw_pages", "backfill_chunks", "stories",
    "story_terms", "term_stats", "story_decisions", "minhash_signatures", "lsh_bands", "archive_units",
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
NEWER_TABLES = ("archive_units",)


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
