"""Crash safety and concurrency, with real processes: ``newsflow ingest`` killed with SIGKILL at random
points, and ``newsflow sql`` hammered by a second process during an ingest. The warehouse must always
open, pass :func:`warehouse.integrity.integrity_check`, and end with every served entry exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, LoopbackSite, shared
from tests.feedbuild import Item, benchmark_pages, write_feed
from tests.lake import reader, warehouse

NEWSFLOW = str(Path(sys.executable).parent / "newsflow")
FEEDS = 3
PAGES_PER_FEED = 15
KILLS = 4
SEED = 20261125


def served_feeds(site: LoopbackSite, folder: str, offset: int, tmp_path: Path) -> tuple[Path, set[str]]:
    """FEEDS feeds of real benchmark pages on the loopback site; returns the feed file and every guid."""
    shared("scrapinghub-article-extraction-benchmark")
    ids = sorted(benchmark_pages())[offset : offset + FEEDS * PAGES_PER_FEED]
    assert len(ids) == FEEDS * PAGES_PER_FEED
    urls = []
    for number in range(FEEDS):
        chunk = ids[number * PAGES_PER_FEED : (number + 1) * PAGES_PER_FEED]
        items = [Item(f"Story {i}", site.url(f"/pages/{i}.html"), guid=f"{folder}-{i}") for i in chunk]
        write_feed(site.root / folder / f"feed{number}.xml", f"Feed {number}", items)
        urls.append(site.url(f"/site/{folder}/feed{number}.xml"))
    feeds_file = tmp_path / "feeds.toml"
    feeds_file.write_text("".join(f'[[feeds]]\nurl = "{url}"\n\n' for url in urls))
    return feeds_file, {f"{folder}-{i}" for i in ids}


def environment(prefect_api: str) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_API_URL": prefect_api,  # the session's harness: no temporary server per process
        "NEWSFLOW_ALLOW_PRIVATE_NETWORKS": "1",
        "NEWSFLOW_RETRY_BACKOFF": "0.05",
        # Extraction in a worker process, as a large run has: a kill lands mid-run and takes the worker too.
        "NEWSFLOW_POOL_MIN_PAGES": "0",
    }


def ingest_command(feeds_file: Path, db: Path) -> list[str]:
    return [NEWSFLOW, "ingest", "--feeds", str(feeds_file), "--db", str(db), "--batch-size", "4",
            "--workers", "1", "--json"]  # fmt: skip


def check_warehouse(db: Path) -> set[str]:
    """Check the warehouse's integrity, return the stored guids."""
    from newsflow.warehouse.integrity import integrity_check

    with reader(db) as con:
        assert integrity_check(con) == []
        rows = con.execute("SELECT guid FROM articles").fetchall()
    guids = [r[0] for r in rows]
    assert len(guids) == len(set(guids))
    return set(guids)


