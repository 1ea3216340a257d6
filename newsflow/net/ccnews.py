"""CC-NEWS, Common Crawl's news crawl: which of its WARC files may hold the captures of a time window.

Each month has a listing, ``crawl-data/CC-NEWS/YYYY/MM/warc.paths.gz``, of files named after the time of
their first record: ``CC-NEWS-20230925101500-01234.warc.gz``. A file holds what was crawled from its
start until the next file's, so the files for [start, end) are those that start before ``end`` and whose
successor starts after ``start``; the file that starts before the window (perhaps last month) holds its
first hours. CC-NEWS begins in August 2016.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from newsflow.errors import FetchError
from newsflow.net.archive import ArchiveClient, RequestKind

FILE_NAME = re.compile(r"CC-NEWS-(\d{14})-\d+\.warc\.gz$")
LISTING_MAX_BYTES = 10_000_000
FIRST_MONTH = (2016, 8)


@dataclass(frozen=True, order=True)
class NewsFile:
    """One CC-NEWS WARC file: when its first record was captured, and its path below the data URL."""

    starts: datetime
    path: str


@dataclass
class Selection:
    """The files chosen for a window, and the listings that could not be read (``reason: url``)."""

    files: list[NewsFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def listing_url(data_url: str, year: int, month: int) -> str:
    return f"{data_url.rstrip('/')}/crawl-data/CC-NEWS/{year:04d}/{month:02d}/warc.paths.gz"


def parse_listing(body: bytes) -> list[NewsFile]:
    """The files of a ``warc.paths(.gz)`` listing, in time order; lines that name no CC-NEWS file are
    skipped."""
    text = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    files = []
    for line in text.decode("utf-8", errors="replace").splitlines():
        path = line.strip()
        match = FILE_NAME.search(path)
        if match:
            files.append(NewsFile(datetime.strptime(match[1], "%Y%m%d%H%M%S").replace(tzinfo=UTC), path))
    return sorted(files)


def select_files(files: list[NewsFile], start: datetime, end: datetime) -> list[NewsFile]:
    """Of ``files`` (time order), those that may hold captures in [start, end)."""
    chosen = []
    for index, news_file in enumerate(files):
        following = files[index + 1].starts if index + 1 < len(files) else None
        if news_file.starts < end and (following is None or following > start):
            chosen.append(news_file)
    return chosen


def months(start: datetime, end: datetime) -> list[tuple[int, int]]:
    """(year, month) of every month from ``start``'s to ``end``'s, both included."""
    out = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def news_files(client: ArchiveClient, data_url: str, start: datetime, end: datetime) -> Selection:
    """The CC-NEWS files that may hold captures in [start, end), from the months' listings (and the month
    before, when no file of the window's months starts before the window)."""
    selection = Selection()
    wanted = [m for m in months(start, end) if m >= FIRST_MONTH]
    if not wanted:
        selection.problems.append(f"before_cc_news: CC-NEWS begins in {FIRST_MONTH[0]}-{FIRST_MONTH[1]:02d}")
        return selection
    files = [f for year, month in wanted for f in _listing(client, data_url, year, month, selection)]
    if not any(f.starts <= start for f in files) and wanted[0] > FIRST_MONTH:
        year, month = wanted[0]
        before = (year - 1, 12) if month == 1 else (year, month - 1)
        files += _listing(client, data_url, *before, selection)[-1:]
    selection.files = select_files(sorted(files), start, end)
    return selection


def _listing(
    client: ArchiveClient, data_url: str, year: int, month: int, selection: Selection
) -> list[NewsFile]:
    url = listing_url(data_url, year, month)
    try:
        response = client.get(url, RequestKind.DATA, max_bytes=LISTING_MAX_BYTES)
    except FetchError as exc:
        selection.problems.append(f"{exc.reason}: {url}: {exc.detail}")
        return []
    if response.status != 200:
        selection.problems.append(f"http_{response.status}: {url} (no listing for {year}-{month:02d} yet?)")
        return []
    try:
        return parse_listing(response.content)
    except (OSError, EOFError, zlib.error) as exc:
        selection.problems.append(f"bad_listing: {url}: {exc}")
        return []
