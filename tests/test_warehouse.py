"""The warehouse on a real lake (SQLite catalog + Parquet files): migrations, idempotent batched writes, the
write lock, legacy files refused with a way out."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from newsflow.errors import ConfigError, WarehouseError, WarehouseLockedError
from newsflow.records import Article, ContentSource, DuplicateMark
from newsflow.warehouse import articles
from newsflow.warehouse.schema import LAKE_BASELINE, migrate, migrations
from tests.lake import warehouse, writer

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
    assert versions == sorted(set(versions)) and versions[0] == LAKE_BASELINE
    with writer(db) as con:  # the first write session creates the lake and migrates it
        recorded = [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert recorded == list(range(1, versions[-1] + 1))  # file versions 1-4 folded into the lake baseline
    assert {"feeds", "polls", "articles", "raw_pages", "runs", "stories", "schema_migrations"} <= tables
    assert (db.with_name(db.name + ".files")).is_dir()  # the data folder beside the catalog
    with writer(db) as con:
        assert migrate(con) == []


def test_newer_schema_is_refused(db: Path) -> None:
    with writer(db) as con:
        con.execute("INSERT INTO schema_migrations VALUES (999, 'future', now())")
    with writer(db) as con, pytest.raises(WarehouseError, match="newer than this newsflow"):
        migrate(con)


def test_a_lake_from_an_older_newsflow_is_read_after_newsflow_migrate(db: Path) -> None:
    """A lake last written before schema version 10 (no ``story_decisions.member_similarity``): reading
    commands say to migrate instead of failing on a missing column; `newsflow migrate` brings it up."""
    with writer(db) as con:
        con.execute("ALTER TABLE story_decisions DROP COLUMN member_similarity")
        con.execute("DELETE FROM schema_migrations WHERE version = 10")
    newsflow = [str(Path(sys.executable).parent / "newsflow")]
    refused = subprocess.run([*newsflow, "stories", "--db", str(db)], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "schema versions 10 missing): run `newsflow migrate`" in refused.stderr
    migrated = subprocess.run([*newsflow, "migrate", "--db", str(db)], capture_output=True, text=True)
    assert migrated.returncode == 0 and f"schema version {migrations()[-1][0]}" in migrated.stdout
    listed = subprocess.run([*newsflow, "stories", "--db", str(db)], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    with warehouse(db).read() as con:
        con.execute("SELECT member_similarity FROM story_decisions").fetchall()


def test_a_pre_lake_duckdb_file_is_refused_with_the_upgrade_command(tmp_path: Path) -> None:
    old = tmp_path / "news.duckdb"
    duckdb.connect(str(old)).close()
    with pytest.raises(ConfigError, match=r"newsflow migrate --from .*news\.duckdb"):
        warehouse(old)


def test_reading_a_lake_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none.ducklake"
    with pytest.raises(WarehouseError, match="no warehouse at"), warehouse(missing).read():
        pass
    assert list(tmp_path.iterdir()) == []


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


def test_write_lock_wait_gives_up_naming_the_holder(db: Path) -> None:
    with writer(db):
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time
            from pathlib import Path
            from tests.lake import writer
            with writer(Path({str(db)!r})):
                print("locked", flush=True)
                time.sleep(30)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseLockedError, match=f"held by PID {holder.pid}; gave up after 0.3 s"):
            with warehouse(db, lock_timeout=0.3).write():
                pass
        with warehouse(db).read() as con:  # readers never wait for the writer
            assert con.execute("SELECT count(*) FROM articles").fetchall() == [(0,)]
    finally:
        holder.kill()
        holder.wait()
    with warehouse(db, lock_timeout=5).write():  # free again once the holder is gone
        pass


def test_run_stories_are_the_biggest_a_run_touched_with_its_links_first(db: Path) -> None:
    from datetime import timedelta

    from newsflow.records import RunStory, StoryLink
    from newsflow.warehouse.runs import run_stories

    def at(hours: int) -> datetime:
        return NOW + timedelta(hours=hours)

    old = [article(f"b{n}", published_at=at(n), site=f"s{n % 2}.example", title=f"Big {n}") for n in range(3)]
    copy = article("b3", url="https://s.example/b0", published_at=at(9), site="s0.example", title="Copy")
    new = article("b4", published_at=at(10), site="s1.example", title="Big new")
    untouched = [article(f"u{n}", published_at=at(n)) for n in range(6)]
    with writer(db) as con:
        for story_id in ("big", "small", "untouched"):
            con.execute(
                "INSERT INTO stories VALUES (?, ?, NULL, ?, ?, 1, [], 0, 0, 0, ?, NULL)",
                [story_id, f"Headline {story_id}", NOW, NOW, NOW],
            )
        first = {**{a.article_id: "big" for a in old}, **{a.article_id: "untouched" for a in untouched}}
        articles.insert_articles(con, [*old, *untouched], {}, run_id="r1", now=NOW, story_ids=first)
        articles.insert_articles(
            con, [copy, new, article("s1", title="Small")], {"b3": DuplicateMark("b0", "canonical_url")},
            run_id="r2", now=NOW, story_ids={"b3": "big", "b4": "big", "s1": "small"},
        )  # fmt: skip
    with warehouse(db).read() as con:
        assert run_stories(con, "r2", limit=5, links=2) == [
            RunStory("big", "Headline big", articles=5, outlets=2, run_articles=2,
                     links=(StoryLink("Big new", "https://s.example/b4", "s1.example"),
                            StoryLink("Big 0", "https://s.example/b0", "s0.example")),
                     link_count=4),
            RunStory("small", "Headline small", articles=1, outlets=1, run_articles=1,
                     links=(StoryLink("Small", "https://s.example/s1", "s.example"),), link_count=1),
        ]  # fmt: skip
        assert [story.story_id for story in run_stories(con, "r2", limit=1)] == ["big"]
        assert run_stories(con, "no-such-run") == []


def test_migrate_from_an_old_file_copies_every_row_and_says_so(tmp_path: Path) -> None:
    """`newsflow migrate --from` on a version-4 warehouse file: row counts of both sides printed, every
    row in the lake, the file unchanged; a second upgrade into the now-full lake is refused."""
    from click.testing import CliRunner

    from newsflow.cli import main

    old, lake = tmp_path / "news.duckdb", tmp_path / "news.ducklake"
    with duckdb.connect(str(old)) as con:
        migrate(con, package="newsflow.warehouse.legacy_migrations")
        for n in range(3):
            con.execute(
                "INSERT INTO articles (article_id, text, word_count, content_source, first_seen_at, tags)"
                " VALUES (?, 'some text', 2, 'loaded', ?, ['a', 'b'])",
                [f"a{n}", NOW],
            )
        con.execute("INSERT INTO feeds (url, added_at) VALUES ('https://example.com/feed.xml', ?)", [NOW])
    before = old.read_bytes()
    result = CliRunner().invoke(main, ["migrate", "--from", str(old), "--db", str(lake)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["table", "file", "rows", "lake", "rows"]
    assert "articles 3 3" in [" ".join(line.split()) for line in lines]
    assert "integrity: file clean, lake clean" in result.stdout
    assert old.read_bytes() == before
    with warehouse(lake).read() as con:
        assert con.execute("SELECT article_id, tags FROM articles ORDER BY 1").fetchall() == [
            (f"a{n}", ["a", "b"]) for n in range(3)
        ]
        from newsflow.query import parse_query
        from newsflow.warehouse.search import search

        found = search(con, parse_query("text"))  # the copied articles are in the search index too
    assert sorted(hit.article_id for hit in found) == ["a0", "a1", "a2"]
    again = CliRunner().invoke(main, ["migrate", "--from", str(old), "--db", str(lake)])
    assert again.exit_code == 1 and again.stderr.startswith("Error: ")
