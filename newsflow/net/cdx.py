"""The archives' capture indexes: the Wayback Machine's CDX API and Common Crawl's URL index.

- Wayback: ``cdx/search/cdx?url=DOMAIN&matchType=domain&from=..&to=..&filter=statuscode:200&filter=
  mimetype:text/html&collapse=urlkey&output=json&showResumeKey=true&limit=N``, paged by ``resumeKey``
  (the JSON ends with an empty row and the key). A capture's raw page is ``web/<timestamp>id_/<url>``.
- Common Crawl: ``collinfo.json`` lists the crawls; ``<crawl>-index?url=DOMAIN&matchType=domain&output=
  json`` answers one JSON object per line (``filename``, ``offset``, ``length`` of the capture's WARC
  record), paged by ``page`` (``showNumPages=true`` says how many).

Both are queried in the archive client's index pace. Every capture is checked again here (host, status,
type, time): an index may hold what its filters did not catch.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from newsflow.errors import FetchError
from newsflow.net.archive import ArchiveClient, RequestKind
from newsflow.net.http import HTML_TYPES
from newsflow.net.urls import SiteMatcher
from newsflow.records import Archive, Capture

#: Rows asked for per Wayback CDX request (one request of the index pace each).
CDX_PAGE_ROWS = 5000
INDEX_MAX_BYTES = 50_000_000


@dataclass(frozen=True)
class IndexedCapture:
    """A capture an index lists: the page's original URL, and where the archive holds it."""

    url: str
    capture: Capture


