"""Finding the articles of a past period: archived and paged feeds, and sitemaps.

- Archived feeds: RFC 5005 ``prev-archive`` links and paged feeds (``next`` links, or WordPress's
  ``?paged=N``), followed page by page until a page's entries are all older than the window.
- Sitemaps: ``Sitemap:`` lines of robots.txt (else ``/sitemap.xml``), sitemap indexes, gzipped sitemaps and
  Google News sitemaps; URLs are kept when their publication date (news) or ``lastmod`` is in the window.
Every fetch goes through the same :class:`Fetcher` as ingestion: network policy, size caps, per-host limits.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from lxml import etree
from prefect import task
from prefect.cache_policies import NO_CACHE

from newsflow.clock import parse_iso_utc, utcnow
from newsflow.errors import FeedParseError, FetchError
from newsflow.net.feeds import ParsedFeed, parse_feed
from newsflow.net.http import Fetcher, shared_fetcher
from newsflow.records import FeedEntry
from newsflow.settings import Settings

MAX_ARCHIVE_PAGES = 500
MAX_SITEMAPS = 1000
SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
NEWS_NS = "{http://www.google.com/schemas/sitemap-news/0.9}"
_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class Window:
    """Whole days from ``since`` to ``until``, both included, in UTC."""

    since: date
    until: date

    @property
    def start(self) -> datetime:
        return datetime(self.since.year, self.since.month, self.since.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime(self.until.year, self.until.month, self.until.day, tzinfo=UTC) + timedelta(days=1)

    def contains(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


@dataclass
class Discovery:
    """What one discovery found: in-window entries, and what it fetched and could not use."""

    entries: list[FeedEntry] = field(default_factory=list)
    documents_fetched: int = 0
    undated: int = 0
    errors: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ archived feeds


def archived_entries(feed_url: str, window: Window, fetcher: Fetcher) -> Discovery:
    """In-window entries of a feed and its archive/previous pages."""
    found = Discovery()
    url: str | None = feed_url
    seen: set[str] = set()
    known_entries: set[tuple[str | None, str | None]] = set()
    page_number = 1
    while url and url not in seen and found.documents_fetched < MAX_ARCHIVE_PAGES:
        seen.add(url)
        parsed = _fetch_feed(url, fetcher, found)
        if parsed is None or not parsed.entries:
            break
        keys = {(e.guid, e.link) for e in parsed.entries}
        if keys <= known_entries:
            break  # a site that ignores ?paged=N answers with the same page: nothing older to find
        known_entries |= keys
        found.entries += [e for e in parsed.entries if window.contains(_entry_date(e))]
        found.undated += sum(1 for e in parsed.entries if _entry_date(e) is None)
        dated = [d for e in parsed.entries if (d := _entry_date(e)) is not None]
        if dated and max(dated) < window.start:
            break  # this page and every older one lie before the window
        page_number += 1
        links = parsed.links
        url = links.get("prev-archive") or links.get("next") or _wordpress_page(feed_url, page_number)
    return found


def _fetch_feed(url: str, fetcher: Fetcher, found: Discovery) -> ParsedFeed | None:
    try:
        response = fetcher.get(url, max_bytes=fetcher.settings.max_feed_bytes)
    except FetchError as exc:
        found.errors.append(f"{exc.reason}: {exc}")
        return None
    found.documents_fetched += 1
    if response.status != 200:
        if response.status != 404:  # a 404 is the normal end of a paged feed
            found.errors.append(f"http_{response.status}: {url}")
        return None
    try:
        return parse_feed(
            response.content,
            feed_url=url,
            headers=response.headers,
            now=utcnow(),
            future_tolerance=timedelta(seconds=fetcher.settings.future_tolerance),
        )
    except FeedParseError as exc:
        found.errors.append(f"{exc.reason}: {exc}")
        return None


def _wordpress_page(feed_url: str, number: int) -> str:
    """``feed_url`` with ``paged=number`` in its query, as WordPress pages its feeds."""
    parts = urlsplit(feed_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "paged"] + [("paged", str(number))]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def _entry_date(entry: FeedEntry) -> datetime | None:
    return entry.published_at or entry.updated_at


# ------------------------------------------------------------------------------------------------ sitemaps


def sitemap_entries(origin: str, window: Window, fetcher: Fetcher) -> Discovery:
    """In-window URLs of a site's sitemaps (robots.txt ``Sitemap:`` lines, else ``/sitemap.xml``)."""
    found = Discovery()
    queue = fetcher.sitemaps_of(origin) or [origin.rstrip("/") + "/sitemap.xml"]
    seen: set[str] = set()
    while queue and len(seen) < MAX_SITEMAPS:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        root = _fetch_xml(url, fetcher, found)
        if root is None:
            continue
        if root.tag == SITEMAP_NS + "sitemapindex":
            queue += _index_children(root, url, window)
        elif root.tag == SITEMAP_NS + "urlset":
            _collect_urls(root, url, window, found)
        else:
            found.errors.append(f"not_a_sitemap: {url} ({root.tag})")
    return found


