"""The warehouse on real DuckDB files: migrations, idempotent batched writes, lock handling."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from newsflow.errors import WarehouseError, WarehouseLockedError
from newsflow.records import Article, ContentSource, DuplicateMark
from newsflow.warehouse import articles
from newsflow.warehouse.connection import connect, describe_lock_holder, writer
from newsflow.warehouse.schema import migrate, migrations

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def article(article_id: str, **fields: object) -> Article:
    base: dict[str, object] = dict(
        article_id=article_id,
        feed_url="https://f.example/rss",
        guid=article_id,
        guid_key=article_id,
        url=f"https://s.example/{article_id}",
        canonical_url=f"https://s.example/{article_id}",
        title="T",
        author=None,
        published_at=NOW,
        updated_at=None,
        date_clamped=False,
        site="s.example",
        language="en",
        text="words " * 30,
        word_count=30,
        summary=None,
        tags=("a",),
        content_source=ContentSource.PAGE,
        fetch_error=None,
        extraction_error=None,
        http_status=200,
        content_hash=None,
        fetched_at=NOW,
        raw_html_zstd=b"\x28\xb5\x2f\xfd-fake",
    )
    base.update(fields)
    return Article(**base)  # type: ignore[arg-type]


def test_migrations_are_numbered_recorded_and_applied_once(db: Path) -> None:
    versions = [v for v, _, _ in migrations()]
    assert versions == sorted(set(versions)) and versions[0] == 1
    con = duckdb.connect(str(db))
    assert migrate(con) == versions
    assert migrate(con) == []
    recorded = [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
    assert recorded == versions
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"feeds", "polls", "articles", "raw_pages", "runs", "schema_migrations"} <= tables


def test_newer_schema_is_refused(db: Path) -> None:
    con = duckdb.connect(str(db))
    migrate(con)
    con.execute("INSERT INTO schema_migrations VALUES (999, 'future', now())")
    with pytest.raises(WarehouseError, match="newer than this newsflow"):
        migrate(con)


def test_insert_is_idempotent_and_keeps_raw_pages(db: Path) -> None:
    batch = [article("a1"), article("a2", raw_html_zstd=None)]
    with writer(db) as con:
        assert articles.insert_articles(con, batch, {}, run_id="r1", now=NOW) == 2
    with writer(db) as con:
        assert articles.insert_articles(con, batch, {}, run_id="r2", now=NOW) == 0
        assert con.execute("SELECT count(*) FROM articles").fetchall() == [(2,)]
        assert con.execute("SELECT article_id FROM raw_pages").fetchall() == [("a1",)]
        assert con.execute("SELECT run_id, tags FROM articles WHERE article_id = 'a1'").fetchall() == [
            ("r1", ["a"])
        ]


def test_duplicate_marks_are_stored(db: Path) -> None:
    with writer(db) as con:
        articles.insert_articles(
            con,
            [article("a1"), article("a2")],
            {"a2": DuplicateMark("a1", "content_hash")},
            run_id=None,
            now=NOW,
        )
        rows = con.execute("SELECT article_id, duplicate_of, dup_reason, dup_score FROM articles ORDER BY 1")
        assert rows.fetchall() == [("a1", None, None, None), ("a2", "a1", "content_hash", 1.0)]


def test_failed_transaction_leaves_nothing(db: Path) -> None:
    with pytest.raises(RuntimeError), writer(db) as con:
        articles.insert_articles(con, [article("a1")], {}, run_id=None, now=NOW)
        raise RuntimeError("crash mid-batch")
    with writer(db) as con:
        assert con.execute("SELECT count(*) FROM articles").fetchall() == [(0,)]


def test_matching_keys_finds_each_kind(db: Path) -> None:
    with writer(db) as con:
        articles.insert_articles(
            con,
            [article("a1", content_hash="h1"), article("a2", canonical_url="https://c.example/2")],
            {"a2": DuplicateMark("a1", "guid")},
            run_id=None,
            now=NOW,
        )
        found = articles.matching_keys(con, urls=["https://c.example/2"], content_hashes=["h1"])
    assert {(k.article_id, k.root) for k in found} == {("a1", "a1"), ("a2", "a1")}


def test_lock_wait_gives_up_naming_the_holder(db: Path) -> None:
    with writer(db):
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, time
            con = duckdb.connect({str(db)!r})
            print("locked", flush=True)
            time.sleep(30)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseLockedError, match=f"locked by PID {holder.pid} .*gave up after 0.3 s"):
            connect(db, lock_timeout=0.3)
    finally:
        holder.kill()
        holder.wait()
    connect(db, lock_timeout=5).close()  # free again once the holder is gone


def test_lock_holder_description_without_pid() -> None:
    assert describe_lock_holder("some other IO error") == "another process"
