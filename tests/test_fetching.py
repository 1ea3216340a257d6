"""Fetching article pages from the loopback site: politeness, outcomes, and the link fetched verbatim."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from newsflow.net.http import Fetcher
from newsflow.net.urls import canonical_url
from newsflow.records import FeedEntry, PlannedEntry
from newsflow.settings import Settings
from newsflow.stories.dedupe import article_id
from newsflow.tasks.fetching import fetch_page
from tests.conftest import LoopbackSite


@pytest.fixture
def fetcher(settings: Settings) -> Iterator[Fetcher]:
    with Fetcher(settings) as fetcher:
        yield fetcher


@pytest.fixture(scope="module", autouse=True)
def pages(site: LoopbackSite) -> None:
    folder = site.root / "fetching"
    (folder / "private").mkdir(parents=True, exist_ok=True)
    (folder / "story.html").write_text("<html><body><article><p>Hello there.</p></article></body></html>")
    (folder / "article;jsessionid=ABC.html").write_text("<html><body><p>Session page.</p></body></html>")
    (folder / "private" / "secret.html").write_text("<html><body><p>Secret.</p></body></html>")
    (folder / "data.json").write_text('{"not": "html"}')
    (site.root / "_root" / "robots.txt").write_text("User-agent: *\nDisallow: /site/fetching/private/\n")


def planned(link: str | None, fetch: bool = True) -> PlannedEntry:
    entry = FeedEntry(feed_url="http://feed.example/rss", guid=None, link=link, title="t")
    url = canonical_url(link)
    return PlannedEntry(
        entry, article_id(None, url), None, url, fetch=fetch, skip_reason=None if fetch else "known_url"
    )


def test_page_is_fetched(fetcher: Fetcher, site: LoopbackSite) -> None:
    page = fetch_page(planned(site.url("/site/fetching/story.html?utm_source=x")), fetcher)
    assert page.error_kind is None
    assert page.http_status == 200 and page.content_type == "text/html"
    assert page.html is not None and b"Hello there." in page.html


def test_link_is_fetched_as_the_feed_gave_it(fetcher: Fetcher, site: LoopbackSite) -> None:
    link = site.url("/site/fetching/article;jsessionid=ABC.html")
    site.reset_log()
    page = fetch_page(planned(link), fetcher)
    assert page.error_kind is None, page.error_message
    assert [r["path"] for r in site.requests() if "jsessionid" in str(r["path"])] == [
        "/site/fetching/article;jsessionid=ABC.html"
    ]


def test_robots_txt_is_obeyed(fetcher: Fetcher, site: LoopbackSite) -> None:
    site.reset_log()
    page = fetch_page(planned(site.url("/site/fetching/private/secret.html")), fetcher)
    assert page.error_kind == "robots_disallowed" and page.html is None
    assert [r["path"] for r in site.requests()] == ["/robots.txt"]


def test_robots_can_be_switched_off(settings: Settings, site: LoopbackSite) -> None:
    with Fetcher(settings.merged(respect_robots=False)) as fetcher:
        page = fetch_page(planned(site.url("/site/fetching/private/secret.html")), fetcher)
    assert page.error_kind is None


@pytest.mark.parametrize(
    ("path", "kind", "status"),
    [
        ("/site/fetching/missing.html", "http_404", 404),
        ("/site/fetching/data.json", "not_html", 200),
        ("/_status/410", "http_410", 410),
    ],
)
def test_unusable_pages_say_why(
    fetcher: Fetcher, site: LoopbackSite, path: str, kind: str, status: int
) -> None:
    page = fetch_page(planned(site.url(path)), fetcher)
    assert (page.error_kind, page.http_status, page.html) == (kind, status, None)


def test_known_url_is_not_fetched(fetcher: Fetcher, site: LoopbackSite) -> None:
    site.reset_log()
    page = fetch_page(planned(site.url("/site/fetching/story.html"), fetch=False), fetcher)
    assert page.error_kind == "known_url"
    assert site.requests() == []


def test_entry_without_link(fetcher: Fetcher) -> None:
    assert fetch_page(planned(None), fetcher).error_kind == "no_link"