def test_killed_ingests_lose_and_duplicate_nothing(
    site: LoopbackSite, prefect_harness: str, tmp_path: Path
) -> None:
    feeds_file, served = served_feeds(site, "crash", 20, tmp_path)
    db = tmp_path / "crash.ducklake"
    env = environment(prefect_harness)
    rng = random.Random(SEED)
    stored: set[str] = set()
    kills = []
    started = time.monotonic()
    for _ in range(KILLS):
        process = subprocess.Popen(
            ingest_command(feeds_file, db),
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the kill takes its extraction workers too
        )
        delay = rng.uniform(2.5, 6.5)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        kills.append((round(delay, 2), process.returncode))
        if warehouse(db).exists():  # a run killed before its first commit leaves no lake
            now_stored = check_warehouse(db)
            assert stored <= now_stored, "rows committed before a kill disappeared"
            stored = now_stored
    final = subprocess.run(ingest_command(feeds_file, db), env=env, cwd=REPO, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-3000:]
    summary = json.loads(final.stdout)
    assert summary["status"] == "completed"
    guids = check_warehouse(db)
    with reader(db) as con:
        statuses = dict(con.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
    assert "running" not in statuses, statuses  # the killed runs' rows were closed by the next run
    lost, extra = served - guids, guids - served
    print(
        f"\nkills (after s, exit code): {kills}; stored before the final run {len(stored)} of {len(served)};"
        f" final run stored {summary['articles_stored']}; runs {statuses}; lost {len(lost)}, duplicated 0;"
        f" {time.monotonic() - started:.1f} s in all"
    )
    assert sum(code == -signal.SIGKILL for _, code in kills) >= KILLS - 1  # the kills really landed
    assert not lost and not extra
    assert summary["articles_stored"] == len(served) - len(stored)


HAMMER = textwrap.dedent(
    """
    import json, sys, time
    from click.testing import CliRunner
    from newsflow.cli import main

    db, stop_file, log = sys.argv[1], sys.argv[2], open(sys.argv[3], "w")
    runner = CliRunner()
    import os
    while not os.path.exists(stop_file):
        started = time.monotonic()
        result = runner.invoke(main, ["sql", "SELECT count(*) AS n FROM articles", "--db", db, "-f", "csv"])
        log.write(json.dumps({"code": result.exit_code, "out": result.stdout, "err": result.stderr,
                              "wait": time.monotonic() - started}) + "\\n")
        log.flush()
    """
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def test_sql_hammered_during_an_ingest(site: LoopbackSite, prefect_harness: str, tmp_path: Path) -> None:
    feeds_file, served = served_feeds(site, "hammer", 65, tmp_path)
    db = tmp_path / "hammer.ducklake"
    env = environment(prefect_harness) | {"NEWSFLOW_LOCK_TIMEOUT": "10"}
    # The warehouse exists before the hammer starts, so every failure can only be the lock.
    subprocess.run([NEWSFLOW, "migrate", "--db", str(db)], env=env, check=True, capture_output=True)
    stop, log = tmp_path / "stop", tmp_path / "hammer.jsonl"
    # results go to a file of their own: stdout may also carry what libraries print
    hammer = subprocess.Popen([sys.executable, "-c", HAMMER, str(db), str(stop), str(log)], env=env, cwd=REPO)
    try:
        ingest = subprocess.run(
            ingest_command(feeds_file, db), env=env, cwd=REPO, capture_output=True, text=True, timeout=120
        )
    finally:
        stop.touch()
        hammer.wait(timeout=60)
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    summary: dict[str, Any] = json.loads(ingest.stdout)
    assert summary["status"] == "completed" and summary["articles_stored"] == len(served)
    assert summary["batches_failed"] == 0
    results = [json.loads(line) for line in log.read_text().splitlines()]
    answered = [r for r in results if r["code"] == 0]
    refused = [r for r in results if r["code"] != 0]
    for r in answered:
        assert r["out"].splitlines()[0] == "n" and 0 <= int(r["out"].splitlines()[1]) <= len(served)
    for r in refused:  # only ever the lock, said clearly
        assert r["err"].startswith("Error: warehouse ") and "is locked by" in r["err"], r["err"]
    waits = [r["wait"] for r in results]
    print(
        f"\nsql hammer: {len(results)} queries during the ingest, {len(answered)} answered,"
        f" {len(refused)} refused with the lock message; wait p50 {percentile(waits, 0.5) * 1000:.0f} ms,"
        f" p99 {percentile(waits, 0.99) * 1000:.0f} ms"
    )
    assert len(answered) >= 10
    assert check_warehouse(db) == served


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("INSERT INTO feeds (url, added_at) VALUES ('http://x.example/', now())", "read-only"),
        ("UPDATE articles SET title = 'x'", "read-only"),
        ("DROP TABLE articles", "read-only"),
        ("CREATE TABLE t AS SELECT 1", "read-only"),
        ("ATTACH '{tmp}/other.duckdb' AS other", "refused"),
        ("COPY articles TO '{tmp}/out.csv'", "refused"),
        ("COPY (SELECT 1) TO '{tmp}/out.parquet' (FORMAT parquet)", "refused"),
        ("SELECT * FROM read_csv('/etc/passwd')", "refused"),
        ("SELECT * FROM read_text('/etc/hostname')", "refused"),
        ("SELECT * FROM read_blob('/etc/hostname')", "refused"),
        ("SELECT * FROM read_parquet('{tmp}/x.parquet')", "refused"),
        ("SELECT * FROM glob('/etc/*')", "refused"),
        ("INSTALL httpfs", "refused"),
        ("LOAD httpfs", "refused"),
        ("SET enable_external_access = true", "configuration has been locked"),
        ("SET autoinstall_known_extensions = true", "configuration has been locked"),
    ],
)
def test_sql_refuses_writes_files_and_extensions(query: str, message: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from newsflow.cli import main
    from tests.lake import writer

    db = tmp_path / "w.ducklake"
    with writer(db):
        pass
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(main, ["sql", query.format(tmp=tmp_path), "--db", str(db)])
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no file was written


def test_two_ingests_started_at_once(site: LoopbackSite, prefect_harness: str, tmp_path: Path) -> None:
    feeds_file, guids = served_feeds(site, "twice", 60, tmp_path)
    db = tmp_path / "twice.ducklake"
    env = environment(prefect_harness)
    both = [
        subprocess.Popen(ingest_command(feeds_file, db), env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    summaries = []
    for process in both:
        out, _ = process.communicate(timeout=240)
        assert process.returncode == 0
        summaries.append(json.loads(out))
    # Either the second found the first running and skipped, or it ran after it and found nothing new.
    assert sorted(s["status"] for s in summaries) in (["completed", "skipped"], ["completed", "completed"])
    assert sum(s["articles_stored"] for s in summaries) == len(guids)
    assert check_warehouse(db) == guids


def test_backfill_during_an_ingest(
    site: LoopbackSite, backfill_site: Any, prefect_harness: str, tmp_path: Path
) -> None:
    from tests.backfill_site import SINCE, UNTIL, register

    feeds_file, guids = served_feeds(site, "beside", 30, tmp_path)
    db = tmp_path / "beside.ducklake"
    register(db, backfill_site.site)
    env = environment(prefect_harness)
    backfill = [NEWSFLOW, "backfill", "--since", str(SINCE), "--until", str(UNTIL), "--db", str(db),
                "--site", backfill_site.site.base, "--json"]  # fmt: skip
    ingest = subprocess.Popen(
        ingest_command(feeds_file, db), env=env, cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    filling = subprocess.Popen(backfill, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
    ingest_out, _ = ingest.communicate(timeout=240)
    fill_out, _ = filling.communicate(timeout=240)
    assert (ingest.returncode, filling.returncode) == (0, 0)
    assert json.loads(ingest_out)["articles_stored"] == len(guids)
    assert json.loads(fill_out)["chunks_done"] == 3
    from newsflow.warehouse.integrity import integrity_check

    with reader(db) as con:
        assert integrity_check(con) == []
        rows = con.execute("SELECT guid, url FROM articles WHERE duplicate_of IS NULL").fetchall()
    urls = [url for _, url in rows]
    assert len(urls) == len(set(urls))  # no article stored twice
    assert guids <= {guid for guid, _ in rows}
    assert backfill_site.in_window <= set(urls)
