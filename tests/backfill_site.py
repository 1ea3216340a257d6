"""A loopback site for backfills: a WordPress-style paged feed, an RFC 5005 archived Atom feed, robots.txt
pointing at a sitemap index with a gzipped child, a news sitemap and an old sitemap, and real article pages
inside and outside the window SINCE..UNTIL."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from tests.conftest import SCRAPINGHUB, LoopbackSite, start_site
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


@contextmanager
def running_backfill_site(root: Path) -> Iterator[BackfillSite]:
    """Write the site under ``root`` and serve it from its own loopback server process."""
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
    from newsflow.clock import utcnow
    from newsflow.records import FeedSpec
    from newsflow.warehouse import feeds as feeds_table
    from tests.lake import writer

    with writer(db) as con:
        feeds_table.add_feeds(
            con, [FeedSpec(site.url("/blog/feed.xml")), FeedSpec(site.url("/news/atom.xml"))], utcnow()
        )
