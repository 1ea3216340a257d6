"""Backfills against a loopback site with a paged feed, an RFC 5005 archive, a sitemap index with a
gzipped child and a news sitemap, pages inside and outside the window."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import REPO, SCRAPINGHUB, LoopbackSite, shared, start_site
from tests.feedbuild import Item, rss

SINCE, UNTIL = date(2023, 9, 10), date(2023, 9, 12)


@dataclass
class BackfillSite:
    site: LoopbackSite
    in_window: set[str]  # page URLs the backfill must store
    out_of_window: set[str]


def rfc822(day: int) -> str:
    return datetime(2023, 9, day, 10, 0).strftime("%a, %d %b %Y %H:%M:%S GMT")


def atom(title: str, entries: list[tuple[str, int]], prev_archive: str | None) -> str:
    link = f'<link rel="prev-archive" href="{prev_archive}"/>' if prev_archive else ""
    body = "".join(
        f"<entry><id>tag:news,{url}</id><title>{url}</title><link href='{url}'/>"
        f"<updated>2023-09-{day:02d}T08:00:00Z</updated></entry>"
        for url, day in entries
    )
    return (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:fh="http://purl.org/syndication/history/1.0">'
        f"<title>{title}</title><id>tag:news</id><updated>2023-09-15T00:00:00Z</updated>{link}{body}</feed>"
    )


def urlset(urls: list[tuple[str, str]], news: bool = False) -> str:
    if news:
        items = "".join(
            f"<url><loc>{u}</loc><news:news><news:publication><news:name>N</news:name>"
            f"<news:language>en</news:language></news:publication><news:publication_date>{d}"
            f"</news:publication_date><news:title>T {u}</news:title></news:news></url>"
            for u, d in urls
        )
    else:
        items = "".join(f"<url><loc>{u}</loc><lastmod>{d}</lastmod></url>" for u, d in urls)
    return (
        '<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">{items}</urlset>'
    )


@pytest.fixture(scope="module")
def backfill_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackfillSite]:
    shared("scrapinghub-article-extraction-benchmark")
    root = tmp_path_factory.mktemp("backfill-site")
    process, base = start_site({"/": root})
    try:
        ids = iter(sorted(p.name.removesuffix(".html.gz") for p in (SCRAPINGHUB / "html").glob("*.html.gz")))
        (root / "pages").mkdir()

        def page(day: int, inside: set[str], outside: set[str]) -> str:
            page_id = next(ids)
            shutil.copy(SCRAPINGHUB / "html" / f"{page_id}.html.gz", root / "pages" / f"{page_id}.html.gz")
            url = f"{base}/pages/{page_id}.html"
            (inside if SINCE.day <= day <= UNTIL.day else outside).add(url)
            return url

        inside: set[str] = set()
        outside: set[str] = set()
        # A WordPress-style paged feed: ?paged=2 and ?paged=3 are older pages; ?paged=4 does not exist.
        blog = root / "blog"
        blog.mkdir()
        pages_of_feed = [[14, 13, 12], [11, 10, 9], [8, 7]]
        feed_urls: dict[int, str] = {}
        for number, days in enumerate(pages_of_feed, start=1):
            items = []
            for day in days:
                feed_urls[day] = page(day, inside, outside)
                items.append(Item(f"Blog {day}", feed_urls[day], guid=f"blog-{day}", pub_date=rfc822(day)))
            name = "feed.xml" if number == 1 else f"feed.xml?paged={number}"
            (blog / name).write_text(rss("Blog", items))
        # An RFC 5005 archived Atom feed: current -> archive-2 -> archive-1.
        news = root / "news"
        news.mkdir()
        (news / "atom.xml").write_text(atom("News", [(page(15, inside, outside), 15)], "archive-2.xml"))
        (news / "archive-2.xml").write_text(
            atom("News", [(page(12, inside, outside), 12), (page(11, inside, outside), 11)], "archive-1.xml")
        )
        (news / "archive-1.xml").write_text(atom("News", [(page(5, inside, outside), 5)], None))
        # Sitemaps: robots.txt -> index -> gzipped posts sitemap, news sitemap, and an old one never read.
        maps = root / "sitemaps"
        maps.mkdir()
        posts = [
            (page(10, inside, outside), "2023-09-10"),
            (page(20, inside, outside), "2023-09-20T12:00:00+00:00"),
            (page(11, inside, outside), "2023-09-11T23:30:00-02:00"),  # 2023-09-12 01:30 UTC: inside
            (feed_urls[12], "2023-09-12"),  # also in the blog feed: one article
        ]
        (maps / "posts.xml.gz").write_bytes(gzip.compress(urlset(posts).encode()))
        news_items = [
            (page(12, inside, outside), "2023-09-12T06:00:00Z"),
            (page(1, inside, outside), "2023-09-01"),
        ]
        (maps / "news.xml").write_text(urlset(news_items, news=True))
        (maps / "old.xml").write_text(urlset([(f"{base}/pages/never.html", "2023-09-11")]))
        (root / "sitemap_index.xml").write_text(
            '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{base}/sitemaps/posts.xml.gz</loc><lastmod>2023-09-30</lastmod></sitemap>"
            f"<sitemap><loc>{base}/sitemaps/news.xml</loc></sitemap>"
            f"<sitemap><loc>{base}/sitemaps/old.xml</loc><lastmod>2023-07-01</lastmod></sitemap>"
            "</sitemapindex>"
        )
        (root / "robots.txt").write_text(f"User-agent: *\nAllow: /\nSitemap: {base}/sitemap_index.xml\n")
        yield BackfillSite(LoopbackSite(base, root), inside, outside)
    finally:
        process.terminate()
        process.wait(timeout=10)


def register(db: Path, site: LoopbackSite) -> None:
    from newsflow.records import FeedSpec
    from tasks.http import utcnow
    from warehouse import feeds as feeds_table
    from warehouse.connection import writer

    with writer(db) as con:
        feeds_table.add_feeds(
            con, [FeedSpec(site.url("/blog/feed.xml")), FeedSpec(site.url("/news/atom.xml"))], utcnow()
        )


def stored_urls(db: Path) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [row[0] for row in con.execute("SELECT url FROM articles ORDER BY url").fetchall()]


def test_backfill_stores_exactly_the_window_and_repeats_as_a_no_op(
    backfill_site: BackfillSite, prefect_harness: str, db: Path
) -> None:
    from flows.backfill import backfill

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
    from flows.backfill import backfill

    register(db, backfill_site.site)
    backfill(since=SINCE, until=UNTIL, db=str(db), allow_private_networks=True)
    with duckdb.connect(str(db)) as con:
        # Five articles "published" inside a new window, three outside it.
        con.execute("UPDATE articles SET text = 'stale', word_count = 1, published_at = '2024-01-02 12:00Z'")
        con.execute(
            "UPDATE articles SET published_at = '2024-01-09 12:00Z' WHERE article_id IN "
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
    with duckdb.connect(str(db), read_only=True) as con:
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
    from warehouse.connection import connect

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if db.exists():
            try:
                con = connect(db, read_only=True, lock_timeout=0)
            except Exception:  # noqa: BLE001 - locked by the writer right now, or not migrated yet
                time.sleep(0.05)
                continue
            try:
                rows = con.execute("SELECT count(*) FROM backfill_chunks WHERE status = 'done'").fetchall()
            except duckdb.CatalogException:
                rows = [(0,)]
            finally:
                con.close()
            if rows[0][0] >= 1:
                return int(rows[0][0])
        time.sleep(0.05)
    raise AssertionError("no backfill chunk was done in time")
