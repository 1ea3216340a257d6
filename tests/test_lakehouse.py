"""The lake with real processes: a notebook-style reader held open across an ingest, writers at once
(overlapping ingests, the same load twice), and the same runs on a PostgreSQL catalog.

Each ends with :func:`integrity_check` clean and every served entry stored exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO, LoopbackSite
from tests.lake import reader
from tests.postgres import PostgresServer
from tests.test_crash_safety import NEWSFLOW, environment, ingest_command, served_feeds
from tests.test_load import _amazon_jsonl


def stored_exactly_once(db: Path, env: dict[str, str] | None = None) -> list[str]:
    """Check the lake's integrity (no duplicate article_id, every story member's story exists) and
    return the stored guids."""
    from newsflow.warehouse.integrity import integrity_check

    with lake_connection(db, env) as con:
        assert integrity_check(con) == []
        return [row[0] for row in con.execute("SELECT guid FROM articles").fetchall()]


@pytest.fixture
def lake_env() -> dict[str, str]:
    """Extra environment of the embedded lake (none: NEWSFLOW_DB is passed as --db)."""
    return {}


def lake_connection(db: Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    if not env:
        return reader(db)
    from contextlib import closing

    from newsflow.settings import Settings
    from newsflow.warehouse.lakehouse import Warehouse

    settings = Settings(db=db, warehouse=env["NEWSFLOW_WAREHOUSE"], data_path=env["NEWSFLOW_DATA_PATH"])
    return closing(Warehouse.open(settings).connect())


READER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import newsflow
    db = Path(sys.argv[1]) if sys.argv[1] else None   # none: NEWSFLOW_WAREHOUSE names the lake
    stop, log = Path(sys.argv[2]), open(sys.argv[3], "w")
    con = newsflow.connect(db)            # held open for the whole ingest, as a notebook does
    print("open", flush=True)
    while True:
        stopping = stop.exists()
        started = time.perf_counter()
        try:
            count = con.execute("SELECT count(*) FROM articles").fetchall()[0][0]
            log.write(json.dumps({"count": count, "ms": 1000 * (time.perf_counter() - started)}) + "\\n")
        except Exception as exc:
            log.write(json.dumps({"error": str(exc)}) + "\\n")
        log.flush()
        if stopping:
            break
        time.sleep(0.05)
""")


