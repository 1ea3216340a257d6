"""Backfills from the web archives against a loopback archive (tests/archive_site.py) serving real WARC
files laid out as CC-NEWS's are (tests/archive_fixture.py), a Wayback CDX API with raw replays, and a
Common Crawl index with Range reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from newsflow.net.urls import canonical_url
from tests.archive_fixture import PUBLISHED_SINCE, PUBLISHED_UNTIL, SITES, Archive, gold
from tests.conftest import ArchiveSite
from tests.lake import reader

WINDOW = {"since": PUBLISHED_SINCE, "until": PUBLISHED_UNTIL, "site": list(SITES)}


def expected(archive: Any) -> set[str]:
    return {u for u in map(canonical_url, archive.expected) if u}


def stored(db: Path) -> list[tuple[Any, ...]]:
    with reader(db) as con:
        return con.execute(
            "SELECT url, capture_archive, capture_uri, capture_offset, capture_length, captured_at,"
            " published_at, content_source, text FROM articles ORDER BY url"
        ).fetchall()


def units(db: Path) -> list[tuple[Any, ...]]:
    with reader(db) as con:
        return con.execute(
            "SELECT archive, unit, status, records_read, records_kept, articles_stored, attempts"
            " FROM archive_units ORDER BY unit"
        ).fetchall()


def test_cc_news_backfill_stores_the_window_of_the_sites_once(
    archive_env: ArchiveSite, prefect_harness: str, db: Path
) -> None:
    from newsflow.flows.backfill import backfill

    archive: Archive = archive_env.archive  # type: ignore[assignment]
    summary = backfill(**WINDOW, sources=["cc-news"], db=str(db), allow_private_networks=True)

    rows = stored(db)
    assert {row[0] for row in rows} == expected(archive)
    assert len(rows) == len(expected(archive)) == 11  # the article captured in two files is stored once
    assert canonical_url(archive.repeated) in {row[0] for row in rows}
    for _, source, uri, offset, length, captured_at, published_at, content_source, _ in rows:
        # The article's own URL, traced back to its record; published in the window.
        assert source == "cc-news" and uri.startswith(archive_env.base + "/data/crawl-data/CC-NEWS/2022/01/")
        assert offset > 0 and length > 0 and captured_at is not None and content_source == "page"
        assert PUBLISHED_SINCE <= published_at.astimezone(UTC).date() <= PUBLISHED_UNTIL
    # The page in windows-1252 is read with its HTTP charset: its gold snippets are in the text as written.
    snippets = next(
        v["with"] for v in gold().values() if v["url"].endswith(archive.non_utf8.split("/", 3)[3])
    )
    text = next(row[8] for row in rows if row[0] == canonical_url(archive.non_utf8))
    assert snippets and all(s in text for s in snippets), text[:500]
    assert "Ã" not in text

    # Files: the one that starts before the window holds its first hours; the one before it is not read.
    paths = [r["path"] for r in archive_env.requests()]
    assert not any(p.endswith("-00000.warc.gz") for p in paths)
    assert sum(p.endswith("-00001.warc.gz") for p in paths) == 1
    cc = summary["archives"]["cc-news"]
    assert (cc["units"], cc["units_done"], cc["units_failed"]) == (3, 3, 0)
    records = cc["records"]
    assert records["malformed"] == 1 and records["not_ok"] == 1 and records["not_html"] == 1
    assert records["other_hosts"] > 0 and records["outside_window"] > 0
    assert cc["outside_publication_window"] == len(archive.read_but_outside)
    assert cc["articles_stored"] == summary["articles_stored"] == 11
    assert all(status == "done" and attempts == 0 for _, _, status, *_, attempts in units(db))
    assert sum(row[5] for row in units(db)) == 11

    archive_env.reset_log()
    again = backfill(**WINDOW, sources=["cc-news"], db=str(db), allow_private_networks=True)
    assert again["articles_stored"] == 0 and again["archives"]["cc-news"]["units_done_before"] == 3
    assert not any(str(r["path"]).endswith(".warc.gz") for r in archive_env.requests())  # no file read again
    assert len(stored(db)) == 11


def test_wayback_backfill_pages_the_cdx_answers_and_waits_out_429s(
    archive_env: ArchiveSite, prefect_harness: str, db: Path
) -> None:
    from newsflow.flows.backfill import backfill

    # The CDX API says 429 (Retry-After: 1) to the first query and 503 to the first replay.
    archive_env.faults(
        [
            {"prefix": "/wayback/cdx", "statuses": [429], "retry_after": "1"},
            {"prefix": "/wayback/web", "statuses": [503]},
        ]
    )
    summary = backfill(**WINDOW, sources=["wayback"], db=str(db), allow_private_networks=True)

    rows = stored(db)
    assert {row[0] for row in rows} == expected(archive_env.archive)
    assert all(row[1] == "wayback" and "/wayback/web/2022" in row[2] and "id_/" in row[2] for row in rows)
    log = archive_env.requests()
    queries = [r for r in log if r["path"] == "/wayback/cdx/search/cdx"]
    assert [q["status"] for q in queries][:2] == [429, 200]  # asked again after the wait, not given up
    resumed = [q for q in queries if "resumeKey=" in str(q["query"])]
    assert resumed, "the answers (4 rows each) were not paged with resumeKey"
    assert all("matchType=domain" in str(q["query"]) for q in queries)
    assert all("collapse=urlkey" in str(q["query"]) for q in queries)
    replays = [r for r in log if str(r["path"]).startswith("/wayback/web/")]
    assert replays[0]["status"] == 503 and all(r["status"] == 200 for r in replays[1:])
    wayback = summary["archives"]["wayback"]
    assert (wayback["units"], wayback["units_done"], wayback["units_failed"]) == (2, 2, 0)
    assert wayback["articles_stored"] == len(rows) == 11


def test_cc_index_backfill_reads_each_record_with_one_range_request(
    archive_env: ArchiveSite, prefect_harness: str, db: Path
) -> None:
    from newsflow.flows.backfill import backfill

    summary = backfill(**WINDOW, sources=["cc-index"], db=str(db), allow_private_networks=True)

    rows = stored(db)
    assert {row[0] for row in rows} == expected(archive_env.archive)
    assert all(row[1] == "cc-index" and row[3] > 0 and row[4] > 0 for row in rows)
    log = archive_env.requests()
    index = [str(r["path"]) for r in log if str(r["path"]).startswith("/index/")]
    assert "/index/collinfo.json" in index
    assert not any("CC-MAIN-2021-49" in p for p in index)  # a crawl outside the window is not asked
    pages = [r for r in log if "page=" in str(r["query"])]
    assert len(pages) >= 2  # five captures a page
    records = [r for r in log if str(r["path"]).startswith("/data/")]
    # One Range request per capture read: the window's and those published outside it (dropped after).
    assert len(records) == summary["new_entries"] == len(rows) + len(archive_env.archive.read_but_outside)
    assert all(r["status"] == 206 and str(r["range"]).startswith("bytes=") for r in records)
    assert summary["archives"]["cc-index"]["articles_stored"] == 11


def newsflow(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "newsflow"), *args]


def backfill_command(db: Path, *extra: str) -> list[str]:
    sites = [part for site in SITES for part in ("--site", site)]
    return newsflow(
        "backfill",
        "--since",
        str(PUBLISHED_SINCE),
        "--until",
        str(PUBLISHED_UNTIL),
        *sites,
        "--db",
        str(db),
        "--allow-private-networks",
        *extra,
    )


def command_environment(archive_site: ArchiveSite, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL", "NEWSFLOW_"))}
    return env | archive_site.environment() | extra


def test_a_backfill_killed_mid_file_resumes_at_its_last_checkpoint(
    archive_env: ArchiveSite, db: Path, tmp_path: Path
) -> None:
    from newsflow.warehouse.integrity import integrity_check

    # Files are served at 40 KB/s and chunks hold 2 pages, so the run checkpoints inside a file.
    archive_env.faults([{"prefix": "/data/crawl-data", "bytes_per_second": 40_000}])
    # The session's Prefect home: a new one costs its database's creation (some 20 s) to no purpose here.
    env = command_environment(archive_env, NEWSFLOW_BATCH_SIZE="2")
    log = tmp_path / "killed.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            backfill_command(db, "--source", "cc-news"), env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        mid_file = []
        while not mid_file and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.3)
            mid_file = [u for u in _units_if_any(db) if u[2] == "pending" and int(u[3] or 0) > 0]
        assert mid_file, f"the run never checkpointed inside a file: {log.read_text()[-3000:]}"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    (_, unit, _, resume_at) = mid_file[0]
    archive_env.faults([])
    archive_env.reset_log()
    rerun = subprocess.run(
        backfill_command(db, "--source", "cc-news"), env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    # The file it was in is read from its checkpoint on, not from the start.
    ranges = [r["range"] for r in archive_env.requests() if str(r["path"]).endswith(unit)]
    assert ranges and all(str(r).startswith("bytes=") for r in ranges)
    assert int(str(ranges[0]).removeprefix("bytes=").rstrip("-")) >= int(resume_at)
    assert {row[0] for row in stored(db)} == expected(archive_env.archive)
    assert all(u[2] == "done" for u in _units_if_any(db))
    with reader(db) as con:
        assert integrity_check(con) == []


def _units_if_any(db: Path) -> list[tuple[Any, ...]]:
    """(archive, unit, status, resume_at) of every unit, read between the writer's transactions; [] before
    the lake has them."""
    try:
        with reader(db) as con:
            return con.execute("SELECT archive, unit, status, resume_at FROM archive_units").fetchall()
    except Exception:  # noqa: BLE001 - not created yet
        return []


def test_archive_sources_need_a_site_and_say_so(archive_env: ArchiveSite, db: Path) -> None:
    done = subprocess.run(
        newsflow(
            "backfill",
            "--since",
            "2022-01-20",
            "--until",
            "2022-01-26",
            "--source",
            "wayback",
            "--db",
            str(db),
        ),
        env=command_environment(archive_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error: --source wayback needs --site DOMAIN"), done.stderr
    assert "Traceback" not in done.stderr and not db.exists()


def test_local_warc_files_are_read_as_cc_news_files(
    archive_env: ArchiveSite, prefect_harness: str, db: Path, tmp_path: Path
) -> None:
    from newsflow.flows.backfill import backfill

    archive: Archive = archive_env.archive  # type: ignore[assignment]
    files = [str(archive.root / name) for name in archive.files]
    summary = backfill(**WINDOW, warc=files, db=str(db), allow_private_networks=True)  # cc-news implied
    assert summary["archives"]["cc-news"]["units"] == len(files)
    assert {row[0] for row in stored(db)} == expected(archive)
    assert all(row[2].startswith("file:///") for row in stored(db))
    assert archive_env.requests() == []  # nothing from the network

    # The command refuses a file that is not a gzip-compressed WARC before anything runs.
    plain = tmp_path / "plain.warc"
    plain.write_bytes(b"WARC/1.1\r\nWARC-Type: warcinfo\r\n\r\n")
    env = command_environment(archive_env)
    refused = subprocess.run(
        backfill_command(db, "--warc", str(plain)), env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1 and "not a gzip-compressed WARC file" in refused.stderr, refused.stderr


def test_a_page_the_archive_fails_to_serve_fails_its_unit_and_the_next_run_gets_it(
    archive_env: ArchiveSite, prefect_harness: str, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsflow.flows.backfill import backfill

    monkeypatch.setenv("NEWSFLOW_ARCHIVE_RETRIES", "0")
    archive_env.faults([{"prefix": "/wayback/web/", "statuses": [503]}])
    first = backfill(**WINDOW, sources=["wayback"], db=str(db), allow_private_networks=True)
    wayback = first["archives"]["wayback"]
    assert wayback["not_stored"] == {"http_503": 1} and wayback["units_failed"] == 1
    assert len(stored(db)) == len(expected(archive_env.archive)) - 1  # no empty row for the page it lacks
    assert sorted(u[2] for u in units(db)) == ["done", "failed"]

    again = backfill(**WINDOW, sources=["wayback"], db=str(db), allow_private_networks=True)
    assert again["archives"]["wayback"]["units_done"] == 1 and again["articles_stored"] == 1
    assert {row[0] for row in stored(db)} == expected(archive_env.archive)
    assert all(u[2] == "done" for u in units(db))
