"""Backfills against a loopback site with a paged feed, an RFC 5005 archive, a sitemap index with a
gzipped child and a news sitemap, pages inside and outside the window."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from newsflow.errors import WarehouseError
from tests.backfill_site import SINCE, UNTIL, BackfillSite, register
from tests.conftest import REPO
from tests.lake import reader, writer


def stored_urls(db: Path) -> list[str]:
    with reader(db) as con:
        return [row[0] for row in con.execute("SELECT url FROM articles ORDER BY url").fetchall()]


def test_backfill_stores_exactly_the_window_and_repeats_as_a_no_op(
    backfill_site: BackfillSite, prefect_harness: str, db: Path
) -> None:
    from newsflow.flows.backfill import backfill

    register(db, backfill_site.site)
    backfill_site.site.reset_log()
    summary = backfill(since=SINCE, until=UNTIL, db=str(db), allow_private_networks=True)
    assert sorted(stored_urls(db)) == sorted(backfill_site.in_window)
    assert len(backfill_site.in_window) == 8
    assert (summary["chunks_total"], summary["chunks_done"], summary["articles_stored"]) == (3, 3, 8)
    assert summary["undated_skipped"] == 0 and summary["discovery_errors"] == {}
    paths = [str(r["path"]) for r in backfill_site.site.requests()]
    assert (
        "/blog/feed.xml?paged=3" in paths and "/blog/feed.xml?paged=4" not in paths
    )  # stopped at old entries
    assert "/sitemaps/old.xml" not in paths  # index lastmod before the window: never fetched
    assert not any(p in paths for p in (u.split("/", 3)[3] for u in backfill_site.out_of_window))

    again = backfill(since=SINCE, until=UNTIL, db=str(db), allow_private_networks=True)
    assert (again["chunks_already_done"], again["chunks_done"], again["articles_stored"]) == (3, 0, 0)
    assert len(stored_urls(db)) == 8


def test_backfill_from_the_warehouse_reextracts_offline(
    backfill_site: BackfillSite, prefect_harness: str, db: Path
) -> None:
    from newsflow.flows.backfill import backfill

    register(db, backfill_site.site)
    backfill(since=SINCE, until=UNTIL, db=str(db), allow_private_networks=True)
    with writer(db) as con:
        # Five articles "published" inside a new window, three outside it.
        con.execute(
            "UPDATE articles SET text = 'stale', word_count = 1, published_at = '2024-01-02 12:00:00+00'"
        )
        con.execute(
            "UPDATE articles SET published_at = '2024-01-09 12:00:00+00' WHERE article_id IN "
            "(SELECT article_id FROM articles ORDER BY article_id LIMIT 3)"
        )
    backfill_site.site.reset_log()
    summary = backfill(
        since=date(2024, 1, 1), until=date(2024, 1, 5), db=str(db), sources=["warehouse"],
        allow_private_networks=False,
    )  # fmt: skip
    assert summary["reextracted"] == 5
    assert (summary["chunks_total"], summary["chunks_done"]) == (5, 5)
    assert backfill_site.site.requests() == []  # no network at all
    with reader(db) as con:
        stale = con.execute("SELECT count(*) FROM articles WHERE text = 'stale'").fetchall()
        rich = con.execute(
            "SELECT count(*) FROM articles WHERE text <> 'stale' AND word_count >= 50"
        ).fetchall()
    assert (stale, rich) == ([(3,)], [(5,)])  # only the window's articles were re-extracted


def test_killed_backfill_resumes_with_no_duplicates(
    backfill_site: BackfillSite, prefect_harness: str, db: Path
) -> None:
    register(db, backfill_site.site)
    env = {**os.environ, "PREFECT_API_URL": prefect_harness, "NEWSFLOW_ALLOW_PRIVATE_NETWORKS": "1"}
    command = [str(Path(sys.executable).parent / "newsflow"), "backfill", "--since", str(SINCE),
               "--until", str(UNTIL), "--db", str(db), "--json"]  # fmt: skip
    first = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_at_kill = wait_for_a_done_chunk(db, first)
    first.kill()
    first.wait()
    finished = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    summary: dict[str, Any] = json.loads(finished.stdout)
    assert summary["chunks_already_done"] == done_at_kill >= 1
    assert summary["chunks_already_done"] + summary["chunks_done"] == 3
    urls = stored_urls(db)
    assert len(urls) == len(set(urls)) == 8
    assert set(urls) == backfill_site.in_window


def wait_for_a_done_chunk(db: Path, process: subprocess.Popen[bytes], timeout: float = 120) -> int:
    """Poll the warehouse (between the backfill's writes) until a chunk is done; return how many are."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if db.exists():
            try:
                with reader(db) as con:
                    rows = con.execute(
                        "SELECT count(*) FROM backfill_chunks WHERE status = 'done'"
                    ).fetchall()
            except (duckdb.Error, WarehouseError):  # the lake is being created, or not migrated yet
                rows = [(0,)]
            if rows[0][0] >= 1:
                return int(rows[0][0])
        time.sleep(0.05)
    raise AssertionError("no backfill chunk was done in time")


def test_archive_walk_stops_when_a_site_ignores_paging(site: object, settings: object) -> None:
    from newsflow.net.http import Fetcher
    from newsflow.settings import Settings
    from newsflow.tasks.discovery import Window, archived_entries
    from tests.conftest import LoopbackSite
    from tests.feedbuild import Item, write_feed

    assert isinstance(site, LoopbackSite) and isinstance(settings, Settings)
    items = [
        Item(
            f"Day {d}",
            site.url(f"/site/nopaging/{d}.html"),
            guid=f"np-{d}",
            pub_date=f"Mon, {d:02d} Sep 2023 10:00:00 GMT",
        )
        for d in (11, 12)
    ]
    write_feed(site.root / "nopaging" / "feed.xml", "No paging", items)
    with Fetcher(settings) as fetcher:
        found = archived_entries(site.url("/site/nopaging/feed.xml"), Window(SINCE, UNTIL), fetcher)
    assert len(found.entries) == 2
    assert found.documents_fetched == 2  # page 1, then "?paged=2" answered with the same page: stop
