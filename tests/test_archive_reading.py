"""The pieces of archive reading: which hosts a site takes, which CC-NEWS files a window needs, the archive
client's waits (on a clock the test controls), and reading a WARC file through broken records and a
broken connection (against the loopback archive)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsflow.net.archive import ArchiveClient, RequestKind
from newsflow.net.ccnews import NewsFile, parse_listing, select_files
from newsflow.net.cdx import parse_timestamp
from newsflow.net.urls import SiteMatcher
from newsflow.net.warc import RecordFilter, scan_warc
from newsflow.settings import load_settings
from tests.archive_fixture import SITES, Archive, chosen
from tests.conftest import ArchiveSite


@pytest.mark.parametrize(
    ("url", "taken"),
    [
        ("https://nytimes.com/2023/09/25/a.html", True),
        ("https://www.nytimes.com/2023/09/25/a.html", True),
        ("http://cooking.NYTimes.com./recipe", True),
        ("https://notnytimes.com/a", False),
        ("https://nytimes.com.mirror.example/a", False),
        ("https://nytimes.co/a", False),
        ("https://www.example.org/?u=https://www.nytimes.com/", False),
        ("not a url", False),
        ("", False),
    ],
)
def test_a_site_takes_its_domain_and_subdomains_never_a_substring(url: str, taken: bool) -> None:
    assert SiteMatcher(["nytimes.com"]).matches(url) is taken


def test_a_site_may_be_given_as_an_origin_url() -> None:
    sites = SiteMatcher(["https://www.Reuters.com:443/", "cnet.com"])
    assert sites.domains == ("cnet.com", "www.reuters.com")
    assert sites.matches("https://www.reuters.com/x") and not sites.matches("https://reuters.com/x")


def _file(stamp: str) -> NewsFile:
    return NewsFile(
        datetime.strptime(stamp, "%Y%m%d%H").replace(tzinfo=UTC), f"CC-NEWS-{stamp}0000-00001.warc.gz"
    )


def test_the_files_of_a_window_start_with_the_one_that_holds_its_first_hours() -> None:
    files = [
        _file("2023092300"),
        _file("2023092418"),
        _file("2023092506"),
        _file("2023092620"),
        _file("2023092812"),
    ]
    start, end = datetime(2023, 9, 25, tzinfo=UTC), datetime(2023, 9, 27, tzinfo=UTC)
    assert [f.path[8:18] for f in select_files(files, start, end)] == [
        "2023092418",
        "2023092506",
        "2023092620",
    ]


def test_a_listing_is_read_in_time_order_and_other_lines_are_skipped() -> None:

    listing = gzip.compress(
        b"crawl-data/CC-NEWS/2023/09/CC-NEWS-20230925101500-01235.warc.gz\n"
        b"crawl-data/CC-NEWS/2023/09/CC-NEWS-20230901000000-00001.warc.gz\n"
        b"\nREADME.txt\n"
    )
    files = parse_listing(listing)
    assert [f.starts for f in files] == [
        datetime(2023, 9, 1, tzinfo=UTC),
        datetime(2023, 9, 25, 10, 15, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("stamp", "moment"),
    [
        ("20230925101500", datetime(2023, 9, 25, 10, 15, tzinfo=UTC)),
        ("2023", datetime(2023, 1, 1, tzinfo=UTC)),
        ("202309", datetime(2023, 9, 1, tzinfo=UTC)),
        ("20230931000000", None),
        ("abc", None),
    ],
)
def test_archive_timestamps(stamp: str, moment: datetime | None) -> None:
    assert parse_timestamp(stamp) == moment


class FakeClock:
    """A clock whose sleeps only move it forward (and are recorded)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def quiet_archive(archive_site: ArchiveSite) -> Iterator[ArchiveSite]:
    from newsflow.net.http import close_shared_fetchers

    archive_site.faults([])
    archive_site.reset_log()
    yield archive_site
    close_shared_fetchers()


def test_a_429_stops_requests_of_its_kind_for_its_retry_after(
    quiet_archive: ArchiveSite, tmp_path: Path
) -> None:
    clock = FakeClock()
    settings = quiet_archive.settings(tmp_path / "x.ducklake", index_requests_per_minute=30.0)
    client = ArchiveClient(settings, clock=clock)  # type: ignore[arg-type]
    quiet_archive.faults([{"prefix": "/index/collinfo.json", "statuses": [429, 503], "retry_after": "7"}])
    response = client.get(quiet_archive.base + "/index/collinfo.json", RequestKind.INDEX, max_bytes=10_000)
    assert response.status == 200
    statuses = [r["status"] for r in quiet_archive.requests()]
    assert statuses == [429, 503, 200]
    # 30 a minute: turns 2 s apart; each refusal held the kind for its Retry-After (7 s, plus up to 10 %).
    assert len(clock.sleeps) == 2 and all(7 <= wait <= 7.7 + 2 for wait in clock.sleeps)
    before = clock.now
    client.get(quiet_archive.base + "/index/collinfo.json", RequestKind.INDEX, max_bytes=10_000)
    client.get(quiet_archive.base + "/index/collinfo.json", RequestKind.INDEX, max_bytes=10_000)
    assert clock.now - before >= 2.0  # the pace holds between successes too


