"""Fault injection: one ingest over a hostile loopback site mixed with good feeds, and every shared feed file
through the parser. Each bad case must end as its own recorded reason, the good feeds stored completely,
and the run bounded in time."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pytest

# Imported at collection: trafilatura's first import warns about urllib3's SOCKS support, and warnings are
# errors inside tests.
from newsflow.flows.ingest import ingest
from tests.conftest import REPO, LoopbackSite, shared
from tests.feedbuild import Item, benchmark_pages, write_feed
from tests.hostile_site import FEED_CASES, PAGE_CASES
from tests.lake import reader

GOOD_FEEDS = 2
PAGES_PER_GOOD_FEED = 6
#: Wall time allowed for the hostile run: its slowest cases are cut at the 3 s total timeout, twice.
MAX_RUN_SECONDS = 60
SHARED_FEED_FOLDERS = (
    "feedparser-tests",
    "node-feedparser-test-feeds",
    "rss-parser-test-input",
    "feedjira-sample-feeds",
    "kagi-fastfeedparser-real-feeds",
)
#: Shared feed files that yield entries, measured on 2026-11-25: 1,502 of 2,432 files.
MIN_SHARED_FEEDS_WITH_ENTRIES = 1500
SAMPLE_THROUGH_INGEST = 30


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    """The hostile site, as its own process; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "hostile_site.py")], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    base = process.stdout.readline().strip()
    try:
        assert base.startswith("http://127.0.0.1:"), base
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def env() -> Iterator[pytest.MonkeyPatch]:
    """Short timeouts, one retry, enough connections for every slow case to run side by side."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "CONNECT_TIMEOUT": "1",
            "READ_TIMEOUT": "2",  # over the 1 s between trickled bytes: only the total timeout cuts those
            "TOTAL_TIMEOUT": "3",
            "RETRIES": "1",
            "RETRY_BACKOFF": "0.05",
            "MAX_RETRY_AFTER": "2",
            "PER_HOST_CONNECTIONS": "16",
        }.items():
            patch.setenv(f"NEWSFLOW_{name}", value)
        yield patch


def free_port() -> int:
    """A loopback port where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with reader(db) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture(scope="module")
