"""A small web archive for tests: real WARC files laid out as CC-NEWS's are, written with warcio from the
shared trafilatura evaluation pages, and the captures they hold (what the archive server's CDX and Common
Crawl index answer from).

The window is PUBLISHED_SINCE..PUBLISHED_UNTIL (January 2022). Each page is captured a day after its gold
publication date, on a host that is a chosen site (``example-news.com`` and a subdomain,
``daily.example.org``), a look-alike (``notexample-news.com``, ``example-news.com.mirror.example``) or
another site. Also in the files: a 404, an image, a page in windows-1252 (HTTP charset), a record cut short
(a truncated gzip member), and one article captured again in a later file.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from tests.conftest import SHARED_DATA

TRAFILATURA_EVAL = SHARED_DATA / "trafilatura-eval"
PUBLISHED_SINCE, PUBLISHED_UNTIL = date(2022, 1, 20), date(2022, 1, 26)
SITES = ("example-news.com", "daily.example.org")

#: Pages of January 2022 whose publication day, as newsflow extracts it, is the gold one (42 of the 51;
#: the other 9 are misdated by the pages' own markup, e.g. a "last updated" date).
PAGES = (
    "0221ea5395ec4e8d",
    "0fc1a0548a784eb0",
    "152a97d3589951ba",
    "17dc5d11739165b5",
    "1a8b857b655cbbb4",
    "31136c3a04a98feb",
    "4d41fa59d6513afa",
    "4dc287445563dca9",
    "5a2aa5c709a610b5",
    "65700fca8320b4d5",
    "67db01c5dd1db436",
    "68699e8ec4253aee",
    "7ccc9fd06a74271b",
    "7faac9ecb5e87e29",
    "805e8b6d9b6dde63",
    "80dd87b7b7c4bc22",
    "8c6096d3e0523ae6",
    "92734d2d341fb59a",
    "949a69a6bc22e28a",
    "9fe7bcf482a484bc",
    "a002c64c76308e39",
    "a295aaf3ce2d67fb",
    "a93bcf12ee6b9a91",
    "aca9628ffcab3010",
    "acacd2c8eee63aef",
    "b57990a927754607",
    "b63bb33e12d5fb12",
    "b8eff92a48101a28",
    "bd4c4028da0be1f4",
    "c24137de582789d5",
    "c922690ea676be68",
    "c92aacbb30f8e847",
    "c9765723273fe62c",
    "c9e5ac1e539706cf",
    "d272860f7934beb1",
    "d942537eb9f7b197",
    "e11bf111328341cc",
    "e9d3b4816df9f50c",
    "f35f173de298d64f",
    "f4cf21c192240a48",
    "f8efb2dbc9c48aef",
    "fe959f3cd6b3745b",
)
#: Hosts pages are put on, in turn: chosen sites (and a subdomain), look-alikes, another site.
HOSTS = (
    "www.example-news.com",
    "tech.example-news.com",
    "daily.example.org",
    "notexample-news.com",
    "www.example-news.com",
    "example-news.com.mirror.example",
    "www.example-news.com",
    "other.example",
)
#: CC-NEWS files (their first capture time): the first is before the window's and must not be read.
FILE_STARTS = (
    datetime(2022, 1, 10, tzinfo=UTC),
    datetime(2022, 1, 19, 6, tzinfo=UTC),
    datetime(2022, 1, 23, 6, tzinfo=UTC),
    datetime(2022, 1, 27, 6, tzinfo=UTC),
)


@dataclass(frozen=True)
class Captured:
    """One response record: what it is and where it is."""

    url: str
    captured_at: datetime
    status: int
    content_type: str
    file: str  # path below the data root, e.g. crawl-data/CC-NEWS/2022/01/CC-NEWS-...warc.gz
    offset: int
    length: int
    published: date | None = None  # gold publication day of an article page


@dataclass
class Archive:
    """The written archive: its root folder, its captures, and the article URLs a backfill of the window
    for SITES must store (and those it must not)."""

    root: Path
    captures: list[Captured] = field(default_factory=list)
    expected: set[str] = field(default_factory=set)
    read_but_outside: set[str] = field(default_factory=set)  # captured in the window, published outside
    truncated: str = ""  # the URL whose record is cut short
    truncated_in: str = ""  # the file it is in
    non_utf8: str = ""  # the URL of the windows-1252 page
    repeated: str = ""  # the URL captured in two files

    @property
    def files(self) -> list[str]:
        return sorted({c.file for c in self.captures})


def gold() -> dict[str, dict[str, str]]:
    return dict(json.loads((TRAFILATURA_EVAL / "ground-truth.json").read_text()))


def page_html(page_id: str) -> bytes:
    return gzip.decompress((TRAFILATURA_EVAL / "html" / f"{page_id}.html.gz").read_bytes())


def chosen(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return any(host == site or host.endswith("." + site) for site in SITES)


@dataclass(frozen=True)
class _Record:
    url: str
    captured_at: datetime
    status: int
    content_type: str
    body: bytes
    published: date | None = None
    cut_short: bool = False


def _records(annotations: dict[str, dict[str, str]]) -> tuple[list[_Record], Archive]:
    archive = Archive(Path())
    records = []
    for number, page_id in enumerate(PAGES):
        meta = annotations[page_id]
        published = date.fromisoformat(meta["date"][:10])
        path = urlsplit(meta["url"]).path or f"/{page_id}"
        url = f"https://{HOSTS[number % len(HOSTS)]}{path}"
        captured_at = datetime(published.year, published.month, published.day, 9, tzinfo=UTC) + timedelta(
            days=1, minutes=number
        )
        records.append(
            _Record(url, captured_at, 200, "text/html; charset=utf-8", page_html(page_id), published)
        )
    # Not articles: a 404 and an image on a chosen site, inside the window.
    when = datetime(2022, 1, 22, 3, tzinfo=UTC)
    records.append(
        _Record("https://www.example-news.com/gone", when, 404, "text/html", b"<html>Not found</html>")
    )
    records.append(
        _Record("https://www.example-news.com/logo.jpg", when, 200, "image/jpeg", b"\xff\xd8\xff" * 50)
    )
    # A page in windows-1252, said so only by its HTTP header.
    special = [
        r
        for r in records
        if chosen(r.url) and r.published and PUBLISHED_SINCE <= r.published <= PUBLISHED_UNTIL
    ]
    latin, cut, again = special[0], special[1], special[2]
    text = latin.body.decode("utf-8").replace('charset="utf-8"', "").replace("charset=utf-8", "")
    records[records.index(latin)] = _Record(
        latin.url,
        latin.captured_at,
        200,
        "text/html; charset=windows-1252",
        text.encode("cp1252", errors="xmlcharrefreplace"),
        latin.published,
    )
    records[records.index(cut)] = _Record(
        cut.url, cut.captured_at, 200, cut.content_type, cut.body, cut.published, cut_short=True
    )
    # Captured again two days later, in a later file: one article all the same.
    records.append(
        _Record(
            again.url,
            again.captured_at + timedelta(days=2),
            200,
            again.content_type,
            again.body,
            again.published,
        )
    )
    archive.non_utf8, archive.truncated, archive.repeated = latin.url, cut.url, again.url
    return sorted(records, key=lambda r: r.captured_at), archive


def write_archive(root: Path) -> Archive:
    """Write the archive under ``root`` (``crawl-data/CC-NEWS/2022/01/...`` and its listing)."""
    records, archive = _records(gold())
    archive.root = root
    folder = root / "crawl-data" / "CC-NEWS" / "2022" / "01"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"CC-NEWS-{start:%Y%m%d%H%M%S}-{n:05d}.warc.gz" for n, start in enumerate(FILE_STARTS)]
    for number, name in enumerate(names):
        start = FILE_STARTS[number]
        end = FILE_STARTS[number + 1] if number + 1 < len(FILE_STARTS) else datetime.max.replace(tzinfo=UTC)
        mine = [r for r in records if start <= r.captured_at < end]
        if any(r.cut_short for r in mine):
            archive.truncated_in = f"crawl-data/CC-NEWS/2022/01/{name}"
        archive.captures += _write_file(folder / name, f"crawl-data/CC-NEWS/2022/01/{name}", mine)
    listing = "".join(f"crawl-data/CC-NEWS/2022/01/{name}\n" for name in names)
    (folder / "warc.paths.gz").write_bytes(gzip.compress(listing.encode()))
    (root / "_captures.json").write_text(
        json.dumps(
            [
                {
                    "url": c.url,
                    "timestamp": f"{c.captured_at:%Y%m%d%H%M%S}",
                    "status": c.status,
                    "mime": c.content_type,
                    "file": c.file,
                    "offset": c.offset,
                    "length": c.length,
                }
                for c in archive.captures
            ]
        )
    )
    window_start = datetime(PUBLISHED_SINCE.year, PUBLISHED_SINCE.month, PUBLISHED_SINCE.day, tzinfo=UTC)
    capture_end = window_start + timedelta(days=(PUBLISHED_UNTIL - PUBLISHED_SINCE).days + 1 + 3)
    for record in records:
        if not (record.published and chosen(record.url) and window_start <= record.captured_at < capture_end):
            continue
        if record.cut_short:
            continue
        if PUBLISHED_SINCE <= record.published <= PUBLISHED_UNTIL:
            archive.expected.add(record.url)
        else:
            archive.read_but_outside.add(record.url)
    return archive


def _write_file(path: Path, relative: str, records: list[_Record]) -> list[Captured]:
    """One CC-NEWS-like file: warcinfo, then a request and a response per record, a gzip member each."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    writer.write_record(
        writer.create_warcinfo_record(
            path.name,
            {
                "software": "StormCrawler 1.18 https://stormcrawler.net/",
                "format": "WARC File Format 1.1",
                "isPartOf": "CC-NEWS",
                "operator": "Common Crawl Admin (info@commoncrawl.org)",
            },
        )
    )
    captured = []
    cut_at: tuple[int, int] | None = None
    for record in records:
        stamp = record.captured_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        host = urlsplit(record.url).netloc
        request = writer.create_warc_record(
            record.url,
            "request",
            payload=io.BytesIO(b""),
            warc_headers_dict={"WARC-Date": stamp},
            http_headers=StatusAndHeaders(
                f"GET {urlsplit(record.url).path} HTTP/1.1",
                [("Host", host), ("User-Agent", "CCBot/2.0")],
                is_http_request=True,
            ),
        )
        writer.write_record(request)
        reason = {200: "OK", 404: "Not Found"}[record.status]
        headers = StatusAndHeaders(
            f"{record.status} {reason}",
            [
                ("Content-Type", record.content_type),
                ("Content-Length", str(len(record.body))),
                ("X-Crawler-Content-Encoding", "gzip"),
                ("X-Crawler-Content-Length", str(len(record.body) // 3)),
                ("Server", "nginx"),
            ],
            protocol="HTTP/1.1",
        )
        response = writer.create_warc_record(
            record.url,
            "response",
            payload=io.BytesIO(record.body),
            http_headers=headers,
            warc_headers_dict={"WARC-Date": stamp, "WARC-IP-Address": "203.0.113.7"},
        )
        offset = out.tell()
        writer.write_record(response)
        length = out.tell() - offset
        if record.cut_short:
            cut_at = (offset, length)
        captured.append(
            Captured(
                record.url,
                record.captured_at,
                record.status,
                record.content_type.split(";")[0],
                relative,
                offset,
                length,
                record.published,
            )
        )
    data = out.getvalue()
    if cut_at is not None:  # keep the first half of that record's gzip member: a truncated record
        offset, length = cut_at
        data = data[: offset + length // 2] + data[offset + length :]
        shift = length - length // 2
        captured = [
            c
            if c.offset <= offset
            else Captured(
                c.url,
                c.captured_at,
                c.status,
                c.content_type,
                c.file,
                c.offset - shift,
                c.length,
                c.published,
            )
            for c in captured
            if c.offset != offset
        ]
    path.write_bytes(data)
    return captured