def _fetch_xml(url: str, fetcher: Fetcher, found: Discovery) -> etree._Element | None:
    limit = fetcher.settings.max_feed_bytes
    try:
        response = fetcher.get(url, max_bytes=limit)
    except FetchError as exc:
        found.errors.append(f"{exc.reason}: {exc}")
        return None
    found.documents_fetched += 1
    if response.status != 200:
        found.errors.append(f"http_{response.status}: {url}")
        return None
    body = response.content
    if body[:2] == b"\x1f\x8b":  # a .xml.gz file served as it is
        try:
            body = _gunzip_capped(body, limit)
        except (OSError, zlib.error, ValueError) as exc:
            found.errors.append(f"bad_gzip: {url}: {exc}")
            return None
    try:
        return etree.fromstring(body, _SAFE_XML)
    except etree.XMLSyntaxError as exc:
        found.errors.append(f"malformed: {url}: {exc}")
        return None


def _gunzip_capped(body: bytes, limit: int) -> bytes:
    """Gunzip at most ``limit`` bytes: a gzip bomb is refused, not inflated."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise ValueError(f"inflates past the {limit}-byte cap")
    return out


def _index_children(root: etree._Element, url: str, window: Window) -> list[str]:
    """Child sitemaps of an index, skipping those last modified before the window began."""
    children = []
    for node in root.iter(SITEMAP_NS + "sitemap"):
        loc = _child_text(node, SITEMAP_NS + "loc")
        modified = _w3c_datetime(_child_text(node, SITEMAP_NS + "lastmod"))
        if loc and (modified is None or modified >= window.start):
            children.append(urljoin(url, loc))
    return children


def _collect_urls(root: etree._Element, url: str, window: Window, found: Discovery) -> None:
    for node in root.iter(SITEMAP_NS + "url"):
        loc = _child_text(node, SITEMAP_NS + "loc")
        if not loc:
            continue
        news = node.find(NEWS_NS + "news")
        published = _child_text(news, NEWS_NS + "publication_date")
        moment = _w3c_datetime(published) or _w3c_datetime(_child_text(node, SITEMAP_NS + "lastmod"))
        if moment is None:
            found.undated += 1
        elif window.contains(moment):
            title = _child_text(news, NEWS_NS + "title") if news is not None else None
            found.entries.append(
                FeedEntry(feed_url=url, guid=None, link=urljoin(url, loc), title=title, published_at=moment)
            )


def _child_text(node: etree._Element | None, tag: str) -> str | None:
    if node is None:
        return None
    child = node.find(tag)
    text = child.text.strip() if child is not None and child.text else ""
    return text or None


def _w3c_datetime(value: str | None) -> datetime | None:
    """A W3C datetime (``2023-09-25``, ``2023-09-25T10:00:00+02:00``, ``...Z``) in UTC."""
    return parse_iso_utc(value) if value else None


# ----------------------------------------------------------------------------------------------- tasks


@task(name="discover-feed-archive", cache_policy=NO_CACHE)
def discover_feed_archive(feed_url: str, since: date, until: date, settings: Settings) -> Discovery:
    """Prefect task: :func:`archived_entries` of one feed."""
    return archived_entries(feed_url, Window(since, until), shared_fetcher(settings))


@task(name="discover-sitemaps", cache_policy=NO_CACHE)
def discover_sitemaps(origin: str, since: date, until: date, settings: Settings) -> Discovery:
    """Prefect task: :func:`sitemap_entries` of one site."""
    return sitemap_entries(origin, Window(since, until), shared_fetcher(settings))