def hostile_run(
    hostile: str,
    site: LoopbackSite,
    prefect_harness: str,
    env: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    shared("scrapinghub-article-extraction-benchmark")
    ids = sorted(benchmark_pages())[100 : 100 + GOOD_FEEDS * PAGES_PER_GOOD_FEED]
    good: dict[str, list[str]] = {}
    for number in range(GOOD_FEEDS):
        chunk = ids[number * PAGES_PER_GOOD_FEED : (number + 1) * PAGES_PER_GOOD_FEED]
        path = site.root / "hostile-good" / f"good{number}.xml"
        write_feed(
            path, f"Good {number}", [Item(f"Story {i}", site.url(f"/pages/{i}.html"), guid=i) for i in chunk]
        )
        good[site.url(f"/site/hostile-good/good{number}.xml")] = chunk
    port = hostile.rsplit(":", 1)[1]
    expected = {hostile + case.path: case.reason for case in FEED_CASES}
    expected[f"http://127.0.0.1:{free_port()}/feed.xml"] = "connect_error"
    # 0.0.0.0 reaches this host on Linux: refused like the metadata address, private networks or not.
    expected[f"{hostile}/redirect?to=http://0.0.0.0:{port}/feed/good"] = "blocked_address"
    expected |= dict.fromkeys(good, "ok")
    feeds_file = tmp_path_factory.mktemp("hostile") / "feeds.toml"
    feeds_file.write_text("".join(f'[[feeds]]\nurl = "{url}"\n\n' for url in expected))
    db = tmp_path_factory.mktemp("hostile-wh") / "news.duckdb"
    started = time.monotonic()
    summary = ingest(
        feeds_file=str(feeds_file),
        db=str(db),
        allow_private_networks=True,
        batch_size=10,
        extraction_workers=2,
    )
    elapsed = time.monotonic() - started
    print(f"\nhostile run: {len(expected)} feeds, {len(PAGE_CASES)} hostile pages, {elapsed:.1f} s")
    return {
        "db": db,
        "summary": summary,
        "expected": expected,
        "good": good,
        "base": hostile,
        "elapsed": elapsed,
    }


def test_run_is_bounded_in_time(hostile_run: dict[str, Any]) -> None:
    assert hostile_run["summary"]["status"] == "completed"
    assert hostile_run["elapsed"] < MAX_RUN_SECONDS


def test_every_feed_case_is_recorded_with_its_reason(hostile_run: dict[str, Any]) -> None:
    rows = query(hostile_run["db"], "SELECT feed_url, status, error_kind, bozo FROM polls")
    got = {
        url: (error_kind if status == "error" else "ok_bozo" if bozo else "ok")
        for url, status, error_kind, bozo in rows
    }
    assert got == hostile_run["expected"]
    failures = Counter(r for r in hostile_run["expected"].values() if not r.startswith("ok"))
    assert hostile_run["summary"]["feed_errors"] == dict(failures)
    assert hostile_run["summary"]["feeds_malformed_but_used"] == list(got.values()).count("ok_bozo")


def test_retry_after_is_recorded(hostile_run: dict[str, Any]) -> None:
    rows = dict(
        query(hostile_run["db"], "SELECT feed_url, retry_after FROM polls WHERE retry_after IS NOT NULL")
    )
    base = hostile_run["base"]
    assert rows == {f"{base}/status/503?retry_after=1": 1.0, f"{base}/status/429?retry_after=3600": 3600.0}


def test_good_feeds_are_stored_completely(hostile_run: dict[str, Any]) -> None:
    for feed_url, ids in hostile_run["good"].items():
        rows = query(
            hostile_run["db"],
            "SELECT guid, content_source, fetch_error, word_count FROM articles"
            " WHERE feed_url = ? ORDER BY 1",
            [feed_url],
        )
        assert [r[0] for r in rows] == sorted(ids)
        assert all(source == "page" and error is None and words > 50 for _, source, error, words in rows)
    stored_pages = query(
        hostile_run["db"],
        "SELECT count(*) FROM raw_pages JOIN articles USING (article_id) WHERE list_contains(?, feed_url)",
        [list(hostile_run["good"])],
    )
    assert stored_pages == [(GOOD_FEEDS * PAGES_PER_GOOD_FEED,)]


def test_every_page_case_is_recorded_with_its_reason(hostile_run: dict[str, Any]) -> None:
    rows = query(
        hostile_run["db"],
        "SELECT guid, content_source, fetch_error, extraction_error FROM articles"
        " WHERE guid LIKE 'urn:hostile-page:%'",
    )
    got = {}
    for guid, source, fetch_error, extraction_error in rows:
        name = guid.removeprefix("urn:hostile-page:")
        got[name] = (
            fetch_error or (extraction_error or "").split(":")[0] or ("ok" if source == "page" else source)
        )
        if got[name] != "ok":  # the feed's summary stands in for a page that failed
            assert source == "feed_summary", (name, source)
    assert got == PAGE_CASES
    counts = hostile_run["summary"]
    assert counts["extraction_errors"] == dict(
        Counter(r for r in PAGE_CASES.values() if r in ("empty_page", "no_main_text", "too_complex"))
    )


def test_entry_normalisation_cases(hostile_run: dict[str, Any]) -> None:
    db, base = hostile_run["db"], hostile_run["base"]

    def of(feed: str) -> list[tuple[Any, ...]]:
        return query(
            db,
            "SELECT title, url, guid, fetch_error, duplicate_of IS NOT NULL, dup_reason, published_at,"
            " date_clamped, content_source FROM articles WHERE feed_url = ? ORDER BY url, title",
            [f"{base}/feed/{feed}"],
        )

    # Entries with neither link nor guid are two rows, not one: each gets a guid from its text.
    no_links = of("no-links")
    assert [(r[0], r[3], r[8]) for r in no_links] == [
        ("No link or guid A", "no_link", "feed_summary"),
        ("No link or guid B", "no_link", "feed_summary"),
    ]
    assert len({r[2] for r in no_links}) == 2
    # The second entry with a repeated guid is stored, marked as a copy of the first.
    assert [(r[1], r[4], r[5]) for r in of("dup-guids")] == [
        (f"{base}/page/article?n=10", True, "guid"),
        (f"{base}/page/article?n=9", False, None),
    ]
    [(_, url, *_rest, source)] = of("relative")
    assert url == f"{base}/page/article?n=11" and source == "page"
    future, tokyo, garbage = ((r[6], r[7]) for r in of("dates"))  # n=12, 13, 14
    assert future[1] is True and future[0] < datetime.now(UTC) + timedelta(minutes=5)
    assert tokyo == (datetime(2024, 1, 1, 0, 0, tzinfo=UTC), False)
    assert garbage == (None, False)
    [(_, url, *_rest, source)] = of("javascript")
    assert url is None and _rest[1] == "no_link"
    summary = query(db, "SELECT summary FROM articles WHERE feed_url = ?", [f"{base}/feed/wrong-encoding"])
    assert summary == [("Café crème",)]
    latin1 = query(db, "SELECT text FROM articles WHERE guid = 'urn:hostile-page:latin1-meta'")[0][0]
    assert "Café crème" in latin1 and "crème brûlée" in latin1


def test_nothing_hostile_leaks_into_the_warehouse(hostile_run: dict[str, Any]) -> None:
    db = hostile_run["db"]
    # No local file content (XXE / external DTD), no blown-up entity expansion.
    assert query(db, "SELECT count(*) FROM articles WHERE text LIKE '%root:%' OR title LIKE '%root:%'") == [
        (0,)
    ]
    assert query(db, "SELECT max(length(title)), max(length(text)) FROM articles")[0][0] < 1_000
    # Every stored row is distinct: no article twice, and only real duplicates marked.
    assert query(db, "SELECT count(*) - count(DISTINCT article_id) FROM articles") == [(0,)]


# Shared feed files ---------------------------------------------------------------------------------------


def shared_feed_files() -> list[Path]:
    files = []
    for folder in SHARED_FEED_FOLDERS:
        files += sorted(
            p for p in shared(folder).rglob("*") if p.is_file() and p.suffix not in (".md", ".csv")
        )
    return files


def _parse_one(path: str) -> tuple[str, str, int]:
    """(file, outcome, entries): outcome is "ok" or a FeedParseError reason; anything else propagates."""
    from newsflow.errors import FeedParseError
    from newsflow.net.feeds import parse_feed

    file = Path(path)
    content = file.read_bytes()
    name = file.name
    if file.suffix == ".gz":  # served as Content-Encoding: gzip, decoded by the client
        content, name = gzip.decompress(content), file.stem
    content_type = {".json": "application/feed+json", ".html": "text/html"}.get(
        Path(name).suffix, "application/xml"
    )
    try:
        parsed = parse_feed(
            content,
            feed_url=f"http://127.0.0.1:1/{name}",
            headers={"content-type": content_type},
            now=datetime.now(UTC),
            future_tolerance=timedelta(minutes=10),
        )
    except FeedParseError as exc:
        return path, exc.reason, 0
    return path, "ok", len(parsed.entries)


def test_every_shared_feed_file_parses_or_fails_cleanly() -> None:
    files = shared_feed_files()
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_parse_one, [str(f) for f in files], chunksize=32))
    outcomes = Counter(outcome for _, outcome, _ in results)
    with_entries = sum(1 for _, _, entries in results if entries)
    print(
        f"\nshared feed files: {len(files)} parsed, {with_entries} yield entries, outcomes {dict(outcomes)}"
    )
    assert len(results) == len(files) > 2_000
    assert with_entries >= MIN_SHARED_FEEDS_WITH_ENTRIES