@dataclass
class IndexPage:
    """One answer of an index: its usable captures, and where the next answer starts (None: the query is
    done)."""

    captures: list[IndexedCapture]
    next_cursor: str | None
    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def timestamp14(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def parse_timestamp(value: str) -> datetime | None:
    """A 1-14 digit archive timestamp (``2023``, ``20230925101500``) in UTC; None if it is not one."""
    digits = value.strip()
    if not digits.isdigit() or not 4 <= len(digits) <= 14:
        return None
    padded = digits + "0101000000"[len(digits) - 4 :] if len(digits) < 14 else digits
    try:
        return datetime.strptime(padded, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class CaptureQuery:
    """What an index is asked for: one site's captures in [start, end)."""

    site: str  # a domain
    start: datetime
    end: datetime

    @cached_property
    def sites(self) -> SiteMatcher:
        return SiteMatcher([self.site])

    def keep(self, url: str, captured_at: datetime | None, status: str, mime: str, page: IndexPage) -> bool:
        """Whether a listed capture is usable; if not, why is counted on ``page``."""
        if not self.sites.matches(url):
            page.skipped["other_hosts"] += 1
        elif captured_at is None or not self.start <= captured_at < self.end:
            page.skipped["outside_window"] += 1
        elif status.strip() != "200":
            page.skipped["not_ok"] += 1
        elif mime.split(";")[0].strip().lower() not in HTML_TYPES:
            page.skipped["not_html"] += 1
        else:
            return True
        return False


# ------------------------------------------------------------------------------------------------ Wayback


def wayback_pages(
    client: ArchiveClient, wayback_url: str, query: CaptureQuery, resume_key: str | None = None
) -> Iterator[IndexPage]:
    """The site's HTML captures with status 200 in the window, one CDX answer at a time (one capture per
    URL), from ``resume_key`` on."""
    base = wayback_url.rstrip("/")
    while True:
        params: list[tuple[str, str]] = [
            ("url", query.site), ("matchType", "domain"),
            ("from", timestamp14(query.start)), ("to", timestamp14(query.end - timedelta(seconds=1))),
            ("filter", "statuscode:200"), ("filter", "mimetype:text/html"), ("collapse", "urlkey"),
            ("output", "json"), ("showResumeKey", "true"), ("limit", str(CDX_PAGE_ROWS)),
        ]  # fmt: skip
        if resume_key:
            params.append(("resumeKey", resume_key))
        url = f"{base}/cdx/search/cdx?{urlencode(params)}"
        rows = _json_answer(client, url)
        page = _wayback_page(rows if isinstance(rows, list) else [], base, query)
        yield page
        if page.next_cursor is None:
            return
        resume_key = page.next_cursor


def _wayback_page(rows: list[Any], base: str, query: CaptureQuery) -> IndexPage:
    resume_key = None
    if len(rows) >= 2 and rows[-2] == [] and isinstance(rows[-1], list) and rows[-1]:
        resume_key, rows = str(rows[-1][0]), rows[:-2]
    page = IndexPage([], resume_key)
    if not rows:
        return page
    names = [str(name) for name in rows[0]]
    for row in rows[1:]:
        if not isinstance(row, list) or len(row) != len(names):
            page.skipped["malformed"] += 1
            continue
        fields = dict(zip(names, (str(v) for v in row), strict=True))
        page.rows += 1
        original, stamp = fields.get("original", ""), fields.get("timestamp", "")
        captured_at = parse_timestamp(stamp)
        if query.keep(original, captured_at, fields.get("statuscode", ""), fields.get("mimetype", ""), page):
            assert captured_at is not None
            replay = f"{base}/web/{stamp}id_/{original}"
            page.captures.append(IndexedCapture(original, Capture(Archive.WAYBACK, replay, captured_at)))
    return page


# ------------------------------------------------------------------------------------------ Common Crawl


@dataclass(frozen=True)
class Crawl:
    """One of Common Crawl's main crawls and the time its captures span."""

    crawl_id: str
    start: datetime
    end: datetime


def cc_crawls(client: ArchiveClient, index_url: str, start: datetime, end: datetime) -> list[Crawl]:
    """The crawls of ``collinfo.json`` whose captures overlap [start, end), oldest first."""
    listed = _json_answer(client, f"{index_url.rstrip('/')}/collinfo.json")
    crawls = []
    for item in listed if isinstance(listed, list) else []:
        crawl = _crawl(item)
        if crawl is not None and crawl.start < end and crawl.end > start:
            crawls.append(crawl)
    return sorted(crawls, key=lambda c: c.start)


def _crawl(item: Any) -> Crawl | None:
    """A crawl from its collinfo entry: its ``from``/``to`` times, else the two weeks from the Monday of
    the ISO week its id names (``CC-MAIN-2023-40``)."""
    if not isinstance(item, dict) or not str(item.get("id", "")).startswith("CC-MAIN-"):
        return None
    crawl_id = str(item["id"])
    start, end = _iso_time(item.get("from")), _iso_time(item.get("to"))
    if start is None or end is None:
        try:
            year, week = (int(part) for part in crawl_id.removeprefix("CC-MAIN-").split("-"))
            start = datetime.fromisocalendar(year, week, 1).replace(tzinfo=UTC)
        except ValueError:
            return None
        end = start + timedelta(days=14)
    return Crawl(crawl_id, start, end + timedelta(seconds=1))


def _iso_time(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cc_index_pages(
    client: ArchiveClient,
    index_url: str,
    data_url: str,
    crawl: Crawl,
    query: CaptureQuery,
    first_page: int = 0,
) -> Iterator[IndexPage]:
    """The site's usable captures in one crawl's index, a page at a time from ``first_page`` on; each
    page's ``next_cursor`` is the number of the next page."""
    base = f"{index_url.rstrip('/')}/{crawl.crawl_id}-index"
    params = {
        "url": query.site, "matchType": "domain", "output": "json",
        "from": timestamp14(query.start), "to": timestamp14(query.end - timedelta(seconds=1)),
    }  # fmt: skip
    counted = _json_answer(client, f"{base}?{urlencode({**params, 'showNumPages': 'true'})}")
    pages = int(counted.get("pages", 0)) if isinstance(counted, dict) else 0
    for number in range(first_page, pages):
        answer = _answer(client, f"{base}?{urlencode({**params, 'page': str(number)})}")
        page = IndexPage([], str(number + 1) if number + 1 < pages else None)
        for line in answer.splitlines():
            _cc_capture(line, data_url, query, page)
        yield page


def _cc_capture(line: str, data_url: str, query: CaptureQuery, page: IndexPage) -> None:
    if not line.strip():
        return
    try:
        fields = json.loads(line)
        offset, length = int(fields["offset"]), int(fields["length"])
        filename, url = str(fields["filename"]), str(fields["url"])
    except (ValueError, KeyError, TypeError):
        page.skipped["malformed"] += 1
        return
    page.rows += 1
    captured_at = parse_timestamp(str(fields.get("timestamp", "")))
    mime = str(fields.get("mime-detected") or fields.get("mime") or "")
    if query.keep(url, captured_at, str(fields.get("status", "")), mime, page):
        assert captured_at is not None
        uri = f"{data_url.rstrip('/')}/{filename.lstrip('/')}"
        page.captures.append(IndexedCapture(url, Capture(Archive.CC_INDEX, uri, captured_at, offset, length)))


# ------------------------------------------------------------------------------------------------ shared


def _answer(client: ArchiveClient, url: str) -> str:
    """The text of an index answer; an empty one for a 404 (pywb's "no captures")."""
    response = client.get(url, RequestKind.INDEX, max_bytes=INDEX_MAX_BYTES)
    if response.status == 404:
        return ""
    if response.status != 200:
        raise FetchError(url, f"http_{response.status}", f"HTTP {response.status}", response.status)
    return response.content.decode("utf-8", errors="replace")


def _json_answer(client: ArchiveClient, url: str) -> Any:
    text = _answer(client, url)
    if not text.strip():
        return []
    try:
        return json.loads(text)
    except ValueError as exc:
        raise FetchError(url, "bad_index_answer", f"not JSON: {exc}") from exc