def test_an_archive_that_keeps_refusing_is_given_up_with_the_reason(
    quiet_archive: ArchiveSite, tmp_path: Path
) -> None:
    from newsflow.errors import TransientFetchError

    clock = FakeClock()
    client = ArchiveClient(quiet_archive.settings(tmp_path / "x.ducklake", archive_retries=2), clock=clock)  # type: ignore[arg-type]
    quiet_archive.faults([{"prefix": "/index/", "statuses": [503, 503, 503, 503]}])
    with pytest.raises(TransientFetchError, match="HTTP 503"):
        client.get(quiet_archive.base + "/index/collinfo.json", RequestKind.INDEX, max_bytes=10_000)
    assert len(quiet_archive.requests()) == 3  # the first try and two more
    # A Retry-After longer than NEWSFLOW_MAX_ARCHIVE_WAIT is not waited for.
    quiet_archive.faults([{"prefix": "/index/", "statuses": [429], "retry_after": "3600"}])
    with pytest.raises(TransientFetchError, match="NEWSFLOW_MAX_ARCHIVE_WAIT"):
        client.get(quiet_archive.base + "/index/collinfo.json", RequestKind.INDEX, max_bytes=10_000)


def _kept(archive: Archive, file: str) -> set[str]:
    return {c.url for c in archive.captures if c.file == file and c.status == 200 and chosen(c.url)}


def _scan(site: ArchiveSite, file: str, tmp_path: Path) -> tuple[set[str], int, list[int]]:
    client = ArchiveClient(site.settings(tmp_path / "x.ducklake"), clock=FakeClock())  # type: ignore[arg-type]
    keep = RecordFilter(
        SiteMatcher(list(SITES)),
        datetime(2022, 1, 1, tzinfo=UTC),
        datetime(2022, 3, 1, tzinfo=UTC),
        5_000_000,
    )
    urls, malformed, resumes = set(), 0, []
    for chunk in scan_warc(client, f"{site.base}/data/{file}", keep, pages_per_chunk=2):
        urls |= {page.url for page in chunk.pages if "html" in page.content_type}
        malformed += chunk.counts.malformed
        resumes.append(chunk.resume_at)
    return urls, malformed, resumes


def test_a_broken_record_is_skipped_and_reading_goes_on_after_it(
    quiet_archive: ArchiveSite, tmp_path: Path
) -> None:
    archive: Archive = quiet_archive.archive  # type: ignore[assignment]
    broken = archive.truncated_in
    urls, malformed, _ = _scan(quiet_archive, broken, tmp_path)
    assert urls == _kept(archive, broken) - {archive.truncated} and archive.truncated not in urls
    assert malformed == 1
    later = [c for c in archive.captures if c.file == broken and c.url in urls]
    assert later, "nothing after the broken record was read"


def test_a_connection_broken_mid_file_is_reopened_where_its_chunk_began(
    quiet_archive: ArchiveSite, tmp_path: Path
) -> None:
    archive: Archive = quiet_archive.archive  # type: ignore[assignment]
    file = max(archive.files, key=lambda f: (archive.root / f).stat().st_size)
    clean, _, resumes = _scan(quiet_archive, file, tmp_path)
    quiet_archive.reset_log()
    quiet_archive.faults([{"prefix": f"/data/{file}", "reset_after": 200_000, "times": 1}])
    urls, malformed, _ = _scan(quiet_archive, file, tmp_path)
    assert urls == clean == _kept(archive, file) and malformed == 0
    opened = [r["range"] for r in quiet_archive.requests() if r["path"] == f"/data/{file}"]
    assert len(opened) == 2 and opened[0] is None
    start = int(str(opened[1]).removeprefix("bytes=").rstrip("-"))
    assert 0 < start < 200_000 and start in resumes  # at a chunk boundary before the break


def _record(uri: str, date: str, block: bytes) -> bytes:
    """One gzip member holding a WARC response record, written by hand to be wrong in chosen ways."""
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {uri}\r\nWARC-Date: {date}\r\n"
        f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(block)}\r\n\r\n"
    )
    return gzip.compress(head.encode() + block + b"\r\n\r\n")


def test_a_record_without_a_usable_date_or_http_is_skipped_and_the_next_one_read(tmp_path: Path) -> None:
    page = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><body><p>A page.</p></body></html>"
    file = tmp_path / "odd.warc.gz"
    file.write_bytes(
        _record("https://news.example/1", "2022-01-21T10:00:00Z", page)
        + _record("https://news.example/2", "the day before yesterday", page)
        + _record("https://news.example/3", "2022-01-21T10:00:00Z", b"NOT HTTP\r\n\r\nbody")
        + _record("https://news.example/4", "2022-01-21T10:00:00Z", page)
    )
    client = ArchiveClient(load_settings(), clock=FakeClock())  # type: ignore[arg-type]
    keep = RecordFilter(SiteMatcher(["news.example"]), datetime(2022, 1, 1, tzinfo=UTC),
                        datetime(2022, 2, 1, tzinfo=UTC), 5_000_000)  # fmt: skip
    [chunk] = list(scan_warc(client, file.as_uri(), keep))
    assert [page.url for page in chunk.pages] == ["https://news.example/1", "https://news.example/4"]
    assert (chunk.counts.malformed, chunk.counts.not_ok, chunk.finished) == (1, 1, True)