def test_sample_of_shared_feeds_through_a_real_ingest(
    site: LoopbackSite, prefect_harness: str, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("NEWSFLOW_RESPECT_ROBOTS", "false")  # their links point off this machine: fail fast, no robots
    sample = random.Random(5).sample(shared_feed_files(), SAMPLE_THROUGH_INGEST)
    folder = site.root / "shared-sample"
    urls = []
    for number, file in enumerate(sample):
        target = folder / f"{number}-{file.name}"  # X.gz is served at X, gzip-encoded
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, target)
        urls.append(site.url(f"/site/shared-sample/{target.name.removesuffix('.gz')}"))
    feeds_file = tmp_path / "feeds.toml"
    feeds_file.write_text("".join(f'[[feeds]]\nurl = "{url}"\n\n' for url in urls))
    db = tmp_path / "sample.ducklake"
    summary = ingest(feeds_file=str(feeds_file), db=str(db), allow_private_networks=True, batch_size=200)
    print(
        f"\nshared sample through ingest: {summary['feeds_ok']} of {SAMPLE_THROUGH_INGEST} feeds ok, "
        f"{summary['articles_stored']} articles, errors {summary['feed_errors']}"
    )
    assert summary["status"] == "completed"
    assert summary["feeds_polled"] == SAMPLE_THROUGH_INGEST
    assert "internal_error" not in summary["feed_errors"]
    assert summary["batches_failed"] == 0
    assert summary["articles_stored"] == summary["new_entries"]
    assert query(db, "SELECT count(*) FROM articles") == [(summary["new_entries"],)]


# The HTTP layer alone ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/trickle-headers", "/trickle"])
def test_total_timeout_cuts_a_trickling_server(hostile: str, path: str) -> None:
    from newsflow.errors import TransientFetchError
    from newsflow.net.http import Fetcher
    from newsflow.settings import load_settings

    settings = load_settings(allow_private_networks=True, read_timeout=5, total_timeout=1.5, retries=0)
    started = time.monotonic()
    with Fetcher(settings) as fetcher, pytest.raises(TransientFetchError) as info:
        fetcher.get(hostile + path, max_bytes=10_000_000)
    assert info.value.reason == "timeout" and "1.5 s in all" in str(info.value)
    assert 1.4 < time.monotonic() - started < 2.5  # one byte a second never trips the 5 s read timeout


@pytest.mark.parametrize(
    ("url", "allow_private"),
    [
        ("http://10.0.0.1:9/feed.xml", False),
        ("http://169.254.169.254/latest/meta-data/", True),
        ("http://2852039166/latest/meta-data/", True),  # 169.254.169.254 as one number
        ("http://[fe80::1]:9/", True),
        ("http://0.0.0.0:9/", True),
        ("http://224.0.0.1:9/", True),
    ],
)
def test_guard_refuses_before_connecting(url: str, allow_private: bool) -> None:
    from newsflow.errors import BlockedAddressError
    from newsflow.net.http import Fetcher
    from newsflow.settings import load_settings

    settings = load_settings(allow_private_networks=allow_private, connect_timeout=5, retries=3)
    started = time.monotonic()
    with Fetcher(settings) as fetcher, pytest.raises(BlockedAddressError) as info:
        fetcher.get(url, max_bytes=10_000)
    assert info.value.reason == "blocked_address"
    assert time.monotonic() - started < 0.5  # no connect attempt, no retry: refused on the address alone