def test_a_reader_holding_the_lake_open_never_breaks_an_ingest(
    site: LoopbackSite, prefect_harness: str, tmp_path: Path
) -> None:
    feeds_file, guids = served_feeds(site, "notebook", 75, tmp_path)
    db = tmp_path / "notebook.ducklake"
    from tests.lake import writer

    with writer(db):  # the lake exists before the reader opens it, empty
        pass
    stop, log = tmp_path / "stop", tmp_path / "reader.jsonl"
    notebook = subprocess.Popen(
        [sys.executable, "-c", READER, str(db), str(stop), str(log)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert notebook.stdout is not None and notebook.stdout.readline().strip() == "open"
        ingest = subprocess.run(ingest_command(feeds_file, db), env=environment(prefect_harness), cwd=REPO,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert ingest.returncode == 0, ingest.stderr[-3000:]
        assert json.loads(ingest.stdout)["articles_stored"] == len(guids)
        stop.touch()
        notebook.wait(timeout=30)
    finally:
        notebook.kill()
    answers = [json.loads(line) for line in log.read_text().splitlines()]
    assert [a for a in answers if "error" in a] == []
    counts = [a["count"] for a in answers]
    assert len(counts) >= 10, "the reader kept querying during the ingest"
    assert counts[0] == 0 and counts[-1] == len(guids)  # it sees the rows once the ingest has committed
    assert counts == sorted(counts)  # snapshots only move forward
    assert sorted(stored_exactly_once(db)) == sorted(guids)


def test_two_ingests_of_overlapping_feed_lists_at_once(
    site: LoopbackSite, prefect_harness: str, tmp_path: Path, lake_env: dict[str, str]
) -> None:
    feeds_file, guids = served_feeds(site, "overlap", 45, tmp_path)
    urls = [line.split('"')[1] for line in feeds_file.read_text().splitlines() if line.startswith("url")]
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text("".join(f'[[feeds]]\nurl = "{u}"\n' for u in urls[:2]))
    second.write_text("".join(f'[[feeds]]\nurl = "{u}"\n' for u in urls[1:]))  # feed 1 is in both
    db = tmp_path / "overlap.ducklake"
    env = {**environment(prefect_harness), **lake_env}
    both = [
        subprocess.Popen(ingest_command(f, db), env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
        for f in (first, second)
    ]
    summaries = []
    for process in both:
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0
        summaries.append(json.loads(out))
    assert [s["status"] for s in summaries] == ["completed", "completed"]  # different feed lists: no skip
    assert sum(s["articles_stored"] for s in summaries) == len(guids)
    stored = stored_exactly_once(db, lake_env)
    assert sorted(stored) == sorted(guids)
    with lake_connection(db, lake_env) as con:
        assert con.execute("SELECT count(*) FROM articles WHERE story_id IS NULL").fetchall() == [(0,)]
        assert con.execute("SELECT count(DISTINCT story_id) FROM story_decisions").fetchall() == \
            con.execute("SELECT count(*) FROM stories").fetchall()  # fmt: skip


def test_the_same_load_from_two_processes_stores_each_record_once(
    tmp_path: Path, lake_env: dict[str, str]
) -> None:
    source = _amazon_jsonl(tmp_path / "amazon.jsonl")
    db = tmp_path / "load.ducklake"
    env = {**os.environ, **lake_env}
    command = [NEWSFLOW, "load", str(source), "--db", str(db), "--batch-size", "3", "--json"]
    both = [
        subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in both]
    assert [p.returncode for p in both] == [0, 0]
    assert sum(o["articles_stored"] for o in outs) == 12
    with lake_connection(db, lake_env) as con:
        rows = con.execute("SELECT external_id, story_id FROM articles").fetchall()
    assert len(rows) == len({r[0] for r in rows}) == 12
    assert sorted(Counter(story for _, story in rows).values()) == [1] * 7 + [5]  # stories intact
    stored_exactly_once(db, lake_env)


# ---- the same on a PostgreSQL catalog --------------------------------------------------------------------


@pytest.fixture
def postgres_lake(postgres: PostgresServer, tmp_path: Path) -> dict[str, str]:
    database = postgres.create_database()
    return {
        "NEWSFLOW_WAREHOUSE": f"ducklake:postgres:{postgres.conninfo(database)}",
        "NEWSFLOW_DATA_PATH": str(tmp_path / "shared-lake"),
    }


def test_postgres_catalog_two_overlapping_ingests(
    site: LoopbackSite, prefect_harness: str, tmp_path: Path, postgres_lake: dict[str, str]
) -> None:
    test_two_ingests_of_overlapping_feed_lists_at_once(site, prefect_harness, tmp_path, postgres_lake)
    assert list((tmp_path / "shared-lake").rglob("*.parquet")), "the data went to the shared path"


def test_postgres_catalog_the_same_load_twice_at_once(tmp_path: Path, postgres_lake: dict[str, str]) -> None:
    test_the_same_load_from_two_processes_stores_each_record_once(tmp_path, postgres_lake)


def test_postgres_catalog_without_a_data_path_is_a_clear_error(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    env = {**os.environ, "NEWSFLOW_WAREHOUSE": f"ducklake:postgres:{postgres.conninfo('postgres')}"}
    env.pop("NEWSFLOW_DATA_PATH", None)
    result = subprocess.run([NEWSFLOW, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "NEWSFLOW_DATA_PATH" in result.stderr


def test_maintenance_compacts_small_files_and_keeps_every_row(prefect_harness: str, tmp_path: Path) -> None:
    """A load committed batch by batch leaves many small files; maintenance merges them, expires old
    snapshots and deletes what no snapshot needs, and every row and the time-travel reach stay true."""
    source = _amazon_jsonl(tmp_path / "amazon.jsonl")
    db = tmp_path / "small.ducklake"
    loaded = subprocess.run([NEWSFLOW, "load", str(source), "--db", str(db), "--batch-size", "1"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    with reader(db) as con:
        before = con.execute("SELECT article_id, story_id, text FROM articles ORDER BY 1").fetchall()
        first_version = con.execute("SELECT min(snapshot_id) FROM lake.snapshots()").fetchall()[0][0]
    # Files nothing references, as a writer killed between upload and commit leaves them: one old enough
    # to be an orphan, one young enough to be another machine's write in progress.
    folder = Path(f"{db}.files") / "main" / "articles"
    old, young = folder / "ducklake-killed-writer.parquet", folder / "ducklake-in-progress.parquet"
    for planted in (old, young):
        planted.write_bytes(b"PAR1")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    checked = subprocess.run([NEWSFLOW, "check", "--db", str(db), "--json"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr  # orphans alone do not fail the check
    assert json.loads(checked.stdout)["orphans"] == [str(old)]
    # the session's Prefect API: a temporary one per process can time out starting on a loaded machine
    env = {**environment(prefect_harness), "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}
    done = subprocess.run([NEWSFLOW, "maintenance", "--db", str(db), "--snapshot-retention-days", "0"],
                          env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["orphans_deleted"] == 1 and not old.exists() and young.exists()
    assert summary["files_after"] < summary["files_before"]
    with reader(db) as con:  # bounded: at this size one file per table, updated tables included
        tables = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake'").fetchall()[
            0
        ][0]
    assert summary["files_after"] <= tables
    assert summary["snapshots_after"] < summary["snapshots_before"]
    assert summary["rows"]["articles"] == len(before) == 12
    with reader(db) as con:
        assert con.execute("SELECT article_id, story_id, text FROM articles ORDER BY 1").fetchall() == before
        from newsflow.warehouse.integrity import integrity_check

        assert integrity_check(con) == []
        with pytest.raises(Exception, match="snapshot"):  # expired: time travel no longer reaches it
            con.execute(f"SELECT count(*) FROM articles AT (VERSION => {int(first_version)})").fetchall()


def test_check_names_a_data_file_the_catalog_needs_that_is_gone(tmp_path: Path) -> None:
    db = tmp_path / "gone.ducklake"
    source = _amazon_jsonl(tmp_path / "amazon.jsonl")
    loaded = subprocess.run([NEWSFLOW, "load", str(source), "--db", str(db)], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    clean = subprocess.run([NEWSFLOW, "check", "--db", str(db)], capture_output=True, text=True)
    assert clean.returncode == 0 and clean.stdout.startswith("rules: 23 checked, clean\n"), clean.stdout
    victim = sorted((Path(f"{db}.files") / "main" / "stories").glob("*.parquet"))[0]
    victim.rename(tmp_path / victim.name)
    broken = subprocess.run([NEWSFLOW, "check", "--db", str(db)], capture_output=True, text=True)
    assert broken.returncode == 1 and f"  missing: {victim}" in broken.stdout.splitlines()
    assert broken.stderr == f"Error: the lake at {db} has 0 broken rules and 1 missing data files\n"
